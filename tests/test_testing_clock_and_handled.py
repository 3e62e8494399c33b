"""The simulator's ``handled=True`` faults (the service acts, then answers with an error) and
``clock_offset`` (the service's clock away from this machine's)."""

from __future__ import annotations

import asyncio
import email.utils
import time
from datetime import datetime, timezone

import aiohttp
import pytest

from tempolor_async import APITimeoutError, ServerError
from tempolor_async.testing import FakeTempolor

pytestmark = [pytest.mark.anyio, pytest.mark.faults]


async def test_a_handled_fault_acts_then_answers_with_its_status(api, fake):
    fake.inject("POST", "/music/song", status=502, handled=True)
    status, body = await api("POST", "/music/song", json={"prompt": "paid anyway"})
    assert (status, body) == (502, {"error": "Bad Gateway", "code": 502})
    assert len(fake.submissions) == 1  # the generation was accepted (and paid)
    assert len(fake.jobs) == 2
    # Only the next request was affected.
    status, body = await api("POST", "/music/song", json={"prompt": "next"})
    assert status == 200
    assert len(fake.submissions) == 2


async def test_a_handled_fault_with_a_raw_body(api, fake):
    fake.inject("POST", "/music/instrumental", status=502, body=b"<html>x</html>", handled=True)
    status, body = await api("POST", "/music/instrumental", json={"prompt": "beat"})
    assert status == 502
    assert body == b"<html>x</html>"
    assert len(fake.submissions) == 1


async def test_handled_needs_a_status(fake):
    with pytest.raises(ValueError, match="status"):
        fake.inject("POST", "/music/song", handled=True, delay=1.0)


async def test_a_delayed_handled_request_is_accepted_after_the_client_gave_up():
    async with FakeTempolor(job_duration=0.2) as fake:
        fake.inject("POST", "/music/song", status=502, handled=True, delay=0.5)
        async with fake.client(timeout=0.1, max_retries=0, capacity_aware=False) as client:
            with pytest.raises(APITimeoutError):
                await client.music.create_song("late")
            assert fake.submissions == []  # not yet
            for _ in range(100):
                if fake.submissions:
                    break
                await asyncio.sleep(0.05)
        assert len(fake.submissions) == 1  # accepted after the client gave up


async def test_a_handled_fault_reaches_the_sdk_as_a_server_error(fake):
    fake.inject("POST", "/music/song", status=502, handled=True)
    async with fake.client(capacity_aware=False) as client:
        with pytest.raises(ServerError):
            await client.music.create_song("x")
    assert len(fake.submissions) == 1


@pytest.mark.parametrize("offset", [-600.0, 3600.0])
async def test_every_time_shown_follows_the_clock_offset(offset):
    async with FakeTempolor(clock_offset=offset, job_duration=5.0) as fake:
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {fake.token}"}
            async with session.post(
                fake.base_url + "/music/song", json={"prompt": "x"}, headers=headers
            ) as response:
                date = email.utils.parsedate_to_datetime(response.headers["Date"])
                job_id = (await response.json())["jobs"][0]
            async with session.get(fake.base_url + f"/music/{job_id}", headers=headers) as r:
                record = await r.json()
            async with session.get(fake.base_url + "/scheduler/", headers=headers) as r:
                running = await r.json()
        service_now = time.time() + offset
        assert abs(date.timestamp() - service_now) < 5
        assert abs(record["createTime"] / 1000 - service_now) < 5
        assert abs(record["updateTime"] / 1000 - service_now) < 5
        started = datetime.strptime(running[0]["started"], "%Y-%m-%dT%H:%M:%S.%fZ")
        started = started.replace(tzinfo=timezone.utc)
        assert abs(started.timestamp() - service_now) < 5
        assert running[0]["elapsed"] == "00:00"
