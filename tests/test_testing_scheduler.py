"""maxJobs and the scheduler: the documented 429 bodies, GET scheduler/, GET
scheduler/available and DELETE scheduler/{job_id}. Jobs run for a minute here, so they only
finish when a test completes them."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from conftest import DEFAULT_USER

pytestmark = [pytest.mark.anyio, pytest.mark.fake(job_duration=60)]

BUSY_TEMPOLOR = "please wait for current Generations to finish or upgrade your plan"
NOT_RUNNING = {"error": "Unable to locate running job_id", "code": 404}


async def _running_ids(api):
    status, running = await api("GET", "/scheduler/")
    assert status == 200
    return [entry["job_id"] for entry in running]


def _busy(body, count, by_user):
    """Check a documented "Account is busy" 429 body against the jobs expected per user."""
    assert set(body) == {"error", "runningJobs", "code"}
    assert (body["error"], body["code"]) == (f"Account is busy executing {count} jobs", 429)
    assert set(body["runningJobs"]) == set(by_user)
    for user_id, job_ids in by_user.items():
        entries = body["runningJobs"][user_id]
        assert sorted(entry["job_id"] for entry in entries) == sorted(job_ids)
        for entry in entries:
            assert entry["user_id"] == user_id
            assert isinstance(entry["started"], int)


async def test_scheduler_lists_the_running_jobs(api, receiver):
    plain = await api.generate()
    tagged = await api.generate(replyUrl=receiver.url, replyRef="batch-7")
    status, running = await api("GET", "/scheduler/")
    assert status == 200
    by_id = {entry["job_id"]: entry for entry in running}
    assert sorted(by_id) == sorted(plain + tagged)
    for job_id in plain:
        assert set(by_id[job_id]) == {"job_id", "started", "elapsed"}
    for job_id in tagged:
        assert by_id[job_id]["replyUrl"] == receiver.url
        assert by_id[job_id]["replyRef"] == "batch-7"
    for entry in running:
        assert datetime.fromisoformat(entry["started"].replace("Z", "+00:00")).tzinfo
        assert re.fullmatch(r"\d{2}:\d{2}", entry["elapsed"])


async def test_finished_jobs_leave_the_scheduler(api, fake):
    done, failed = await api.generate()
    fake.complete(done)
    fake.fail(failed)
    assert await _running_ids(api) == []


@pytest.mark.fake(max_jobs=4)
async def test_available_reflects_the_running_jobs(api, fake):
    fake.add_account("200", max_jobs=2)
    _, before = await api("GET", "/scheduler/available")
    assert before["executing"] == []
    assert sorted(before["available"], key=lambda entry: entry["user_id"]) == [
        {"user_id": DEFAULT_USER, "maxJobs": 4, "executing": 0, "available": 4},
        {"user_id": "200", "maxJobs": 2, "executing": 0, "available": 2},
    ]
    jobs = await api.generate(user_id=DEFAULT_USER)
    status, after = await api("GET", "/scheduler/available")
    assert status == 200
    assert sorted(entry["job_id"] for entry in after["executing"]) == sorted(jobs)
    assert {
        entry["user_id"]: (entry["executing"], entry["available"]) for entry in after["available"]
    } == {DEFAULT_USER: (2, 2), "200": (0, 2)}


@pytest.mark.fake(max_jobs=4)
async def test_account_max_jobs_gives_the_documented_429(api, fake):
    first = await api.generate()
    second = await api.generate()
    status, body = await api("POST", "/music/instrumental", json={"prompt": "one more"})
    assert status == 429
    _busy(body, 4, {DEFAULT_USER: first + second})
    assert len(fake.jobs) == 4
    fake.complete(first[0])
    fake.complete(first[1])
    assert len(await api.generate()) == 2


async def test_request_max_jobs_overrides_the_account(api, fake):
    running = await api.generate()
    status, body = await api("POST", "/music/song", json={"prompt": "x", "maxJobs": 2})
    assert status == 429
    _busy(body, 2, {DEFAULT_USER: running})
    assert len(await api.generate(maxJobs=3)) == 2
    assert len(fake.jobs) == 4


async def test_running_jobs_in_the_429_carry_reply_url_and_ref(api, receiver):
    running = await api.generate(replyUrl=receiver.url, replyRef="ref-1")
    status, body = await api("POST", "/music/song", json={"prompt": "x", "maxJobs": 1})
    assert status == 429
    entries = body["runningJobs"][DEFAULT_USER]
    assert sorted(entry["job_id"] for entry in entries) == sorted(running)
    assert {(entry["replyUrl"], entry["replyRef"]) for entry in entries} == {
        (receiver.url, "ref-1")
    }


async def test_the_429_names_only_the_requested_account(api, fake):
    fake.add_account("200", max_jobs=2)
    theirs = await api.generate(user_id="200")
    status, body = await api("POST", "/music/song", json={"prompt": "x", "user_id": "200"})
    assert status == 429
    _busy(body, 2, {"200": theirs})
    ours = await api.generate()  # without user_id the account with free slots is used
    assert all(f"-tempolor:{DEFAULT_USER}-job:" in job_id for job_id in ours)


@pytest.mark.fake(max_gen_count_at_once=2)
async def test_the_account_generation_limit_gives_the_second_429(api, fake):
    status, body = await api("POST", "/music/song", json={"prompt": "x"})
    assert (status, body["maxGenCountAtOnce"]) == (200, 2)
    assert await api("POST", "/music/song", json={"prompt": "y"}) == (
        429,
        {"error": BUSY_TEMPOLOR, "code": 429},
    )
    # Jobs the scheduler no longer tracks still run at TemPolor and still count there.
    for job_id in body["jobs"]:
        assert (await api("DELETE", f"/scheduler/{job_id}"))[0] == 204
    assert (await api("POST", "/music/song", json={"prompt": "z"}))[1]["error"] == BUSY_TEMPOLOR
    fake.complete(body["jobs"][0])
    fake.complete(body["jobs"][1])
    assert len(await api.generate()) == 2


@pytest.mark.fake(max_jobs=2)
async def test_cancelling_tracking_frees_the_slot(api):
    tracked, cancelled = await api.generate()
    assert (await api("POST", "/music/song", json={"prompt": "x"}))[0] == 429
    assert await api("DELETE", f"/scheduler/{cancelled}") == (204, b"")
    assert await _running_ids(api) == [tracked]
    _, capacity = await api("GET", "/scheduler/available")
    assert [entry["job_id"] for entry in capacity["executing"]] == [tracked]
    assert capacity["available"][0]["executing"] == 1
    # The job itself goes on: its record is still there and still generating.
    assert (await api.job(cancelled))["status_name"] == "GENERATING"
    assert await api("DELETE", f"/scheduler/{cancelled}") == (404, NOT_RUNNING)
    assert len(await api.generate()) == 2


async def test_cancel_of_a_finished_or_unknown_job_is_404(api, fake):
    job_id = (await api.generate())[0]
    fake.complete(job_id)
    assert await api("DELETE", f"/scheduler/{job_id}") == (404, NOT_RUNNING)
    unknown = f"user:12345-tempolor:{DEFAULT_USER}-job:abcdef123456789"
    assert await api("DELETE", f"/scheduler/{unknown}") == (404, NOT_RUNNING)


@pytest.mark.parametrize("job_id", ["abcdef123456789", "user:12345-tempolor:1-voice:abc"])
async def test_cancel_with_a_malformed_job_id_is_400(api, job_id):
    assert await api("DELETE", f"/scheduler/{job_id}") == (
        400,
        {"error": "job_id has incorrect format", "code": 400},
    )


@pytest.mark.parametrize("max_jobs", [0, "two", -3])
async def test_a_bad_request_max_jobs_is_400(api, fake, max_jobs):
    status, body = await api("POST", "/music/song", json={"prompt": "x", "maxJobs": max_jobs})
    assert status == 400
    assert "maxJobs" in body["error"]
    assert fake.jobs == {}
