"""``tempolor batch`` as a subprocess against the simulator: bad input, and real crashes.

The command runs in its own process and is killed with SIGKILL at chosen moments; the moment
is made deterministic by the simulator (a generation POST held before it is answered, an
account whose slots are all taken, a media download held before its first byte) and read
from the journal on disk. The simulator's own records (every request, every accepted
generation) then prove that no item's generation was accepted twice and no file is partial.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from tempolor_async import TempolorClient
from tempolor_async.testing import FakeTempolor

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.fake(job_duration=0.5, max_jobs=40, max_gen_count_at_once=40),
]

JOURNAL = Path("tempolor-batch") / ".tempolor-batch.sqlite"
ORDER = ["pending", "submitting", "submitted", "completed", "downloaded"]


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def environment(fake: FakeTempolor) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "USEAPI_TOKEN"}
    return {**env, "TEMPOLOR_BASE_URL": fake.base_url, "USEAPI_TOKEN": fake.token}


async def batch(fake: FakeTempolor, cwd: Path, *args: str) -> Run:
    result = await anyio.run_process(
        [sys.executable, "-m", "tempolor_async.cli", "batch", *args],
        cwd=cwd,
        env=environment(fake),
        check=False,
    )
    return Run(result.returncode, result.stdout.decode(), result.stderr.decode())


async def start_batch(fake: FakeTempolor, cwd: Path, *args: str) -> anyio.abc.Process:
    return await anyio.open_process(
        [sys.executable, "-m", "tempolor_async.cli", "batch", *args],
        cwd=cwd,
        env=environment(fake),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def kill(process: anyio.abc.Process) -> None:
    process.send_signal(signal.SIGKILL)
    assert await process.wait() == -signal.SIGKILL


async def wait_until(condition: Any, limit: float = 20.0) -> None:
    """Poll ``condition`` (the simulator's state or the journal on disk) until it holds."""
    with anyio.fail_after(limit):
        while not condition():  # noqa: ASYNC110 - the state itself is all there is to watch
            await anyio.sleep(0.02)


def states(journal: Path) -> dict[str, str]:
    if not journal.exists():
        return {}
    try:
        with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as connection:
            return dict(connection.execute("SELECT key, state FROM items").fetchall())
    except sqlite3.OperationalError:  # created but its table not yet committed
        return {}


def journal_jobs(journal: Path) -> dict[str, list[str]]:
    with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as connection:
        rows = connection.execute("SELECT key, job_ids FROM items").fetchall()
    return {key: json.loads(job_ids) for key, job_ids in rows}


def write_items(folder: Path, count: int) -> Path:
    path = folder / "items.jsonl"
    lines = [json.dumps({"key": f"track-{n}", "prompt": f"song number {n}"}) for n in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return path


def generation_posts(fake: FakeTempolor) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and r.path.startswith("/music/")]


def assert_each_item_accepted_once_and_files_whole(
    fake: FakeTempolor, folder: Path, keys: list[str], *, extra_submissions: int = 0
) -> None:
    """The simulator accepted exactly one generation per item (by its replyRef); the journal
    holds those job ids; every file is complete and no temporary file is left."""
    journal = folder / JOURNAL
    assert states(journal) == dict.fromkeys(keys, "downloaded")
    jobs = journal_jobs(journal)
    references = Counter(fake.jobs[ids[0]].reply_ref for ids in fake.submissions)
    assert len(fake.submissions) == len(keys) + extra_submissions
    assert all(count == 1 for count in references.values()), references
    for key in keys:
        assert sorted(jobs[key]) in [sorted(ids) for ids in fake.submissions]
        for index, job_id in enumerate(jobs[key], 1):
            path = folder / "tempolor-batch" / f"{key}-{index}.mp3"
            assert path.read_bytes() == fake.media_bytes(job_id, "mp3")
    out = folder / "tempolor-batch"
    assert not [p.name for p in out.iterdir() if p.name.endswith(".part")]
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [line["key"] for line in manifest] == keys
    assert {line["status"] for line in manifest} == {"downloaded"}


# ----------------------------------------------------------------- bad input


async def test_every_bad_line_is_listed_and_nothing_is_sent(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    (tmp_path / "items.jsonl").write_text(
        "\n".join(
            [
                '{"key": "a", "prompt": "fine"}',
                '["not", "an", "object"]',
                '{"key": "b", "prompt": "a song", "bpm": 84}',
                '{"key": "c", "type": "instrumental", "prompt": "beat", "bpm": 300}',
                "not json at all",
                "",
                '{"key": "a", "prompt": "again"}',
                '{"key": "d", "prompt": "z", "colour": "red"}',
                '{"key": "e", "type": "podcast", "prompt": "z"}',
            ]
        )
    )
    run = await batch(fake, tmp_path, "items.jsonl")
    assert run.code == 2
    lines = run.stderr.strip().splitlines()
    assert all(line.startswith("error: items.jsonl:") for line in lines), run.stderr
    assert [line.split(":")[2] for line in lines] == ["2", "3", "4", "5", "7", "8", "9"]
    assert "must be a JSON object" in lines[0]
    assert "bpm" in lines[1]
    assert "bpm" in lines[2]
    assert "already used on line 1" in lines[4]
    assert "colour" in lines[5]
    assert "Traceback" not in run.stderr
    assert fake.requests == []
    assert not (tmp_path / "tempolor-batch").exists()


async def test_a_csv_with_unknown_columns_is_refused(fake: FakeTempolor, tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_text("key,prompt,colour\na,fine,red\n")
    run = await batch(fake, tmp_path, "items.csv")
    assert run.code == 2
    assert run.stderr.count("\n") == 1
    assert "'colour'" in run.stderr
    assert fake.requests == []


async def test_a_csv_batch_runs_and_reports_as_json(fake: FakeTempolor, tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_text(
        "key,type,prompt,bpm,tonality\nshanty,,sea shanty,,\nlofi,instrumental,lo-fi,84,A:minor\n"
    )
    run = await batch(fake, tmp_path, "items.csv", "--format", "mp3,wav", "--json")
    assert run.code == 0, run.stderr
    report = json.loads(run.stdout)
    assert (report["completed"], report["failed"], report["pending"]) == (2, 0, 0)
    assert report["generations_submitted"] == 2
    assert [item["key"] for item in report["items"]] == ["shanty", "lofi"]
    assert len(report["items"][1]["files"]) == 4
    bodies = [r.json() for r in generation_posts(fake)]
    assert {"prompt": "lo-fi", "bpm": 84, "tonality": "A:minor"}.items() <= next(
        body for body in bodies if body["prompt"] == "lo-fi"
    ).items()
    again = await batch(fake, tmp_path, "items.csv", "--format", "mp3,wav")
    assert again.code == 0
    assert len(generation_posts(fake)) == 2
    assert again.stdout.count("downloaded") == 2


async def test_a_corrupt_journal_is_refused_with_one_line(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    write_items(tmp_path, 1)
    journal = tmp_path / "notes.txt"
    journal.write_text("my notes, not a journal\n")
    run = await batch(fake, tmp_path, "items.jsonl", "--journal", str(journal))
    assert run.code == 2
    assert run.stderr.startswith("error: journal: ")
    assert run.stderr.count("\n") == 1
    assert "not a batch journal" in run.stderr
    assert journal.read_text() == "my notes, not a journal\n"
    assert fake.requests == []


async def test_an_unwritable_out_folder_is_refused(fake: FakeTempolor, tmp_path: Path) -> None:
    write_items(tmp_path, 1)
    (tmp_path / "taken").write_text("a file where the folder should go")
    run = await batch(fake, tmp_path, "items.jsonl", "--out", "taken/tracks")
    assert run.code == 2
    assert run.stderr.count("\n") == 1
    assert "out_dir" in run.stderr
    assert fake.requests == []


async def test_a_second_process_on_the_same_journal_is_refused(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    write_items(tmp_path, 1)
    fake.inject("POST", "/music/song", delay=2.0)
    first = await start_batch(fake, tmp_path, "items.jsonl")
    await wait_until(lambda: generation_posts(fake))
    second = await batch(fake, tmp_path, "items.jsonl")
    assert second.code == 2
    assert "in use by another running batch" in second.stderr
    assert second.stderr.count("\n") == 1
    assert await first.wait() == 0
    assert len(generation_posts(fake)) == 1


# -------------------------------------------------------------------- crashes


async def test_killed_between_the_post_and_the_commit_of_its_job_ids(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    """The service holds each generation POST before answering; the process dies while it
    waits. The service then accepts them: the next run adopts them instead of paying again."""
    keys = [f"track-{n}" for n in range(3)]
    write_items(tmp_path, 3)
    fake.inject("POST", "/music/song", delay=1.5, times=None)
    process = await start_batch(fake, tmp_path, "items.jsonl")
    await wait_until(lambda: len(generation_posts(fake)) >= 1)
    await kill(process)
    received = len(generation_posts(fake))
    assert set(states(tmp_path / JOURNAL).values()) <= {"submitting"}
    await wait_until(lambda: len(fake.submissions) == received)  # accepted after the death
    fake.clear_faults()
    run = await batch(fake, tmp_path, "items.jsonl", "--confirm-window", "1")
    assert run.code == 0, run.stderr
    assert_each_item_accepted_once_and_files_whole(fake, tmp_path, keys)
    assert len(generation_posts(fake)) == 3  # only the ones never sent were sent


async def test_killed_while_waiting_for_a_slot(fake: FakeTempolor, tmp_path: Path) -> None:
    """Every slot of the account is taken, so the item waits for one with nothing sent. Its
    intent is committed only once it has a slot, right before the POST: until then it stays
    pending, so a stranger's generation can never be taken for it. Killed there, the next run
    sends it once."""
    account = next(iter(fake.accounts.values()))
    account.max_jobs = 2
    fake.job_duration = 60.0
    async with fake.client() as client:
        blocker = await client.music.create_song("somebody else's song")
    gate_reads = len(fake.requests_to("GET", "/scheduler/available"))
    write_items(tmp_path, 1)
    process = await start_batch(fake, tmp_path, "items.jsonl")
    await wait_until(lambda: len(fake.requests_to("GET", "/scheduler/available")) > gate_reads + 1)
    await anyio.sleep(0.3)
    assert states(tmp_path / JOURNAL).get("track-0", "pending") == "pending"
    await kill(process)
    assert fake.submissions == [blocker.jobs]
    for job_id in blocker.jobs or []:
        fake.complete(job_id)
    fake.job_duration = 0.5
    run = await batch(fake, tmp_path, "items.jsonl")
    assert run.code == 0, run.stderr
    assert fake.submissions[0] == blocker.jobs
    fake.submissions.pop(0)
    assert_each_item_accepted_once_and_files_whole(fake, tmp_path, ["track-0"])


async def test_killed_mid_download(fake: FakeTempolor, tmp_path: Path) -> None:
    """The first media request is held; the process dies with its temporary file open.
    The next run removes it, downloads whole files, and generates nothing."""
    write_items(tmp_path, 2)
    fake.inject("GET", "/cdn/*", delay=30.0)
    process = await start_batch(fake, tmp_path, "items.jsonl")
    out = tmp_path / "tempolor-batch"
    await wait_until(lambda: out.exists() and any(p.suffix == ".part" for p in out.iterdir()))
    await kill(process)
    leftover = [p for p in out.iterdir() if p.suffix == ".part"]
    assert leftover
    fake.clear_faults()
    posts = len(generation_posts(fake))
    run = await batch(fake, tmp_path, "items.jsonl")
    assert run.code == 0, run.stderr
    assert len(generation_posts(fake)) == posts == 2
    assert not any(path.exists() for path in leftover)
    assert_each_item_accepted_once_and_files_whole(fake, tmp_path, ["track-0", "track-1"])


async def test_ctrl_c_stops_writes_the_manifest_and_the_next_run_resumes(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    keys = [f"track-{n}" for n in range(3)]
    write_items(tmp_path, 3)
    fake.job_duration = 60.0
    process = await start_batch(fake, tmp_path, "items.jsonl", "--json")
    await wait_until(lambda: states(tmp_path / JOURNAL) == dict.fromkeys(keys, "submitted"))
    process.send_signal(signal.SIGINT)
    assert await process.wait() == 130
    assert process.stdout is not None
    report = json.loads(await process.stdout.receive())
    assert report["stopped_reason"] == "interrupted"
    assert report["pending"] == 3
    assert sorted(job for item in report["items"] for job in item["job_ids"]) == sorted(
        job for jobs in fake.submissions for job in jobs
    )
    manifest = (tmp_path / "tempolor-batch" / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line)["status"] for line in manifest] == ["submitted"] * 3
    for jobs in fake.submissions:
        for job_id in jobs:
            fake.complete(job_id)
    run = await batch(fake, tmp_path, "items.jsonl")
    assert run.code == 0, run.stderr
    assert_each_item_accepted_once_and_files_whole(fake, tmp_path, keys)


async def test_killed_at_three_moments_against_the_standalone_simulator(tmp_path: Path) -> None:
    """The simulator in its own process (``python -m tempolor_async.testing``); the batch is
    killed once an intent is committed, once a job id is, and once a file is written, then
    run to the end. The service's own records (``GET music/``) hold exactly two jobs per item,
    all of them in the journal."""
    server = await anyio.open_process(
        [sys.executable, "-m", "tempolor_async.testing", "--port", "0", "--job-duration", "1"],
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        banner = b""
        with anyio.fail_after(20):
            while b"token:" not in banner:
                banner += await server.stdout.receive()
        base_url = banner.decode().split("base URL:")[1].split()[0]
        env = {**os.environ, "TEMPOLOR_BASE_URL": base_url, "USEAPI_TOKEN": "fake-token"}
        command = [
            sys.executable,
            "-m",
            "tempolor_async.cli",
            "batch",
            "items.jsonl",
            "--confirm-window",
            "1",
        ]
        write_items(tmp_path, 4)
        journal = tmp_path / JOURNAL
        killed = []
        for moment in ("submitting", "submitted", "downloaded"):
            process = await anyio.open_process(command, cwd=tmp_path, env=env)

            def reached(moment: str = moment, process: anyio.abc.Process = process) -> bool:
                """Some item is at ``moment`` or past it (states change faster than we look)."""
                later = ORDER[ORDER.index(moment) :]
                return any(state in later for state in states(journal).values()) or (
                    process.returncode is not None
                )

            await wait_until(reached)
            if process.returncode is None:
                await kill(process)
                killed.append(moment)
        assert len(killed) >= 2, killed
        finished = await anyio.run_process(command, cwd=tmp_path, env=env, check=False)
        assert finished.returncode == 0, finished.stderr.decode()
        async with TempolorClient("fake-token", base_url=base_url) as client:
            records = await client.music.list(type="song").to_list()
            jobs = journal_jobs(journal)
            assert Counter(
                record.ltm_material_extend_dto.prompt
                for record in records
                if record.ltm_material_extend_dto is not None
            ) == {f"song number {n}": 2 for n in range(4)}
            assert sorted(job for ids in jobs.values() for job in ids) == sorted(
                record.job_id for record in records if record.job_id
            )
            out = tmp_path / "tempolor-batch"
            for key, ids in jobs.items():
                for index, job_id in enumerate(ids, 1):
                    fresh = await client.music.download(job_id, tmp_path / f"{key}-{index}.check")
                    assert (out / f"{key}-{index}.mp3").read_bytes() == fresh.read_bytes()
        assert not [path for path in out.iterdir() if path.suffix == ".part"]
    finally:
        server.terminate()
        await server.wait()


# ------------------------------------------------- signals, piped output, the summary


async def test_sigterm_stops_gracefully_with_summary_manifest_and_143(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    """``docker stop`` / ``timeout`` send SIGTERM: handled like Ctrl-C, not like a crash."""
    write_items(tmp_path, 3)
    fake.job_duration = 30.0
    process = await start_batch(fake, tmp_path, "items.jsonl")
    await wait_until(lambda: len(fake.submissions) == 3)
    await wait_until(lambda: set(states(tmp_path / JOURNAL).values()) == {"submitted"})
    process.send_signal(signal.SIGTERM)
    assert await process.wait() == 143
    assert process.stderr is not None
    stderr = (await process.stderr.receive()).decode()
    assert (
        "3 items: 0 completed, 0 failed, 3 submitted (paid, not finished yet), 0 pending" in stderr
    )
    out = tmp_path / "tempolor-batch"
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {line["status"] for line in manifest} == {"submitted"}
    assert all(len(line["job_ids"]) == 2 for line in manifest)
    wal = tmp_path / (str(JOURNAL) + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # folded at the graceful stop


async def test_piped_output_shows_each_item_as_it_finishes(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text(
        json.dumps({"key": "quick", "prompt": "quick"})
        + "\n"
        + json.dumps({"key": "slow", "prompt": "slow", "user_id": "slow-account"})
        + "\n"
    )
    fake.add_account("slow-account", max_jobs=2)
    process = await start_batch(fake, tmp_path, "items.jsonl")
    assert process.stdout is not None
    await wait_until(lambda: len(fake.submissions) == 2)
    slow = next(jobs for jobs in fake.submissions if fake.jobs[jobs[0]].prompt == "slow")
    for job_id in slow:
        fake.jobs[job_id].duration = 3600.0  # held until the quick one has been printed
    with anyio.fail_after(20):
        first = (await process.stdout.receive()).decode()
    assert first.startswith("quick\tdownloaded\t")
    assert process.returncode is None  # printed while the run goes on
    for job_id in slow:
        fake.complete(job_id)
    assert await process.wait() == 0
    rest = b""
    with contextlib.suppress(anyio.EndOfStream):
        while True:
            rest += await process.stdout.receive()
    assert rest.decode().startswith("slow\tdownloaded\t")


async def test_the_summary_says_one_item(fake: FakeTempolor, tmp_path: Path) -> None:
    write_items(tmp_path, 1)
    run = await batch(fake, tmp_path, "items.jsonl")
    assert run.code == 0, run.stderr
    assert "1 item: 1 completed, 0 failed, 0 pending; 1 generation submitted" in run.stderr


@pytest.mark.parametrize("other", ["a_b", "a b", "a:b", "A/B"])
async def test_keys_that_make_one_file_name_are_bad_lines(
    fake: FakeTempolor, tmp_path: Path, other: str
) -> None:
    lines = [
        {"key": "x", "prompt": "x"},
        {"key": "a/b", "prompt": "1"},
        {"key": other, "prompt": "2"},
    ]
    (tmp_path / "items.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\n")
    run = await batch(fake, tmp_path, "items.jsonl")
    assert run.code == 2
    assert "items.jsonl:3:" in run.stderr
    assert "line 2" in run.stderr
    assert fake.requests == []


async def test_a_second_journal_into_one_folder_is_refused(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    write_items(tmp_path, 2)
    first = await batch(fake, tmp_path, "items.jsonl", "--journal", "a.sqlite")
    assert first.code == 0, first.stderr
    before = len(fake.requests)
    second = await batch(fake, tmp_path, "items.jsonl", "--journal", "b.sqlite")
    assert second.code == 2
    assert "a.sqlite" in second.stderr
    assert len(fake.requests) == before
    manifest = (tmp_path / "tempolor-batch" / "manifest.jsonl").read_text().splitlines()
    assert len(manifest) == 2


def test_the_slots_line_never_shows_more_in_use_than_max_jobs() -> None:
    from tempolor_async.cli._batch import _slots

    assert _slots("100349856", 4, 3) == "100349856: 3/3"
    assert _slots("100349856", 1, 3) == "100349856: 1/3"
