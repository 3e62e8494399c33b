"""replyUrl callbacks: the job record, with replyRef, POSTed on each change until final."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


def _final(bodies):
    return [body for body in bodies if body["status_final"]]


async def _check_sequence(api, receiver, job_id, reply_ref, final_status):
    """The callbacks of one job: records with replyRef, rising progress, one final last."""
    bodies = receiver.for_job(job_id)
    assert len(bodies) >= 2
    assert all(body["replyRef"] == reply_ref for body in bodies)
    progress = [body["progress"] for body in bodies]
    assert progress == sorted(progress)
    assert [body["status_final"] for body in bodies] == [False] * (len(bodies) - 1) + [True]
    assert bodies[-1]["status"] == final_status
    # Each body is the job's GET record plus replyRef.
    final = dict(bodies[-1])
    del final["replyRef"]
    assert final == await api.job(job_id)
    assert all(set(body) == set(final) | {"replyRef"} for body in bodies)


async def test_callbacks_follow_each_job_to_completion(api, fake, receiver):
    jobs = await api.generate(replyUrl=receiver.url, replyRef="order-42")
    await receiver.wait_until(lambda: all(_final(receiver.for_job(job)) for job in jobs))
    for job_id in jobs:
        await _check_sequence(api, receiver, job_id, "order-42", 30)
        assert receiver.for_job(job_id)[-1]["progress"] == 100
    assert {body["job_id"] for body in receiver.bodies} == set(jobs)
    assert fake.callback_errors == []


async def test_callbacks_of_a_failing_job_end_failed(api, fake, receiver):
    jobs = await api.generate(prompt="[fail] me", replyUrl=receiver.url, replyRef="r")
    await receiver.wait_until(lambda: all(_final(receiver.for_job(job)) for job in jobs))
    for job_id in jobs:
        await _check_sequence(api, receiver, job_id, "r", 10)
    assert fake.callback_errors == []


@pytest.mark.fake(job_duration=1.0)
async def test_complete_and_fail_are_reported_by_callback(api, fake, receiver):
    done, failed = await api.generate(replyUrl=receiver.url)
    await receiver.wait_until(lambda: receiver.for_job(done) and receiver.for_job(failed))
    fake.complete(done)
    fake.fail(failed)
    await receiver.wait_until(lambda: len(_final(receiver.bodies)) == 2)
    assert _final(receiver.for_job(done))[-1]["status"] == 30
    assert _final(receiver.for_job(failed))[-1]["status"] == 10


@pytest.mark.fake(job_duration=0.5)
async def test_no_callbacks_once_the_scheduler_stops_tracking(api, receiver):
    tracked, cancelled = await api.generate(replyUrl=receiver.url, replyRef="x")
    await receiver.wait_until(lambda: receiver.for_job(cancelled))
    assert (await api("DELETE", f"/scheduler/{cancelled}"))[0] == 204
    await receiver.wait_until(lambda: _final(receiver.for_job(tracked)))
    await api.records_until_final(cancelled)
    assert _final(receiver.for_job(cancelled)) == []


async def test_jobs_without_reply_url_send_nothing(api, fake, receiver):
    jobs = await api.generate()
    for job_id in jobs:
        fake.complete(job_id)
    with_callback = await api.generate(replyUrl=receiver.url)
    await receiver.wait_until(lambda: all(_final(receiver.for_job(j)) for j in with_callback))
    assert {body["job_id"] for body in receiver.bodies} == set(with_callback)
