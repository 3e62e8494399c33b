"""The wait loop's defects found by a red team, each kept as a test (SPEC 13 and 14): a
callback that lands while its job's record is being fetched, a final record seen before the
deadline while ``on_progress`` runs past it, and a scheduler that keeps listing a job."""

from __future__ import annotations

import json

import anyio
import pytest
from aiohttp import web
from conftest import Api

from tempolor_async import CallbackReceiver, JobStatus, MusicJob, TempolorClient, _waits
from tempolor_async.testing import FakeTempolor

pytestmark = pytest.mark.anyio


async def nothing(job: MusicJob) -> None:
    """An ``on_progress`` that only makes the wait fetch records."""


@pytest.mark.fake(job_duration=60)
async def test_a_final_callback_during_a_fetch_is_confirmed_when_the_fetch_returns(
    fake: FakeTempolor, api: Api
) -> None:
    # The simulator's own callbacks go nowhere; this test sends the one that matters.
    receiver = CallbackReceiver("http://127.0.0.1:9/nowhere", callback_poll_interval=60)
    app = web.Application()
    app.router.add_post("/hook/{secret}", receiver.aiohttp_handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hook = f"http://127.0.0.1:{runner.addresses[0][1]}/hook/{receiver.secret}"
    try:
        async with fake.client(callbacks=receiver) as client:
            submission = await client.music.create_song("finished mid-fetch")
            job_id = (submission.jobs or [])[0]
            running = await api.job(job_id)
            # The wait's first fetch is in flight for a second, and answers what was true.
            fake.inject("GET", f"/music/{job_id}", body=running, delay=1.0)
            outcome: list[MusicJob] = []

            async def wait() -> None:
                outcome.append(await client.await_job(job_id, on_progress=nothing))

            with anyio.fail_after(20):  # the safety poll is 60 s away
                async with anyio.create_task_group() as group:
                    group.start_soon(wait)
                    await anyio.sleep(0.3)
                    fake.complete(job_id)
                    final = await api.job(job_id)
                    # Ours, the wait's (in flight), ours again.
                    assert len(fake.requests_to("GET", f"/music/{job_id}")) == 3
                    async with api.session.post(hook, json=final) as answer:
                        assert answer.status == 204
    finally:
        await runner.cleanup()
    assert [job.status for job in outcome] == [JobStatus.COMPLETED]
    # The stale answer, then one more fetch for the callback that came meanwhile.
    assert len(fake.requests_to("GET", f"/music/{job_id}")) == 4


@pytest.mark.fake(job_duration=0.2)
async def test_a_final_record_before_the_deadline_wins_over_a_slow_on_progress(
    client: TempolorClient,
) -> None:
    submission = await client.music.create_song("done early")
    job_id = (submission.jobs or [])[0]
    await anyio.sleep(0.5)  # it is final before the wait begins

    async def slow(job: MusicJob) -> None:
        await anyio.sleep(3.0)  # runs past the wait's deadline

    job = await client.await_job(job_id, timeout=1.0, on_progress=slow)
    assert job.status is JobStatus.COMPLETED


@pytest.mark.faults
@pytest.mark.fake(job_duration=0.3)
async def test_a_job_the_scheduler_keeps_listing_is_still_fetched(
    fake: FakeTempolor, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_waits, "LISTED_FETCH_SECONDS", 1.0, raising=False)
    async with fake.client() as client:
        submission = await client.music.create_song("listed for ever")
        job_id = (submission.jobs or [])[0]
        status, listed = await api("GET", "/scheduler/")
        assert status == 200
        assert job_id in json.dumps(listed)
        # A scheduler lagging behind the records: it lists the job long after it ended.
        fake.inject("GET", "/scheduler/", body=listed, times=None)
        with anyio.fail_after(15):
            job = await client.await_job(job_id, poll_interval=0.1)
    assert job.status is JobStatus.COMPLETED
    assert len(fake.requests_to("GET", f"/music/{job_id}")) <= 2
