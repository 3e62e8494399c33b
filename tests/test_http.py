"""Retries, as the simulator sees them: which requests are repeated, how often, and which
never are (generations and uploads that may have reached the service)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from tempolor_async import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    RunningJob,
    ServerError,
    TempolorClient,
    _http,
    _protocol,
)
from tempolor_async.testing import FakeTempolor

pytestmark = pytest.mark.anyio

DEFAULT_USER = "100349856"
UNKNOWN_JOB = f"user:1-tempolor:{DEFAULT_USER}-job:nosuchjob"
SHORT = 0.15  # a client timeout, in seconds
SLOW = 0.3  # an injected delay that outlasts it
MIDI = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk\x00\x00\x00\x04\x00\xff\x2f\x00"
AUDIO = b"ID3" + bytes(64)
BUSY_TEMPOLOR = "please wait for current Generations to finish or upgrade your plan"

Call = Callable[[TempolorClient], Awaitable[Any]]


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the exponential backoff (0.5 s doubling) from slowing the tests down."""
    monkeypatch.setattr(_protocol, "RETRY_BASE_SECONDS", 0.005)


@pytest.fixture
def warnings_logged(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """The WARNING lines of the SDK's logger so far (one per retry)."""
    caplog.set_level(logging.DEBUG, logger="tempolor_async")

    def lines() -> list[str]:
        return [
            record.getMessage()
            for record in caplog.records
            if record.name == "tempolor_async" and record.levelno == logging.WARNING
        ]

    return lines


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def count(fake: FakeTempolor, method: str, path: str) -> int:
    return len(fake.requests_to(method, path))


# ---------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [
        pytest.param(500, {}, ServerError, id="500"),
        pytest.param(502, {}, ServerError, id="502"),
        pytest.param(503, {}, ServerError, id="503"),
        pytest.param(504, {}, ServerError, id="504"),
        pytest.param(429, {"Retry-After": "0"}, RateLimitError, id="429"),
    ],
)
@pytest.mark.parametrize(
    ("options", "failures", "requests"),
    [
        pytest.param({}, 2, 3, id="default-recovers-on-third"),
        pytest.param({}, 3, 3, id="default-gives-up-after-3"),
        pytest.param({"max_retries": 0}, 1, 1, id="no-retries"),
    ],
)
async def test_get_is_retried_on_transient_statuses(
    fake, warnings_logged, status, headers, error, options, failures, requests
):
    fake.inject("GET", "/scheduler/", status=status, headers=headers, times=failures)
    async with fake.client(**options) as client:
        if failures < requests:
            assert await client.scheduler.list() == []
        else:
            with pytest.raises(error) as caught:
                await client.scheduler.list()
            assert (caught.value.status, caught.value.path) == (status, "/scheduler/")
    assert count(fake, "GET", "/scheduler/") == requests
    assert len(warnings_logged()) == requests - 1


REFUSALS = [
    pytest.param(400, BadRequestError, id="400"),
    pytest.param(401, AuthenticationError, id="401"),
    pytest.param(402, PaymentRequiredError, id="402"),
    pytest.param(404, NotFoundError, id="404"),
]
IDEMPOTENT_CALLS = [
    pytest.param("GET", "/scheduler/", lambda client: client.scheduler.list(), id="GET"),
    pytest.param(
        "DELETE", "/scheduler/*", lambda client: client.scheduler.cancel(UNKNOWN_JOB), id="DELETE"
    ),
]


@pytest.mark.parametrize(("status", "error"), REFUSALS)
@pytest.mark.parametrize(("method", "path", "call"), IDEMPOTENT_CALLS)
async def test_client_errors_are_never_retried(fake, status, error, method, path, call):
    text = f"the service refuses this ({status})"
    fake.inject(method, path, status=status, body={"error": text, "code": status}, times=None)
    async with fake.client() as client:
        with pytest.raises(error) as caught:
            await call(client)
    assert caught.value.message == text
    assert (caught.value.status, caught.value.method) == (status, method)
    assert count(fake, method, path) == 1


@pytest.mark.parametrize(
    ("token", "call", "error", "message"),
    [
        pytest.param(
            None,
            lambda client: client.music.get("abc"),
            BadRequestError,
            "job_id has incorrect format",
            id="400",
        ),
        pytest.param(
            "a-wrong-token",
            lambda client: client.scheduler.list(),
            AuthenticationError,
            "Unauthorized",
            id="401",
        ),
        pytest.param(
            None,
            lambda client: client.accounts.create({"user_id": "7", "vip_type": 0}),
            PaymentRequiredError,
            "Subscription required",
            id="402",
        ),
        pytest.param(
            None,
            lambda client: client.music.get(UNKNOWN_JOB),
            NotFoundError,
            f"No record found for {UNKNOWN_JOB}",
            id="404",
        ),
    ],
)
async def test_the_services_own_refusals_carry_its_text(fake, token, call, error, message):
    options = {"token": token} if token else {}
    async with fake.client(**options) as client:
        with pytest.raises(error) as caught:
            await call(client)
    assert caught.value.message == message
    assert message in str(caught.value)
    assert len(fake.requests) == 1


# ----------------------------------------------------- no answer (idempotent)

NO_ANSWER = [
    # aiohttp's own hidden resend of GET/DELETE is off in the client's session: one dropped
    # request, then the SDK's retry.
    pytest.param({"drop": True, "times": 1}, 2, id="drop"),
    pytest.param({"delay": SLOW, "times": 1}, 2, id="timeout"),
]
IDEMPOTENT_ON_ACCOUNT = [
    pytest.param("GET", "/scheduler/", lambda client: client.scheduler.list(), id="GET"),
    pytest.param(
        "DELETE",
        f"/accounts/{DEFAULT_USER}",
        lambda client: client.accounts.delete(DEFAULT_USER),
        id="DELETE",
    ),
]


@pytest.mark.parametrize(("fault", "requests"), NO_ANSWER)
@pytest.mark.parametrize(("method", "path", "call"), IDEMPOTENT_ON_ACCOUNT)
async def test_idempotent_requests_are_retried_without_an_answer(
    fake, warnings_logged, fault, requests, method, path, call
):
    fake.inject(method, path, **fault)
    async with fake.client(timeout=SHORT) as client:
        await call(client)
    assert count(fake, method, path) == requests
    assert len(warnings_logged()) == 1
    if method == "DELETE":
        assert DEFAULT_USER not in fake.accounts


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"drop": True}, id="drop"),  # POST: aiohttp does not resend it itself
        pytest.param({"status": 503}, id="503"),
    ],
)
async def test_creating_an_account_is_retried_as_an_upsert(fake, warnings_logged, fault):
    fake.inject("POST", "/accounts", **fault)
    async with fake.client() as client:
        account = await client.accounts.create({"user_id": "4242", "vip_type": 20})
    assert account.user_id == "4242"
    assert count(fake, "POST", "/accounts") == 2
    assert len(warnings_logged()) == 1


@pytest.mark.parametrize(
    ("fault", "error", "requests"),
    [
        pytest.param({"drop": True}, APIConnectionError, 2, id="drop"),
        pytest.param({"delay": SLOW}, APITimeoutError, 2, id="timeout"),
    ],
)
async def test_idempotent_retries_give_up_after_max_retries(fake, fault, error, requests):
    fake.inject("GET", "/scheduler/", times=None, **fault)
    async with fake.client(timeout=SHORT, max_retries=1) as client:
        with pytest.raises(error) as caught:
            await client.scheduler.list()
    assert caught.value.path == "/scheduler/"
    assert count(fake, "GET", "/scheduler/") == requests


async def test_a_delete_whose_answer_was_lost_returns_normally(fake, warnings_logged):
    async with fake.client() as client:
        submission = await client.music.create_song("a calm piano piece")
        job_id = submission.jobs[0]
        fake.inject("DELETE", "/music/*", truncate=True)  # deleted, but the answer is cut
        assert await client.music.delete(job_id) is None
    assert job_id not in fake.jobs
    assert count(fake, "DELETE", "/music/*") == 2  # the retry saw 404
    assert len(warnings_logged()) == 1


# ------------------------------------------------- generations and uploads

GENERATIONS = [
    pytest.param(
        "/music/song", lambda client: client.music.create_song("a calm piano piece"), id="song"
    ),
    pytest.param(
        "/music/instrumental",
        lambda client: client.music.create_instrumental("a slow waltz"),
        id="instrumental",
    ),
]
UPLOADS = [
    pytest.param("/music/midi/", lambda client: client.midi.upload(MIDI, name="tune"), id="midi"),
    pytest.param(
        "/music/cloned-voices/",
        lambda client: client.voices.clone(AUDIO, name="me", content_type="audio/mpeg"),
        id="clone",
    ),
    pytest.param(
        "/music/stems-splitter/",
        lambda client: client.music.split_stems(AUDIO, content_type="audio/mpeg"),
        id="stems",
    ),
]
FAILURES = {
    "drop": ({"drop": True}, APIConnectionError),
    "truncate": ({"truncate": True}, APIConnectionError),
    "timeout": ({"delay": SLOW}, APITimeoutError),
    "500": ({"status": 500}, ServerError),
    "502": ({"status": 502}, ServerError),
    "503": ({"status": 503}, ServerError),
}
MAY_HAVE_ARRIVED = [
    pytest.param(*request.values, *FAILURES[failure], id=f"{request.id}-{failure}")
    for requests, failures in (
        (GENERATIONS, list(FAILURES)),
        (UPLOADS, ["drop", "truncate", "500"]),
    )
    for request in requests
    for failure in failures
]


@pytest.mark.parametrize(("path", "call", "fault", "error"), MAY_HAVE_ARRIVED)
async def test_requests_that_may_have_arrived_are_not_resent(
    fake, warnings_logged, path, call, fault, error
):
    fake.inject("POST", path, **fault)
    # A short timeout only where the fault is a timeout, and no capacity gate: its reads are
    # not what is tested, and a loaded machine must not time them out.
    seconds = SHORT if "delay" in fault else 60.0
    async with fake.client(timeout=seconds, upload_timeout=seconds, capacity_aware=False) as client:
        with pytest.raises(error) as caught:
            await call(client)
    assert (caught.value.method, caught.value.path) == ("POST", path)
    assert count(fake, "POST", path) == 1
    assert warnings_logged() == []


@pytest.mark.parametrize(("path", "call"), GENERATIONS)
async def test_a_truncated_generation_created_jobs_but_is_not_resubmitted(fake, path, call):
    fake.inject("POST", path, truncate=True)
    async with fake.client() as client:
        with pytest.raises(APIConnectionError):
            await call(client)
    assert len(fake.jobs) == 2  # the service acted: a resubmission would pay twice
    assert count(fake, "POST", path) == 1


@pytest.mark.parametrize(
    "call", [pytest.param(param.values[1], id=param.id) for param in GENERATIONS + UPLOADS]
)
async def test_a_connection_that_cannot_be_opened_is_retried(warnings_logged, call):
    base_url = f"http://127.0.0.1:{closed_port()}/v1/tempolor"
    # Without the capacity gate, whose first read would meet the closed port instead.
    options = {"max_retries": 2, "capacity_aware": False}
    async with TempolorClient("a-token", base_url=base_url, **options) as client:
        with pytest.raises(APIConnectionError) as caught:
            await call(client)
    assert not isinstance(caught.value, APITimeoutError)
    assert len(warnings_logged()) == 2


# -------------------------------------------------------------- busy wait


async def _wait_for(condition: Callable[[], bool], limit: float = 5.0) -> None:
    with anyio.fail_after(limit):
        while True:
            if condition():
                return
            await anyio.sleep(0.01)


@pytest.mark.fake(job_duration=30)
@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "Account is busy executing 2 jobs", marks=pytest.mark.fake(max_jobs=2), id="account"
        ),
        pytest.param(BUSY_TEMPOLOR, marks=pytest.mark.fake(max_gen_count_at_once=2), id="plan"),
    ],
)
async def test_a_busy_generation_is_waited_out_and_retried(fake, warnings_logged, text):
    submitted = {}
    # The capacity gate would hold the second generation back: this is the 429 path.
    async with fake.client(capacity_aware=False) as client:
        client._http.busy_retry_seconds = 0.05
        first = await client.music.create_song("first")

        async def second() -> None:
            submitted["second"] = await client.music.create_instrumental("second")

        async with anyio.create_task_group() as group:
            group.start_soon(second)
            await _wait_for(lambda: count(fake, "POST", "/music/instrumental") >= 2)
            assert "second" not in submitted  # still waiting while the first jobs run
            for job_id in first.jobs:
                fake.complete(job_id)
    assert len(submitted["second"].jobs) == 2
    assert len(fake.jobs) == 4
    busy = warnings_logged()
    assert len(busy) == count(fake, "POST", "/music/instrumental") - 1
    assert all(text in line for line in busy)


@pytest.mark.fake(max_jobs=2, job_duration=30)
async def test_busy_timeout_zero_raises_at_once_with_the_running_jobs(fake):
    async with fake.client(busy_timeout=0, capacity_aware=False) as client:
        first = await client.music.create_song("first")
        with pytest.raises(RateLimitError) as caught:
            await client.music.create_song("second")
    assert count(fake, "POST", "/music/song") == 2  # one each
    assert caught.value.message == "Account is busy executing 2 jobs"
    running = caught.value.running_jobs
    assert list(running) == [DEFAULT_USER]
    assert all(isinstance(job, RunningJob) for job in running[DEFAULT_USER])
    assert {job.job_id for job in running[DEFAULT_USER]} == set(first.jobs)


@pytest.mark.parametrize(
    ("floor", "busy_timeout", "least_requests"),
    [
        pytest.param(1.0, 0.5, 1, id="first-wait-overruns"),
        pytest.param(0.5, 0.8, 2, id="later-wait-overruns"),
    ],
)
async def test_a_busy_wait_that_would_overrun_raises_without_sleeping_it_out(
    fake, floor, busy_timeout, least_requests
):
    fake.inject("POST", "/music/song", status=429, times=None)
    # The 429 rule itself, without the capacity gate's reads of the slots around each wait.
    async with fake.client(busy_timeout=busy_timeout, capacity_aware=False) as client:
        client._http.busy_retry_seconds = floor
        started = time.monotonic()
        with pytest.raises(RateLimitError) as caught:
            await client.music.create_song("x")
        elapsed = time.monotonic() - started
    assert caught.value.message == BUSY_TEMPOLOR
    assert elapsed < busy_timeout
    assert least_requests <= count(fake, "POST", "/music/song") <= busy_timeout / floor + 1


@pytest.mark.fake(max_jobs=2, job_duration=60)
async def test_the_default_busy_wait_is_longer_than_29_9_seconds(fake):
    async with fake.client(busy_timeout=29.9, capacity_aware=False) as client:
        await client.music.create_song("first")
        started = time.monotonic()
        with anyio.fail_after(5), pytest.raises(RateLimitError):
            await client.music.create_song("second")
    assert time.monotonic() - started < 1.0  # the next wait (at least 30 s) would overrun
    assert count(fake, "POST", "/music/song") == 2


@pytest.mark.fake(max_jobs=2, job_duration=60)
async def test_the_default_busy_wait_keeps_waiting(fake):
    outcome = []
    async with fake.client(busy_timeout=60, capacity_aware=False) as client:
        await client.music.create_song("first")

        async def second() -> None:
            outcome.append(await client.music.create_song("second"))

        async with anyio.create_task_group() as group:
            group.start_soon(second)
            await anyio.sleep(0.5)
            group.cancel_scope.cancel()
    assert outcome == []  # still waiting after 0.5 s
    assert count(fake, "POST", "/music/song") == 2  # and only one try of the second


@pytest.mark.anyio
async def test_parsed_urls_stay_right_when_their_cache_starts_again(
    fake: FakeTempolor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """API URLs are parsed once per path and kept in a small cache that is emptied when
    full: every request still goes to its own path, before and after."""
    monkeypatch.setattr(_http, "_MAX_URLS", 3)
    async with fake.client() as client:
        job_ids = []
        for index in range(3):
            submission = await client.music.create_song(f"song {index}")
            job_ids += submission.jobs or []
        for job_id in [*job_ids, *reversed(job_ids)]:
            job = await client.music.get(job_id)
            assert job.job_id == job_id
    paths = [request.path for request in fake.requests_to("GET", "/music/*")]
    assert paths == [f"/music/{job_id}" for job_id in [*job_ids, *reversed(job_ids)]]
