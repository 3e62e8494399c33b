"""Music: ``tempolor song``, ``instrumental``, ``status``, ``wait``, ``download``, ``list``
and ``stems``."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence
from typing import Any

import anyio

from .. import _files, _protocol, _validation
from .._client import TempolorClient
from .._errors import NotFoundError, ResponseDecodeError, TempolorError, ValidationError
from .._models import FileFormat, MusicJob, MusicType, Submission
from ._common import (
    JOB_COLUMNS,
    Command,
    content_type_option,
    destination_folder,
    file_entry,
    format_option,
    job_rows,
    limit_option,
    listing,
    model_option,
    options_named,
    poll_option,
    report_failures,
    show_files,
    tempolor_client,
    text_file,
    undocumented_model,
    wait_for,
)
from ._output import Output


def add_commands(command: Command) -> None:
    """Register the music commands with the command line's ``command`` helper."""
    for kind, article in (("song", "a"), ("instrumental", "an")):
        gen = command(kind, cmd_generate, f"generate {article} {kind}")
        gen.add_argument(
            "prompt", metavar="PROMPT", help="what to generate: at most 2,000 characters"
        )
        model_option(gen, kind)
        if kind == "song":
            gen.add_argument(
                "--lyrics-file",
                metavar="FILE",
                type=text_file,
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
        format_option(gen)
        poll_option(gen)

    status = command("status", cmd_status, "show a job's record", options="service")
    status.add_argument(
        "job_id", metavar="JOB_ID", help="a job id, as printed when it was submitted"
    )
    wait = command("wait", cmd_wait, "wait until jobs are final", options="service")
    wait.add_argument("job_ids", nargs="+", metavar="JOB_ID")
    poll_option(wait)
    download = command("download", cmd_download, "download a finished job", options="service")
    download.add_argument("job_id", metavar="JOB_ID", help="a completed job's id")
    format_option(download)
    download.add_argument(
        "--out",
        default=".",
        metavar="PATH",
        help="file, or folder (an existing one, or a path ending with '/', created if "
        "missing); a file's extension must agree with --format (default: the current folder)",
    )
    listed = command("list", cmd_list, "list past generations, newest first")
    listed.add_argument(
        "--type",
        default="song",
        choices=[t.value for t in MusicType],
        help="which kind to list (default: %(default)s)",
    )
    limit_option(listed)

    stems = command("stems", cmd_stems, "split an audio file into stems and download them")
    stems.add_argument(
        "file", metavar="FILE", help="the audio file to split: .m4a, .mp3, .wav or .flac"
    )
    stems.add_argument(
        "--out",
        default=".",
        metavar="DIR",
        help="folder for the ZIP, created if missing (default: the current folder)",
    )
    content_type_option(stems)


async def cmd_generate(args: argparse.Namespace, out: Output) -> int:
    """Submit, then (with --wait or --download) wait and download. Every option is checked
    before the generation is sent; once it is, its job ids are printed whatever happens
    next (at once on stdout, or in the --json object printed at the end)."""
    folder = destination_folder(args.download, "--download") if args.download else None
    note = undocumented_model(args.command, args.model)
    if note:
        out.warn(note)
    result: dict[str, Any] = {}
    try:
        async with tempolor_client(args) as client:
            with options_named(prompt="PROMPT", model="--model", **GENERATION_OPTIONS):
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
            jobs = await wait_for(client, out, job_ids, args.poll_interval)
            result["records"] = [job.raw for job in jobs]
            if folder is not None:
                files = await _download_jobs(client, jobs, folder, args.format)
                result["files"] = files
                if not out.as_json:
                    show_files(out, files)
            elif not out.as_json:
                out.table(JOB_COLUMNS, job_rows(jobs))
            return report_failures(out, jobs)
    except BaseException as exc:
        if result:
            interrupted = isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError))
            result["error"] = "interrupted" if interrupted else str(exc) or type(exc).__name__
        raise
    finally:
        if out.as_json and result:
            out.json(result)


# The SDK's parameters of a generation that the command spells otherwise.
GENERATION_OPTIONS = {"bpm": "--bpm", "tonality": "--tonality", "chords": "--chords"}


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


def file_names(job_ids: Sequence[str], extension: str) -> dict[str, str]:
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
    names = file_names(completed, extension)
    written = []
    for job_id in completed:
        path = await client.music.download(
            job_id, os.path.join(folder, names[job_id]), file_format=fmt
        )
        written.append(file_entry(job_id, fmt, path))
    return written


async def cmd_status(args: argparse.Namespace, out: Output) -> int:
    async with tempolor_client(args) as client:
        with options_named(job_id="JOB_ID"):
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
    async with tempolor_client(args) as client:
        with options_named(job_ids="JOB_ID"):
            await _note_unknown_jobs(client, out, args.job_ids)
            jobs = await wait_for(client, out, args.job_ids, args.poll_interval)
    if out.as_json:
        out.json([job.raw for job in jobs])
    else:
        out.table(JOB_COLUMNS, job_rows(jobs))
    return report_failures(out, jobs)


async def _note_unknown_jobs(client: TempolorClient, out: Output, job_ids: list[str]) -> None:
    """Say at once which jobs the service does not show (yet): a job just submitted may
    take a moment to appear, so the wait goes on, but a mistyped id would otherwise sit
    silent until the wait gives up on it."""
    for job_id in job_ids:
        _validation.path_id("job_ids", job_id)
    unknown: set[str] = set()
    limiter = anyio.CapacityLimiter(8)

    async def look(job_id: str) -> None:
        async with limiter:
            try:
                await client.music.get(job_id)
            except NotFoundError:
                unknown.add(job_id)
            except TempolorError:
                pass  # the wait itself rides out or reports anything else

    async with anyio.create_task_group() as group:
        for job_id in dict.fromkeys(job_ids):
            group.start_soon(look, job_id)
    for job_id in dict.fromkeys(job_ids):
        if job_id in unknown:
            out.warn(
                f"the service does not show job {job_id} (yet); waiting for it to appear "
                "(an id it never shows ends the wait with 'not found' after 30 s or so)"
            )


async def cmd_download(args: argparse.Namespace, out: Output) -> int:
    mismatch = _extension_mismatch(args.out, args.format)
    if mismatch:
        raise ValidationError("--out", mismatch)
    async with tempolor_client(args) as client:
        with options_named(job_id="JOB_ID", dest="--out", file_format="--format"):
            path = await client.music.download(args.job_id, args.out, file_format=args.format)
    show_files(out, [file_entry(args.job_id, args.format, path)])
    return 0


def _extension_mismatch(path: str, fmt: str) -> str | None:
    """Why ``path`` cannot hold a file of format ``fmt``: its extension names another
    format. A folder, or a name with no known audio extension, is taken as given."""
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        return None
    extension = os.path.splitext(path)[1].lower().lstrip(".")
    named = {f.extension: f.value for f in FileFormat}.get(extension)
    if named is None or named == fmt:
        return None
    return f"{path!r} names a .{extension} file, but --format is {fmt}"


async def cmd_list(args: argparse.Namespace, out: Output) -> int:
    async with tempolor_client(args) as client:
        jobs = await client.music.list(type=args.type).to_list(limit=args.limit)
    return listing(out, [job.raw for job in jobs], JOB_COLUMNS, job_rows(jobs))


async def cmd_stems(args: argparse.Namespace, out: Output) -> int:
    folder = destination_folder(args.out, "--out")
    async with tempolor_client(args) as client:
        with options_named(audio="FILE"):
            split = await client.music.split_stems(args.file, content_type=args.content_type)
        if not split.stems_zip_url:
            return listing(out, split.raw, ["state", "title"], [[split.state, split.title]])
        try:
            path = await client.download_file(split.stems_zip_url, folder)
        except ValidationError as exc:
            if exc.parameter != "url":
                raise
            # The link came from the service: a link we cannot use is its fault, not ours.
            raise ResponseDecodeError(
                f"unusable stems_zip_url: {exc}", method="POST", path="/music/stems-splitter/"
            ) from None
    show_files(out, [file_entry(args.file, "stems", path, origin_is="source")], "source")
    return 0
