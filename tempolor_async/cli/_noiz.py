"""``tempolor noiz``: Noiz AI voices from the shell (voices, speech, emotions, transcripts).

Same conventions as every other command: ``--json`` for machine-readable output, one-line
errors naming the command's own options, exit status 0/1/2, progress shown only on a
terminal. Piped, ``voices list`` and ``voices clone`` print bare voice ids, one per line. The
key comes from ``--noiz-key`` or ``NOIZ_API_KEY``, the base URL from ``--noiz-base-url`` or
``NOIZ_BASE_URL``; TemPolor's global options do not apply here and are not listed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from .. import _files
from .._errors import ConfigurationError, ValidationError
from .._files import AtomicFile
from ..noiz import NoizClient, OutputFormat, VoicePreview, VoiceType
from ._output import Output, human_size, positive_int

Command = Callable[..., argparse.ArgumentParser]
VOICE_COLUMNS = ["voice_id", "name", "type", "labels"]
AUDIO_TYPE_HELP = "the file's type, e.g. audio/mpeg (default: from the file's extension)"
# Extensions that name an audio format: a --out name with one of these must match --format.
AUDIO_EXTENSIONS = {".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus", ".aac", ".webm"}

# The SDK's parameter names as each command spells them, for error messages.
OPTION_NAMES: dict[str, Mapping[str, str]] = {
    "speak": {
        "text": "TEXT",
        "voice_id": "--voice",
        "reference_audio": "--reference",
        "dest": "--out",
        "output_format": "--format",
        "speed": "--speed",
        "emotion": "--emotion",
        "content_type": "--content-type",
    },
    "enhance": {"text": "TEXT"},
    "transcribe": {"file": "FILE", "language": "--language", "content_type": "--content-type"},
    "list": {"keyword": "--keyword", "page_size": "--limit", "voice_type": "--type"},
    "get": {"voice_id": "ID"},
    "delete": {"voice_id": "ID"},
    "clone": {
        "file": "FILE",
        "url": "--url",
        "display_name": "--name",
        "language": "--language",
        "content_type": "--content-type",
    },
    "design": {
        "description": "DESCRIPTION",
        "picture": "--picture",
        "guidance_scale": "--guidance-scale",
        "loudness": "--loudness",
        "content_type": "--picture-type",
        "picture_content_type": "--picture-type",
    },
}


def add_parser(command: Command) -> None:
    """Register ``tempolor noiz`` with the main parser's ``command`` helper."""
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    own.add_argument(
        "--noiz-key",
        default=argparse.SUPPRESS,
        help="Noiz API key (default: the NOIZ_API_KEY environment variable)",
    )
    own.add_argument(
        "--noiz-base-url",
        default=argparse.SUPPRESS,
        help="Noiz base URL (default: the NOIZ_BASE_URL environment variable, "
        "else https://noiz.ai/v1)",
    )

    def sub(name: str, help: str, parent: Any = None) -> argparse.ArgumentParser:
        if parent is None:
            return command(name, cmd_noiz, help, parents=(own,))
        return command(name, cmd_noiz, help, parent, parents=(own,))

    noiz = sub("noiz", "Noiz AI voices: list, clone, design, speak, enhance, transcribe")
    groups = noiz.add_subparsers(dest="noiz_command", required=True, metavar="COMMAND")
    voices = sub("voices", "your cloned voices and the built-in ones", groups)
    actions = voices.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = sub("list", "list voices (piped: bare ids, one per line)", actions)
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
    sub("get", "show one voice", actions).add_argument("id", help="a voice id")
    clone = sub("clone", "clone a voice from a WAV/MP3/M4A file or a URL (piped: its id)", actions)
    source = clone.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", help="the voice sample")
    source.add_argument("--url", help="an http(s) URL of the sample, fetched by Noiz")
    clone.add_argument("--name", dest="display_name", help="display name")
    clone.add_argument("--denoise", action="store_true", help="remove noise first")
    clone.add_argument("--language", help='language of the sample, e.g. "en"')
    clone.add_argument("--content-type", metavar="TYPE", help=AUDIO_TYPE_HELP)
    deleting = sub("delete", "delete a cloned voice (a soft delete)", actions)
    deleting.add_argument("id", help="a voice id")
    design = sub("design", "design voices from a description or a picture", actions)
    design.add_argument("description", nargs="?", help="the voice in words: 20 to 1,000 characters")
    design.add_argument("--picture", metavar="FILE", help="a picture of the speaker (PNG, JPEG)")
    design.add_argument(
        "--picture-type", metavar="TYPE", help="the picture's type (default: from its extension)"
    )
    design.add_argument(
        "--guidance-scale", type=float, metavar="G", help="how closely to follow, 0 to 100"
    )
    design.add_argument("--loudness", type=float, metavar="L", help="from -1 to 1")
    design.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder for the preview WAVs, created if missing",
    )

    speak = sub("speak", "speak text into an audio file (or standard output)", groups)
    speak.add_argument(
        "text", help="what to say: at most 5,000 characters (50,000 with --stream); - reads stdin"
    )
    voice = speak.add_mutually_exclusive_group()
    voice.add_argument(
        "--voice", dest="voice_id", metavar="ID", help="a voice id (default: the service's)"
    )
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
        help="the audio file to write (a folder ending in /, or - for standard output)",
    )
    speak.add_argument(
        "--format",
        dest="output_format",
        default="wav",
        choices=[f.value for f in OutputFormat],
        help="audio format (default: wav)",
    )
    speak.add_argument("--speed", type=float, help="speaking speed (default: the service's, 1.0)")
    speak.add_argument(
        "--emotion", metavar="JSON", help='emotion weights as a JSON object, e.g. {"Joy": 0.5}'
    )
    speak.add_argument(
        "--stream",
        action="store_true",
        help="ask for the service's stream: audio is written as it is made",
    )
    speak.add_argument("--content-type", metavar="TYPE", help=AUDIO_TYPE_HELP)

    enhance = sub("enhance", "add emotion annotations to text, for speak", groups)
    enhance.add_argument("text", help="the text: at most 5,000 characters; - reads stdin")

    transcribe = sub("transcribe", "the words spoken in an audio file", groups)
    transcribe.add_argument("file", help="mp3, wav, m4a, ogg, flac, aac or webm; at most 50 MiB")
    transcribe.add_argument("--language", help='the language spoken, e.g. "en"')
    transcribe.add_argument("--content-type", metavar="TYPE", help=AUDIO_TYPE_HELP)


def _client(args: argparse.Namespace) -> NoizClient:
    try:
        return NoizClient(
            getattr(args, "noiz_key", None), base_url=getattr(args, "noiz_base_url", None)
        )
    except ConfigurationError as exc:
        raise ConfigurationError(str(exc).replace("pass api_key=", "pass --noiz-key")) from None


async def cmd_noiz(args: argparse.Namespace, out: Output) -> int:
    name = args.noiz_command if args.noiz_command != "voices" else args.action
    with _option_names(name):
        check = _CHECKS.get(name)
        if check is not None:
            check(args)
        async with _client(args) as noiz:
            return await _COMMANDS[name](noiz, args, out)


@contextmanager
def _option_names(name: str) -> Iterator[None]:
    """A ValidationError in the command's terms: ``--voice``, not ``voice_id``."""
    error: ValidationError | None = None
    try:
        yield
    except ValidationError as exc:
        option = OPTION_NAMES.get(name, {}).get(exc.parameter)
        if option is None:
            raise
        error = ValidationError(option, str(exc).removeprefix(f"{exc.parameter}: "))
    if error is not None:
        raise error  # outside the except block: no chained context


# ------------------------------------------------------------------- checks first


def _check_speak(args: argparse.Namespace) -> None:
    if args.text == "-":
        args.text = sys.stdin.read()
    if args.out != "-":
        extension = Path(args.out).suffix.lower()
        if extension in AUDIO_EXTENSIONS and extension != f".{args.output_format}":
            raise ValidationError(
                "dest",
                f"{args.out!r} names a {extension[1:]} file but the format is "
                f"{args.output_format}: use --format {extension[1:]} or another name",
            )


def _check_enhance(args: argparse.Namespace) -> None:
    if args.text == "-":
        args.text = sys.stdin.read()


def _check_design(args: argparse.Namespace) -> None:
    target = Path(args.out)
    if target.exists() and not target.is_dir():
        raise ValidationError("dest", f"{args.out!r} is a file, not a folder")


_CHECKS: dict[str, Callable[[argparse.Namespace], None]] = {
    "speak": _check_speak,
    "enhance": _check_enhance,
    "design": _check_design,
}
OPTION_NAMES["design"] = {**OPTION_NAMES["design"], "dest": "--out"}


# ----------------------------------------------------------------------- commands


async def _list(noiz: NoizClient, args: argparse.Namespace, out: Output) -> int:
    pager = noiz.voices.list(
        voice_type=args.type,
        keyword=args.keyword,
        page_size=min(args.limit, 100) if args.limit else 10,
    )
    voices = await pager.to_list(limit=args.limit)
    if out.as_json:
        out.json([v.raw for v in voices])
    elif out.live:
        out.table(
            VOICE_COLUMNS, [[v.voice_id, v.display_name, v.voice_type, v.labels] for v in voices]
        )
    else:
        out.table(["voice_id"], [[v.voice_id] for v in voices])
    return 0


async def _get(noiz: NoizClient, args: argparse.Namespace, out: Output) -> int:
    v = await noiz.voices.get(args.id)
    if out.as_json:
        out.json(v.raw)
    else:
        out.table(VOICE_COLUMNS, [[v.voice_id, v.display_name, v.voice_type, v.labels]])
    return 0


async def _clone(noiz: NoizClient, args: argparse.Namespace, out: Output) -> int:
    with _busy(out, "Cloning the voice"):
        clone = await noiz.voices.clone(
            args.file,
            url=args.url,
            display_name=args.display_name,
            denoise=args.denoise,
            language=args.language,
            content_type=args.content_type,
        )
    if out.as_json:
        out.json(clone.raw)
    elif out.live:
        row = [clone.voice_id, clone.voice_display_name, clone.duration, clone.language]
        out.table(["voice_id", "name", "seconds", "language"], [row])
    else:
        out.table(["voice_id"], [[clone.voice_id]])
    return 0


async def _delete(noiz: NoizClient, args: argparse.Namespace, out: Output) -> int:
    deleted = await noiz.voices.delete(args.id)
    if out.as_json:
        out.json(deleted.raw or {"voice_id": args.id})
    else:
        out.table(["deleted", "at"], [[deleted.voice_id, deleted.delete_time]])
    return 0


async def _design(noiz: NoizClient, args: argparse.Namespace, out: Output) -> int:
    with _busy(out, "Designing voices"):
        design = await noiz.voices.design(
            args.description,
            picture=args.picture,
            guidance_scale=args.guidance_scale,
            loudness=args.loudness,
            picture_content_type=args.picture_type,
        )
    written = _save_previews(Path(args.out), design.previews)
    if out.as_json:
        previews = [{"voice_id": voice_id, "path": str(path)} for voice_id, path in written]
        out.json({**design.raw, "previews": previews})
    else:
        out.table(["voice_id", "path"], [[voice_id, path] for voice_id, path in written])
    return 0


async def _speak(noiz: NoizClient, args: argparse.Namespace, out: Output) -> int:
    options: dict[str, Any] = {
        "voice_id": args.voice_id,
        "reference_audio": args.reference_audio,
        "output_format": args.output_format,
        "speed": args.speed,
        "emotion": args.emotion,
        "content_type": args.content_type,
    }
    if args.out == "-":
        return await _speak_to_stdout(noiz, args.text, args.stream, options)
    with _busy(out, "Speaking"):
        speech = await noiz.speech.synthesize(args.text, args.out, stream=args.stream, **options)
    size = speech.path.stat().st_size
    if out.as_json:
        out.json({"path": str(speech.path), "bytes": size, "duration": speech.duration})
        return 0
    out.table(["path", "size", "seconds"], [[speech.path, human_size(size), speech.duration]])
    return 0


async def _speak_to_stdout(noiz: NoizClient, text: str, stream: bool, options: Any) -> int:
    """The audio on standard output and nothing else: as it arrives with --stream, else
    once it is complete (so that an error never leaves half a file in a pipe)."""
    sink = sys.stdout.buffer
    if stream:
        async with noiz.speech.stream(text, **options) as audio:
            async for chunk in audio:
                sink.write(chunk)
                sink.flush()
        return 0
    with tempfile.TemporaryDirectory(prefix="tempolor-noiz-") as folder:
        speech = await noiz.speech.synthesize(text, Path(folder) / "speech", **options)
        with speech.path.open("rb") as audio_file:
            shutil.copyfileobj(audio_file, sink)
    sink.flush()
    return 0


async def _enhance(noiz: NoizClient, args: argparse.Namespace, out: Output) -> int:
    enhanced = await noiz.text.enhance_emotions(args.text)
    if out.as_json:
        out.json({"emotion_enhance": enhanced})
    else:
        out.print(enhanced)
    return 0


async def _transcribe(noiz: NoizClient, args: argparse.Namespace, out: Output) -> int:
    with _busy(out, "Transcribing"):
        transcript = await noiz.speech.transcribe(
            args.file, language=args.language, content_type=args.content_type
        )
    if out.as_json:
        out.json(transcript.raw)
    else:
        out.print(transcript.transcript or "")
    return 0


_COMMANDS = {
    "list": _list,
    "get": _get,
    "clone": _clone,
    "delete": _delete,
    "design": _design,
    "speak": _speak,
    "enhance": _enhance,
    "transcribe": _transcribe,
}


def _save_previews(folder: Path, previews: list[VoicePreview]) -> list[tuple[str | None, Path]]:
    """Each preview as ``<voice_id>.wav`` in ``folder`` (created if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, preview in enumerate(previews):
        path = folder / _files.safe_name(preview.voice_id or "", f"preview-{index + 1}")
        path = path.with_name(path.name + ".wav")
        _write_atomically(path, preview.audio)
        written.append((preview.voice_id, path))
    return written


def _write_atomically(path: Path, data: bytes) -> None:
    partial = AtomicFile(path)
    try:
        partial.write(data)
        partial.commit()
    except BaseException:
        partial.discard()
        raise


def _busy(out: Output, text: str) -> Any:
    """A spinner while a slow call runs, only for a person at a terminal."""
    return out.console.status(text + "…") if out.live else nullcontext()
