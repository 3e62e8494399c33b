"""The simulator process of the benchmarks: FakeTempolor on its own CPU, plus a control port.

The orchestrator pins it to its CPU before it starts (see ``run.py``).

``python -m benchmarks.server`` prints one JSON line (API base URL, token, control URL, the
CPUs it may run on) and serves until told to stop (``POST /stop``), until its standard
input closes (the orchestrator is gone) or until ``--max-seconds`` pass, whichever is first.

The control port is a second, tiny aiohttp app in the same process. The fake does not record
its requests, so the request counts that B4 reads from it are the API traffic alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tempolor_async import Submission
from tempolor_async.testing import FakeTempolor

from .common import PAGE_SIZE, TOKEN, cpus_allowed

Handler = Callable[[web.Request], Awaitable[web.Response]]


class Controller:
    """Control operations on the running fake, one POST route each (JSON in, JSON out)."""

    def __init__(self, fake: FakeTempolor) -> None:
        self.fake = fake
        self.stop = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024**2)
        for name in ("seed", "restart", "media", "requests", "reset", "stop"):
            app.router.add_post(f"/{name}", self._route(name))
        return app

    def _route(self, name: str) -> Handler:
        operation = getattr(self, f"do_{name}")

        async def handle(request: web.Request) -> web.Response:
            payload = await request.json() if request.can_read_body else None
            return web.json_response(await operation(payload or {}))

        return handle

    async def do_seed(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Make ``submissions`` song or instrumental submissions (two jobs each) through the
        fake's own API; returns the job ids in submission order."""
        job_ids: list[str] = []
        async with self.fake.client() as client:
            create: Callable[[str], Awaitable[Submission]] = (
                client.music.create_song
                if payload["kind"] == "song"
                else client.music.create_instrumental
            )
            for index in range(payload["submissions"]):
                submission = await create(f"benchmark {payload['kind']} {index}")
                job_ids.extend(submission.jobs or [])
        return {"job_ids": job_ids}

    async def do_restart(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Start the given jobs again from now, each with its own duration, and clear the
        request log. Returns when each becomes final, on this machine's monotonic clock
        (system-wide on Linux, so comparable with the client's ``time.monotonic()``)."""
        now = time.monotonic()
        created_ms = int(time.time() * 1000)
        final_at: dict[str, float] = {}
        for job_id, duration in zip(payload["job_ids"], payload["durations"], strict=True):
            job = self.fake.jobs[job_id]
            job.started, job.duration, job.created_ms = now, float(duration), created_ms
            job.tracked, job.forced_status, job.forced_ms = True, None, None
            final_at[job_id] = now + float(duration)
        self.fake.requests.clear()
        return {"final_at": final_at}

    async def do_media(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Serve ``size`` pseudo-random bytes (incompressible) at a token-free URL."""
        data = random.Random(0).randbytes(payload["size"])
        return {"url": self.fake.add_media(payload["name"], data)}

    async def do_requests(self, payload: dict[str, Any]) -> dict[str, Any]:
        """API requests received since the last restart or reset, and when each
        ``GET scheduler/`` arrived (the ticks of a shared poll loop)."""
        ticks = [r.time for r in self.fake.requests if r.path.rstrip("/") == "/scheduler"]
        return {"count": len(self.fake.requests), "scheduler_times": ticks}

    async def do_reset(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Clear the request log (it would otherwise grow with every benchmark request)."""
        count = len(self.fake.requests)
        self.fake.requests.clear()
        return {"count": count}

    async def do_stop(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.stop.set()
        return {}


async def _stdin_closed() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()


async def serve(args: argparse.Namespace) -> None:
    fake = FakeTempolor(
        TOKEN,
        job_duration=0.0,
        max_jobs=1_000_000,
        max_gen_count_at_once=1_000_000,
        page_size=args.page_size,
    )
    async with fake:
        controller = Controller(fake)
        runner = web.AppRunner(controller.app(), access_log=None, shutdown_timeout=0.25)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        control_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        info = {"base_url": fake.base_url, "token": fake.token, "control_url": control_url}
        print(json.dumps({**info, "cpus_allowed": cpus_allowed()}), flush=True)
        waits = [
            asyncio.ensure_future(controller.stop.wait()),
            asyncio.ensure_future(_stdin_closed()),
        ]
        try:
            await asyncio.wait(waits, timeout=args.max_seconds, return_when="FIRST_COMPLETED")
        finally:
            for waiting in waits:
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiting
            await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server", description=__doc__)
    parser.add_argument("--page-size", type=int, default=PAGE_SIZE, help="records per page")
    parser.add_argument(
        "--max-seconds", type=float, default=3600.0, help="stop after this long regardless"
    )
    asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
