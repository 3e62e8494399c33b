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


def add_options(parser: argparse.ArgumentParser) -> None:
    """The simulator's options, shared with ``tempolor simulate``."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=8765,
        help="port to listen on, 0 for any free port (default: %(default)s)",
    )
    parser.add_argument(
        "--token",
        default="fake-token",
        help="the bearer token to accept (default: %(default)s; not read from USEAPI_TOKEN)",
    )
    parser.add_argument(
        "--job-duration",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="seconds from submission until a job is final (default: %(default)s)",
    )
    parser.add_argument(
        "--max-jobs",
        type=_positive,
        default=10,
        metavar="N",
        help="maxJobs of the pre-configured account (default: %(default)s)",
    )
    parser.add_argument(
        "--page-size",
        type=_positive,
        default=20,
        metavar="N",
        help="records per list page (default: %(default)s)",
    )
    parser.add_argument(
        "--fail-marker",
        default="[fail]",
        metavar="TEXT",
        help="prompts containing this end FAILED (default: %(default)s)",
    )
    parser.add_argument(
        "--noiz", action="store_true", help="serve the Noiz voice API instead of TemPolor"
    )
    parser.add_argument(
        "--noiz-key",
        default="fake-noiz-key",
        metavar="KEY",
        help="with --noiz, the API key to accept (default: %(default)s; not read from "
        "NOIZ_API_KEY)",
    )
    parser.add_argument(
        "--noiz-credits",
        type=_positive_or_zero,
        default=None,
        metavar="CHARACTERS",
        help="with --noiz, characters of text it will still synthesize, then 402 "
        "(default: unlimited)",
    )
    parser.add_argument(
        "--noiz-max-page-size",
        type=_positive,
        default=100,
        metavar="N",
        help="with --noiz, the most voices a list page holds (default: %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tempolor_async.testing",
        description="Serve a local TemPolor API simulator until interrupted.",
    )
    add_options(parser)
    return parser


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535, not {port}")
    return port


def _seconds(text: str) -> float:
    seconds = float(text)
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"must be zero or more seconds, not {text}")
    return seconds


def _positive_or_zero(text: str) -> int:
    number = int(text)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, not {text}")
    return number


def _positive(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return number


async def serve(args: argparse.Namespace) -> None:
    fake: FakeServer
    if getattr(args, "noiz", False):
        key = getattr(args, "noiz_key", None) or "fake-noiz-key"
        fake = FakeNoiz(
            key,
            host=args.host,
            port=args.port,
            credits=getattr(args, "noiz_credits", None),
            max_page_size=getattr(args, "noiz_max_page_size", 100),
        )
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
