"""One shared wait for the whole client (SPEC 13 and the section 6 rules it widens): every
await_job, as_completed and await_jobs of a client, in any number of tasks, is served by one
poll loop; each waiter keeps its own options; errors reach each wait unwrapped."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from tempolor_async import (
    AuthenticationError,
    JobStatus,
    JobTimeoutError,
    MusicJob,
    ResponseDecodeError,
    TempolorClient,
    TempolorError,
)
from tempolor_async.testing import FakeTempolor

pytestmark = [pytest.mark.anyio, pytest.mark.fake(job_duration=0.4, max_jobs=1000)]

FAST = 0.05


async def submit(client: TempolorClient, count: int) -> list[str]:
    job_ids: list[str] = []
    for number in range(count):
        job_ids += (await client.music.create_song(f"song {number}")).jobs or []
    return job_ids


def record_fetches(fake: FakeTempolor) -> int:
    return len(fake.requests_to("GET", "/music/user:*"))


def ticks(fake: FakeTempolor) -> int:
    return len(fake.requests_to("GET", "/scheduler/"))


def client_tasks(before: set[asyncio.Task[object]]) -> list[asyncio.Task[object]]:
    """Tasks started since ``before`` that are still running, but the simulator's own."""
    return [
        task
        for task in asyncio.all_tasks() - before
        if not task.done() and "RequestHandler" not in repr(task.get_coro())
    ]


async def test_waiters_in_many_tasks_share_one_loop(
    client: TempolorClient, fake: FakeTempolor
) -> None:
    fake.max_gen_count_at_once = 1000
    job_ids = await submit(client, 20)
    fake.requests.clear()
    results: dict[str, MusicJob] = {}

    async def wait(job_id: str) -> None:
        results[job_id] = await client.await_job(job_id, poll_interval=FAST)

    async with anyio.create_task_group() as group:
        for job_id in job_ids:
            group.start_soon(wait, job_id)
    assert sorted(results) == sorted(job_ids)
    assert all(job.status is JobStatus.COMPLETED for job in results.values())
    # 40 waits: each record fetched once, plus one scheduler request per tick for all.
    assert record_fetches(fake) == len(job_ids)
    assert len(fake.requests) == len(job_ids) + ticks(fake)


async def test_waiters_of_one_job_each_get_it(client: TempolorClient, fake: FakeTempolor) -> None:
    (job_id, _) = await submit(client, 1)
    fake.requests.clear()
    progress: list[object] = []
    results = []

    async def plain() -> None:
        results.append(await client.await_job(job_id, poll_interval=FAST))

    async def watching() -> None:
        async for job in client.as_completed(
            [job_id], poll_interval=FAST, on_progress=progress.append
        ):
            results.append(job)

    async with anyio.create_task_group() as group:
        group.start_soon(plain)
        group.start_soon(watching)
    assert [job.job_id for job in results] == [job_id, job_id]
    assert all(job.is_completed for job in results)
    assert len(progress) >= 2  # the watching wait saw progress; the plain one needed none


@pytest.mark.fake(job_duration=60)
async def test_cancelling_one_waiter_disturbs_no_other(
    client: TempolorClient, fake: FakeTempolor
) -> None:
    job_ids = await submit(client, 2)
    outcome: dict[str, object] = {}

    async def wait(name: str, job_id: str) -> None:
        outcome[name] = await client.await_job(job_id, poll_interval=FAST)

    doomed = anyio.CancelScope()
    async with anyio.create_task_group() as group:
        group.start_soon(wait, "kept", job_ids[0])
        group.start_soon(wait, "also kept", job_ids[1])

        async def cancelled() -> None:
            with doomed:
                await client.await_job(job_ids[2], poll_interval=FAST)

        group.start_soon(cancelled)
        await anyio.sleep(0.2)
        doomed.cancel()
        await anyio.sleep(0.1)
        fake.complete(job_ids[0])
        fake.complete(job_ids[1])
    assert doomed.cancelled_caught
    assert {name: job.job_id for name, job in outcome.items()} == {  # type: ignore[attr-defined]
        "kept": job_ids[0],
        "also kept": job_ids[1],
    }


@pytest.mark.fake(job_duration=60)
async def test_the_loop_ends_when_nothing_waits(client: TempolorClient, fake: FakeTempolor) -> None:
    (job_id, _) = await submit(client, 1)
    before = set(asyncio.all_tasks())
    fake.complete(job_id)
    await client.await_job(job_id, poll_interval=FAST)
    assert client_tasks(before) == []
    count = len(fake.requests)
    await anyio.sleep(0.2)
    assert len(fake.requests) == count


@pytest.mark.fake(job_duration=60)
async def test_aclose_ends_every_pending_wait(fake: FakeTempolor) -> None:
    before = set(asyncio.all_tasks())
    client = fake.client()
    job_ids = await submit(client, 1)
    errors: list[BaseException] = []

    async def wait_one() -> None:
        try:
            await client.await_job(job_ids[0], poll_interval=FAST)
        except BaseException as exc:
            errors.append(exc)

    async def wait_all() -> None:
        try:
            await client.await_jobs(job_ids, poll_interval=FAST)
        except BaseException as exc:
            errors.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(wait_one)
        group.start_soon(wait_all)
        await anyio.sleep(0.15)
        await client.aclose()
    assert [type(error) for error in errors] == [TempolorError, TempolorError]
    assert all("closed" in str(error) for error in errors)
    assert client_tasks(before) == []
    with pytest.raises(TempolorError):
        await client.await_job(job_ids[0])


@pytest.mark.faults
async def test_an_error_reaches_every_wait_unwrapped(
    client: TempolorClient, fake: FakeTempolor
) -> None:
    job_ids = await submit(client, 2)
    fake.inject("GET", "/music/user:*", status=401, times=None)
    caught: list[BaseException] = []

    async def wait(job_id: str) -> None:
        try:
            await client.await_job(job_id, poll_interval=FAST)
        except BaseException as exc:
            caught.append(exc)

    async with anyio.create_task_group() as group:
        for job_id in job_ids:
            group.start_soon(wait, job_id)
    assert len(caught) == 4
    assert all(type(error) is AuthenticationError for error in caught)
    with pytest.raises(AuthenticationError):  # never an ExceptionGroup
        await client.await_jobs(job_ids, poll_interval=FAST)


async def test_an_on_progress_error_ends_that_wait_only(
    client: TempolorClient, fake: FakeTempolor
) -> None:
    job_ids = await submit(client, 1)

    def explode(job: MusicJob) -> None:
        raise LookupError("from the callback")

    other: list[MusicJob] = []

    async def calm() -> None:
        other.append(await client.await_job(job_ids[0], poll_interval=FAST))

    async with anyio.create_task_group() as group:
        group.start_soon(calm)
        with pytest.raises(LookupError, match="from the callback"):
            async for _ in client.as_completed(job_ids, poll_interval=FAST, on_progress=explode):
                pass
    assert [job.job_id for job in other] == [job_ids[0]]


@pytest.mark.faults
async def test_a_record_without_job_id_is_the_asked_for_job(
    client: TempolorClient, fake: FakeTempolor
) -> None:
    job_ids = await submit(client, 1)
    fake.complete(job_ids[0])
    fake.complete(job_ids[1])
    record = await client.music.get(job_ids[0])
    body = {key: value for key, value in record.raw.items() if key != "job_id"}
    fake.inject("GET", f"/music/{job_ids[0]}", body=body, times=None)
    jobs = await client.await_jobs(job_ids, poll_interval=FAST)
    assert [job.job_id for job in jobs] == job_ids
    assert jobs[0].status is JobStatus.COMPLETED


@pytest.mark.faults
async def test_a_record_naming_another_job_is_refused(
    client: TempolorClient, fake: FakeTempolor
) -> None:
    job_ids = await submit(client, 1)
    fake.complete(job_ids[0])
    fake.complete(job_ids[1])
    other = await client.music.get(job_ids[1])
    fake.inject("GET", f"/music/{job_ids[0]}", body=other.raw, times=None)
    with pytest.raises(ResponseDecodeError, match="record is for"):
        await client.await_jobs(job_ids, poll_interval=FAST)


@pytest.mark.fake(job_duration=60)
async def test_a_final_record_seen_before_the_deadline_is_yielded(
    client: TempolorClient, fake: FakeTempolor
) -> None:
    job_ids = await submit(client, 1)
    fake.complete(job_ids[0])
    seen: list[str] = []

    async def consume() -> None:
        async for job in client.as_completed(job_ids, poll_interval=FAST, timeout=0.3):
            seen.append(job.job_id or "")

    with pytest.raises(JobTimeoutError) as caught:
        await consume()
    assert seen == [job_ids[0]]
    assert caught.value.job_ids == [job_ids[1]]
