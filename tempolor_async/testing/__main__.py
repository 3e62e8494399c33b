"""Run a simulator standalone: ``python -m tempolor_async.testing --port 8765``, or with
``--noiz`` the Noiz voice API instead of TemPolor."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from ._server import FakeServer
from .noiz import FakeNoiz
from .tempolor import FakeTempolor


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tempolor_async.testing",
        description="Serve a local TemPolor API simulator until interrupted.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="port to listen on (0 = any free port)"
    )
    parser.add_argument("--token", default="fake-token", help="the bearer token to accept")
    parser.add_argument(
        "--job-duration", type=float, default=5.0, help="seconds until a job is final"
    )
    parser.add_argument(
        "--max-jobs", type=int, default=10, help="maxJobs of the pre-configured account"
    )
    parser.add_argument("--page-size", type=int, default=20, help="records per list page")
    parser.add_argument("--noiz", action="store_true", help="serve the Noiz voice API instead")
    parser.add_argument("--noiz-key", default="fake-noiz-key", help="the Noiz API key to accept")
    parser.add_argument(
        "--fail-marker", default="[fail]", help="prompts containing this end FAILED"
    )
    return parser


async def serve(args: argparse.Namespace) -> None:
    fake: FakeServer
    if getattr(args, "noiz", False):
        key = getattr(args, "noiz_key", None) or "fake-noiz-key"
        fake = FakeNoiz(key, host=args.host, port=args.port)
        credential = f"API key: {key}"
    else:
        fake = FakeTempolor(
            args.token,
            job_duration=args.job_duration,
            max_jobs=args.max_jobs,
            page_size=args.page_size,
            fail_marker=args.fail_marker,
            host=args.host,
            port=args.port,
        )
        credential = f"token:    {args.token}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    async with fake:
        print(f"{fake.service_name} simulator running (Ctrl+C to stop)", flush=True)
        print(f"base URL: {fake.base_url}", flush=True)
        print(credential, flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
