"""``tempolor demo``: the whole job, offline, in a few seconds.

Starts the simulator in-process, submits a song (with lyrics) and an instrumental (with bpm
and tonality), shows each job's progress, downloads mp3, wav and the stems ZIP of the first
job of each into ``./tempolor-demo/`` and prints what it made. No token, no network.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio

from .._client import TempolorClient
from .._models import FileFormat, MusicJob, Tonality
from ..testing import FakeTempolor
from ._output import Output, human_size

SONG_PROMPT = "dreamy synth-pop about the sea at night, airy female vocals"
SONG_LYRICS = "Waves in the moonlight\nCarry me home\nStars on the water\nI'm never alone"
INSTRUMENTAL_PROMPT = "warm lo-fi hip hop beat with soft piano and vinyl crackle"


async def run_demo(out: Output, folder: Path, *, job_duration: float = 4.0) -> int:
    await anyio.Path(folder).mkdir(parents=True, exist_ok=True)
    async with FakeTempolor(job_duration=job_duration, audio_seconds=6.0) as fake:
        out.note(f"TemPolor simulator at {fake.base_url} (offline: no token, no network)")
        async with fake.client() as client:
            started = time.monotonic()
            song = await client.music.create_song(SONG_PROMPT, lyrics=SONG_LYRICS)
            instrumental = await client.music.create_instrumental(
                INSTRUMENTAL_PROMPT, bpm=84, tonality=Tonality.A_MINOR
            )
            labels = _labels("song", song.jobs) | _labels("instrumental", instrumental.jobs)
            out.note(f"Submitted a song and an instrumental: {len(labels)} jobs")
            jobs = await _wait_all(client, out, labels)
            files = []
            for job_id in (song.jobs or [])[:1] + (instrumental.jobs or [])[:1]:
                for file_format in FileFormat:
                    path = await client.music.download(job_id, folder, file_format=file_format)
                    seconds = time.monotonic() - started
                    files.append((job_id, file_format, path, seconds))
    _report(out, labels, jobs, files)
    return 0 if all(job.is_completed for job in jobs.values()) else 1


def _labels(kind: str, job_ids: list[str] | None) -> dict[str, str]:
    return {job_id: f"{kind} #{number}" for number, job_id in enumerate(job_ids or [], 1)}


async def _wait_all(
    client: TempolorClient, out: Output, labels: dict[str, str]
) -> dict[str, MusicJob]:
    jobs: dict[str, MusicJob] = {}
    with out.job_progress(labels) as bars:
        on_progress = bars.update if out.live else None
        async for job in client.as_completed(labels, poll_interval=0.25, on_progress=on_progress):
            jobs[job.job_id or ""] = job
    return jobs


def _report(
    out: Output,
    labels: dict[str, str],
    jobs: dict[str, MusicJob],
    files: list[tuple[str, FileFormat, Path, float]],
) -> None:
    if out.as_json:
        out.json(
            {
                "jobs": [jobs[job_id].raw for job_id in labels],
                "files": [
                    {
                        "job_id": job_id,
                        "label": labels[job_id],
                        "format": file_format.value,
                        "path": str(path),
                        "bytes": path.stat().st_size,
                        "seconds": round(seconds, 2),
                    }
                    for job_id, file_format, path, seconds in files
                ],
            }
        )
        return
    rows: list[list[Any]] = []
    for job_id, file_format, path, seconds in files:
        job = jobs[job_id]
        size = human_size(path.stat().st_size)
        rows.append(
            [
                labels[job_id],
                job.status_name,
                file_format.value,
                str(path),
                size,
                f"{seconds:.1f} s",
            ]
        )
    columns = ["job", "status", "format", "path", "size", "time taken"]
    out.table(columns, rows, title="tempolor demo: files written")
