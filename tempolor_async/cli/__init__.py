"""The ``tempolor`` command: every API call from the shell, and ``tempolor demo``.

Exit status: 0 on success, 1 for an API error or a failed job, 2 for bad usage (an unknown
command or option, a value outside the documented limits, a missing token).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .. import __version__, _files, _protocol, _validation
from .._client import TempolorClient
from .._errors import ConfigurationError, ResponseDecodeError, TempolorError, ValidationError
from .._models import Account, FileFormat, MusicJob, MusicType, Submission
from . import _noiz
from ._output import Output, human_size, positive_int

Handler = Callable[[argparse.Namespace, Output], Coroutine[Any, Any, int]]
TOKEN_HELP = "API token (default: the USEAPI_TOKEN environment variable)"


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage as one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
        sys.exit(2)


# ------------------------------------------------------------------ helpers


def _client(args: argparse.Namespace) -> TempolorClient:
    return TempolorClient(
        getattr(args, "token", None),
        base_url=getattr(args, "base_url", None),
        user_id=getattr(args, "user_id", None),
        coordination=getattr(args, "coordination", None),
    )


def _redacted(account: Account) -> dict[str, Any]:
    """An account's JSON with its credentials' values hidden."""
    raw = dict(account.raw)
    if isinstance(raw.get("requestParams"), dict):
        raw["requestParams"] = {key: "<redacted>" for key in raw["requestParams"]}
    return raw


def _job_rows(jobs: Sequence[MusicJob]) -> list[list[Any]]:
    return [
        [job.job_id, job.status_name, job.progress, job.title_en, job.create_time] for job in jobs
    ]


JOB_COLUMNS = ["job_id", "status", "progress", "title", "created"]


async def _wait_for(
    client: TempolorClient, out: Output, job_ids: Sequence[str], poll_interval: float | None
) -> list[MusicJob]:
    """Wait for every job with the shared poll loop; a live bar per job on a terminal.
    Returns the final records in the order of ``job_ids``."""
    finished: list[MusicJob] = []
    with out.job_progress({job_id: job_id for job_id in job_ids}) as bars:
        on_progress = bars.update if out.live else None
        async for job in client.as_completed(
            job_ids, poll_interval=poll_interval, on_progress=on_progress
        ):
            finished.append(job)
    order = {job_id: index for index, job_id in enumerate(job_ids)}
    return sorted(finished, key=lambda job: order.get(job.job_id or "", len(order)))


def _show_jobs(out: Output, jobs: Sequence[MusicJob]) -> int:
    if out.as_json:
        out.json([job.raw for job in jobs])
    else:
        out.table(JOB_COLUMNS, _job_rows(jobs))
    return _report_failures(out, jobs)


def _report_failures(out: Output, jobs: Sequence[MusicJob]) -> int:
    failed = [job for job in jobs if not job.is_completed]
    for job in failed:
        out.error(
            f"job {job.job_id} ended {job.status_name}{': ' + job.error if job.error else ''}"
        )
    return 1 if failed else 0


def _folder(path: str, option: str) -> str:
    """``path`` as a folder for the SDK: a trailing separator makes it one, created if
    missing. Checked (and created) here, before anything is sent."""
    folder = os.path.join(path, "")
    try:
        _files.check_destination(folder)
    except ValidationError as exc:
        raise ValidationError(option, str(exc).removeprefix("dest: ")) from None
    return folder


def _file_names(job_ids: Sequence[str], extension: str) -> dict[str, str]:
    """A distinct file name per job (``<itemId>.<ext>``), so that no two jobs ever share
    one: an itemId that repeats, or that reduces to the same safe name, gets a number."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for job_id in job_ids:
        stem = _files.safe_name(_protocol.item_id_of(job_id))
        name, number = f"{stem}.{extension}", 1
        while name.lower() in taken:
            number += 1
            name = f"{stem}-{number}.{extension}"
        taken.add(name.lower())
        names[job_id] = name
    return names


async def _download_jobs(
    client: TempolorClient, jobs: Sequence[MusicJob], folder: str, fmt: str
) -> list[dict[str, Any]]:
    extension = FileFormat(fmt).extension
    completed = [job.job_id for job in jobs if job.is_completed and job.job_id]
    names = _file_names(completed, extension)
    written = []
    for job_id in completed:
        path = await client.music.download(
            job_id, os.path.join(folder, names[job_id]), file_format=fmt
        )
        written.append(_file_entry(job_id, fmt, path))
    return written


def _file_entry(
    origin: str | None, fmt: str, path: Path, *, origin_is: str = "job_id"
) -> dict[str, Any]:
    """One file written: what it came from (a job id, or the file a command was given)."""
    return {origin_is: origin, "format": fmt, "path": str(path), "bytes": path.stat().st_size}


def _show_files(out: Output, files: list[dict[str, Any]], origin_is: str = "job_id") -> None:
    if out.as_json:
        out.json({"files": files})
        return
    rows = [[f[origin_is], f["format"], f["path"], human_size(f["bytes"])] for f in files]
    out.table([origin_is, "format", "path", "size"], rows)


# ----------------------------------------------------------------- commands


async def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    from ._demo import run_demo

    return await run_demo(out, Path(_folder(args.out, "--out")))


async def cmd_simulate(args: argparse.Namespace, out: Output) -> int:
    from ..testing.__main__ import serve

    await serve(args)
    return 0


async def cmd_generate(args: argparse.Namespace, out: Output) -> int:
    """Submit, then (with --wait or --download) wait and download. Every option is checked
    before the generation is sent; once it is, its job ids are printed whatever happens
    next (at once on stdout, or in the --json object printed at the end)."""
    folder = _folder(args.download, "--download") if args.download else None
    result: dict[str, Any] = {}
    try:
        async with _client(args) as client:
            submission = await _submit(client, args)
            result.update(submission.raw)
            job_ids = list(submission.jobs or [])
            if not out.as_json:
                out.table(["job_id"], [[job_id] for job_id in job_ids], title="submitted")
            if not (args.wait or folder):
                return 0
            try:
                job_ids = [_validation.path_id("job_id", job_id) for job_id in job_ids]
            except ValidationError as exc:
                raise ResponseDecodeError(f"the service answered with {exc}") from None
            out.note(f"waiting for {len(job_ids)} jobs")
            jobs = await _wait_for(client, out, job_ids, args.poll_interval)
            result["records"] = [job.raw for job in jobs]
            if folder is not None:
                files = await _download_jobs(client, jobs, folder, args.format)
                result["files"] = files
                if not out.as_json:
                    _show_files(out, files)
            elif not out.as_json:
                out.table(JOB_COLUMNS, _job_rows(jobs))
            return _report_failures(out, jobs)
    except BaseException as exc:
        if result:
            interrupted = isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError))
            result["error"] = "interrupted" if interrupted else str(exc) or type(exc).__name__
        raise
    finally:
        if out.as_json and result:
            out.json(result)


async def _submit(client: TempolorClient, args: argparse.Namespace) -> Submission:
    if args.command == "song":
        return await client.music.create_song(
            args.prompt,
            lyrics=args.lyrics_file,
            model=args.model,
            artist_voice_item_id=args.artist_voice,
            cloned_voice_item_id=args.cloned_voice,
            midi_item_id=args.midi,
        )
    return await client.music.create_instrumental(
        args.prompt,
        model=args.model,
        tonality=args.tonality,
        bpm=args.bpm,
        chords=args.chords,
    )


async def cmd_status(args: argparse.Namespace, out: Output) -> int:
    async with _client(args) as client:
        job = await client.music.get(args.job_id)
    if out.as_json:
        out.json(job.raw)
    else:
        material = job.music_material
        out.fields(
            [
                ("job_id", job.job_id),
                ("status", job.status_name),
                ("progress", job.progress),
                ("title", job.title_en),
                ("key", material.key if material else None),
                ("bpm", material.bpm if material else None),
                ("created", job.create_time),
                ("error", job.error),
            ]
        )
    return 0


async def cmd_wait(args: argparse.Namespace, out: Output) -> int:
    async with _client(args) as client:
        jobs = await _wait_for(client, out, args.job_ids, args.poll_interval)
    return _show_jobs(out, jobs)


async def cmd_download(args: argparse.Namespace, out: Output) -> int:
    async with _client(args) as client:
        try:
            path = await client.music.download(args.job_id, args.out, file_format=args.format)
        except ValidationError as exc:
            if exc.parameter != "dest":
                raise
            raise ValidationError("--out", str(exc).removeprefix("dest: ")) from None
    _show_files(out, [_file_entry(args.job_id, args.format, path)])
    return 0


async def cmd_list(args: argparse.Namespace, out: Output) -> int:
    async with _client(args) as client:
        jobs = await client.music.list(type=args.type).to_list(limit=args.limit)
    if out.as_json:
        out.json([job.raw for job in jobs])
    else:
        out.table(JOB_COLUMNS, _job_rows(jobs))
    return 0


async def cmd_voices(args: argparse.Namespace, out: Output) -> int:
    async with _client(args) as client:
        if args.action == "artist":
            voices = await client.voices.list_artist().to_list(limit=args.limit)
            rows: list[list[Any]] = [[v.item_id, v.name, v.labels] for v in voices]
            return _listing(out, [v.raw for v in voices], ["item_id", "name", "labels"], rows)
        if args.action == "cloned":
            cloned = await client.voices.list_cloned().to_list(limit=args.limit)
            rows = [[v.cloned_voice_item_id, v.name, v.status] for v in cloned]
            columns = ["cloned_voice_item_id", "name", "status"]
            return _listing(out, [v.raw for v in cloned], columns, rows)
        if args.action == "clone":
            clone = await client.voices.clone(
                args.file, name=args.name, content_type=args.content_type
            )
            state = "ready" if clone.ready else "processing"
            return _listing(
                out,
                clone.raw,
                ["cloned_voice_item_id", "state"],
                [[clone.cloned_voice_item_id, state]],
            )
        await client.voices.delete_cloned(args.id)
        return _listing(out, {"deleted": args.id}, ["deleted"], [[args.id]])


async def cmd_midi(args: argparse.Namespace, out: Output) -> int:
    async with _client(args) as client:
        if args.action == "list":
            files = await client.midi.list().to_list(limit=args.limit)
            rows = [[m.midi_item_id, m.name, m.midi_url] for m in files]
            return _listing(out, [m.raw for m in files], ["midi_item_id", "name", "url"], rows)
        if args.action == "upload":
            upload = await client.midi.upload(
                args.file, name=args.name, content_type=args.content_type
            )
            midi_id = upload.midi.midi_item_id if upload.midi else None
            return _listing(out, upload.raw, ["midi_item_id", "name"], [[midi_id, args.name]])
        await client.midi.delete(args.id)
        return _listing(out, {"deleted": args.id}, ["deleted"], [[args.id]])


async def cmd_stems(args: argparse.Namespace, out: Output) -> int:
    folder = _folder(args.out, "--out")
    async with _client(args) as client:
        split = await client.music.split_stems(args.file, content_type=args.content_type)
        if not split.stems_zip_url:
            return _listing(out, split.raw, ["state", "title"], [[split.state, split.title]])
        try:
            path = await client.download_file(split.stems_zip_url, folder)
        except ValidationError as exc:
            if exc.parameter != "url":
                raise
            # The link came from the service: a link we cannot use is its fault, not ours.
            raise ResponseDecodeError(
                f"unusable stems_zip_url: {exc}", method="POST", path="/music/stems-splitter/"
            ) from None
    _show_files(out, [_file_entry(args.file, "stems", path, origin_is="source")], "source")
    return 0


async def cmd_accounts(args: argparse.Namespace, out: Output) -> int:
    async with _client(args) as client:
        if args.action == "list":
            accounts = list((await client.accounts.list()).values())
        elif args.action == "get":
            accounts = [await client.accounts.get(args.id)]
        elif args.action == "add":
            accounts = [await client.accounts.create(args.request_params, max_jobs=args.max_jobs)]
        else:
            await client.accounts.delete(args.id)
            return _listing(out, {"deleted": args.id}, ["deleted"], [[args.id]])
    rows: list[list[Any]] = [[a.user_id, a.max_jobs, a.updated_utc] for a in accounts]
    data: Any = [_redacted(a) for a in accounts]
    if args.action != "list":
        data = data[0]
    return _listing(out, data, ["user_id", "max_jobs", "updated"], rows)


async def cmd_scheduler(args: argparse.Namespace, out: Output) -> int:
    async with _client(args) as client:
        if args.action == "list":
            running = await client.scheduler.list()
            rows: list[list[Any]] = [[j.job_id, j.started, j.elapsed] for j in running]
            return _listing(out, [j.raw for j in running], ["job_id", "started", "elapsed"], rows)
        if args.action == "available":
            capacity = await client.scheduler.available()
            rows = [
                [a.user_id, a.max_jobs, a.executing, a.available] for a in capacity.available or []
            ]
            columns = ["user_id", "max_jobs", "executing", "available"]
            return _listing(out, capacity.raw, columns, rows)
        await client.scheduler.cancel(args.job_id)
        return _listing(out, {"cancelled": args.job_id}, ["cancelled"], [[args.job_id]])


def _listing(out: Output, data: Any, columns: list[str], rows: list[list[Any]]) -> int:
    if out.as_json:
        out.json(data)
    else:
        out.table(columns, rows)
    return 0


# ------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--token", default=argparse.SUPPRESS, help=TOKEN_HELP)
    common.add_argument(
        "--base-url",
        default=argparse.SUPPRESS,
        help="API base URL (default: the TEMPOLOR_BASE_URL environment variable, "
        "else https://api.useapi.net/v1/tempolor)",
    )
    common.add_argument(
        "--user-id",
        default=argparse.SUPPRESS,
        help="account to act for (default: none; a generation goes to the freest account)",
    )
    common.add_argument(
        "--coordination",
        default=argparse.SUPPRESS,
        help="join a fleet through this Redis URL (default: the TEMPOLOR_COORDINATION "
        "environment variable, else this process alone)",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    parser = _Parser(
        prog="tempolor",
        parents=[common],
        description="TemPolor music generation from the shell. Try 'tempolor demo' first.",
    )
    parser.add_argument("--version", action="version", version=f"tempolor-async {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str,
        handler: Handler,
        help: str,
        parent: Any = commands,
        parents: Sequence[argparse.ArgumentParser] = (common,),
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = parent.add_parser(
            name, parents=list(parents), help=help, description=help
        )
        sub.set_defaults(handler=handler)
        return sub

    demo = command(
        "demo", cmd_demo, "generate, watch and download music offline, with the simulator"
    )
    demo.add_argument(
        "--out",
        default="tempolor-demo",
        metavar="DIR",
        help="folder for the files, created if missing (default: ./tempolor-demo)",
    )

    for kind, article in (("song", "a"), ("instrumental", "an")):
        gen = command(kind, cmd_generate, f"generate {article} {kind}")
        gen.add_argument("prompt", help="what to generate: at most 2,000 characters")
        gen.add_argument("--model", help="model name (default: the service's default)")
        if kind == "song":
            gen.add_argument(
                "--lyrics-file",
                metavar="FILE",
                type=_text_file,
                help="a text file with the song's lyrics (at most 3,000 characters)",
            )
            voice = gen.add_mutually_exclusive_group()
            voice.add_argument(
                "--artist-voice",
                metavar="ID",
                help="sing with an artist voice (tempolor voices artist)",
            )
            voice.add_argument(
                "--cloned-voice",
                metavar="ID",
                help="sing with a cloned voice (tempolor voices cloned)",
            )
            voice.add_argument(
                "--midi", metavar="ID", help="follow an uploaded MIDI file (tempolor midi list)"
            )
        else:
            gen.add_argument("--bpm", type=int, help="tempo, 50 to 190")
            gen.add_argument("--tonality", metavar="KEY", help="e.g. C:major, F#:minor")
            gen.add_argument("--chords", help="chord progression, e.g. 'C F G Am'")
        gen.add_argument("--wait", action="store_true", help="wait until the jobs are final")
        gen.add_argument(
            "--download",
            metavar="DIR",
            help="wait, then download each job into the folder DIR (created if missing)",
        )
        _format_option(gen)
        _poll_option(gen)

    status = command("status", cmd_status, "show a job's record")
    status.add_argument("job_id", help="a job id, as printed when it was submitted")
    wait = command("wait", cmd_wait, "wait until jobs are final")
    wait.add_argument("job_ids", nargs="+", metavar="JOB_ID")
    _poll_option(wait)
    download = command("download", cmd_download, "download a finished job")
    download.add_argument("job_id", help="a completed job's id")
    _format_option(download)
    download.add_argument(
        "--out",
        default=".",
        metavar="PATH",
        help="file, or folder (an existing one, or a path ending with '/', created if "
        "missing) (default: the current folder)",
    )
    listing = command("list", cmd_list, "list past generations, newest first")
    listing.add_argument(
        "--type",
        default="song",
        choices=[t.value for t in MusicType],
        help="which kind to list (default: %(default)s)",
    )
    _limit_option(listing)

    voices = command("voices", cmd_voices, "artist and cloned voices")
    voice_actions = voices.add_subparsers(dest="action", required=True, metavar="ACTION")
    _limit_option(command("artist", cmd_voices, "list artist voices", voice_actions))
    _limit_option(command("cloned", cmd_voices, "list cloned voices", voice_actions))
    clone = command("clone", cmd_voices, "clone a voice from an audio file", voice_actions)
    clone.add_argument("file", help="a sample of the voice: .m4a, .mp3, .wav or .flac")
    clone.add_argument("--name", required=True, help="a name for the voice (required)")
    _content_type_option(clone)
    command("delete", cmd_voices, "delete a cloned voice", voice_actions).add_argument("id")

    midi = command("midi", cmd_midi, "MIDI files")
    midi_actions = midi.add_subparsers(dest="action", required=True, metavar="ACTION")
    _limit_option(command("list", cmd_midi, "list MIDI files", midi_actions))
    upload = command("upload", cmd_midi, "upload a MIDI file", midi_actions)
    upload.add_argument("file", help="a .mid or .midi file")
    upload.add_argument("--name", required=True, help="a name for it (required)")
    upload.add_argument(
        "--content-type",
        metavar="TYPE",
        help="audio/midi or audio/x-midi (default: from the file's extension, else audio/midi)",
    )
    command("delete", cmd_midi, "delete a MIDI file", midi_actions).add_argument("id")

    stems = command("stems", cmd_stems, "split an audio file into stems and download them")
    stems.add_argument("file", help="the audio file to split: .m4a, .mp3, .wav or .flac")
    stems.add_argument(
        "--out",
        default=".",
        metavar="DIR",
        help="folder for the ZIP, created if missing (default: the current folder)",
    )
    _content_type_option(stems)

    accounts = command("accounts", cmd_accounts, "TemPolor accounts behind the token")
    account_actions = accounts.add_subparsers(dest="action", required=True, metavar="ACTION")
    command("list", cmd_accounts, "list accounts", account_actions)
    command("get", cmd_accounts, "show an account", account_actions).add_argument("id")
    add = command("add", cmd_accounts, "add or update an account", account_actions)
    add.add_argument(
        "--request-params",
        required=True,
        metavar="FILE",
        type=_request_params_file,
        help="JSON file with the account's requestParams (see the setup guide)",
    )
    add.add_argument(
        "--max-jobs",
        type=positive_int,
        metavar="N",
        help="jobs the account may run at once (default: the service's)",
    )
    command("delete", cmd_accounts, "delete an account", account_actions).add_argument("id")

    scheduler = command("scheduler", cmd_scheduler, "jobs the API is tracking")
    scheduler_actions = scheduler.add_subparsers(dest="action", required=True, metavar="ACTION")
    command("list", cmd_scheduler, "list running jobs", scheduler_actions)
    command("available", cmd_scheduler, "free slots per account", scheduler_actions)
    cancel = command("cancel", cmd_scheduler, "stop tracking a job", scheduler_actions)
    cancel.add_argument("job_id", help="the job to stop tracking")

    from ..testing.__main__ import add_options

    simulate = command(
        "simulate", cmd_simulate, "run a local simulator until interrupted", parents=()
    )
    add_options(simulate)

    _noiz.add_parser(command)

    from ._batch import add_command as add_batch_command

    add_batch_command(command)
    return parser


def _text_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise argparse.ArgumentTypeError(f"{path} is not UTF-8 text") from None


def _request_params_file(path: str) -> dict[str, Any]:
    try:
        params = json.loads(_text_file(path))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{path} is not JSON: {exc}") from None
    if isinstance(params, dict) and isinstance(params.get("requestParams"), dict):
        params = params["requestParams"]  # the file may hold the whole setup JSON
    if not isinstance(params, dict):
        raise argparse.ArgumentTypeError(f"{path} must hold a JSON object")
    return params


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return seconds


def _format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        default="mp3",
        choices=[f.value for f in FileFormat],
        help="file format (default: %(default)s)",
    )


def _poll_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--poll-interval",
        type=_positive_seconds,
        metavar="SECONDS",
        help="fixed poll interval (default: adaptive, about 2 s growing to 15 s)",
    )


def _limit_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--limit", type=positive_int, metavar="N", help="at most N items (default: all)"
    )


def _content_type_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--content-type",
        metavar="TYPE",
        help="audio type, e.g. audio/mpeg (default: from the file's extension)",
    )


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
