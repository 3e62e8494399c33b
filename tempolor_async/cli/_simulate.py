"""``tempolor simulate``: a local simulator, as ``python -m tempolor_async.testing`` runs it."""

from __future__ import annotations

import argparse

from ._common import Command
from ._output import Output


def add_command(command: Command) -> None:
    """Register ``tempolor simulate`` with the command line's ``command`` helper."""
    from ..testing.__main__ import add_options

    simulate = command(
        "simulate", cmd_simulate, "run a local simulator until interrupted", options="none"
    )
    add_options(simulate)


async def cmd_simulate(args: argparse.Namespace, out: Output) -> int:
    from ..testing.__main__ import serve

    await serve(args)
    return 0
