"""``tempolor midi``: MIDI files a song can follow."""

from __future__ import annotations

import argparse

from ._common import Command, limit_option, listing, options_named, tempolor_client
from ._output import Output


def add_command(command: Command) -> None:
    """Register ``tempolor midi`` with the command line's ``command`` helper."""
    midi = command("midi", cmd_midi, "MIDI files")
    actions = midi.add_subparsers(dest="action", required=True, metavar="ACTION")
    limit_option(command("list", cmd_midi, "list MIDI files", actions))
    upload = command("upload", cmd_midi, "upload a MIDI file", actions)
    upload.add_argument("file", metavar="FILE", help="a .mid or .midi file")
    upload.add_argument("--name", required=True, help="a name for it (required)")
    upload.add_argument(
        "--content-type",
        metavar="TYPE",
        help="audio/midi or audio/x-midi (default: from the file's extension, else audio/midi)",
    )
    deleting = command("delete", cmd_midi, "delete a MIDI file", actions, "service")
    deleting.add_argument("id", metavar="ID", help="a MIDI file's id")


async def cmd_midi(args: argparse.Namespace, out: Output) -> int:
    async with tempolor_client(args) as client:
        if args.action == "list":
            files = await client.midi.list().to_list(limit=args.limit)
            rows = [[m.midi_item_id, m.name, m.midi_url] for m in files]
            return listing(out, [m.raw for m in files], ["midi_item_id", "name", "url"], rows)
        if args.action == "upload":
            with options_named(midi="FILE", name="--name"):
                upload = await client.midi.upload(
                    args.file, name=args.name, content_type=args.content_type
                )
            midi_id = upload.midi.midi_item_id if upload.midi else None
            return listing(out, upload.raw, ["midi_item_id", "name"], [[midi_id, args.name]])
        with options_named(midi_item_id="ID"):
            await client.midi.delete(args.id)
        return listing(out, {"deleted": args.id}, ["deleted"], [[args.id]])
