"""Run a simulator standalone: ``python -m tempolor_async.testing --port 8765``, or with
``--noiz`` the Noiz voice API instead of TemPolor.

Every option of :class:`FakeTempolor` is an option here, spelled with dashes, and
``--fault`` injects faults as :meth:`FakeTempolor.inject` does, so that a program in any
language can be tested against the simulator. ``tempolor simulate`` shares these options.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import math
import shlex
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._server import FakeServer
from .noiz import FakeNoiz
from .tempolor import FakeTempolor

# FakeTempolor's own defaults, read from its signature so that the help cannot drift.
_CONSTRUCTOR = inspect.signature(FakeTempolor.__init__).parameters


def _library_default(name: str) -> Any:
    return _CONSTRUCTOR[name].default


# ----------------------------------------------------------------- value types


def _port(text: str) -> int:
    port = _integer(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535, not {text}")
    return port


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None


def _number(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return number


def _seconds(text: str) -> float:
    seconds = _number(text)
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more seconds, not {text}")
    return seconds


def _audio_seconds(text: str) -> float:
    seconds = _number(text)
    if not 0 < seconds <= 1200:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 1200, not {text}")
    return seconds


def _positive(text: str) -> int:
    number = _integer(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return number


def _zero_or_more(text: str) -> int:
    number = _integer(text)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, not {text}")
    return number


def _whole_seconds(text: str) -> int:
    number = _integer(text)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more whole seconds, not {text}")
    return number


def _user_id(text: str) -> str:
    if not text.strip() or any(c in text for c in "/?#%") or not text.isprintable():
        raise argparse.ArgumentTypeError(
            f"must be non-blank, printable, without / ? # or %, not {text!r}"
        )
    return text


# ------------------------------------------------------- the simulator's options


@dataclass(frozen=True)
class _Option:
    """One FakeTempolor constructor option as a command-line option."""

    name: str  # the constructor's keyword
    kind: Callable[[str], Any] | None  # None: a flag
    metavar: str | None
    help: str
    default: Any = None  # the command's own default, when it differs from FakeTempolor's
    why: str = ""  # why the command's default differs

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS = (
    _Option("host", str, "ADDRESS", "address to listen on"),
    _Option(
        "port",
        _port,
        "PORT",
        "port to listen on, 0 for any free port",
        default=8765,
        why="a fixed port a program can be pointed at",
    ),
    _Option("token", str, "TOKEN", "the bearer token to accept; not read from USEAPI_TOKEN"),
    _Option("user_id", _user_id, "ID", "user_id of the pre-configured account"),
    _Option(
        "job_duration",
        _seconds,
        "SECONDS",
        "seconds from submission until a job is final",
        default=5.0,
        why="slow enough to watch progress",
    ),
    _Option("max_jobs", _positive, "N", "maxJobs of the pre-configured account"),
    _Option(
        "max_gen_count_at_once",
        _positive,
        "N",
        "maxGenCountAtOnce: jobs an account may generate at once, whatever its maxJobs",
    ),
    _Option("page_size", _positive, "N", "records per list page"),
    _Option("fail_marker", str, "TEXT", "a prompt containing this ends FAILED; '' for never"),
    _Option(
        "download_lag",
        _seconds,
        "SECONDS",
        "after a job completes, GET music/download answers 404 this long, as the service does",
    ),
    _Option(
        "download_url_expiry",
        _whole_seconds,
        "SECONDS",
        "a download link's auth_key expires after this long (then 403)",
    ),
    _Option("audio_seconds", _audio_seconds, "SECONDS", "length of every generated track"),
    _Option(
        "clock_offset",
        _number,
        "SECONDS",
        "the service's clock minus this machine's, in every time it shows",
    ),
    _Option("voice_clone_delay", _seconds, "SECONDS", "seconds a voice clone takes to process"),
    _Option(
        "voice_clone_pending",
        None,
        None,
        "answer voice clones with the documented 202 (still processing)",
    ),
)


def _help(option: _Option) -> str:
    library = _library_default(option.name)
    if option.kind is None:
        return f"{option.help} (default: off, as FakeTempolor)"
    shown = "''" if library == "" else library
    if option.default is None or option.default == library:
        return f"{option.help} (default: {shown}, as FakeTempolor)"
    return (
        f"{option.help} (default: {option.default}, this command's own: {option.why}; "
        f"FakeTempolor's is {shown})"
    )


def _command_default(option: _Option) -> Any:
    return option.default if option.default is not None else _library_default(option.name)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The simulator's options, shared with ``tempolor simulate``."""
    group = parser.add_argument_group("the simulated TemPolor service (FakeTempolor options)")
    for option in OPTIONS:
        if option.kind is None:
            group.add_argument(option.flag, action="store_true", help=_help(option))
            continue
        group.add_argument(
            option.flag,
            type=option.kind,
            default=_command_default(option),
            metavar=option.metavar,
            help=_help(option),
        )
    parser.add_argument(
        "--fault",
        action="append",
        type=parse_fault,
        default=[],
        metavar="SPEC",
        help="inject a fault, as FakeTempolor.inject() does; repeatable. SPEC is the method "
        "('*' for any), a path glob under the base URL ('/cdn/*' for media), then any of "
        "status=N, times=N, always, delay=SECONDS, drop, truncate, handled, body=TEXT, "
        "header=NAME:VALUE, probability=P, seed=N. Example: "
        "--fault 'POST /music/song status=502 handled times=1'",
    )
    parser.add_argument(
        "--noiz", action="store_true", help="serve the Noiz voice API instead of TemPolor"
    )
    parser.add_argument(
        "--noiz-key",
        default="fake-noiz-key",
        metavar="KEY",
        help="with --noiz, the API key to accept (default: %(default)s, as FakeNoiz; not "
        "read from NOIZ_API_KEY)",
    )
    parser.add_argument(
        "--noiz-credits",
        type=_zero_or_more,
        default=None,
        metavar="CHARACTERS",
        help="with --noiz, characters of text it will still synthesize, then 402 "
        "(default: unlimited, as FakeNoiz)",
    )
    parser.add_argument(
        "--noiz-max-page-size",
        type=_positive,
        default=100,
        metavar="N",
        help="with --noiz, the most voices a list page holds (default: %(default)s, as FakeNoiz)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tempolor_async.testing",
        description="Serve a local TemPolor API simulator until interrupted.",
    )
    add_options(parser)
    return parser


# ---------------------------------------------------------------------- faults


@dataclass(frozen=True)
class FaultSpec:
    """A parsed ``--fault``: the arguments of one :meth:`FakeServer.inject` call."""

    text: str
    method: str
    path: str
    options: dict[str, Any]


_METHODS = frozenset({"*", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_FLAGS = frozenset({"drop", "truncate", "handled"})


def _status(text: str) -> int:
    status = _integer(text)
    if not 100 <= status <= 599:
        raise argparse.ArgumentTypeError(f"must be from 100 to 599, not {text}")
    return status


def _probability(text: str) -> float:
    probability = _number(text)
    if not 0 < probability <= 1:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 1, not {text}")
    return probability


_VALUES: dict[str, Callable[[str], Any]] = {
    "status": _status,
    "times": _positive,
    "delay": _seconds,
    "body": str,
    "probability": _probability,
    "seed": _integer,
}


def parse_fault(text: str) -> FaultSpec:
    """``'POST /music/song status=502 handled times=1'`` -> the arguments of ``inject()``.
    Raises ``argparse.ArgumentTypeError`` (exit status 2) with what is wrong."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"cannot split {text!r}: {exc}") from None
    if len(words) < 2:
        raise argparse.ArgumentTypeError(
            f"{text!r} needs a method and a path, e.g. 'GET /music/* status=503'"
        )
    method, path, *settings = words
    if method.upper() not in _METHODS:
        raise argparse.ArgumentTypeError(
            f"{method!r} is not an HTTP method (one of {', '.join(sorted(_METHODS))})"
        )
    if not path.startswith("/"):
        raise argparse.ArgumentTypeError(f"the path {path!r} must start with /")
    options: dict[str, Any] = {}
    headers: dict[str, str] = {}
    for setting in settings:
        key, equals, value = setting.partition("=")
        if key in options or (key == "always" and "times" in options):
            raise argparse.ArgumentTypeError(f"{key} is given twice in {text!r}")
        if key in _FLAGS or key == "always":
            if equals and value.lower() not in ("true", "1", "yes"):
                raise argparse.ArgumentTypeError(f"{key} is a flag: write it bare, not {setting}")
            if key == "always":
                options["times"] = None
            else:
                options[key] = True
        elif key == "header" and equals:
            name, colon, header_value = value.partition(":")
            if not colon or not name.strip():
                raise argparse.ArgumentTypeError(f"header must be NAME:VALUE, not {value!r}")
            headers[name.strip()] = header_value.strip()
        elif key in _VALUES and equals:
            try:
                options[key] = _VALUES[key](value)
            except argparse.ArgumentTypeError as exc:
                raise argparse.ArgumentTypeError(f"{key}: {exc}") from None
        else:
            known = sorted([*_FLAGS, "always", "header", *_VALUES])
            raise argparse.ArgumentTypeError(
                f"unknown setting {setting!r} (known: {', '.join(known)}; values as key=value)"
            )
    if headers:
        options["headers"] = headers
    try:  # inject()'s own checks, on a simulator that is never started
        FakeServer(host="127.0.0.1", port=0).inject(method, path, **options)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    return FaultSpec(text, method.upper(), path, options)


# ----------------------------------------------------------------------- serve


def simulator_options(args: argparse.Namespace) -> dict[str, Any]:
    """The FakeTempolor keywords the parsed options ask for."""
    return {option.name: getattr(args, option.name) for option in OPTIONS}


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
        options = simulator_options(args)
        token = options.pop("token")
        fake = FakeTempolor(token, **options)
        credential = f"token:    {token}"
    for fault in getattr(args, "fault", []):
        fake.inject(fault.method, fault.path, **fault.options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    async with fake:
        print(f"{fake.service_name} simulator running (Ctrl+C to stop)", flush=True)
        print(f"base URL: {fake.base_url}", flush=True)
        print(credential, flush=True)
        for fault in getattr(args, "fault", []):
            print(f"fault:    {fault.text}", flush=True)
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
