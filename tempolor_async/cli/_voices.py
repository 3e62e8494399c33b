"""``tempolor voices``: artist voices, and the voices cloned from your own samples."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import (
    Command,
    content_type_option,
    limit_option,
    listing,
    options_named,
    tempolor_client,
)
from ._output import Output


def add_command(command: Command) -> None:
    """Register ``tempolor voices`` with the command line's ``command`` helper."""
    voices = command("voices", cmd_voices, "artist and cloned voices")
    actions = voices.add_subparsers(dest="action", required=True, metavar="ACTION")
    limit_option(command("artist", cmd_voices, "list artist voices", actions))
    limit_option(command("cloned", cmd_voices, "list cloned voices", actions))
    clone = command("clone", cmd_voices, "clone a voice from an audio file", actions)
    clone.add_argument(
        "file", metavar="FILE", help="a sample of the voice: .m4a, .mp3, .wav or .flac"
    )
    clone.add_argument("--name", required=True, help="a name for the voice (required)")
    content_type_option(clone)
    deleting = command("delete", cmd_voices, "delete a cloned voice", actions, "service")
    deleting.add_argument("id", metavar="ID", help="a cloned voice's id")


async def cmd_voices(args: argparse.Namespace, out: Output) -> int:
    async with tempolor_client(args) as client:
        if args.action == "artist":
            voices = await client.voices.list_artist().to_list(limit=args.limit)
            rows: list[list[Any]] = [[v.item_id, v.name, v.labels] for v in voices]
            return listing(out, [v.raw for v in voices], ["item_id", "name", "labels"], rows)
        if args.action == "cloned":
            cloned = await client.voices.list_cloned().to_list(limit=args.limit)
            rows = [[v.cloned_voice_item_id, v.name, v.status] for v in cloned]
            columns = ["cloned_voice_item_id", "name", "status"]
            return listing(out, [v.raw for v in cloned], columns, rows)
        if args.action == "clone":
            with options_named(audio="FILE", name="--name"):
                clone = await client.voices.clone(
                    args.file, name=args.name, content_type=args.content_type
                )
            state = "ready" if clone.ready else "processing"
            return listing(
                out,
                clone.raw,
                ["cloned_voice_item_id", "state"],
                [[clone.cloned_voice_item_id, state]],
            )
        with options_named(cloned_voice_item_id="ID"):
            await client.voices.delete_cloned(args.id)
        return listing(out, {"deleted": args.id}, ["deleted"], [[args.id]])
