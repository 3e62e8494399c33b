"""Fault injection (``fake.inject``) and the request log (``fake.requests``)."""

from __future__ import annotations

import asyncio
import json
import random

import aiohttp
import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.faults]

OK_SCHEDULER = (200, [])


async def test_status_with_the_default_body(api):
    api.fake.inject("GET", "/scheduler/", status=503)
    assert await api("GET", "/scheduler/") == (503, {"error": "Service Unavailable", "code": 503})
    assert await api("GET", "/scheduler/") == OK_SCHEDULER  # times=1 by default


async def test_an_injected_429_uses_the_documented_busy_text_and_headers(api, fake):
    fake.inject("POST", "/music/song", status=429, headers={"Retry-After": "7"})
    async with api.session.post(
        fake.base_url + "/music/song",
        json={"prompt": "x"},
        headers={"Authorization": f"Bearer {fake.token}"},
    ) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "7"
        assert await response.json() == {
            "error": "please wait for current Generations to finish or upgrade your plan",
            "code": 429,
        }
    assert fake.jobs == {}  # answered instead of handling the request


async def test_status_with_a_raw_html_body(api, fake):
    fake.inject("GET", "/music/*", status=502, body=b"<html>bad gateway</html>")
    async with api.session.get(fake.base_url + "/music/") as response:
        assert response.status == 502
        assert response.content_type == "text/html"
        assert await response.read() == b"<html>bad gateway</html>"


async def test_a_body_alone_answers_200_with_it(api, fake):
    fake.inject("GET", "/scheduler/available", body=b'{"executing": [')
    async with api.session.get(fake.base_url + "/scheduler/available") as response:
        assert (response.status, response.content_type) == (200, "application/json")
        malformed = await response.read()
    assert malformed == b'{"executing": ['
    with pytest.raises(json.JSONDecodeError):
        json.loads(malformed)
    fake.inject("GET", "/scheduler/", body={"unexpected": "shape"})
    assert await api("GET", "/scheduler/") == (200, {"unexpected": "shape"})
    fake.inject("GET", "/scheduler/", body="plain text body")
    async with api.session.get(fake.base_url + "/scheduler/") as response:
        assert (response.status, await response.text()) == (200, "plain text body")


async def test_drop_closes_the_connection_and_creates_nothing(api, fake):
    fake.inject("POST", "/music/song", drop=True)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api("POST", "/music/song", json={"prompt": "dropped"})
    assert fake.jobs == {}
    assert [request.path for request in fake.requests] == ["/music/song"]
    assert len(await api.generate()) == 2  # the next request is served

    # aiohttp resends an idempotent request once after a disconnect: drop every attempt.
    job_id = next(iter(fake.jobs))
    fake.inject("DELETE", "/music/*", drop=True, times=None)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api("DELETE", f"/music/{job_id}")
    fake.clear_faults()
    assert (await api.job(job_id))["job_id"] == job_id  # nothing was handled


async def test_truncate_cuts_the_answer_after_the_job_was_created(api, fake):
    fake.inject("POST", "/music/song", truncate=True)
    with pytest.raises(aiohttp.ClientPayloadError):
        await api("POST", "/music/song", json={"prompt": "created anyway"})
    assert len(fake.jobs) == 2
    assert {job.prompt for job in fake.jobs.values()} == {"created anyway"}
    _, listed = await api("GET", "/music/")
    assert {record["job_id"] for record in listed["records"]} == set(fake.jobs)


async def test_truncate_of_an_injected_status(api, fake):
    fake.inject("GET", "/accounts", status=500, truncate=True)
    with pytest.raises(aiohttp.ClientPayloadError):
        await api("GET", "/accounts")
    assert (await api("GET", "/accounts"))[0] == 200


async def test_delay_outlasts_a_shorter_client_timeout(api, fake):
    fake.inject("GET", "/scheduler/", delay=2.0)
    # On 3.10 aiohttp raises asyncio.TimeoutError, not yet the builtin TimeoutError.
    with pytest.raises(asyncio.TimeoutError):
        await api("GET", "/scheduler/", timeout=0.1)
    assert await api("GET", "/scheduler/") == OK_SCHEDULER


async def test_delay_then_answer_normally_or_with_the_status(api, fake):
    fake.inject("GET", "/scheduler/", delay=0.05)
    assert await api("GET", "/scheduler/", timeout=5) == OK_SCHEDULER
    fake.inject("GET", "/scheduler/", delay=0.05, status=504)
    assert (await api("GET", "/scheduler/", timeout=5))[0] == 504


async def test_times_limits_the_fault(api, fake):
    fault = fake.inject("GET", "/scheduler/", status=503, times=2)
    statuses = [(await api("GET", "/scheduler/"))[0] for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    assert fault.hits == 2


async def test_times_none_keeps_the_fault_until_cleared(api, fake):
    fake.inject("GET", "/scheduler/", status=500, times=None)
    assert [(await api("GET", "/scheduler/"))[0] for _ in range(5)] == [500] * 5
    fake.clear_faults()
    assert await api("GET", "/scheduler/") == OK_SCHEDULER


async def test_probability_with_a_seed_is_repeatable(api, fake):
    fault = fake.inject("GET", "/scheduler/", status=503, times=None, probability=0.5, seed=7)
    statuses = [(await api("GET", "/scheduler/"))[0] for _ in range(30)]
    rng = random.Random(7)
    assert statuses == [503 if rng.random() < 0.5 else 200 for _ in range(30)]
    assert 0 < statuses.count(503) < 30
    assert fault.hits == statuses.count(503)


async def test_glob_and_method_matching(api, fake):
    fake.inject("GET", "/music/*", status=418, times=None)
    assert (await api("GET", "/music/download/x"))[0] == 418  # "*" spans "/"
    assert (await api("GET", "/music/artist-voices/"))[0] == 418
    assert (await api("POST", "/music/song", json={"prompt": "x"}))[0] == 200  # other method
    assert (await api("GET", "/scheduler/"))[0] == 200  # other path
    fake.clear_faults()

    fake.inject("*", "/accounts*", status=418, times=3)
    assert (await api("GET", "/accounts"))[0] == 418
    assert (await api("POST", "/accounts", json={}))[0] == 418
    assert (await api("DELETE", "/accounts/100349856"))[0] == 418
    assert (await api("GET", "/accounts"))[0] == 200


async def test_faults_apply_before_the_token_check(api, fake):
    fake.inject("GET", "/scheduler/", status=503)
    assert (await api("GET", "/scheduler/", auth=False))[0] == 503
    assert (await api("GET", "/scheduler/", auth=False))[0] == 401


async def test_media_paths_take_faults_too(api, fake):
    job_id = (await api.generate())[0]
    fake.complete(job_id)
    _, link = await api("GET", f"/music/download/{job_id}", params={"file_format": "wav"})
    fake.inject("GET", "/cdn/*", status=404, times=1)
    assert (await api.fetch(link["url"]))[0] == 404
    fake.inject("GET", "/cdn/ai_material/*", truncate=True)
    with pytest.raises(aiohttp.ClientPayloadError):
        await api.fetch(link["url"])
    status, content_type, data = await api.fetch(link["url"])
    assert (status, content_type, data[:4]) == (200, "audio/wav", b"RIFF")


async def test_inject_needs_something_to_do(fake):
    with pytest.raises(ValueError, match="needs"):
        fake.inject("GET", "/scheduler/")


# ---------------------------------------------------------------- request log


async def test_requests_are_recorded_with_every_field(api, fake):
    payload = {"prompt": "recorded", "user_id": "100349856"}
    await api("POST", "/music/song", json=payload, params={"trace": "1"})
    [request] = fake.requests
    assert request.method == "POST"
    assert request.path == "/music/song"
    assert dict(request.query) == {"trace": "1"}
    assert request.headers["Authorization"] == f"Bearer {fake.token}"
    assert request.headers["content-type"] == "application/json"  # case-insensitive
    assert request.json() == payload
    assert json.loads(request.body) == payload


async def test_every_kind_of_request_is_recorded(api, fake):
    fake.inject("POST", "/music/instrumental", drop=True)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api("POST", "/music/instrumental", json={"prompt": "x"})
    await api("GET", "/nowhere", auth=False)
    await api("DELETE", "/music/abc")
    job_id = (await api.generate())[0]
    fake.complete(job_id)
    _, link = await api("GET", f"/music/download/{job_id}")
    await api.fetch(link["url"])
    assert [(request.method, request.path) for request in fake.requests] == [
        ("POST", "/music/instrumental"),
        ("GET", "/nowhere"),
        ("DELETE", "/music/abc"),
        ("POST", "/music/song"),
        ("GET", f"/music/download/{job_id}"),
        ("GET", link["url"].split(fake.origin)[1].split("?")[0]),
    ]
    assert fake.requests[-1].path.startswith("/cdn/")
    assert "auth_key" in fake.requests[-1].query
    assert fake.requests[-1].body == b""
    music = fake.requests_to("*", "/music/*")
    assert [request.method for request in music] == ["POST", "DELETE", "POST", "GET"]
    assert len(fake.requests_to("get", "/cdn/*")) == 1
