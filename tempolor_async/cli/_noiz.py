"""``tempolor noiz``: Noiz AI voices from the shell (list, get, clone, delete, speak).

Same conventions as every other command: ``--json`` for machine-readable output, one-line
errors, exit status 0/1/2, progress shown only on a terminal. The key comes from
``--noiz-key`` or ``NOIZ_API_KEY``, the base URL from ``--noiz-base-url`` or ``NOIZ_BASE_URL``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from .._errors import ConfigurationError
from ..noiz import NoizClient, OutputFormat, VoiceType
from ._output import Output, human_size, positive_int

Command = Callable[..., argparse.ArgumentParser]
VOICE_COLUMNS = ["voice_id", "name", "type", "labels"]
AUDIO_TYPE_HELP = "the sample's type, e.g. audio/mpeg (default: from the file's extension)"


def add_parser(command: Command) -> None:
    """Register ``tempolor noiz`` with the main parser's ``command`` helper."""
    noiz = command("noiz", cmd_noiz, "Noiz AI voices: list, clone, delete, and speak text")
    groups = noiz.add_subparsers(dest="noiz_command", required=True, metavar="COMMAND")
    voices = command("voices", cmd_noiz, "your cloned voices and the built-in ones", groups)
    actions = voices.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = command("list", cmd_noiz, "list voices", actions)
    listing.add_argument(
        "--type",
        default="custom",
        choices=[t.value for t in VoiceType],
        help="your cloned voices or the service's own (default: custom)",
    )
    listing.add_argument("--keyword", help="search names, descriptions and labels")
    listing.add_argument(
        "--limit", type=positive_int, metavar="N", help="at most N voices (default: all)"
    )
    command("get", cmd_noiz, "show one voice", actions).add_argument("id", help="a voice id")
    clone = command("clone", cmd_noiz, "clone a voice from a WAV/MP3/M4A file or a URL", actions)
    source = clone.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", help="the voice sample")
    source.add_argument("--url", help="an http(s) URL of the sample, fetched by Noiz")
    clone.add_argument("--name", dest="display_name", help="display name")
    clone.add_argument("--denoise", action="store_true", help="remove noise first")
    clone.add_argument("--language", help='language of the sample, e.g. "en"')
    clone.add_argument("--content-type", metavar="TYPE", help=AUDIO_TYPE_HELP)
    deleting = command("delete", cmd_noiz, "delete a cloned voice (a soft delete)", actions)
    deleting.add_argument("id", help="a voice id")
    speak = command("speak", cmd_noiz, "speak text with a voice, into an audio file", groups)
    speak.add_argument("text", help="what to say: at most 5,000 characters")
    voice = speak.add_mutually_exclusive_group(required=True)
    voice.add_argument("--voice", dest="voice_id", metavar="ID", help="a voice id")
    voice.add_argument(
        "--reference",
        dest="reference_audio",
        metavar="FILE",
        help="a sample of the voice to speak with (WAV, MP3 or M4A)",
    )
    speak.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="the audio file to write (or a folder ending in /)",
    )
    formats = [f.value for f in OutputFormat]
    speak.add_argument(
        "--format",
        dest="output_format",
        default="wav",
        choices=formats,
        help="audio format (default: wav)",
    )
    speak.add_argument("--speed", type=float, default=1.0, help="speaking speed (default: 1.0)")
    speak.add_argument("--content-type", metavar="TYPE", help=AUDIO_TYPE_HELP)
    for parser in (noiz, voices, speak, *actions.choices.values()):
        parser.add_argument(
            "--noiz-key",
            default=argparse.SUPPRESS,
            help="Noiz API key (default: the NOIZ_API_KEY environment variable)",
        )
        parser.add_argument(
            "--noiz-base-url",
            default=argparse.SUPPRESS,
            help="Noiz base URL (default: the NOIZ_BASE_URL environment variable, else https://noiz.ai/v1)",
        )


def _client(args: argparse.Namespace) -> NoizClient:
    try:
        return NoizClient(
            getattr(args, "noiz_key", None), base_url=getattr(args, "noiz_base_url", None)
        )
    except ConfigurationError as exc:
        raise ConfigurationError(str(exc).replace("pass api_key=", "pass --noiz-key")) from None


async def cmd_noiz(args: argparse.Namespace, out: Output) -> int:
    from ._common import listing as _show

    async with _client(args) as noiz:
        if args.noiz_command == "speak":
            return await _speak(noiz, args, out)
        if args.action == "list":
            pager = noiz.voices.list(
                voice_type=args.type,
                keyword=args.keyword,
                page_size=min(args.limit, 100) if args.limit and args.limit > 0 else 10,
            )
            voices = await pager.to_list(limit=args.limit)
            rows = [[v.voice_id, v.display_name, v.voice_type, v.labels] for v in voices]
            return _show(out, [v.raw for v in voices], VOICE_COLUMNS, rows)
        if args.action == "get":
            v = await noiz.voices.get(args.id)
            return _show(
                out, v.raw, VOICE_COLUMNS, [[v.voice_id, v.display_name, v.voice_type, v.labels]]
            )
        if args.action == "clone":
            with _busy(out, "Cloning the voice"):
                options = _options(
                    args, "url", "display_name", "denoise", "language", "content_type"
                )
                clone = await noiz.voices.clone(args.file, **options)
            row = [clone.voice_id, clone.voice_display_name, clone.duration, clone.language]
            return _show(out, clone.raw, ["voice_id", "name", "seconds", "language"], [row])
        deleted = await noiz.voices.delete(args.id)
        data = deleted.raw or {"voice_id": args.id}
        return _show(out, data, ["deleted", "at"], [[deleted.voice_id, deleted.delete_time]])


async def _speak(noiz: NoizClient, args: argparse.Namespace, out: Output) -> int:
    with _busy(out, "Speaking"):
        options = _options(
            args, "voice_id", "reference_audio", "output_format", "speed", "content_type"
        )
        speech = await noiz.speech.synthesize(args.text, args.out, **options)
    size = speech.path.stat().st_size
    if out.as_json:
        out.json({"path": str(speech.path), "bytes": size, "duration": speech.duration})
        return 0
    out.table(["path", "size", "seconds"], [[speech.path, human_size(size), speech.duration]])
    return 0


def _options(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """Command-line options named as the SDK's parameters, as keyword arguments."""
    return {name: getattr(args, name) for name in names}


def _busy(out: Output, text: str) -> Any:
    """A spinner while a slow call runs, only for a person at a terminal."""
    return out.console.status(text + "…") if out.live else nullcontext()
