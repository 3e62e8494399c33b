"""``tempolor demo``: the whole job, offline, in a few seconds.

Starts the simulator in-process, submits a song (with lyrics) and an instrumental (with bpm
and tonality), shows each job's progress, downloads mp3, wav and the stems ZIP of the first
job of each into ``./tempolor-demo/`` (``song-<itemId>.mp3``, ``instrumental-<itemId>.wav``,
...) and prints what it made, with the time each job took. No token, no network.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import anyio

from .._client import TempolorClient
from .._files import safe_name
from .._models import FileFormat, MusicJob, Tonality
from .._protocol import item_id_of
from ..testing import FakeTempolor
from ._common import Command, destination_folder
from ._output import Output, human_size

SONG_PROMPT = "dreamy synth-pop about the sea at night, airy female vocals"
SONG_LYRICS = "Waves in the moonlight\nCarry me home\nStars on the water\nI'm never alone"
INSTRUMENTAL_PROMPT = "warm lo-fi hip hop beat with soft piano and vinyl crackle"


def add_command(command: Command) -> None:
    """Register ``tempolor demo`` with the command line's ``command`` helper."""
    demo = command(
        "demo",
        cmd_demo,
        "generate, watch and download music offline, with the simulator",
        options="output",
    )
    demo.add_argument(
        "--out",
        default="tempolor-demo",
        metavar="DIR",
        help="folder for the files, created if missing (default: ./tempolor-demo)",
    )


async def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    return await run_demo(out, Path(destination_folder(args.out, "--out")))


async def run_demo(out: Output, folder: Path, *, job_duration: float = 4.0) -> int:
    await anyio.Path(folder).mkdir(parents=True, exist_ok=True)
    async with FakeTempolor(job_duration=job_duration, audio_seconds=6.0) as fake:
        out.note(f"TemPolor simulator at {fake.base_url} (offline: no token, no network)")
        async with fake.client() as client:
            submitted: dict[str, float] = {}
            song = await client.music.create_song(SONG_PROMPT, lyrics=SONG_LYRICS)
            submitted.update(dict.fromkeys(song.jobs or [], time.monotonic()))
            instrumental = await client.music.create_instrumental(
                INSTRUMENTAL_PROMPT, bpm=84, tonality=Tonality.A_MINOR
            )
            submitted.update(dict.fromkeys(instrumental.jobs or [], time.monotonic()))
            labels = _labels("song", song.jobs) | _labels("instrumental", instrumental.jobs)
            out.note(f"Submitted a song and an instrumental: {len(labels)} jobs")
            jobs, took = await _wait_all(client, out, labels, submitted)
            files = []
            for kind, job_ids in (("song", song.jobs), ("instrumental", instrumental.jobs)):
                job_id = (job_ids or [""])[0]
                job = jobs.get(job_id)
                if job is None or not job.is_completed:
                    continue
                stem = f"{kind}-{safe_name(item_id_of(job_id))}"
                for file_format in FileFormat:
                    dest = folder / f"{stem}.{file_format.extension}"
                    path = await client.music.download(job_id, dest, file_format=file_format)
                    files.append((job_id, file_format, path))
    _report(out, labels, jobs, took, files)
    return 0 if len(jobs) == len(labels) and all(j.is_completed for j in jobs.values()) else 1


def _labels(kind: str, job_ids: list[str] | None) -> dict[str, str]:
    return {job_id: f"{kind} #{number}" for number, job_id in enumerate(job_ids or [], 1)}


async def _wait_all(
    client: TempolorClient, out: Output, labels: dict[str, str], submitted: dict[str, float]
) -> tuple[dict[str, MusicJob], dict[str, float]]:
    """The final record of each job, and the seconds from its submission until then."""
    jobs: dict[str, MusicJob] = {}
    took: dict[str, float] = {}
    with out.job_progress(labels) as bars:
        on_progress = bars.update if out.live else None
        async for job in client.as_completed(labels, poll_interval=0.25, on_progress=on_progress):
            job_id = job.job_id or ""
            jobs[job_id] = job
            took[job_id] = time.monotonic() - submitted.get(job_id, time.monotonic())
    return jobs, took


def _report(
    out: Output,
    labels: dict[str, str],
    jobs: dict[str, MusicJob],
    took: dict[str, float],
    files: list[tuple[str, FileFormat, Path]],
) -> None:
    if out.as_json:
        out.json(
            {
                "jobs": [jobs[job_id].raw for job_id in labels if job_id in jobs],
                "files": [
                    {
                        "job_id": job_id,
                        "label": labels[job_id],
                        "format": file_format.value,
                        "path": str(path),
                        "bytes": path.stat().st_size,
                        "job_seconds": round(took[job_id], 2),
                    }
                    for job_id, file_format, path in files
                ],
            }
        )
        return
    rows: list[list[Any]] = [
        [labels[job_id], f"{took[job_id]:.1f} s", path.name, human_size(path.stat().st_size)]
        for job_id, _, path in files
    ]
    folder = files[0][2].parent if files else Path()
    columns = ["job", "job took", "file", "size"]
    out.table(columns, rows, title=f"tempolor demo: files written to {folder}{os.sep}")
