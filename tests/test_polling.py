"""client.await_job: polling one job to its final record, progress callbacks, failures,
deadlines, cancellation and riding out transient faults."""

from __future__ import annotations

import asyncio
import itertools

import anyio
import anyio.lowlevel
import pytest
from _quiet import assert_nothing_more_sent

from tempolor_async import (
    AuthenticationError,
    BadRequestError,
    JobFailedError,
    JobStatus,
    JobTimeoutError,
    MusicJob,
    NotFoundError,
    ResponseDecodeError,
    ValidationError,
    _protocol,
)

pytestmark = pytest.mark.anyio

FAST = 0.02
UNKNOWN_JOB = "user:12345-tempolor:100349856-job:abcdef123456789"


async def submit(client, prompt="a calm piano piece"):
    return (await client.music.create_song(prompt)).jobs[0]


def polls(fake, job_id):
    return len(fake.requests_to("GET", f"/music/{job_id}"))


async def until_polled(fake, job_id, count):
    for _ in range(1000):
        if polls(fake, job_id) >= count:
            return
        await anyio.sleep(0.005)
    raise AssertionError(f"{job_id} was polled fewer than {count} times")


@pytest.fixture
def quick_retries(monkeypatch):
    """Keep retry backoff short so that fault tests stay fast."""
    monkeypatch.setattr(_protocol, "RETRY_BASE_SECONDS", 0.01)


def recorder(kind):
    """An on_progress callback, sync or async, and the (status, progress) pairs it saw."""
    seen: list[tuple[object, object]] = []

    def sync(job: MusicJob) -> None:
        assert isinstance(job, MusicJob)
        seen.append((job.status, job.progress))

    async def asynchronous(job: MusicJob) -> None:
        await anyio.lowlevel.checkpoint()
        sync(job)

    return (sync if kind == "sync" else asynchronous), seen


async def test_returns_the_completed_record(client, fake):
    job_id = await submit(client)
    job = await client.await_job(job_id, poll_interval=FAST)
    assert isinstance(job, MusicJob)
    assert job.job_id == job_id
    assert job.status is JobStatus.COMPLETED
    assert job.is_completed
    assert job.status_final
    assert job.progress == 100
    assert job.title_en is not None
    assert job.title_en.startswith("A Calm Piano Piece (")


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_on_progress_reports_each_change_once(client, fake, kind):
    callback, seen = recorder(kind)
    job_id = await submit(client)
    job = await client.await_job(job_id, poll_interval=FAST, on_progress=callback)
    assert seen[0][0] == JobStatus.GENERATING
    assert seen[-1] == (JobStatus.COMPLETED, 100) == (job.status, job.progress)
    assert len(seen) == len(set(seen)) >= 3
    progress = [value for _, value in seen]
    assert progress == sorted(progress)
    assert polls(fake, job_id) >= len(seen)


@pytest.mark.fake(job_duration=60)
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_on_progress_skips_unchanged_records(client, fake, kind):
    callback, seen = recorder(kind)
    job_id = await submit(client)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: client.await_job(job_id, poll_interval=FAST, on_progress=callback))
        await until_polled(fake, job_id, 5)
        fake.complete(job_id)
    assert seen == [(JobStatus.GENERATING, 0), (JobStatus.COMPLETED, 100)]
    assert polls(fake, job_id) >= 6


async def test_a_failed_job_raises_with_the_job(client, fake):
    job_id = await submit(client, "a song that will [fail]")
    with pytest.raises(JobFailedError) as info:
        await client.await_job(job_id, poll_interval=FAST)
    assert info.value.job.job_id == job_id
    assert info.value.job.status is JobStatus.FAILED
    assert info.value.job.is_failed
    assert job_id in str(info.value)


@pytest.mark.fake(job_duration=60)
async def test_a_failed_job_is_returned_without_raise_on_failure(client, fake):
    job_id = await submit(client)
    fake.fail(job_id)
    job = await client.await_job(job_id, poll_interval=FAST, raise_on_failure=False)
    assert (job.job_id, job.status, job.is_failed, job.is_final) == (
        job_id,
        JobStatus.FAILED,
        True,
        True,
    )


@pytest.mark.fake(job_duration=60)
async def test_the_deadline_raises_and_stops_polling(client, fake):
    job_id = await submit(client)
    callback, seen = recorder("sync")  # on_progress makes the wait fetch the running record
    with pytest.raises(JobTimeoutError) as info:
        await client.await_job(job_id, timeout=0.15, poll_interval=FAST, on_progress=callback)
    error = info.value
    assert (error.job_id, error.job_ids) == (job_id, [job_id])
    assert isinstance(error.last, MusicJob)
    assert (error.last.job_id, error.last.status) == (job_id, JobStatus.GENERATING)
    assert seen == [(JobStatus.GENERATING, 0)]
    count = polls(fake, job_id)
    assert count >= 2
    await assert_nothing_more_sent(fake, len(fake.requests))


@pytest.mark.fake(job_duration=60)
async def test_the_deadline_while_the_scheduler_lists_the_job(client, fake):
    """Without on_progress a running job costs only the shared scheduler request: its own
    record is never fetched, so the timeout has no record to show."""
    job_id = await submit(client)
    with pytest.raises(JobTimeoutError) as info:
        await client.await_job(job_id, timeout=0.15, poll_interval=FAST)
    assert (info.value.job_id, info.value.last) == (job_id, None)
    assert polls(fake, job_id) == 0
    ticks = len(fake.requests_to("GET", "/scheduler/"))
    assert ticks >= 2
    await anyio.sleep(0.15)
    assert len(fake.requests_to("GET", "/scheduler/")) == ticks


@pytest.mark.fake(job_duration=60)
async def test_the_deadline_with_no_record_seen(client, fake):
    job_id = await submit(client)
    fake.inject("GET", f"/music/{job_id}", delay=0.5)
    with pytest.raises(JobTimeoutError) as info:
        await client.await_job(job_id, timeout=0.1, poll_interval=FAST, on_progress=print)
    assert info.value.job_id == job_id
    assert info.value.last is None
    await anyio.sleep(0.05)
    assert polls(fake, job_id) == 1


async def until_ticks(fake, count):
    for _ in range(1000):
        if len(fake.requests_to("GET", "/scheduler/")) >= count:
            return
        await anyio.sleep(0.005)
    raise AssertionError(f"fewer than {count} ticks")


@pytest.mark.fake(job_duration=60)
@pytest.mark.parametrize("in_flight", [False, True])
async def test_cancelling_the_waiter_stops_polling(client, fake, in_flight):
    job_id = await submit(client)
    await client.music.get(job_id)  # the connection the wait will use is open already
    before = asyncio.all_tasks()
    fake.requests.clear()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: client.await_job(job_id, poll_interval=FAST))
        await until_ticks(fake, 3)
        if in_flight:  # the next tick hangs in the server: cancel while it is on the wire
            fake.inject("GET", "/scheduler/", delay=2.0)
            await until_ticks(fake, 4)
        tg.cancel_scope.cancel()
        cancelled_at = anyio.current_time()
    assert anyio.current_time() - cancelled_at < 1.0  # not after the 2 s the server hangs
    count = len(fake.requests)
    await anyio.sleep(0.1)
    assert len(fake.requests) == count
    left = {task for task in asyncio.all_tasks() - before if not task.done()}
    # Only the simulator's own handler for the abandoned request may still be running.
    assert all(task.get_coro().__qualname__.startswith("RequestHandler.") for task in left)


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 503},
        {"status": 502, "body": b"<html>bad gateway</html>"},
        {"status": 429},
        {"drop": True},
    ],
    ids=["503", "502-html", "429", "drop"],
)
async def test_transient_faults_are_ridden_out(client, fake, quick_retries, fault):
    job_id = await submit(client)
    # More than the client's own max_retries=2, so the wait itself has to ride them out.
    injected = fake.inject("GET", f"/music/{job_id}", times=4, **fault)
    job = await client.await_job(job_id, poll_interval=FAST)
    assert job.status is JobStatus.COMPLETED
    assert injected.hits == 4
    assert polls(fake, job_id) >= 5


async def test_a_404_early_in_the_wait_is_tolerated(client, fake):
    job_id = await submit(client)
    injected = fake.inject("GET", f"/music/{job_id}", status=404, times=2)
    job = await client.await_job(job_id, poll_interval=FAST)
    assert job.job_id == job_id
    assert job.is_completed
    assert injected.hits == 2
    assert polls(fake, job_id) >= 3


async def test_a_404_after_the_grace_period_is_raised(client, fake, monkeypatch):
    monkeypatch.setattr(_protocol, "NOT_FOUND_GRACE_SECONDS", 0.1)
    with pytest.raises(NotFoundError) as info:
        await client.await_job(UNKNOWN_JOB, timeout=5, poll_interval=FAST)
    assert info.value.message == f"No record found for {UNKNOWN_JOB}"
    assert polls(fake, UNKNOWN_JOB) >= 2


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"status": 400}, BadRequestError),
        ({"status": 401}, AuthenticationError),
        ({"body": b"this is not json"}, ResponseDecodeError),
        ({"body": {"job_id": "x", "status": "thirty"}}, ResponseDecodeError),
        ({"body": []}, ResponseDecodeError),
    ],
    ids=["400", "401", "not-json", "wrong-type", "list"],
)
async def test_errors_that_end_the_wait_at_once(client, fake, fault, error):
    job_id = await submit(client)
    fake.inject("GET", f"/music/{job_id}", times=None, **fault)
    with pytest.raises(error):
        await client.await_job(job_id, timeout=5, poll_interval=FAST)
    assert polls(fake, job_id) == 1


@pytest.mark.parametrize(
    ("options", "parameter"),
    [({"timeout": 0}, "timeout"), ({"poll_interval": -1}, "poll_interval")],
)
async def test_bad_wait_options_are_refused_before_polling(client, fake, options, parameter):
    with pytest.raises(ValidationError) as info:
        await client.await_job(UNKNOWN_JOB, **options)
    assert info.value.parameter == parameter
    assert fake.requests == []


def test_the_adaptive_schedule():
    delays = list(itertools.islice(_protocol.poll_delays(None), 12))
    assert delays[0] == pytest.approx(2.0, abs=0.5)
    assert delays == sorted(delays)
    assert delays[1] > delays[0]
    assert delays[-1] == delays[-2] == 15.0
    assert list(itertools.islice(_protocol.poll_delays(0.25), 4)) == [0.25] * 4


async def test_poll_interval_none_uses_the_adaptive_schedule(client, fake, monkeypatch):
    asked = []
    real = _protocol.poll_delays

    def spy(fixed=None):
        asked.append(fixed)
        return itertools.repeat(FAST) if fixed is None else real(fixed)

    monkeypatch.setattr(_protocol, "poll_delays", spy)
    job_id = await submit(client)
    assert (await client.await_job(job_id)).is_completed
    await client.await_job(job_id, poll_interval=0.5)
    assert asked == [None, 0.5]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("poll_interval", 0),
        ("poll_interval", -1.0),
        ("poll_interval", float("inf")),
        ("poll_interval", float("nan")),
        ("timeout", 0),
        ("timeout", -5.0),
    ],
)
async def test_a_wait_with_an_unusable_option_is_refused_before_polling(fake, option, value):
    async with fake.client() as client:
        with pytest.raises(ValidationError, match=option):
            await client.await_job("user:1-tempolor:u-job:abc", **{option: value})
    assert fake.requests == []
