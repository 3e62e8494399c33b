"""client.run_batch against the simulator over loopback, with a real SQLite journal on disk."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from tempolor_async import (
    BatchEvent,
    InstrumentalRequest,
    SongRequest,
    TempolorClient,
    Tonality,
    ValidationError,
)
from tempolor_async.testing import FakeTempolor

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.fake(job_duration=0.2, max_jobs=40, max_gen_count_at_once=40),
]


def journal_rows(path: Path) -> dict[str, dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute("SELECT * FROM items").fetchall()
    return {row["key"]: dict(row) for row in rows}


def accepted_per_reference(fake: FakeTempolor) -> Counter[str]:
    """How many accepted generations carry each replyRef (both jobs of one share it)."""
    return Counter(fake.jobs[jobs[0]].reply_ref or "" for jobs in fake.submissions)


def generation_posts(fake: FakeTempolor) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and r.path.startswith("/music/")]


async def wait_until(condition: Any, limit: float = 10.0) -> None:
    with anyio.fail_after(limit):
        while not condition():  # noqa: ASYNC110 - the state itself is all there is to watch
            await anyio.sleep(0.02)


# ------------------------------------------------------------------ requests


def test_requests_are_checked_when_built() -> None:
    with pytest.raises(ValidationError, match="prompt"):
        SongRequest("   ")
    with pytest.raises(ValidationError, match="lyrics"):
        SongRequest("x", lyrics="l" * 3001)
    with pytest.raises(ValidationError, match="cloned_voice_item_id"):
        SongRequest("x", artist_voice_item_id="a", cloned_voice_item_id="b")
    with pytest.raises(ValidationError, match="bpm"):
        InstrumentalRequest("x", bpm=200)
    with pytest.raises(ValidationError, match="tonality"):
        InstrumentalRequest("x", tonality="H:major")
    with pytest.raises(ValidationError, match="max_jobs"):
        InstrumentalRequest("x", max_jobs=0)
    with pytest.raises(ValidationError, match="user_id"):
        SongRequest("x", user_id="a/b")
    with pytest.raises(ValidationError, match="key"):
        SongRequest("x", key=" ")
    with pytest.raises(ValidationError, match="reply_url"):
        SongRequest("x", reply_url="ftp://example.com")


def test_default_key_is_a_digest_of_the_parameters() -> None:
    first = InstrumentalRequest("lofi", tonality=Tonality.A_MINOR, bpm=84)
    same = InstrumentalRequest("lofi", tonality="A:minor", bpm=84)
    assert first.tonality == "A:minor"
    assert first.item_key == same.item_key == first.digest[:16]
    assert InstrumentalRequest("lofi", bpm=85).item_key != first.item_key
    assert SongRequest("lofi").item_key != InstrumentalRequest("lofi").item_key
    assert SongRequest("lofi", key="mine").item_key == "mine"
    assert SongRequest("lofi", key="mine").digest == SongRequest("lofi").digest


# -------------------------------------------------------------------- runs


async def test_a_batch_generates_downloads_and_writes_a_manifest(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    items = [
        SongRequest("sea shanty with a big choir", key="shanty", lyrics="Heave ho"),
        InstrumentalRequest("lo-fi beat", key="lofi-84", bpm=84, tonality="A:minor"),
        SongRequest("a ballad"),
    ]
    events: list[BatchEvent] = []
    out = tmp_path / "tracks"
    async with fake.client() as client:
        report = await client.run_batch(
            items,
            journal=tmp_path / "run.sqlite",
            out_dir=out,
            formats=("mp3", "wav"),
            on_event=events.append,
        )
    assert (report.completed, report.failed, report.pending) == (3, 0, 0)
    assert report.generations_submitted == 3
    assert report.stopped_reason is None
    assert len(fake.submissions) == 3
    # One replyRef per item, each accepted once; a song keeps its lyrics.
    assert sorted(accepted_per_reference(fake).values()) == [1, 1, 1]
    posts = {r.json()["prompt"]: r.json() for r in generation_posts(fake)}
    assert posts["sea shanty with a big choir"]["lyrics"] == "Heave ho"
    assert posts["lo-fi beat"]["bpm"] == 84
    for item in report.items:
        assert item.status == "downloaded"
        assert len(item.job_ids) == 2
        assert len(item.files) == 4
        for path in item.files:
            index = int(path.stem.rsplit("-", 1)[1])
            file_format = "mp3" if path.suffix == ".mp3" else "wav"
            assert path.read_bytes() == fake.media_bytes(item.job_ids[index - 1], file_format)
    assert {p.name for p in out.iterdir()} == {
        *(
            f"{key}-{i}.{ext}"
            for key in ("shanty", "lofi-84")
            for i in (1, 2)
            for ext in ("mp3", "wav")
        ),
        *(f"{items[2].item_key}-{i}.{ext}" for i in (1, 2) for ext in ("mp3", "wav")),
        "manifest.jsonl",
        ".tempolor-batch-owner",
    }
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [line["key"] for line in manifest] == ["shanty", "lofi-84", items[2].item_key]
    assert manifest[1]["type"] == "instrumental"
    assert manifest[0]["files"] == ["shanty-1.mp3", "shanty-1.wav", "shanty-2.mp3", "shanty-2.wav"]
    assert all(line["status"] == "downloaded" and line["error"] is None for line in manifest)
    statuses = [event.status for event in events if event.key == "shanty"]
    assert statuses == ["submitting", "submitted", "completed", "downloaded"]
    rows = journal_rows(tmp_path / "run.sqlite")
    assert {row["state"] for row in rows.values()} == {"downloaded"}
    assert json.loads(rows["shanty"]["job_ids"]) == list(report.items[0].job_ids)


async def test_running_again_sends_no_request_for_finished_items(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    items = [SongRequest(f"song {n}", key=f"s{n}") for n in range(3)]
    async with fake.client() as client:
        await client.run_batch(items, journal=tmp_path / "j.sqlite", out_dir=tmp_path)
        before = len(fake.requests)
        report = await client.run_batch(items, journal=tmp_path / "j.sqlite", out_dir=tmp_path)
    assert fake.requests[before:] == []
    assert report.completed == 3
    assert report.generations_submitted == 0


async def test_a_deleted_file_is_downloaded_again_without_a_new_generation(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    items = [SongRequest("song", key="s")]
    async with fake.client() as client:
        first = await client.run_batch(items, journal=tmp_path / "j.sqlite", out_dir=tmp_path)
        first.items[0].files[1].unlink()
        again = await client.run_batch(
            items, journal=tmp_path / "j.sqlite", out_dir=tmp_path, formats=["mp3", "wav"]
        )
    assert len(fake.submissions) == 1
    assert again.items[0].status == "downloaded"
    assert {p.name for p in again.items[0].files} == {"s-1.mp3", "s-2.mp3", "s-1.wav", "s-2.wav"}
    assert all(path.is_file() for path in again.items[0].files)


async def test_items_may_come_from_an_async_iterable_without_out_dir(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    async def items() -> AsyncIterator[SongRequest]:
        for n in range(2):
            yield SongRequest(f"song {n}")

    async with fake.client() as client:
        report = await client.run_batch(items(), journal=tmp_path / "j.sqlite")
    assert [item.status for item in report.items] == ["completed", "completed"]
    assert report.completed == 2
    assert all(item.files == () for item in report.items)


async def test_changed_parameters_under_an_old_key_are_refused(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    async with fake.client() as client:
        await client.run_batch([SongRequest("first prompt", key="a")], journal=journal)
        report = await client.run_batch(
            [SongRequest("second prompt", key="a"), SongRequest("other", key="b")],
            journal=journal,
        )
    refused = report.items[0]
    assert refused.status == "failed"
    assert refused.error is not None
    assert "'a'" in refused.error
    assert "key" in refused.error
    assert report.items[1].status == "completed"
    prompts = [r.json()["prompt"] for r in generation_posts(fake)]
    assert prompts == ["first prompt", "other"]
    assert journal_rows(journal)["a"]["state"] == "completed"  # the old row is untouched


async def test_two_items_with_one_key_are_refused_for_the_second(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    items = [SongRequest("one", key="same"), SongRequest("two", key="same"), SongRequest("one")]
    async with fake.client() as client:
        report = await client.run_batch(items, journal=tmp_path / "j.sqlite")
    assert [r.json()["prompt"] for r in generation_posts(fake)].count("two") == 0
    assert len(fake.submissions) == 2
    assert report.failed == 1
    assert report.completed == 2
    assert len(report.items) == 3
    duplicate = [item for item in report.items if item.status == "failed"]
    assert duplicate[0].key == "same"
    assert "two items" in (duplicate[0].error or "")


@pytest.mark.parametrize("other", ["a_b", "a b", "a:b", "A/B"])
async def test_keys_that_make_the_same_file_name_are_refused_before_anything_is_sent(
    fake: FakeTempolor, tmp_path: Path, other: str
) -> None:
    items = [
        SongRequest("zero", key="z"),
        SongRequest("one", key="a/b"),
        SongRequest("two", key=other),
    ]
    async with fake.client() as client:
        with pytest.raises(ValidationError) as caught:
            await client.run_batch(items, journal=tmp_path / "j.sqlite", out_dir=tmp_path)
    assert "'a/b'" in str(caught.value)
    assert repr(other) in str(caught.value)
    assert "item 2" in str(caught.value)
    assert "item 3" in str(caught.value)
    assert fake.submissions == []
    assert fake.requests == []


async def test_a_failed_job_is_not_sent_again_unless_asked(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    items = [SongRequest("doomed [fail]", key="doomed"), SongRequest("fine", key="fine")]
    journal = tmp_path / "j.sqlite"
    async with fake.client() as client:
        first = await client.run_batch(items, journal=journal, out_dir=tmp_path)
        second = await client.run_batch(items, journal=journal, out_dir=tmp_path)
        assert len(fake.submissions) == 2
        third = await client.run_batch(items, journal=journal, out_dir=tmp_path, retry_failed=True)
    assert first.items[0].status == "failed"
    assert "FAILED" in (first.items[0].error or "")
    assert (first.completed, first.failed) == (1, 1)
    assert second.items[0].status == "failed"
    assert second.generations_submitted == 0
    assert third.generations_submitted == 1
    assert len(fake.submissions) == 3
    assert not list(tmp_path.glob("doomed-*"))


async def test_a_lost_answer_is_adopted_not_paid_twice(fake: FakeTempolor, tmp_path: Path) -> None:
    fake.inject("POST", "/music/song", truncate=True)  # accepted, then the answer is cut
    async with fake.client() as client:
        report = await client.run_batch(
            [SongRequest("song", key="s")], journal=tmp_path / "j.sqlite", out_dir=tmp_path
        )
    assert len(generation_posts(fake)) == 1
    assert len(fake.submissions) == 1
    assert report.items[0].status == "downloaded"
    assert sorted(report.items[0].job_ids) == sorted(fake.submissions[0])
    assert report.generations_submitted == 1


async def test_a_dropped_request_is_looked_for_then_sent_again(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    fake.inject("POST", "/music/instrumental", drop=True)  # never reached the handler
    async with fake.client() as client:
        report = await client.run_batch(
            [InstrumentalRequest("beat", key="b")],
            journal=tmp_path / "j.sqlite",
            confirm_window=1.0,
        )
    assert len(generation_posts(fake)) == 2
    assert report.resent_unconfirmed == 1
    assert len(fake.submissions) == 1
    assert fake.requests_to("GET", "/scheduler/")  # it looked before sending again
    assert report.items[0].status == "completed"


async def test_reconciliation_never_takes_an_older_or_different_generation_for_its_own(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    """The answer to the item's POST is lost; two strangers asked for the same prompt: one a
    minute before the intent, one with another model. Neither is adopted: the item is sent
    again and keeps its own generation."""
    fake.job_duration = 30.0
    async with fake.client() as client:
        older = await client.music.create_song("song", model="v3.5")
        for job_id in older.jobs or []:
            fake.jobs[job_id].created_ms -= 60_000
        other_model = await client.music.create_song("song", model="v3")
        fake.inject("POST", "/music/song", drop=True)  # never reached the handler
        items = [SongRequest("song", key="s", model="v3.5")]

        def finish_once_submitted(event: BatchEvent) -> None:
            if event.status == "submitted":
                for job_id in event.job_ids:
                    fake.complete(job_id)

        report = await client.run_batch(
            items, journal=tmp_path / "j.sqlite", on_event=finish_once_submitted, confirm_window=1.0
        )
    strangers = {*(older.jobs or []), *(other_model.jobs or [])}
    assert len(fake.submissions) == 3
    assert sorted(report.items[0].job_ids) == sorted(fake.submissions[2])
    assert not strangers & set(report.items[0].job_ids)
    assert fake.requests_to("GET", "/music/")  # it looked among the records before sending


@pytest.mark.parametrize("at_resume", ["running", "one job ended", "finished"])
async def test_an_interrupted_send_is_reconciled_on_the_next_run(
    fake: FakeTempolor, tmp_path: Path, at_resume: str
) -> None:
    """Cancelled while the service was still answering: the journal says ``submitting``. The
    next run finds the generation: among the running jobs by its replyRef, among the records
    by its prompt, or both when one of its two jobs has already ended."""
    fake.job_duration = 0.5 if at_resume == "finished" else 30.0
    fake.inject("POST", "/music/song", delay=0.5)
    journal = tmp_path / "j.sqlite"
    items = [SongRequest("song", key="s")]
    async with fake.client() as client:
        with anyio.CancelScope() as scope:

            async def cancel_once_sent() -> None:
                await wait_until(lambda: generation_posts(fake))
                scope.cancel()

            async with anyio.create_task_group() as group:
                group.start_soon(cancel_once_sent)
                await client.run_batch(items, journal=journal)
        assert journal_rows(journal)["s"]["state"] == "submitting"
        await wait_until(lambda: fake.submissions)
        accepted = fake.submissions[0]
        if at_resume == "finished":
            await wait_until(lambda: not fake.running_jobs())
        elif at_resume == "one job ended":
            fake.complete(accepted[0])

        def finish_once_adopted(event: BatchEvent) -> None:
            if event.status == "submitted":
                for job_id in accepted:
                    fake.complete(job_id)

        listed_before = len(fake.requests_to("GET", "/music/"))
        report = await client.run_batch(items, journal=journal, on_event=finish_once_adopted)
    assert len(generation_posts(fake)) == 1
    assert sorted(report.items[0].job_ids) == sorted(accepted)
    assert report.items[0].status == "completed"
    assert report.generations_submitted == 0
    assert journal_rows(journal)["s"]["generations"] == 1
    searched_records = len(fake.requests_to("GET", "/music/")) > listed_before
    assert searched_records == (at_resume != "running")


async def test_max_generations_counts_over_the_journals_whole_life(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    items = [SongRequest(f"song {n}", key=f"s{n}") for n in range(4)]
    journal = tmp_path / "j.sqlite"
    async with fake.client() as client:
        first = await client.run_batch(items, journal=journal, max_generations=2)
        assert len(fake.submissions) == 2
        second = await client.run_batch(items, journal=journal, max_generations=3)
    assert first.stopped_reason == "budget"
    assert (first.completed, first.pending) == (2, 2)
    assert second.stopped_reason == "budget"
    assert second.generations_submitted == 1
    assert (second.completed, second.pending) == (3, 1)
    assert len(fake.submissions) == 3


async def test_min_remaining_stops_submitting_and_adopts_what_was_in_flight(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    items = [SongRequest(f"song {n}", key=f"s{n}") for n in range(6)]
    async with fake.client() as client:
        report = await client.run_batch(items, journal=tmp_path / "j.sqlite", min_remaining=3000)
    assert report.stopped_reason == "min_remaining"
    # Whatever the service accepted belongs to exactly one item; nothing was accepted twice.
    held = [job for item in report.items for job in item.job_ids]
    assert sorted(held) == sorted(job for jobs in fake.submissions for job in jobs)
    assert set(accepted_per_reference(fake).values()) == {1}
    assert report.completed == len(fake.submissions) >= 1
    assert report.pending == 6 - report.completed
    assert report.failed == 0


async def test_no_account_left_stops_submitting_without_failing_items(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    for account in fake.accounts.values():
        account.subscribed = False  # every generation answers 402
    async with fake.client() as client:
        report = await client.run_batch(
            [SongRequest("a", key="a"), SongRequest("b", key="b")], journal=tmp_path / "j.sqlite"
        )
    assert report.stopped_reason == "no_account"
    assert report.failed == 0
    assert report.pending == 2
    assert fake.submissions == []
    assert {row["state"] for row in journal_rows(tmp_path / "j.sqlite").values()} <= {"pending"}


async def test_a_busy_answer_puts_the_item_back_to_pending(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    fake.inject("POST", "/music/song", status=429)
    journal = tmp_path / "j.sqlite"
    seen: list[str] = []
    async with fake.client(busy_timeout=0) as client:
        with anyio.CancelScope() as scope:

            def on_event(event: BatchEvent) -> None:
                seen.append(event.status)
                if event.status == "pending":
                    scope.cancel()

            await client.run_batch([SongRequest("s", key="s")], journal=journal, on_event=on_event)
    assert seen == ["submitting", "pending"]
    assert journal_rows(journal)["s"]["state"] == "pending"
    assert journal_rows(journal)["s"]["failure"] is None


async def test_an_error_in_on_event_ends_the_run_as_itself(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    def on_event(event: BatchEvent) -> None:
        if event.status == "submitted":
            raise RuntimeError("callback broke")

    async with fake.client() as client:
        with pytest.raises(RuntimeError, match="callback broke"):
            await client.run_batch(
                [SongRequest("s", key="s")],
                journal=tmp_path / "j.sqlite",
                out_dir=tmp_path / "out",
                on_event=on_event,
            )
    manifest = (tmp_path / "out" / "manifest.jsonl").read_text()
    assert json.loads(manifest)["status"] == "submitted"
    assert json.loads(manifest)["job_ids"] == fake.submissions[0]


# ------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"this is not a database at all", "not an SQLite database"),
        (b"SQLite format 3\x00" + b"\x00" * 200, "damaged"),
    ],
)
async def test_a_corrupt_journal_is_refused_before_anything_is_sent(
    fake: FakeTempolor, tmp_path: Path, content: bytes, fragment: str
) -> None:
    journal = tmp_path / "j.sqlite"
    journal.write_bytes(content)
    async with fake.client() as client:
        with pytest.raises(ValidationError, match="journal") as caught:
            await client.run_batch([SongRequest("s")], journal=journal)
    assert fragment in str(caught.value)
    assert fake.requests == []
    assert journal.read_bytes() == content


async def test_a_foreign_database_is_refused_and_left_as_it_was(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    journal = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(journal)) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
        connection.execute("INSERT INTO notes VALUES ('keep me')")
    before = journal.read_bytes()
    async with fake.client() as client:
        with pytest.raises(ValidationError, match="not a batch journal"):
            await client.run_batch([SongRequest("s")], journal=journal, out_dir=tmp_path / "o")
    assert fake.requests == []
    assert journal.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["o", "other.db"]


async def test_a_journal_in_use_is_refused(fake: FakeTempolor, tmp_path: Path) -> None:
    fake.inject("POST", "/music/song", delay=1.0)
    journal = tmp_path / "j.sqlite"
    async with fake.client() as client, anyio.create_task_group() as group:
        group.start_soon(
            partial(client.run_batch, [SongRequest("first", key="a")], journal=journal)
        )
        await wait_until(lambda: generation_posts(fake))
        with pytest.raises(ValidationError, match="in use by another running batch"):
            await client.run_batch([SongRequest("second", key="b")], journal=journal)
    assert [r.json()["prompt"] for r in generation_posts(fake)] == ["first"]


async def test_an_unwritable_out_dir_is_refused_before_anything_is_sent(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    async with fake.client() as client:
        with pytest.raises(ValidationError, match="out_dir"):
            await client.run_batch(
                [SongRequest("s")], journal=tmp_path / "j.sqlite", out_dir=blocker / "tracks"
            )
    assert fake.requests == []
    assert not (tmp_path / "j.sqlite").exists()


async def test_wrong_items_and_options_are_refused(fake: FakeTempolor, tmp_path: Path) -> None:
    client: TempolorClient
    async with fake.client() as client:
        with pytest.raises(ValidationError, match="item 2"):
            await client.run_batch(
                [SongRequest("s"), {"prompt": "x"}],  # type: ignore[list-item]
                journal=tmp_path / "j.sqlite",
            )
        with pytest.raises(ValidationError, match="file_format"):
            await client.run_batch([SongRequest("s")], journal=tmp_path / "j", formats=["flac"])
        with pytest.raises(ValidationError, match="max_generations"):
            await client.run_batch([SongRequest("s")], journal=tmp_path / "j", max_generations=-1)
    assert fake.requests == []


async def test_temporary_files_of_a_killed_run_are_removed(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    items = [SongRequest("s", key="s")]
    async with fake.client() as client:
        await client.run_batch(items, journal=tmp_path / "j.sqlite", out_dir=tmp_path)
        ours = tmp_path / ".s-1.wav.k2j4h1x9.part"
        stale_manifest = tmp_path / ".manifest.jsonl.ab12cd34.part"
        theirs = tmp_path / ".holiday.jpg.zz99yy88.part"
        for path in (ours, stale_manifest, theirs):
            path.write_bytes(b"partial")
        await client.run_batch(items, journal=tmp_path / "j.sqlite", out_dir=tmp_path)
    assert not ours.exists()
    assert not stale_manifest.exists()
    assert theirs.exists()


@pytest.mark.faults
async def test_a_download_that_keeps_failing_fails_the_item_and_is_retried_for_free(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    fake.inject("GET", "/cdn/*", status=503, times=None)
    items = [SongRequest("song", key="s")]
    journal = tmp_path / "j.sqlite"
    async with fake.client(max_retries=0) as client:
        first = await client.run_batch(items, journal=journal, out_dir=tmp_path / "out")
        fake.clear_faults()
        second = await client.run_batch(items, journal=journal, out_dir=tmp_path / "out")
    assert first.items[0].status == "failed"
    assert "download of s-1.mp3 failed" in (first.items[0].error or "")
    assert journal_rows(journal)["s"]["state"] == "downloaded"
    assert second.items[0].status == "downloaded"
    assert second.generations_submitted == 0
    assert len(fake.submissions) == 1
    assert not [p for p in (tmp_path / "out").iterdir() if p.suffix == ".part"]
