"""The capacity gate (SPEC 12): generations take a free slot before they are sent, queue
first come first served without sending anything, spread over several accounts, and set
aside accounts that refuse them. All against the simulator, whose request log shows what
was sent."""

from __future__ import annotations

import asyncio
import logging

import anyio
import pytest

from tempolor_async import (
    AccountCapacity,
    APIConnectionError,
    PaymentRequiredError,
    RateLimitError,
    TempolorClient,
    TempolorError,
    _protocol,
)
from tempolor_async.testing import FakeTempolor

pytestmark = pytest.mark.anyio

DEFAULT_USER = "100349856"


def posts(fake: FakeTempolor, path: str = "/music/song") -> list[dict[str, object]]:
    return [request.json() for request in fake.requests_to("POST", path)]


def running_peak(fake: FakeTempolor, user_id: str = DEFAULT_USER) -> int:
    return len(fake.running_jobs(user_id))


async def until(condition, limit: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    with anyio.fail_after(limit):
        while not condition():  # noqa: ASYNC110 - the simulator offers no event for this
            await anyio.sleep(0.005)


@pytest.fixture
def warnings_logged(caplog: pytest.LogCaptureFixture):  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING, logger="tempolor_async")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    return lines


@pytest.mark.fake(max_jobs=4, job_duration=0.3)
async def test_a_burst_is_sent_only_as_slots_free(fake: FakeTempolor) -> None:
    peak = 0

    def watch(_: object) -> None:
        nonlocal peak
        peak = max(peak, running_peak(fake))

    async with fake.client() as client:
        submissions = []

        async def one(number: int) -> None:
            submission = await client.music.create_song(f"song {number}")
            watch(None)
            submissions.append(submission)

        async with anyio.create_task_group() as group:
            for number in range(6):
                group.start_soon(one, number)
    assert len(submissions) == len(fake.submissions) == 6
    # Every POST was accepted: none met a full account (no 429), none was sent twice.
    assert len(posts(fake)) == 6
    assert peak <= 4
    # The queued ones were let through by the slot view kept fresh by the loop.
    assert fake.requests_to("GET", "/scheduler/available")


@pytest.mark.fake(max_jobs=2, job_duration=30)
async def test_busy_timeout_zero_raises_with_nothing_sent(fake: FakeTempolor) -> None:
    async with fake.client(busy_timeout=0) as client:
        first = await client.music.create_song("first")
        with pytest.raises(RateLimitError) as caught:
            await client.music.create_song("second")
    assert len(posts(fake)) == 1  # the second was never sent
    assert "nothing was sent" in caught.value.message
    assert caught.value.status == 429
    running = caught.value.running_jobs
    assert {job.job_id for job in running[DEFAULT_USER]} == set(first.jobs)


@pytest.mark.fake(max_jobs=2, job_duration=30)
async def test_a_queued_generation_gives_up_at_busy_timeout(fake: FakeTempolor) -> None:
    async with fake.client(busy_timeout=1.5) as client:
        await client.music.create_song("first")
        started = anyio.current_time()
        with pytest.raises(RateLimitError):
            await client.music.create_instrumental("second")
        waited = anyio.current_time() - started
    assert waited >= 1.5
    assert posts(fake, "/music/instrumental") == []
    # While it waited, the loop read the slots by itself (nobody was waiting for a job).
    assert len(fake.requests_to("GET", "/scheduler/available")) >= 2


@pytest.mark.fake(max_jobs=2, job_duration=30)
async def test_without_the_gate_a_full_account_answers_429(fake: FakeTempolor) -> None:
    async with fake.client(busy_timeout=0, capacity_aware=False) as client:
        await client.music.create_song("first")
        with pytest.raises(RateLimitError) as caught:
            await client.music.create_song("second")
    assert len(posts(fake)) == 2
    assert caught.value.message == "Account is busy executing 2 jobs"
    assert fake.requests_to("GET", "/accounts") == []
    assert fake.requests_to("GET", "/scheduler/available") == []


@pytest.mark.fake(max_jobs=2, job_duration=60)
async def test_queued_generations_go_first_come_first_served(fake: FakeTempolor) -> None:
    async with fake.client() as client:
        await client.music.create_song("first")
        done: list[str] = []

        async def queued(name: str) -> None:
            await client.music.create_song(name)
            done.append(name)

        async with anyio.create_task_group() as group:
            for name in ("a", "b", "c"):
                group.start_soon(queued, name)
                await anyio.sleep(0.02)  # a definite order of arrival
            for count in (1, 2, 3):
                for job in fake.running_jobs():
                    fake.complete(job.job_id)
                await until(lambda count=count: len(done) == count)
    assert done == ["a", "b", "c"]
    assert [body["prompt"] for body in posts(fake)] == ["first", "a", "b", "c"]


@pytest.mark.fake(max_jobs=2, job_duration=60)
async def test_cancelling_a_queued_generation_sends_nothing_and_frees_its_place(
    fake: FakeTempolor,
) -> None:
    async with fake.client() as client:
        first = await client.music.create_song("first")
        with anyio.move_on_after(0.1):
            await client.music.create_song("never")
        outcome = []

        async def later() -> None:
            outcome.append(await client.music.create_song("later"))

        async with anyio.create_task_group() as group:
            group.start_soon(later)
            await anyio.sleep(0.05)
            for job_id in first.jobs:
                fake.complete(job_id)
    assert [body["prompt"] for body in posts(fake)] == ["first", "later"]
    assert len(outcome) == 1


@pytest.mark.fake(max_jobs=2, job_duration=60)
async def test_aclose_ends_a_queued_generation(fake: FakeTempolor) -> None:
    before = asyncio.all_tasks()
    client = fake.client()
    await client.music.create_song("first")
    caught: list[BaseException] = []

    async def queued() -> None:
        try:
            await client.music.create_song("second")
        except TempolorError as exc:
            caught.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(queued)
        await anyio.sleep(0.05)
        await client.aclose()
    assert len(caught) == 1
    assert type(caught[0]) is TempolorError
    assert len(posts(fake)) == 1
    left = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert all("RequestHandler" in repr(t.get_coro()) for t in left)


@pytest.mark.fake(max_jobs=4, job_duration=30)
async def test_capacity_is_the_clients_view(fake: FakeTempolor) -> None:
    fake.add_account("200777", max_jobs=6)
    async with fake.client() as client:
        view = await client.capacity()
        assert list(view) == [DEFAULT_USER, "200777"]  # GET accounts order
        assert all(isinstance(entry, AccountCapacity) for entry in view.values())
        assert (view[DEFAULT_USER].max_jobs, view[DEFAULT_USER].executing) == (4, 0)
        assert view[DEFAULT_USER].available == 4
        reads = len(fake.requests_to("GET", "/scheduler/available"))
        await client.music.create_song("x", user_id=DEFAULT_USER)
        view = await client.capacity()
        assert (view[DEFAULT_USER].executing, view[DEFAULT_USER].available) == (2, 2)
        assert view["200777"].available == 6
        # The view is the client's own: no new read once it has one.
        assert len(fake.requests_to("GET", "/scheduler/available")) == reads


# ------------------------------------------------------------ several accounts


@pytest.mark.fake(max_jobs=2, job_duration=30)
async def test_the_account_with_the_most_free_slots_is_picked(fake: FakeTempolor) -> None:
    fake.add_account("200777", max_jobs=4)
    fake.add_account("300888", max_jobs=4)
    async with fake.client() as client:
        for number in range(4):
            await client.music.create_song(f"song {number}")
    picked = [body["user_id"] for body in posts(fake)]
    # 200777 and 300888 tie at 4 free: the first in GET accounts order goes first.
    assert picked == ["200777", "300888", DEFAULT_USER, "200777"]
    assert len(fake.submissions) == 4


@pytest.mark.fake(max_jobs=2, job_duration=30)
async def test_a_refusing_account_is_set_aside_and_the_next_one_used(
    fake: FakeTempolor, warnings_logged
) -> None:  # type: ignore[no-untyped-def]
    fake.add_account("broke", max_jobs=10, subscribed=False)
    async with fake.client() as client:
        first = await client.music.create_song("first")
        second = await client.music.create_song("second")
    attempts = [body["user_id"] for body in posts(fake)]
    assert attempts == ["broke", DEFAULT_USER, DEFAULT_USER]  # set aside after one 402
    assert {job.split("-job:")[0] for job in first.jobs + second.jobs} == {
        f"user:12345-tempolor:{DEFAULT_USER}"
    }
    lines = warnings_logged()
    assert len(lines) == 1
    assert "broke" in lines[0]
    assert "402" in lines[0]
    assert fake.token not in lines[0]
    assert "service_ticket" not in lines[0]


@pytest.mark.fake(max_jobs=2, job_duration=30)
async def test_a_named_refusing_account_raises(fake: FakeTempolor) -> None:
    fake.add_account("broke", max_jobs=10, subscribed=False)
    async with fake.client() as client:
        with pytest.raises(PaymentRequiredError):
            await client.music.create_song("x", user_id="broke")
        await client.music.create_song("y")  # picking skips the account set aside
    assert [body["user_id"] for body in posts(fake)] == ["broke", DEFAULT_USER]


async def test_when_every_account_refuses_the_last_refusal_is_raised(fake: FakeTempolor) -> None:
    fake.accounts[DEFAULT_USER].subscribed = False
    fake.add_account("broke", max_jobs=10, subscribed=False)
    async with fake.client() as client:
        with pytest.raises(PaymentRequiredError):
            await client.music.create_song("x")
        with pytest.raises(PaymentRequiredError):
            await client.music.create_song("y")  # every account set aside: nothing sent
    # Both had 10 free slots: the first in GET accounts order was tried first.
    assert [body["user_id"] for body in posts(fake)] == [DEFAULT_USER, "broke"]


@pytest.mark.fake(max_jobs=2, job_duration=30)
async def test_an_account_that_disappears_is_set_aside(fake: FakeTempolor) -> None:
    fake.add_account("gone", max_jobs=10)
    async with fake.client() as client:
        await client.capacity()
        del fake.accounts["gone"]
        submission = await client.music.create_song("x")
    assert [body["user_id"] for body in posts(fake)] == ["gone", DEFAULT_USER]
    assert len(submission.jobs or []) == 2


@pytest.mark.fake(max_jobs=4, job_duration=30)
async def test_a_429_from_another_program_is_waited_out(
    fake: FakeTempolor, warnings_logged
) -> None:  # type: ignore[no-untyped-def]
    fake.inject("POST", "/music/song", status=429, times=1)
    async with fake.client() as client:
        client._http.busy_retry_seconds = 0.05
        submission = await client.music.create_song("x")
    assert len(submission.jobs or []) == 2
    assert len(posts(fake)) == 2
    lines = warnings_logged()
    assert len(lines) == 1
    assert "429" in lines[0]
    # The 429 made the client read the slots again.
    assert len(fake.requests_to("GET", "/scheduler/available")) >= 2


@pytest.mark.faults
async def test_slots_that_cannot_be_read_do_not_stop_generations(fake: FakeTempolor) -> None:
    fake.inject("GET", "/scheduler/available", status=503, times=None)
    async with fake.client(max_retries=0) as client:
        submission = await client.music.create_song("x")
        await client.music.create_song("y")
    assert len(submission.jobs or []) == 2
    assert len(posts(fake)) == 2
    # One failed read; then the client stops asking for a while.
    assert len(fake.requests_to("GET", "/scheduler/available")) == 1


@pytest.mark.faults
async def test_a_generation_that_may_have_arrived_is_never_sent_again(
    fake: FakeTempolor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_protocol, "RETRY_BASE_SECONDS", 0.001)
    fake.inject("POST", "/music/song", drop=True)
    async with fake.client() as client:
        with pytest.raises(APIConnectionError):
            await client.music.create_song("x")
        await client.music.create_song("y")  # its reserved slot was given back
    assert [body["prompt"] for body in posts(fake)] == ["x", "y"]


async def test_bad_options_are_refused() -> None:
    from tempolor_async import ConfigurationError

    with pytest.raises(ConfigurationError):
        TempolorClient("t", account_cooldown=-1)
    with pytest.raises(ConfigurationError):
        TempolorClient("t", callbacks="http://example.com")  # type: ignore[arg-type]


@pytest.mark.fake(max_jobs=2, job_duration=0.3)
async def test_an_account_that_starts_refusing_mid_run_is_set_aside(
    fake: FakeTempolor, warnings_logged
) -> None:  # type: ignore[no-untyped-def]
    fake.add_account("200777", max_jobs=2)
    done: list[str] = []
    async with fake.client() as client:

        async def one(number: int) -> None:
            submission = await client.music.create_song(f"song {number}")
            await client.await_jobs(submission.jobs or [], poll_interval=0.05)
            done.append(submission.jobs[0].split("-job:")[0].rpartition(":")[2])

        async with anyio.create_task_group() as group:
            for number in range(4):
                group.start_soon(one, number)
            await until(lambda: len(done) >= 2)
            fake.accounts["200777"].subscribed = False  # its plan ran out
            for number in range(4, 8):
                group.start_soon(one, number)
    assert len(done) == 8  # every generation went through, on the account still paying
    refused = [body for body in posts(fake) if body["user_id"] == "200777"]
    assert len(refused) - sum(1 for account in done if account == "200777") == 1
    lines = warnings_logged()
    assert len(lines) == 1
    assert "200777" in lines[0]
