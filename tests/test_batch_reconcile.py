"""Exactly-once batches: reconciliation after a lost answer, one process per journal, one
journal per output folder. Each test reproduces a way the batch once paid twice, adopted
someone else's generation, or lost files."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from tempolor_async import InstrumentalRequest, SongRequest, ValidationError
from tempolor_async.batch._journal import ItemRecord, Journal
from tempolor_async.batch._output import stem_for
from tempolor_async.batch._reconcile import batch_reply_ref, new_token
from tempolor_async.testing import FakeTempolor

pytestmark = [pytest.mark.anyio, pytest.mark.faults]

BATCH_REFERENCE = "tempolor-batch:"


def batch_posts(fake: FakeTempolor) -> list[Any]:
    """Generation POSTs the batch sent (its replyRef carries the batch's token)."""
    return [
        r
        for r in fake.requests
        if r.method == "POST"
        and r.path.startswith("/music/")
        and BATCH_REFERENCE in (r.json().get("replyRef") or "")
    ]


def accepted_batch_generations(fake: FakeTempolor) -> list[list[str]]:
    return [
        jobs for jobs in fake.submissions if BATCH_REFERENCE in (fake.jobs[jobs[0]].reply_ref or "")
    ]


async def crashed_journal(
    path: Path, item: SongRequest | InstrumentalRequest, intent_at: float
) -> None:
    """A journal as a run killed right after sending ``item`` leaves it: ``submitting``."""
    journal = await Journal.open(path)
    try:
        await journal.save(
            ItemRecord(
                key=item.item_key,
                stem=stem_for(item.item_key),
                type=item.type,
                params=item.parameters(),
                digest=item.digest,
                reply_ref=batch_reply_ref(item.reply_ref, new_token()),
                state="submitting",
                intent_at=intent_at,
            )
        )
    finally:
        journal.close()


def foreign_jobs(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return {row[0] for row in connection.execute("SELECT job_id FROM foreign_jobs")}


# ------------------------------------------------------------ the six reproductions


async def test_items_sharing_the_users_reply_ref_never_take_each_others_jobs(
    tmp_path: Path,
) -> None:
    """Two items carry the same ``reply_ref``; the song's POST never reached the service and
    the instrumental's answer was lost after it was accepted. The song must not adopt the
    instrumental's running jobs: it is sent again and gets its own."""
    async with FakeTempolor(job_duration=3.0) as fake:
        fake.inject("POST", "/music/song", drop=True)
        fake.inject("POST", "/music/instrumental", status=502, handled=True)
        items = [
            SongRequest("a sea shanty", key="song", reply_ref="mine"),
            InstrumentalRequest("a lo-fi beat", key="beat", reply_ref="mine"),
        ]
        async with fake.client() as client:
            report = await client.run_batch(
                items, journal=tmp_path / "j.sqlite", confirm_window=1.0
            )
        results = {item.key: item for item in report.items}
        for key, kind, prompt in (
            ("song", "song", "a sea shanty"),
            ("beat", "instrumental", "a lo-fi beat"),
        ):
            assert results[key].status == "completed"
            for job_id in results[key].job_ids:
                assert fake.jobs[job_id].kind == kind
                assert fake.jobs[job_id].prompt == prompt
        assert len(fake.submissions) == 2  # each paid once
        for jobs in fake.submissions:  # the user's reply_ref leads, the batch's token follows
            assert (fake.jobs[jobs[0]].reply_ref or "").startswith("mine~" + BATCH_REFERENCE)
        assert report.resent_unconfirmed == 1


async def test_another_programs_running_generation_is_never_adopted(tmp_path: Path) -> None:
    """While the batch was down, another program sent the same prompt to the same account.
    Its running generation has another replyRef: it is remembered as someone else's, and
    the item gets its own generation."""
    journal = tmp_path / "j.sqlite"
    item = SongRequest("the same prompt", key="mine")
    await crashed_journal(journal, item, time.time() - 90)  # its POST never arrived
    async with FakeTempolor(job_duration=3.0) as fake:
        async with fake.client() as client:
            stranger = await client.music.create_song("the same prompt", reply_ref="someone else")
            report = await client.run_batch([item], journal=journal, confirm_window=0.0)
        strangers = set(stranger.jobs or [])
        assert report.items[0].status == "completed"
        assert not strangers & set(report.items[0].job_ids)
        assert len(fake.submissions) == 2
        assert strangers <= foreign_jobs(journal)
        assert report.resent_unconfirmed == 1


async def test_a_service_clock_behind_this_machine_still_finds_the_generation(
    tmp_path: Path,
) -> None:
    """The service's clock is 10 s behind: a generation accepted with its answer lost is
    found among the records (its jobs already ended), not paid again."""
    async with FakeTempolor(job_duration=0.2, clock_offset=-10.0) as fake:
        fake.inject("POST", "/music/song", status=502, handled=True)
        async with fake.client() as client:
            report = await client.run_batch(
                [SongRequest("tick tock", key="t")], journal=tmp_path / "j.sqlite"
            )
        assert len(fake.submissions) == 1
        assert report.items[0].status == "completed"
        assert sorted(report.items[0].job_ids) == sorted(fake.submissions[0])
        assert fake.requests_to("GET", "/music/")  # found among the records
        assert report.resent_unconfirmed == 0


@pytest.mark.parametrize("offset", [-600.0, 600.0])
async def test_a_clock_minutes_away_changes_nothing(tmp_path: Path, offset: float) -> None:
    async with FakeTempolor(job_duration=0.2, clock_offset=offset) as fake:
        async with fake.client() as client:
            older = await client.music.create_song("minutes")  # a stranger's, before the intent
            await anyio.sleep(2.5)  # beyond what the Date header's whole seconds leave unsure
            fake.inject("POST", "/music/song", status=502, handled=True)
            report = await client.run_batch(
                [SongRequest("minutes", key="m")], journal=tmp_path / "j.sqlite"
            )
        assert len(fake.submissions) == 2
        assert sorted(report.items[0].job_ids) == sorted(fake.submissions[1])
        assert not set(older.jobs or []) & set(report.items[0].job_ids)


async def test_a_generation_accepted_after_the_client_gave_up_is_not_paid_twice(
    tmp_path: Path,
) -> None:
    """The service accepts the POST 5 s after it arrived (the client gave up after 1 s).
    The item is looked for again within its confirm window, found, and never sent again."""
    async with FakeTempolor(job_duration=0.2) as fake:
        fake.inject("POST", "/music/song", delay=5.0)
        async with fake.client(timeout=1.0) as client:
            report = await client.run_batch(
                [SongRequest("late", key="late")],
                journal=tmp_path / "j.sqlite",
                confirm_window=20.0,
            )
        assert len(fake.submissions) == 1
        assert len(batch_posts(fake)) == 1
        assert report.items[0].status == "completed"
        assert report.resent_unconfirmed == 0
        assert report.generations_submitted == 1


async def test_the_search_walks_every_page_back_to_the_intent(tmp_path: Path) -> None:
    """More than 50 pages of newer records of the same type: the search goes on until it
    reaches the item's own generation."""
    async with FakeTempolor(
        job_duration=0.05, page_size=1, max_jobs=200, max_gen_count_at_once=200
    ) as fake:
        fake.inject("POST", "/music/song", status=502, handled=True)
        async with fake.client() as client, fake.client(capacity_aware=False) as stranger:

            async def crowd_it_out() -> None:
                while not fake.submissions:  # noqa: ASYNC110 - the simulator's state is all there is
                    await anyio.sleep(0.01)
                for number in range(30):  # 60 newer records, one per page
                    await stranger.music.create_song(f"stranger {number}")

            async with anyio.create_task_group() as group:
                group.start_soon(crowd_it_out)
                report = await client.run_batch(
                    [SongRequest("buried", key="b")],
                    journal=tmp_path / "j.sqlite",
                    confirm_window=600.0,
                )
        assert len(accepted_batch_generations(fake)) == 1
        assert sorted(report.items[0].job_ids) == sorted(fake.submissions[0])
        assert len(fake.requests_to("GET", "/music/")) > 50


@pytest.mark.parametrize("link", ["symlink", "hard link", "other spelling"])
async def test_a_journal_under_another_name_is_the_same_journal(tmp_path: Path, link: str) -> None:
    """A second run through a symlink, a hard link or another spelling of the path meets
    the first run's lock; nothing is sent for it."""
    journal = tmp_path / "j.sqlite"
    other = tmp_path / "other.sqlite"
    async with FakeTempolor(job_duration=0.2) as fake, fake.client() as client:
        await client.run_batch([SongRequest("first", key="first")], journal=journal)
        if link == "symlink":
            other.symlink_to(journal)
        elif link == "hard link":
            os.link(journal, other)
        else:
            (tmp_path / "sub").mkdir()
            other = tmp_path / "sub" / ".." / "j.sqlite"
        held = await Journal.open(journal)
        try:
            before = len(fake.requests)
            with pytest.raises(ValidationError, match="in use by another running batch"):
                await client.run_batch([SongRequest("second", key="second")], journal=other)
            assert len(fake.requests) == before
        finally:
            held.close()


# ------------------------------------------------------------ a newcomer's findings


async def test_a_folder_belongs_to_one_journal(tmp_path: Path) -> None:
    out = tmp_path / "out"
    async with FakeTempolor(job_duration=0.2) as fake, fake.client() as client:
        await client.run_batch(
            [SongRequest("one", key="s00")], journal=tmp_path / "a.sqlite", out_dir=out
        )
        first = (out / "s00-1.mp3").read_bytes()
        owner = json.loads((out / ".tempolor-batch-owner").read_text())
        assert owner["journal"] == os.path.realpath(tmp_path / "a.sqlite")
        before = len(fake.requests)
        with pytest.raises(ValidationError, match=r"a\.sqlite") as caught:
            await client.run_batch(
                [SongRequest("two", key="s00")], journal=tmp_path / "b.sqlite", out_dir=out
            )
        assert "belongs to the batch journal" in str(caught.value)
        assert len(fake.requests) == before  # nothing sent
        assert (out / "s00-1.mp3").read_bytes() == first
        # The owning journal, moved within its file system, is still the owner.
        os.rename(tmp_path / "a.sqlite", tmp_path / "moved.sqlite")
        report = await client.run_batch(
            [SongRequest("one", key="s00")], journal=tmp_path / "moved.sqlite", out_dir=out
        )
        assert report.completed == 1
        owner = json.loads((out / ".tempolor-batch-owner").read_text())
        assert owner["journal"] == os.path.realpath(tmp_path / "moved.sqlite")


async def test_the_manifest_lists_every_item_the_journal_holds(tmp_path: Path) -> None:
    out = tmp_path / "out"
    journal = tmp_path / "j.sqlite"
    async with FakeTempolor(job_duration=0.2) as fake, fake.client() as client:
        await client.run_batch(
            [SongRequest("a", key="a"), SongRequest("b", key="b")], journal=journal, out_dir=out
        )
        first = {
            item["key"]: item
            for item in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())
        }
        report = await client.run_batch(
            [SongRequest("c", key="c"), SongRequest("changed", key="a")],
            journal=journal,
            out_dir=out,
        )
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    by_key = {line["key"]: line for line in lines}
    assert sorted(by_key) == ["a", "b", "c"]
    # The refused item keeps its recorded state, jobs and files, with the refusal.
    assert by_key["a"]["status"] == "downloaded"
    assert by_key["a"]["job_ids"] == first["a"]["job_ids"]
    assert by_key["a"]["files"] == first["a"]["files"]
    assert "different parameters" in by_key["a"]["error"]
    assert all((out / name).is_file() for name in by_key["a"]["files"])
    refused = next(item for item in report.items if item.key == "a")
    assert refused.status == "failed"
    assert list(refused.job_ids) == first["a"]["job_ids"]
    assert report.failed == 1


async def test_an_empty_file_is_refused_not_overwritten(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    journal.write_bytes(b"")
    async with FakeTempolor() as fake:
        async with fake.client() as client:
            with pytest.raises(ValidationError, match="empty"):
                await client.run_batch([SongRequest("s")], journal=journal)
        assert fake.requests == []
    assert journal.read_bytes() == b""


async def test_a_clean_end_folds_the_write_ahead_log(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    async with FakeTempolor(job_duration=0.1) as fake, fake.client() as client:
        await client.run_batch(
            [SongRequest(f"s{n}", key=f"s{n}") for n in range(3)], journal=journal
        )
    wal = tmp_path / "j.sqlite-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    copy = tmp_path / "copy.sqlite"
    copy.write_bytes(journal.read_bytes())  # the main file alone holds everything
    with contextlib.closing(sqlite3.connect(copy)) as connection:
        states = dict(connection.execute("SELECT key, state FROM items"))
    assert states == dict.fromkeys(["s0", "s1", "s2"], "completed")


async def test_after_a_lost_answer_the_gate_reads_the_slots_before_its_next_send(
    tmp_path: Path,
) -> None:
    """The first generation's answer is lost, but the service runs it and its two jobs fill
    the account (maxJobs 2). The gate reads the slots again before sending the second item,
    so it waits for them instead of meeting a 429 (and its 30 s wait)."""
    async with FakeTempolor(job_duration=2.0, max_jobs=2) as fake:
        fake.inject("POST", "/music/song", status=502, handled=True)
        async with fake.client() as client:
            report = await client.run_batch(
                [SongRequest("first", key="first"), SongRequest("second", key="second")],
                journal=tmp_path / "j.sqlite",
            )
        assert report.completed == 2
        assert len(batch_posts(fake)) == 2  # no 429, so no second attempt
        assert len(fake.submissions) == 2
        first_jobs, second_jobs = fake.submissions
        second_post = batch_posts(fake)[1].time
        assert all(fake.jobs[job].started + 2.0 <= second_post + 0.05 for job in first_jobs)
        assert second_jobs


async def test_a_reply_ref_too_long_for_a_batch_is_refused_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    async with FakeTempolor() as fake:
        async with fake.client() as client:
            with pytest.raises(ValidationError, match="reply_ref"):
                await client.run_batch(
                    [
                        SongRequest("ok", key="ok"),
                        SongRequest("long", key="l", reply_ref="r" * 1001),
                    ],
                    journal=tmp_path / "j.sqlite",
                )
        assert fake.requests == []
