"""The ``tempolor`` command: every API call from the shell, and ``tempolor demo``.

Exit status: 0 on success, 1 for an API error or a failed job, 2 for bad usage (an unknown
command or option, a value outside the documented limits, a missing token).

One module per command group: ``_music`` (song, instrumental, status, wait, download, list,
stems), ``_voices``, ``_midi``, ``_accounts``, ``_scheduler``, ``_batch``, ``_noiz``,
``_demo``, ``_simulate``; ``_common`` holds what they share and ``_output`` how they print.
This module builds the parser from them and turns every error into one line and an exit
status.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .. import __version__
from .._errors import ConfigurationError, TempolorError, ValidationError
from . import _accounts, _batch, _demo, _midi, _music, _noiz, _scheduler, _simulate, _voices
from ._common import Handler
from ._output import Output

TOKEN_HELP = "API token (default: the USEAPI_TOKEN environment variable)"


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage as one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
        sys.exit(2)


def _global_options() -> dict[str, list[argparse.ArgumentParser]]:
    """The global options, as parents for a command: each command lists only those that
    act on it. "account": --token, --base-url, --coordination, --user-id and --json;
    "service": all but --user-id (calls that take no account); "output": --json; "none"."""
    token = argparse.ArgumentParser(add_help=False)
    token.add_argument("--token", default=argparse.SUPPRESS, help=TOKEN_HELP)
    token.add_argument(
        "--base-url",
        default=argparse.SUPPRESS,
        help="API base URL (default: the TEMPOLOR_BASE_URL environment variable, "
        "else https://api.useapi.net/v1/tempolor)",
    )
    token.add_argument(
        "--coordination",
        default=argparse.SUPPRESS,
        help="join a fleet through this Redis URL (default: the TEMPOLOR_COORDINATION "
        "environment variable, else this process alone)",
    )
    user = argparse.ArgumentParser(add_help=False)
    user.add_argument(
        "--user-id",
        default=argparse.SUPPRESS,
        help="account to act for (default: none; a generation goes to the freest account)",
    )
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    return {
        "account": [token, user, output],
        "service": [token, output],
        "output": [output],
        "none": [],
    }


def build_parser() -> argparse.ArgumentParser:
    option_sets = _global_options()
    parser = _Parser(
        prog="tempolor",
        parents=option_sets["account"],
        description="TemPolor music generation from the shell. Try 'tempolor demo' first.",
    )
    parser.add_argument("--version", action="version", version=f"tempolor-async {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str,
        handler: Handler,
        help: str,
        parent: Any = commands,
        options: str = "account",
        parents: Sequence[argparse.ArgumentParser] | None = None,
    ) -> argparse.ArgumentParser:
        """A command (or, with ``parent``, a subcommand) with the set of global options
        named by ``options`` (see ``_global_options``), or with ``parents`` of its own."""
        chosen = option_sets[options] if parents is None else list(parents)
        sub: argparse.ArgumentParser = parent.add_parser(
            name, parents=chosen, help=help, description=help
        )
        sub.set_defaults(handler=handler)
        return sub

    _demo.add_command(command)
    _music.add_commands(command)
    _voices.add_command(command)
    _midi.add_command(command)
    _accounts.add_command(command)
    _scheduler.add_command(command)
    _simulate.add_command(command)
    _noiz.add_parser(command)
    _batch.add_command(command)
    return parser


# --------------------------------------------------------------------- main

# SDK parameter names as the command spells them, for error messages.
OPTION_NAMES = {
    "artist_voice_item_id": "--artist-voice",
    "cloned_voice_item_id": "--cloned-voice",
    "midi_item_id": "--midi",
    "content_type": "--content-type",
    "user_id": "--user-id",
    "max_jobs": "--max-jobs",
    "file_format": "--format",
    "lyrics": "--lyrics-file",
    "token": "--token",
    "base_url": "--base-url",
}
# A name is replaced where it is plainly a parameter: written ``name=``, leading the message
# as ``name:``, or spelled with an underscore (no English word is).
_PARAMETER = re.compile(
    r"^(?:" + "|".join(OPTION_NAMES) + r")(?=:)"
    r"|\b(?:" + "|".join(OPTION_NAMES) + r")=(?=\s|$|\))"
    r"|\b(?:" + "|".join(name for name in OPTION_NAMES if "_" in name) + r")\b"
)


def _for_the_shell(message: str) -> str:
    """An SDK message in the command's terms: ``--content-type``, not ``content_type=``."""
    return _PARAMETER.sub(lambda match: OPTION_NAMES[match.group(0).rstrip("=")], message)


def _tempolor_errors(exc: BaseException) -> list[TempolorError] | None:
    """The TempolorErrors in ``exc``, or None if anything else is among them; an exception
    group (whatever raised it) counts when all its members are TempolorErrors."""
    if isinstance(exc, TempolorError):
        return [exc]
    members = getattr(exc, "exceptions", None)
    if not isinstance(exc, Exception) or not isinstance(members, tuple) or not members:
        return None
    found: list[TempolorError] = []
    for member in members:
        inner = _tempolor_errors(member)
        if inner is None:
            return None
        found += inner
    return found


def _quiet_closed_pipe() -> int:
    """The reader of our output went away (``tempolor list | head -1``): stop quietly.
    Python would complain again when it flushes stdout at exit, so send that to devnull."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()
    except BrokenPipeError:
        return _quiet_closed_pipe()


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    out = Output(as_json=getattr(args, "json", False))
    handler: Handler = args.handler
    try:
        return asyncio.run(handler(args, out))
    except BrokenPipeError:
        raise
    except (ValidationError, ConfigurationError) as exc:
        out.error(_for_the_shell(str(exc)))
        return 2
    except KeyboardInterrupt:
        out.error("interrupted")
        return 130
    except Exception as exc:
        errors = _tempolor_errors(exc)
        if errors is not None:
            out.error(_for_the_shell("; ".join(dict.fromkeys(str(error) for error in errors))))
            return 1
        if isinstance(exc, (OSError, ValueError)):
            out.error(str(exc))
            return 2
        raise
