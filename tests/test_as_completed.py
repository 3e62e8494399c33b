"""client.as_completed and client.await_jobs: one shared poll loop for many jobs."""

from __future__ import annotations

import asyncio
import itertools

import anyio
import pytest
from _quiet import assert_nothing_more_sent

from tempolor_async import (
    AuthenticationError,
    JobFailedError,
    JobStatus,
    JobTimeoutError,
    MusicJob,
    TempolorClient,
    ValidationError,
    _protocol,
)
from tempolor_async.testing import FakeTempolor

pytestmark = [pytest.mark.anyio, pytest.mark.fake(job_duration=0.4, max_jobs=50)]

FAST = 0.05


async def submit(
    client: TempolorClient, count: int, prompt: str = "a calm piano piece"
) -> list[str]:
    job_ids: list[str] = []
    for number in range(count):
        job_ids += (await client.music.create_song(f"{prompt} {number}")).jobs or []
    return job_ids


def job_fetches(fake: FakeTempolor) -> int:
    return len(fake.requests_to("GET", "/music/user:*"))


def scheduler_polls(fake: FakeTempolor) -> int:
    return len(fake.requests_to("GET", "/scheduler/"))


async def test_each_job_is_fetched_once_when_it_leaves_the_scheduler(
    client: TempolorClient, fake: FakeTempolor
) -> None:
    job_ids = await submit(client, 5)
    fake.requests.clear()
    seen = [job async for job in client.as_completed(job_ids, poll_interval=FAST)]
    assert sorted(job.job_id or "" for job in seen) == sorted(job_ids)
    assert all(job.status is JobStatus.COMPLETED for job in seen)
    # One record per job, plus one scheduler request per round, never one per job per round.
    assert job_fetches(fake) == len(job_ids)
    assert scheduler_polls(fake) >= 2
    assert len(fake.requests) == len(job_ids) + scheduler_polls(fake)


async def test_jobs_are_yielded_as_soon_as_they_are_final(
    client: TempolorClient, fake: FakeTempolor
) -> None:
    fake.job_duration = 60
    job_ids = await submit(client, 2)
    fake.complete(job_ids[2])
    order: list[str] = []
    async for job in client.as_completed(job_ids, poll_interval=FAST):
        order.append(job.job_id or "")
        if len(order) == 1:
            for job_id in job_ids:
                if job_id not in order:
                    fake.complete(job_id)
    assert order[0] == job_ids[2]
    assert sorted(order) == sorted(job_ids)


async def test_failures_are_yielded_not_raised(client: TempolorClient, fake: FakeTempolor) -> None:
    failing = await submit(client, 1, prompt="doomed [fail]")
    fine = await submit(client, 1)
    results = {
        job.job_id: job async for job in client.as_completed(fine + failing, poll_interval=FAST)
    }
    assert {results[job_id].status for job_id in failing} == {JobStatus.FAILED}
    assert {results[job_id].status for job_id in fine} == {JobStatus.COMPLETED}


async def test_await_jobs_returns_records_in_the_order_given(
    client: TempolorClient, fake: FakeTempolor
) -> None:
    job_ids = await submit(client, 3)
    wanted = [job_ids[4], job_ids[0], job_ids[4], job_ids[2]]
    jobs = await client.await_jobs(wanted, poll_interval=FAST)
    assert [job.job_id for job in jobs] == wanted


async def test_await_jobs_raise_on_failure(client: TempolorClient) -> None:
    job_ids = await submit(client, 1, prompt="doomed [fail]")
    with pytest.raises(JobFailedError) as caught:
        await client.await_jobs(job_ids, poll_interval=FAST, raise_on_failure=True)
    assert caught.value.job.job_id in job_ids
    returned = await client.await_jobs(job_ids, poll_interval=FAST)
    assert all(job.is_failed for job in returned)


async def test_jobs_the_scheduler_does_not_list_are_polled_directly(
    client: TempolorClient, fake: FakeTempolor
) -> None:
    fake.job_duration = 0.6
    job_ids = await submit(client, 1)
    await client.scheduler.cancel(job_ids[0])  # the API stops tracking it; TemPolor goes on
    fake.requests.clear()
    jobs = await client.await_jobs(job_ids, poll_interval=FAST)
    assert [job.status for job in jobs] == [JobStatus.COMPLETED] * 2
    untracked = len(fake.requests_to("GET", f"/music/{job_ids[0]}"))
    tracked = len(fake.requests_to("GET", f"/music/{job_ids[1]}"))
    assert untracked > 2  # polled every round while generating
    assert tracked == 1  # fetched once, when it left the scheduler's list


async def test_a_failing_scheduler_falls_back_to_direct_polling(
    client: TempolorClient, fake: FakeTempolor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_protocol, "RETRY_BASE_SECONDS", 0.001)
    job_ids = await submit(client, 1)
    fake.inject("GET", "/scheduler/", status=503, times=None)
    jobs = await client.await_jobs(job_ids, poll_interval=FAST)
    assert all(job.is_completed for job in jobs)
    assert job_fetches(fake) > len(job_ids)


async def test_on_progress_fetches_running_jobs_and_reports_changes(
    client: TempolorClient, fake: FakeTempolor
) -> None:
    job_ids = await submit(client, 1)
    reports: list[tuple[str, object, object]] = []

    async def record(job: MusicJob) -> None:
        reports.append((job.job_id or "", job.status, job.progress))

    jobs = client.as_completed(job_ids, poll_interval=FAST, on_progress=record)
    assert len([job async for job in jobs]) == 2
    for job_id in job_ids:
        mine = [(status, progress) for owner, status, progress in reports if owner == job_id]
        assert len(mine) == len(set(mine)) >= 3  # several changes, each reported once
        assert mine[-1] == (JobStatus.COMPLETED, 100)


async def test_max_poll_rate_spaces_the_requests(fake: FakeTempolor) -> None:
    async with fake.client(max_poll_rate=10) as client:
        job_ids = await submit(client, 2)
        fake.requests.clear()
        await client.await_jobs(job_ids, poll_interval=0.001)
    times = [request.time for request in fake.requests]
    assert len(times) >= 5
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # 10 per second at most (0.1 s apart when sent; arrival jitter allowed), although the
    # poll interval alone would allow hundreds.
    assert min(gaps) >= 0.05
    assert (len(times) - 1) / (times[-1] - times[0]) <= 11


async def test_the_deadline_names_every_unfinished_job(
    client: TempolorClient, fake: FakeTempolor
) -> None:
    fake.job_duration = 60
    job_ids = await submit(client, 2)
    fake.complete(job_ids[1])
    with pytest.raises(JobTimeoutError) as caught:
        await client.await_jobs(job_ids, poll_interval=FAST, timeout=0.3)
    unfinished = [job_ids[0], job_ids[2], job_ids[3]]
    assert caught.value.job_ids == unfinished
    assert caught.value.job_id == unfinished[0]
    await assert_nothing_more_sent(fake, len(fake.requests))


async def test_leaving_the_loop_stops_polling(client: TempolorClient, fake: FakeTempolor) -> None:
    fake.job_duration = 60
    job_ids = await submit(client, 2)
    fake.complete(job_ids[0])
    tasks_before = asyncio.all_tasks()
    jobs = client.as_completed(job_ids, poll_interval=FAST)
    async for job in jobs:
        assert job.job_id == job_ids[0]
        break
    await jobs.aclose()
    await assert_nothing_more_sent(fake, len(fake.requests))
    assert asyncio.all_tasks() <= tasks_before | _server_handlers()


async def test_cancelling_the_waiter_stops_polling(
    client: TempolorClient, fake: FakeTempolor
) -> None:
    fake.job_duration = 60
    job_ids = await submit(client, 2)
    with anyio.move_on_after(0.25) as scope:
        await client.await_jobs(job_ids, poll_interval=FAST)
    assert scope.cancelled_caught
    await assert_nothing_more_sent(fake, len(fake.requests))


async def test_errors_other_than_transient_end_the_wait(fake: FakeTempolor) -> None:
    async with fake.client() as client:
        job_ids = await submit(client, 1)
    async with fake.client(token="not-the-token") as stranger:
        with pytest.raises(AuthenticationError):
            await stranger.await_jobs(job_ids, poll_interval=FAST)


@pytest.mark.parametrize(
    ("job_ids", "options"),
    [
        ("user:12345-tempolor:1-job:abc", {}),
        (["bad/id"], {}),
        (["user:12345-tempolor:1-job:abc"], {"timeout": 0}),
        (["user:12345-tempolor:1-job:abc"], {"poll_interval": -1}),
    ],
)
async def test_bad_arguments_are_refused_before_any_request(
    client: TempolorClient, fake: FakeTempolor, job_ids: object, options: dict[str, float]
) -> None:
    with pytest.raises(ValidationError):
        client.as_completed(job_ids, **options)  # type: ignore[arg-type]
    assert fake.requests == []


async def test_an_empty_batch_needs_no_request(client: TempolorClient, fake: FakeTempolor) -> None:
    assert await client.await_jobs([]) == []
    assert fake.requests == []


def _server_handlers() -> set[asyncio.Task[object]]:
    """The simulator's own request handlers, which finish on their own."""
    return {task for task in asyncio.all_tasks() if "RequestHandler" in repr(task.get_coro())}
