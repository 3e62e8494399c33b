"""Fleets through Redis (SPEC 17), against a real redis-server and the simulator: slot
leases shared by every client of the fleet, callbacks fanned out to every process, leases
of a dead holder expiring, and Redis lost mid-run."""

from __future__ import annotations

import collections
import logging
import signal
import subprocess
import sys
import textwrap
import time
from functools import partial
from typing import Any

import anyio
import pytest
from _redis import RedisServer

from tempolor_async import (
    APIConnectionError,
    CallbackReceiver,
    ConfigurationError,
    CoordinationError,
    JobStatus,
    MusicJob,
    RedisCoordination,
    TempolorClient,
)
from tempolor_async.testing import FakeTempolor

pytestmark = pytest.mark.anyio

SECRET = "fleet-secret-0123456789abcdef"


def posts(fake: FakeTempolor) -> int:
    return len(fake.requests_to("POST", "/music/song"))


def fleet_client(fake: FakeTempolor, url: str, **options: object) -> TempolorClient:
    return fake.client(coordination=RedisCoordination(url, lease_ttl=2.0), **options)


@pytest.mark.fake(job_duration=0.6, max_jobs=3)
async def test_two_clients_share_an_account_without_a_429(
    fake: FakeTempolor, redis_server: RedisServer
) -> None:
    peak = 0

    async def song(client: TempolorClient, prompt: str) -> None:
        nonlocal peak
        submission = await client.music.create_song(prompt)
        now = time.monotonic()
        peak = max(peak, sum(1 for job in fake.jobs.values() if job.is_running(now)))
        await client.await_jobs(submission.jobs or [])

    async def member(name: str) -> None:
        async with fleet_client(fake, redis_server.url) as client, anyio.create_task_group() as tg:
            for number in range(5):
                tg.start_soon(song, client, f"{name} {number}")

    async with anyio.create_task_group() as group:
        group.start_soon(member, "a")
        group.start_soon(member, "b")
    # A generation starts while one of the three slots is free (as the service allows),
    # never more across the fleet: the service never answered 429, nothing was sent twice.
    assert len(fake.submissions) == 10
    assert posts(fake) == 10
    assert peak <= 4


@pytest.mark.fake(job_duration=1.0)
async def test_a_callback_accepted_by_one_client_wakes_the_others_wait(
    fake: FakeTempolor, redis_server: RedisServer
) -> None:
    serving = CallbackReceiver(secret=SECRET)
    # This client's receiver accepts the callbacks of every job of the fleet.
    async with serving.serve() as url, fleet_client(fake, redis_server.url, callbacks=serving):
        # The waiting client's callbacks go to the other one's receiver; it polls every 60 s.
        elsewhere = CallbackReceiver(url, secret=SECRET, callback_poll_interval=60)
        async with fleet_client(fake, redis_server.url, callbacks=elsewhere) as waiting:
            submission = await waiting.music.create_song("woken from afar")
            with anyio.fail_after(20):  # far less than the 60 s safety poll
                jobs = await waiting.await_jobs(submission.jobs or [])
    assert all(job.status is JobStatus.COMPLETED for job in jobs)
    assert fake.callback_errors == []


@pytest.mark.fake(job_duration=0.3, max_jobs=3)
async def test_the_leases_of_a_killed_holder_expire(
    fake: FakeTempolor, redis_server: RedisServer
) -> None:
    holder = textwrap.dedent(
        f"""
        import asyncio, sys
        from tempolor_async import RedisCoordination

        class Hooks:
            def hinted(self, job_id, final): pass
            def ended(self, job_ids): pass
            def listed(self, job_ids, read_at, slots): pass
            def wanted(self): pass

        async def main():
            fleet = RedisCoordination({redis_server.url!r}, lease_ttl=1.5)
            await fleet.open("killed", Hooks())
            taken = await fleet.take("100349856", 2, 2, [], 0)
            print("held" if taken else "refused", flush=True)
            await asyncio.sleep(3600)

        asyncio.run(main())
        """
    )
    async with await anyio.open_process([sys.executable, "-c", holder]) as process:
        assert process.stdout is not None
        with anyio.fail_after(30):
            line = await process.stdout.receive()
        assert line.strip() == b"held"
        process.send_signal(signal.SIGKILL)  # no chance to give its leases back
        await process.wait()
    other = RedisCoordination(redis_server.url)
    await other.open("killed", _NoHooks())
    try:
        # The dead holder's two leases still count: the account's two slots are taken.
        assert await other.take("100349856", 2, 2, [], 0) is None
        await anyio.sleep(2.0)  # its lease_ttl, and some
        assert await other.take("100349856", 2, 2, [], 0)
    finally:
        await other.aclose()


class _NoHooks:
    def hinted(self, job_id: str, final: bool) -> None:
        pass

    def ended(self, job_ids: object) -> None:
        pass

    def listed(self, job_ids: object, read_at: float, slots: object) -> None:
        pass

    def wanted(self) -> None:
        pass


@pytest.mark.faults
@pytest.mark.fake(job_duration=0.8, max_jobs=4)
async def test_redis_stopped_mid_run_every_wait_ends_and_nothing_is_sent_twice(
    fake: FakeTempolor, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    results: list[MusicJob] = []
    caplog.set_level(logging.WARNING, logger="tempolor_async")

    async def member(name: str) -> None:
        async with fleet_client(fake, redis_server.url) as client:
            for number in range(4):
                submission = await client.music.create_song(f"{name} {number}")
                results.extend(await client.await_jobs(submission.jobs or []))

    with anyio.fail_after(120):
        async with anyio.create_task_group() as group:
            group.start_soon(member, "a")
            group.start_soon(member, "b")
            await anyio.sleep(1.0)
            redis_server.stop()
    assert len(results) == 16
    assert all(job.is_final for job in results)
    prompts = [request.json()["prompt"] for request in fake.requests_to("POST", "/music/song")]
    accepted = sorted(submission for submission in prompts)
    assert len(set(accepted)) == 8  # every song accepted...
    assert len(fake.submissions) == 8  # ...exactly once
    lost = [r for r in caplog.records if "lost Redis" in r.getMessage()]
    assert 1 <= len(lost) <= 2  # one WARNING per client
    assert all(f"127.0.0.1:{redis_server.port}" in r.getMessage() for r in lost)


async def test_redis_unreachable_at_open_is_a_coordination_error(fake: FakeTempolor) -> None:
    from _redis import free_port, redis_executable

    redis_executable()  # the redis package is needed for this one
    url = f"redis://user:hunter2-password@127.0.0.1:{free_port()}/0"
    client = fake.client(coordination=url)
    with pytest.raises(CoordinationError) as caught:
        async with client:
            pass
    assert isinstance(caught.value, ConfigurationError)
    assert "127.0.0.1" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert fake.requests == []


async def test_one_redis_coordination_serves_one_client(
    fake: FakeTempolor, redis_server: RedisServer
) -> None:
    fleet = RedisCoordination(redis_server.url)
    async with fake.client(coordination=fleet):
        # A second client would share the first one's leases and listeners unknowingly.
        with pytest.raises(ConfigurationError, match="already serves a client"):
            fake.client(coordination=fleet)
    assert fake.requests == []


def test_without_the_redis_package_a_coordination_url_names_the_extra() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["redis"] = None
        import tempolor_async
        from tempolor_async import ConfigurationError, TempolorClient
        try:
            TempolorClient(token="t", coordination="redis://127.0.0.1:1/0")
        except ConfigurationError as exc:
            print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert 'pip install "tempolor-async[redis]"' in done.stdout


@pytest.mark.fake(job_duration=0.3)
async def test_redis_holds_no_secret(fake: FakeTempolor, redis_server: RedisServer) -> None:
    import redis.asyncio

    receiver = CallbackReceiver(secret=SECRET)
    async with receiver.serve(), fleet_client(fake, redis_server.url, callbacks=receiver) as c:
        submission = await c.music.create_song("secret keeping")
        store = redis.asyncio.from_url(redis_server.url)
        try:
            keys = [key.decode() for key in await store.keys("*")]
            values = []
            for key in keys:
                kind = (await store.type(key)).decode()
                if kind == "zset":
                    values += [m.decode() for m in await store.zrange(key, 0, -1)]
                elif kind == "hash":
                    values += [
                        f"{k.decode()}={v.decode()}" for k, v in (await store.hgetall(key)).items()
                    ]
        finally:
            await store.aclose()
        await c.await_jobs(submission.jobs or [])
    assert keys
    assert all(key.startswith("tempolor:") for key in keys)
    for text in keys + values:
        assert fake.token not in text
        assert SECRET not in text


async def test_the_command_joins_the_fleet_with_coordination(fake: FakeTempolor) -> None:
    from _redis import free_port, redis_executable
    from test_cli import assert_one_error_line, tempolor

    redis_executable()
    url = f"redis://:hunter2-password@127.0.0.1:{free_port()}/0"
    run = await tempolor("--coordination", url, "song", "a fleet song", fake=fake)
    assert run.code == 2
    assert_one_error_line(run, "Redis", "127.0.0.1")
    assert "hunter2" not in run.stderr
    assert fake.requests == []  # nothing is sent before the fleet answers


@pytest.mark.fake(job_duration=0.3)
async def test_the_command_takes_leases_in_the_fleet(
    fake: FakeTempolor, redis_server: RedisServer
) -> None:
    from test_cli import tempolor

    run = await tempolor("song", "a fleet song", "--coordination", redis_server.url, fake=fake)
    assert run.code == 0, run.stderr
    assert len(fake.submissions) == 1
    import redis.asyncio

    store = redis.asyncio.from_url(redis_server.url)
    try:
        keys = [key.decode() for key in await store.keys("tempolor:*:jobs:*")]
    finally:
        await store.aclose()
    assert keys  # its jobs were bound to leases taken in Redis


@pytest.mark.faults
@pytest.mark.fake(job_duration=0.3)
async def test_a_client_rejoins_the_fleet_when_redis_answers_again(
    fake: FakeTempolor, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    import redis.asyncio

    caplog.set_level(logging.WARNING, logger="tempolor_async")
    async with fleet_client(fake, redis_server.url) as client:
        redis_server.stop()
        # Alone meanwhile: the generation goes out once, under the service's own 429.
        submission = await client.music.create_song("while Redis is away")
        await client.await_jobs(submission.jobs or [])
        assert any("lost Redis" in r.getMessage() for r in caplog.records)
        redis_server.start()  # empty, on the same port
        with anyio.fail_after(20):
            while not any("rejoined the fleet" in r.getMessage() for r in caplog.records):  # noqa: ASYNC110
                await anyio.sleep(0.1)
        submission = await client.music.create_song("back in the fleet")
        store = redis.asyncio.from_url(redis_server.url)
        try:
            with anyio.move_on_after(5):
                while not (bound := await store.keys("tempolor:*:jobs:*")):  # noqa: ASYNC110
                    await anyio.sleep(0.02)
        finally:
            await store.aclose()
        await client.await_jobs(submission.jobs or [])
    assert bound  # the second generation took its leases in Redis again
    assert len(fake.submissions) == 2
    lost = [r for r in caplog.records if "lost Redis" in r.getMessage()]
    assert len(lost) == 1


@pytest.mark.fake(job_duration=0.3)
async def test_leases_end_with_their_jobs_when_no_one_waits(
    fake: FakeTempolor, redis_server: RedisServer
) -> None:
    import redis.asyncio

    store = redis.asyncio.from_url(redis_server.url)
    try:
        async with fleet_client(fake, redis_server.url) as client:
            await client.music.create_song("sent, never awaited")
            leases = (await store.keys("tempolor:*:leases:*"))[0]
            assert await store.zcard(leases) == 2
            # The client stays open (it would renew its leases for ever): they end with the
            # jobs, seen in the scheduler, not at lease_ttl after the process stops.
            with anyio.fail_after(20):
                while await store.zcard(leases):  # noqa: ASYNC110
                    await anyio.sleep(0.1)
            assert not client.closed
    finally:
        await store.aclose()


MEMBER = """
import asyncio, sys
from tempolor_async import RedisCoordination, TempolorClient

async def main(base_url, token, redis_url, name):
    fleet = RedisCoordination(redis_url, lease_ttl=2.0)
    async with TempolorClient(token, base_url=base_url, coordination=fleet) as client:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        async def song(number):
            submission = await client.music.create_song(f"{name} {number}")
            await client.await_jobs(submission.jobs or [])
        await asyncio.gather(*(song(number) for number in range(5)))
    print("done", flush=True)

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.mark.fake(job_duration=0.6, max_jobs=3)
async def test_two_processes_share_an_account_without_a_429(
    fake: FakeTempolor, redis_server: RedisServer
) -> None:
    argv = [sys.executable, "-c", MEMBER, fake.base_url, fake.token, redis_server.url]
    with anyio.fail_after(120):
        async with (
            await anyio.open_process([*argv, "a"]) as first,
            await anyio.open_process([*argv, "b"]) as second,
        ):
            members = (first, second)
            for process in members:  # both joined the fleet: start them together
                assert process.stdout is not None
                assert (await process.stdout.receive()).strip() == b"ready"
            for process in members:
                assert process.stdin is not None
                await process.stdin.send(b"go\n")
            for process in members:
                assert await process.wait() == 0
                assert process.stdout is not None
                assert (await process.stdout.receive()).strip() == b"done"
    assert len(fake.submissions) == 10
    assert posts(fake) == 10  # no POST answered 429, none sent twice


async def test_a_fleet_client_with_a_random_receiver_secret_warns_once(
    fake: FakeTempolor, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tempolor_async")
    async with fleet_client(fake, redis_server.url, callbacks=CallbackReceiver()):
        pass
    async with fleet_client(fake, redis_server.url, callbacks=CallbackReceiver(secret=SECRET)):
        pass
    async with fake.client(callbacks=CallbackReceiver()):  # alone: nothing to share
        pass
    warned = [r for r in caplog.records if "random secret" in r.getMessage()]
    assert len(warned) == 1


def scheduler_reads(fake: FakeTempolor, since: float = 0.0) -> int:
    return sum(1 for r in fake.requests_to("GET", "/scheduler*") if r.time >= since)


@pytest.mark.fake(job_duration=4.0)
async def test_one_client_of_the_fleet_reads_the_scheduler_for_all(
    fake: FakeTempolor, redis_server: RedisServer
) -> None:
    done: list[MusicJob] = []

    async def member(name: str) -> None:
        async with fleet_client(fake, redis_server.url) as client:
            submission = await client.music.create_song(name)
            done.extend(await client.await_jobs(submission.jobs or [], poll_interval=0.4))

    started = time.monotonic()
    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            group.start_soon(member, "a")
            group.start_soon(member, "b")
    elapsed = time.monotonic() - started
    assert len(done) == 4
    assert all(job.is_final for job in done)
    # One process polls for the fleet, once per 0.4 s tick (the other one reads the
    # scheduler at most at its first tick, before it hears the poller): two processes
    # polling each for itself would read it twice as often.
    # (The two reads of scheduler/available are each generation's first look at the slots.)
    ticks = elapsed / 0.4
    paths = collections.Counter(r.path for r in fake.requests_to("GET", "/scheduler*"))
    assert paths["/scheduler/"] <= ticks + 3, (paths, ticks)
    # Each waiter still confirms its own jobs with its own GET, about once each.
    assert len(fake.requests_to("GET", "/music/*")) <= 4 * 3


@pytest.mark.fake(job_duration=0.4, max_jobs=3)
async def test_a_fleet_with_callbacks_reads_the_scheduler_only_for_its_slots(
    fake: FakeTempolor, redis_server: RedisServer
) -> None:
    serving = CallbackReceiver(secret=SECRET, callback_poll_interval=60)
    returned: list[MusicJob] = []

    async def songs(client: TempolorClient, name: str) -> None:
        async def one(number: int) -> None:
            submission = await client.music.create_song(f"{name} {number}")
            returned.extend(await client.await_jobs(submission.jobs or []))

        async with anyio.create_task_group() as group:
            for number in range(6):
                group.start_soon(one, number)

    started = time.monotonic()
    async with serving.serve() as url, fleet_client(fake, redis_server.url, callbacks=serving) as a:
        elsewhere = CallbackReceiver(url, secret=SECRET, callback_poll_interval=60)
        async with fleet_client(fake, redis_server.url, callbacks=elsewhere) as b:
            with anyio.fail_after(60):
                async with anyio.create_task_group() as group:
                    group.start_soon(songs, a, "a")
                    group.start_soon(songs, b, "b")
    elapsed = time.monotonic() - started
    assert len(returned) == 24
    assert all(job.is_completed for job in returned)
    # The answer to a generation is the first look at its jobs and the callbacks do the
    # waking: the scheduler is read for the slots only, each client's first look and
    # then one read for the fleet every 5 s while generations queue (not one per wait).
    reads = len(fake.requests_to("GET", "/scheduler*"))
    assert reads <= 2 + elapsed / 5 + 1, (reads, elapsed)
    # Each job confirmed by its waiter's own GET, about once.
    assert len(fake.requests_to("GET", "/music/*")) <= 24 * 1.2


async def live_leases(store: Any, key: str) -> int:
    """The leases of ``key`` that have not expired, on Redis's own clock."""
    seconds, micros = await store.time()
    count: int = await store.zcount(key, seconds * 1000 + micros // 1000, "+inf")
    return count


@pytest.mark.faults
@pytest.mark.fake(job_duration=0.5)
async def test_the_leases_of_a_generation_whose_answer_was_lost_expire(
    fake: FakeTempolor, redis_server: RedisServer
) -> None:
    import redis.asyncio

    fleet = RedisCoordination(redis_server.url, lease_ttl=1.0, namespace="lost")
    store = redis.asyncio.from_url(redis_server.url)
    key = "tempolor:lost:leases:100349856"  # the simulator's pre-configured account
    try:
        async with fake.client(coordination=fleet) as client:
            fake.inject("POST", "/music/song", drop=True)  # sent or not: the client cannot know
            with pytest.raises(APIConnectionError):
                await client.music.create_song("answer lost")
            assert await live_leases(store, key) == 2  # taken for the generation's two jobs
            # Not renewed any more (a process renews its leases every lease_ttl / 3): they
            # expire, instead of holding two of the account's slots for as long as it lives.
            await anyio.sleep(2.0)
            assert await live_leases(store, key) == 0
    finally:
        await store.aclose()


@pytest.mark.fake(job_duration=4.0, max_jobs=2)
async def test_a_process_that_does_not_poll_asks_the_poller_for_the_slots(
    fake: FakeTempolor, redis_server: RedisServer
) -> None:
    import aiohttp

    async with (
        fake.client() as outsider,  # another program on the account: no lease covers its jobs
        fleet_client(fake, redis_server.url) as poller,
        aiohttp.ClientSession(headers={"X-Member": "asking"}) as session,
        fleet_client(fake, redis_server.url, session=session) as asking,
        anyio.create_task_group() as group,
    ):
        theirs = await outsider.music.create_song("another program's")  # both slots
        # The poller's wait reads the scheduler at once, then not for 30 s.
        group.start_soon(partial(poller.await_jobs, theirs.jobs or [], poll_interval=30))
        with anyio.fail_after(10):
            while not poller._engine.coordination.polling:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        started = time.monotonic()
        with anyio.fail_after(14):  # before this process would read for itself (15 s)
            ours = await asking.music.create_song("queued for a slot")
        accepted = time.monotonic() - started
    # Its generation waited for the other program's jobs (4 s) and went out when the
    # poller, asked for the slots, read them: this process read them only once, its
    # generation's first look.
    assert len(ours.jobs or []) == 2
    assert accepted > 3.0
    reads = fake.requests_to("GET", "/scheduler*")
    assert sum(1 for r in reads if r.headers.get("X-Member") == "asking") == 1
    assert sum(1 for r in reads if r.headers.get("X-Member") is None) >= 2


@pytest.mark.faults
@pytest.mark.fake(job_duration=6.0)
async def test_a_killed_poller_is_taken_over_and_the_waits_end(
    fake: FakeTempolor, redis_server: RedisServer
) -> None:
    poller = textwrap.dedent(
        f"""
        import asyncio
        from tempolor_async import RedisCoordination, TempolorClient

        async def main():
            fleet = RedisCoordination({redis_server.url!r}, lease_ttl=2.0)
            async with TempolorClient(
                {fake.token!r}, base_url={fake.base_url!r}, coordination=fleet
            ) as client:
                submission = await client.music.create_song("the poller's song")
                waiting = asyncio.ensure_future(
                    client.await_jobs(submission.jobs or [], poll_interval=0.3)
                )
                while not fleet.polling:
                    await asyncio.sleep(0.05)
                print("polling", flush=True)
                await waiting

        asyncio.run(main())
        """
    )
    async with (
        fleet_client(fake, redis_server.url) as client,
        await anyio.open_process([sys.executable, "-c", poller]) as process,
    ):
        assert process.stdout is not None
        with anyio.fail_after(30):
            line = await process.stdout.receive()
        assert line.strip() == b"polling"
        submission = await client.music.create_song("waited here")
        async with anyio.create_task_group() as group:

            async def wait() -> None:
                jobs = await client.await_jobs(submission.jobs or [], poll_interval=0.3)
                done.extend(jobs)

            done: list[MusicJob] = []
            group.start_soon(wait)
            await anyio.sleep(1.5)
            fleet = client._engine.coordination
            assert fleet.polling is False  # type: ignore[attr-defined]  # the other polls
            process.send_signal(signal.SIGKILL)  # its poller lease is never given back
            await process.wait()
            killed = time.monotonic()
            took_over = None
            with anyio.fail_after(30):
                while not done:
                    if took_over is None and fleet.polling:  # type: ignore[attr-defined]
                        took_over = time.monotonic() - killed
                    await anyio.sleep(0.05)
    assert len(done) == 2
    assert all(job.is_final for job in done)
    # This client took the poller lease over within lease_ttl (2 s) and a tick or two.
    assert took_over is not None
    assert took_over < 5.0
    assert scheduler_reads(fake, killed + took_over) >= 1
