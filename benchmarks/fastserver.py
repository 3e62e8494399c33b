"""A fast server for the client-side benchmarks (B1, B3): canned answers, nothing else.

``python -m benchmarks.fastserver`` prints one JSON line (API base URL, token, a job id, the
number of list records) and serves until its standard input closes or ``--max-seconds``
pass. It answers ``GET /music/{job_id}`` with the documentation's example job record
(``job_record.json``) and ``GET /music/?type=song&cursor=...`` with pages of
``--page-size`` such records (their ``job_id``/``itemId`` made distinct), all rendered to
bytes once at start-up. It checks the bearer token, so both sides must send it, and does no
other work per request: the simulator spends about 100 µs on each, which would dilute every
client-side difference these benchmarks exist to show.

Imports nothing from ``tempolor_async``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from .common import PAGE_SIZE, TOKEN, cpus_allowed

RECORD_PATH = Path(__file__).with_name("job_record.json")
JSON_TYPE = "application/json"


def list_pages(record: dict[str, Any], records: int, page_size: int) -> dict[str, bytes]:
    """Every page of the song list, by the cursor that asks for it ("" for the first)."""
    pages: dict[str, bytes] = {}
    count = (records + page_size - 1) // page_size
    for index in range(count):
        items = []
        for number in range(index * page_size, min(records, (index + 1) * page_size)):
            item_id = f"bench{number:010d}"
            items.append({**record, "itemId": item_id, "job_id": f"{record['job_id']}{number}"})
        last = index == count - 1
        page = {"records": items, "hasNext": not last, "cursor": "" if last else f"c{index + 1}"}
        pages["" if index == 0 else f"c{index}"] = json.dumps(page).encode()
    return pages


def app(records: int, page_size: int) -> tuple[web.Application, str]:
    content = RECORD_PATH.read_bytes()
    record = json.loads(content)
    pages = list_pages(record, records, page_size)
    authorization = f"Bearer {TOKEN}"
    unauthorized = web.Response(status=401, body=b'{"error":"Unauthorized"}')

    async def job(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != authorization:
            return unauthorized
        return web.Response(body=content, content_type=JSON_TYPE)

    async def page(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != authorization:
            return unauthorized
        body = pages.get(request.query.get("cursor", ""))
        if body is None:
            return web.Response(status=400, body=b'{"error":"bad cursor"}')
        return web.Response(body=body, content_type=JSON_TYPE)

    application = web.Application()
    application.router.add_get("/music/", page)
    application.router.add_get("/music/{job_id}", job)
    return application, record["job_id"]


async def _stdin_closed() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()


async def serve(args: argparse.Namespace) -> None:
    application, job_id = app(args.records, args.page_size)
    runner = web.AppRunner(application, access_log=None, shutdown_timeout=0.25)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    info = {
        "base_url": f"http://127.0.0.1:{runner.addresses[0][1]}",
        "token": TOKEN,
        "job_id": job_id,
        "records": args.records,
        "cpus_allowed": cpus_allowed(),
    }
    print(json.dumps(info), flush=True)
    try:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(_stdin_closed(), args.max_seconds)
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fastserver", description=__doc__)
    parser.add_argument("--records", type=int, default=1000, help="records in the song list")
    parser.add_argument("--page-size", type=int, default=PAGE_SIZE, help="records per page")
    parser.add_argument(
        "--max-seconds", type=float, default=3600.0, help="stop after this long regardless"
    )
    asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
