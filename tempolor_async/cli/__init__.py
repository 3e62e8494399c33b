"""The ``tempolor`` command: every API call from the shell, and ``tempolor demo``.

Exit status: 0 on success, 1 for an API error or a failed job, 2 for bad usage (an unknown
command or option, a value outside the documented limits, a missing token).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .. import __version__
from .._client import TempolorClient
from .._errors import ConfigurationError, TempolorError, ValidationError
from .._models import Account, FileFormat, MusicJob, MusicType, Submission
from . import _noiz
from ._output import Output, human_size

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
    """Wait for every job with the shared poll loop; a live bar per job on a terminal."""
    finished: dict[str, MusicJob] = {}
    with out.job_progress({job_id: job_id for job_id in job_ids}) as bars:
        on_progress = bars.update if out.live else None
        async for job in client.as_completed(
            job_ids, poll_interval=poll_interval, on_progress=on_progress
        ):
            finished[job.job_id or ""] = job
    return [finished[job_id] for job_id in job_ids]


def _show_jobs(out: Output, jobs: Sequence[MusicJob]) -> int:
    if out.as_json:
        out.json([job.raw for job in jobs])
    else:
        out.table(JOB_COLUMNS, _job_rows(jobs))
    failed = [job for job in jobs if not job.is_completed]
    for job in failed:
        out.error(
            f"job {job.job_id} ended {job.status_name}{': ' + job.error if job.error else ''}"
        )
    return 1 if failed else 0


async def _download_jobs(
    client: TempolorClient, out: Output, jobs: Sequence[MusicJob], dest: str, fmt: str
) -> list[dict[str, Any]]:
    written = []
    for job in jobs:
        if job.is_completed and job.job_id:
            path = await client.music.download(job.job_id, dest, file_format=fmt)
            written.append(
                {
                    "job_id": job.job_id,
                    "format": fmt,
                    "path": str(path),
                    "bytes": path.stat().st_size,
                }
            )
    return written


def _show_files(out: Output, files: list[dict[str, Any]]) -> None:
    if out.as_json:
        out.json({"files": files})
        return
    rows = [[f["job_id"], f["format"], f["path"], human_size(f["bytes"])] for f in files]
    out.table(["job_id", "format", "path", "size"], rows)


# ----------------------------------------------------------------- commands


async def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    from ._demo import run_demo

    return await run_demo(out, Path(args.out))


async def cmd_simulate(args: argparse.Namespace, out: Output) -> int:
    from ..testing.__main__ import serve

    options = argparse.Namespace(
        host="127.0.0.1",
        port=args.port,
        token=getattr(args, "token", None) or "fake-token",
        job_duration=args.job_duration,
        max_jobs=10,
        page_size=20,
        fail_marker="[fail]",
        noiz=args.noiz,
    )
    await serve(options)
    return 0


async def cmd_generate(args: argparse.Namespace, out: Output) -> int:
    async with _client(args) as client:
        if args.command == "song":
            lyrics = args.lyrics_file
            submission: Submission = await client.music.create_song(
                args.prompt,
                lyrics=lyrics,
                model=args.model,
                artist_voice_item_id=args.artist_voice,
                cloned_voice_item_id=args.cloned_voice,
                midi_item_id=args.midi,
            )
        else:
            submission = await client.music.create_instrumental(
                args.prompt,
                model=args.model,
                tonality=args.tonality,
                bpm=args.bpm,
                chords=args.chords,
            )
        job_ids = submission.jobs or []
        if not (args.wait or args.download):
            if out.as_json:
                out.json(submission.raw)
            else:
                out.table(["job_id"], [[job_id] for job_id in job_ids])
            return 0
        out.note(f"submitted {len(job_ids)} jobs; waiting")
        jobs = await _wait_for(client, out, job_ids, args.poll_interval)
        if args.download:
            files = await _download_jobs(client, out, jobs, args.download, args.format)
            _show_files(out, files)
            return 0 if all(job.is_completed for job in jobs) else 1
        return _show_jobs(out, jobs)


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
        path = await client.music.download(args.job_id, args.out, file_format=args.format)
    _show_files(
        out,
        [
            {
                "job_id": args.job_id,
                "format": args.format,
                "path": str(path),
                "bytes": path.stat().st_size,
            }
        ],
    )
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
            upload = await client.midi.upload(args.file, name=args.name)
            midi_id = upload.midi.midi_item_id if upload.midi else None
            return _listing(out, upload.raw, ["midi_item_id", "name"], [[midi_id, args.name]])
        await client.midi.delete(args.id)
        return _listing(out, {"deleted": args.id}, ["deleted"], [[args.id]])


async def cmd_stems(args: argparse.Namespace, out: Output) -> int:
    async with _client(args) as client:
        split = await client.music.split_stems(args.file, content_type=args.content_type)
        if not split.stems_zip_url:
            return _listing(out, split.raw, ["state", "title"], [[split.state, split.title]])
        path = await client.download_file(split.stems_zip_url, args.out)
    files = [
        {"job_id": split.title, "format": "stems", "path": str(path), "bytes": path.stat().st_size}
    ]
    _show_files(out, files)
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
    common.add_argument("--base-url", default=argparse.SUPPRESS, help="API base URL")
    common.add_argument("--user-id", default=argparse.SUPPRESS, help="account to use")
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
        name: str, handler: Handler, help: str, parent: Any = commands
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = parent.add_parser(
            name, parents=[common], help=help, description=help
        )
        sub.set_defaults(handler=handler)
        return sub

    demo = command(
        "demo", cmd_demo, "generate, watch and download music offline, with the simulator"
    )
    demo.add_argument(
        "--out", default="tempolor-demo", help="folder for the files (default ./tempolor-demo)"
    )

    for kind in ("song", "instrumental"):
        gen = command(kind, cmd_generate, f"generate a {kind}")
        gen.add_argument("prompt")
        gen.add_argument("--model")
        if kind == "song":
            gen.add_argument("--lyrics-file", metavar="FILE", type=_text_file, help="lyrics")
            voice = gen.add_mutually_exclusive_group()
            voice.add_argument("--artist-voice", metavar="ID")
            voice.add_argument("--cloned-voice", metavar="ID")
            voice.add_argument("--midi", metavar="ID")
        else:
            gen.add_argument("--bpm", type=int, help="tempo, 50 to 190")
            gen.add_argument("--tonality", metavar="KEY", help="e.g. C:major, F#:minor")
            gen.add_argument("--chords", help="chord progression, e.g. 'C F G Am'")
        gen.add_argument("--wait", action="store_true", help="wait until the jobs are final")
        gen.add_argument("--download", metavar="DIR", help="wait, then download into DIR")
        _format_option(gen)
        _poll_option(gen)

    status = command("status", cmd_status, "show a job's record")
    status.add_argument("job_id")
    wait = command("wait", cmd_wait, "wait until jobs are final")
    wait.add_argument("job_ids", nargs="+", metavar="JOB_ID")
    _poll_option(wait)
    download = command("download", cmd_download, "download a finished job")
    download.add_argument("job_id")
    _format_option(download)
    download.add_argument("--out", default=".", metavar="PATH", help="file or folder (default .)")
    listing = command("list", cmd_list, "list past generations")
    listing.add_argument("--type", default="song", choices=[t.value for t in MusicType])
    _limit_option(listing)

    voices = command("voices", cmd_voices, "artist and cloned voices")
    voice_actions = voices.add_subparsers(dest="action", required=True, metavar="ACTION")
    _limit_option(command("artist", cmd_voices, "list artist voices", voice_actions))
    _limit_option(command("cloned", cmd_voices, "list cloned voices", voice_actions))
    clone = command("clone", cmd_voices, "clone a voice from an audio file", voice_actions)
    clone.add_argument("file")
    clone.add_argument("--name", required=True)
    clone.add_argument("--content-type")
    command("delete", cmd_voices, "delete a cloned voice", voice_actions).add_argument("id")

    midi = command("midi", cmd_midi, "MIDI files")
    midi_actions = midi.add_subparsers(dest="action", required=True, metavar="ACTION")
    _limit_option(command("list", cmd_midi, "list MIDI files", midi_actions))
    upload = command("upload", cmd_midi, "upload a MIDI file", midi_actions)
    upload.add_argument("file")
    upload.add_argument("--name", required=True)
    command("delete", cmd_midi, "delete a MIDI file", midi_actions).add_argument("id")

    stems = command("stems", cmd_stems, "split an audio file into stems and download them")
    stems.add_argument("file")
    stems.add_argument("--out", default=".", metavar="DIR")
    stems.add_argument("--content-type")

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
    add.add_argument("--max-jobs", type=int)
    command("delete", cmd_accounts, "delete an account", account_actions).add_argument("id")

    scheduler = command("scheduler", cmd_scheduler, "jobs the API is tracking")
    scheduler_actions = scheduler.add_subparsers(dest="action", required=True, metavar="ACTION")
    command("list", cmd_scheduler, "list running jobs", scheduler_actions)
    command("available", cmd_scheduler, "free slots per account", scheduler_actions)
    cancel = command("cancel", cmd_scheduler, "stop tracking a job", scheduler_actions)
    cancel.add_argument("job_id")

    simulate = command("simulate", cmd_simulate, "run the local TemPolor simulator")
    simulate.add_argument("--port", type=int, default=8765)
    simulate.add_argument("--job-duration", type=float, default=5.0)
    simulate.add_argument("--noiz", action="store_true", help="serve the Noiz voice API instead")

    _noiz.add_parser(command)

    from ._batch import add_command as add_batch_command

    add_batch_command(command)
    return parser


def _text_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {exc.strerror}") from None


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


def _format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", default="mp3", choices=[f.value for f in FileFormat])


def _poll_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--poll-interval",
        type=float,
        metavar="SECONDS",
        help="fixed poll interval (default adaptive)",
    )


def _limit_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, metavar="N", help="at most N items")


# --------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Output(as_json=getattr(args, "json", False))
    handler: Handler = args.handler
    try:
        return asyncio.run(handler(args, out))
    except (ValidationError, ConfigurationError) as exc:
        out.error(str(exc).replace("pass token=", "pass --token"))
        return 2
    except TempolorError as exc:
        out.error(str(exc))
        return 1
    except (OSError, ValueError) as exc:
        out.error(str(exc))
        return 2
    except KeyboardInterrupt:
        out.error("interrupted")
        return 130
