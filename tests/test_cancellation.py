"""Cancellation at every await point of submit (create_song), wait (await_job) and download
(music.download, download_file) leaves nothing behind.

Each operation is run again and again, cancelled a little later each time: after 0, 1, 2, ...
event-loop iterations (every point where it suspends on the fast path), after 0, 8, 16, ...
milliseconds while a request is held at one stage (before the answer, in a busy wait, in the
poll sleep, in a retry backoff, in a progress callback), and after the 1st, 2nd, ... chunk of
a large body. After each cancellation: no new task but the simulator's own request handlers,
no acquired connection, no file at all in the download folder, at most one accepted
generation per submit, and (where the client would go on) no further request.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from tempolor_async import TempolorClient, TempolorError, _protocol
from tempolor_async.testing import FakeTempolor
from tempolor_async.testing._server import RecordedRequest

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.faults,
    # Long jobs (tests finish them with fake.complete) and room for every orphaned submission.
    pytest.mark.fake(job_duration=60, max_jobs=10_000, max_gen_count_at_once=10_000),
]

PROMPT = "a calm piano piece"
FAST = 0.02  # poll interval, seconds
HOLD = 0.08  # how long an injected delay holds a request, seconds
BUSY_FLOOR = 0.03  # the client's busy wait, lowered from the documented 30 s
QUIET = 0.06  # no request may follow a cancellation for this long (> poll and busy waits)
MEDIA = bytes(range(256)) * 8 * 1024  # 2 MiB for download_file: many chunks
MAX_ATTEMPTS = 3000

Operation = Callable[[], Awaitable[Any]]
Trigger = Callable[[], Awaitable[None]]


SERVER_TASKS = ("RequestHandler.", "BaseSelectorEventLoop._accept_connection")
BUSY_SERVER_TASKS = ("RequestHandler._handle_request", "BaseSelectorEventLoop._accept_connection")


def task_name(task: asyncio.Task[Any]) -> str:
    return str(task.get_coro().__qualname__)  # type: ignore[union-attr]


def is_server_task(task: asyncio.Task[Any]) -> bool:
    """A task of the simulator's server, by its coroutine: asyncio accepting a connection, or
    aiohttp serving one. They may outlive a request the client abandoned."""
    return task_name(task).startswith(SERVER_TASKS)


def is_handling(task: asyncio.Task[Any]) -> bool:
    """A simulator task still accepting a connection or handling a request (unlike an idle
    keep-alive connection's task, which may stay)."""
    return not task.done() and task_name(task).startswith(BUSY_SERVER_TASKS)


@dataclass
class Attempt:
    """One run of an operation: cancelled or not, what it returned or raised, what the
    simulator saw during it, and what the download folder held when the cancel was issued."""

    cancelled: bool = False
    result: Any = None
    error: BaseException | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    submissions: int = 0
    files_at_cancel: list[str] = field(default_factory=list)

    def count(self, method: str, pattern: str) -> int:
        return sum(1 for r in self.requests if r.method == method and fnmatchcase(r.path, pattern))


@dataclass
class Rig:
    fake: FakeTempolor
    client: TempolorClient
    folder: Path

    def files(self) -> list[str]:
        return sorted(path.name for path in self.folder.iterdir())

    def acquired(self) -> int:
        session = self.client._http._session
        connector = session.connector if session is not None else None
        return len(connector._acquired) if connector is not None else 0

    def assert_nothing_left(
        self, before: set[asyncio.Task[Any]], when: str, files: Iterable[str] = ()
    ) -> None:
        left = [t for t in asyncio.all_tasks() - before if not t.done() and not is_server_task(t)]
        assert left == [], f"{when}: tasks left behind"
        assert self.acquired() == 0, f"{when}: connections still acquired"
        assert self.files() == list(files), f"{when}: files left in the download folder"

    async def settle(self) -> None:
        """Wait until the simulator has handled every request it received, including those
        the client abandoned (it still acts on them, as the real service would). Bytes the
        client wrote just before it was cancelled reach the server a loop pass later, so it
        counts as settled only after a pause with nothing being handled."""
        with anyio.fail_after(5):
            for _ in itertools.count():
                await anyio.sleep(0.005)
                if not any(is_handling(task) for task in asyncio.all_tasks()):
                    return

    async def attempt(self, operation: Operation, trigger: Trigger, quiet: float) -> Attempt:
        """Run ``operation`` until ``trigger`` fires, then cancel it, and check what is left."""
        before = set(asyncio.all_tasks())
        seen, accepted = len(self.fake.requests), len(self.fake.submissions)
        attempt, scope = Attempt(), anyio.CancelScope()

        async def cancel_on_trigger() -> None:
            await trigger()
            attempt.files_at_cancel = self.files()
            scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(cancel_on_trigger)
            with scope:
                try:
                    attempt.result = await operation()
                except TempolorError as exc:
                    attempt.error = exc
            group.cancel_scope.cancel()
        attempt.cancelled = scope.cancelled_caught
        if attempt.cancelled or attempt.error is not None:
            self.assert_nothing_left(before, "at once")
        await self.settle()
        if attempt.cancelled and quiet:
            count = len(self.fake.requests)
            await anyio.sleep(quiet)
            assert len(self.fake.requests) == count, "a request was made after the cancellation"
        attempt.requests = self.fake.requests[seen:]
        attempt.submissions = len(self.fake.submissions) - accepted
        if attempt.cancelled or attempt.error is not None:
            self.assert_nothing_left(before, "once the simulator settled")
        else:  # done: the file it wrote may stay, nothing else
            self.assert_nothing_left(before, "after success", files=self.files())
        return attempt


async def sweep(
    rig: Rig, runs: Iterable[tuple[Operation, Trigger]], quiet: float = 0.0
) -> list[Attempt]:
    """Attempt each (operation, trigger) in turn until one is not cancelled."""
    attempts = []
    for operation, trigger in itertools.islice(runs, MAX_ATTEMPTS):
        attempts.append(await rig.attempt(operation, trigger, quiet))
        if not attempts[-1].cancelled:
            return attempts
    return attempts


# ------------------------------------------------------------------ triggers


def at_iterations(operation: Operation) -> Iterator[tuple[Operation, Trigger]]:
    """Cancel after 0, 1, 2, ... event-loop iterations."""

    def iterations(count: int) -> Trigger:
        async def wait() -> None:
            for _ in range(count):
                await asyncio.sleep(0)

        return wait

    return ((operation, iterations(count)) for count in itertools.count())


def at_seconds(
    operation: Operation, span: float, step: float
) -> Iterator[tuple[Operation, Trigger]]:
    """Cancel after 0, step, 2 step, ... seconds, up to ``span``."""
    steps = int(span / step) + 1
    return ((operation, functools.partial(anyio.sleep, n * step)) for n in range(steps))


class ChunkCounter:
    """An on_progress callback (sync, or async with an await of its own) whose trigger fires
    once ``chunk`` chunks have arrived."""

    def __init__(self, chunk: int, asynchronous: bool) -> None:
        self.chunk, self.seen, self.arrived = chunk, 0, anyio.Event()
        self.progress = self.async_progress if asynchronous else self.sync_progress

    def sync_progress(self, done: int, total: int | None) -> None:
        self.seen += 1
        if self.seen == self.chunk:
            self.arrived.set()

    async def async_progress(self, done: int, total: int | None) -> None:
        self.sync_progress(done, total)
        await anyio.lowlevel.checkpoint()

    async def reached(self) -> None:
        await self.arrived.wait()


def at_chunks(
    run: Callable[..., Awaitable[Any]], asynchronous: bool
) -> Iterator[tuple[Operation, Trigger]]:
    """Cancel after the 1st, 2nd, ... chunk; ``run(on_progress=...)`` starts the download."""
    for chunk in itertools.count(1):
        counter = ChunkCounter(chunk, asynchronous)
        yield functools.partial(run, on_progress=counter.progress), counter.reached


# --------------------------------------------------------------- operations


async def finished_job(rig: Rig) -> str:
    job_id: str = (await rig.client.music.create_song(PROMPT)).jobs[0]
    rig.fake.complete(job_id)
    return job_id


async def submit(rig: Rig) -> Operation:
    return functools.partial(rig.client.music.create_song, PROMPT)


async def wait_finished(rig: Rig) -> Operation:
    return functools.partial(rig.client.await_job, await finished_job(rig), poll_interval=FAST)


async def wait_running(rig: Rig) -> Operation:
    job_id = (await rig.client.music.create_song(PROMPT)).jobs[0]
    return functools.partial(rig.client.await_job, job_id, poll_interval=FAST)


async def wait_in_callback(rig: Rig) -> Operation:
    """A wait whose on_progress callback holds it (the callback is an await point too)."""
    job_id = (await rig.client.music.create_song(PROMPT)).jobs[0]

    async def on_progress(job: Any) -> None:
        await anyio.sleep(HOLD)

    return functools.partial(
        rig.client.await_job, job_id, poll_interval=FAST, on_progress=on_progress
    )


async def download(rig: Rig) -> Operation:
    return functools.partial(rig.client.music.download, await finished_job(rig), rig.folder)


async def download_not_ready(rig: Rig) -> Operation:
    """A download asked for while the job still runs: the link is retried every 0.5 s."""
    job_id = (await rig.client.music.create_song(PROMPT)).jobs[0]
    return functools.partial(rig.client.music.download, job_id, rig.folder)


async def download_file(rig: Rig) -> Operation:
    url = rig.fake.add_media("take.bin", MEDIA)
    return functools.partial(rig.client.download_file, url, rig.folder)


OPERATIONS: dict[str, Callable[[Rig], Awaitable[Operation]]] = {
    "submit": submit,
    "wait": wait_finished,
    "wait-running": wait_running,
    "wait-in-callback": wait_in_callback,
    "download": download,
    "download-not-ready": download_not_ready,
    "download_file": download_file,
}


@pytest.fixture
async def rig(fake: FakeTempolor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_protocol, "RETRY_BASE_SECONDS", 0.02)
    folder = tmp_path / "downloads"
    folder.mkdir()
    # The shared wait loop spaces its requests by max_poll_rate: a high rate keeps the fast
    # path within reach of a canceller that counts event-loop iterations.
    async with fake.client(busy_timeout=600, max_poll_rate=100_000) as client:
        client._http.busy_retry_seconds = BUSY_FLOOR
        yield Rig(fake, client, folder)


def assert_submitted_at_most_once(attempts: list[Attempt]) -> None:
    for attempt in attempts:
        posts = attempt.count("POST", "/music/song")
        assert attempt.submissions <= min(posts, 1), (posts, attempt.submissions)
    if not attempts[-1].cancelled and attempts[-1].error is None:
        assert attempts[-1].submissions == 1


def assert_downloaded_intact(rig: Rig, attempt: Attempt, expected: bytes) -> None:
    path = attempt.result
    assert rig.files() == [path.name]
    assert path.read_bytes() == expected


def expected_bytes(rig: Rig, operation: Any) -> bytes:
    """What the download made by ``operation`` (a partial of download or download_file)
    must hold."""
    if operation.func == rig.client.download_file:
        return MEDIA
    return rig.fake.media_bytes(operation.args[0], "mp3")


# ----------------------------------------------------------------- sweeps


@pytest.mark.parametrize("name", ["submit", "wait", "download", "download_file"])
async def test_cancelled_at_every_suspension_of_the_fast_path(rig, name):
    operation = await OPERATIONS[name](rig)
    attempts = await sweep(rig, at_iterations(operation))
    final = attempts[-1]
    assert not final.cancelled, "never completed"
    assert final.error is None, final.error
    assert len(attempts) >= 5  # it suspended at several points, each one cancelled once
    assert any(attempt.requests for attempt in attempts[:-1])  # some after a request was sent
    if name == "submit":
        assert_submitted_at_most_once(attempts)
    elif name == "wait":
        assert final.result.is_completed
    else:
        assert_downloaded_intact(rig, final, expected_bytes(rig, operation))
        # Some cancellations came while the temporary file was on disk.
        assert any(a.files_at_cancel for a in attempts[:-1])


@dataclass(frozen=True)
class Hold:
    """Which request to hold (with ``fault``, injected for good; none: held by the client's
    own sleeps), and how to sweep: deadlines 0, step, ... span. ``repeats``: the least number
    of held requests one cancelled attempt must have made (2: the sweep crossed a sleep or
    backoff between two). ``quiet``: how long no further request may follow a cancellation."""

    operation: str
    method: str
    path: str
    fault: dict[str, Any]
    repeats: int = 1
    quiet: float = 0.0
    span: float = HOLD * 1.5
    step: float = 0.008


HOLDS = [
    pytest.param(Hold("submit", "POST", "/music/song", {"delay": HOLD}), id="submit-unanswered"),
    pytest.param(
        Hold(
            "submit", "POST", "/music/song", {"status": 429, "delay": 0.01}, repeats=2, quiet=QUIET
        ),
        id="submit-busy-wait",
    ),
    pytest.param(
        # A running job's wait is served by the shared loop's scheduler requests.
        Hold("wait-running", "GET", "/scheduler/", {}, repeats=2, quiet=QUIET),
        id="wait-poll-sleep",
    ),
    pytest.param(
        Hold("wait-running", "GET", "/scheduler/", {"delay": HOLD}, quiet=QUIET),
        id="wait-poll-unanswered",
    ),
    pytest.param(
        Hold("wait-running", "GET", "/scheduler/", {"status": 503}, repeats=2, quiet=QUIET),
        id="wait-retry-backoff",
    ),
    pytest.param(
        Hold("wait-in-callback", "GET", "/music/user:*", {}, quiet=QUIET), id="wait-in-callback"
    ),
    pytest.param(
        Hold("download", "GET", "/music/download/*", {"delay": HOLD}), id="download-link-unanswered"
    ),
    pytest.param(
        Hold("download-not-ready", "GET", "/music/download/*", {}, repeats=2, span=0.6, step=0.06),
        id="download-link-not-ready-sleep",
    ),
    pytest.param(Hold("download", "GET", "/cdn/*", {"delay": HOLD}), id="download-unanswered"),
    pytest.param(
        Hold("download", "GET", "/cdn/*", {"status": 503}, repeats=2), id="download-retry-backoff"
    ),
    pytest.param(
        Hold("download", "GET", "/cdn/*", {"truncate": True}, repeats=2), id="download-cut-body"
    ),
    pytest.param(
        Hold("download_file", "GET", "/cdn/*", {"delay": HOLD}), id="download_file-unanswered"
    ),
    pytest.param(
        Hold("download_file", "GET", "/cdn/*", {"truncate": True}, repeats=2),
        id="download_file-cut-body",
    ),
]


@pytest.mark.parametrize("hold", HOLDS)
async def test_cancelled_while_held(rig, hold):
    operation = await OPERATIONS[hold.operation](rig)
    if hold.fault:
        rig.fake.inject(hold.method, hold.path, times=None, **hold.fault)
    attempts = await sweep(rig, at_seconds(operation, hold.span, hold.step), hold.quiet)
    cancelled = [attempt for attempt in attempts if attempt.cancelled]
    assert len(cancelled) >= 3
    held = [attempt.count(hold.method, hold.path) for attempt in cancelled]
    assert max(held) >= hold.repeats, held  # the sweep reached the held stage (and beyond)
    if hold.operation == "submit":
        assert_submitted_at_most_once(attempts)
    if hold.path == "/cdn/*" and "delay" in hold.fault:
        assert any(attempt.files_at_cancel for attempt in cancelled)  # a temporary file was open


@pytest.mark.fake(audio_seconds=120)  # an MP3 of about 2 MB: many chunks
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync-callback", "async-callback"])
@pytest.mark.parametrize("name", ["download", "download_file"])
async def test_cancelled_after_each_chunk(rig, name, asynchronous):
    run = await OPERATIONS[name](rig)
    attempts = await sweep(rig, at_chunks(run, asynchronous))
    final = attempts[-1]
    assert not final.cancelled, "never completed"
    assert len(attempts) > 3
    assert all(attempt.files_at_cancel for attempt in attempts[:-1])  # mid-body, every time
    assert_downloaded_intact(rig, final, expected_bytes(rig, run))


class BusyWaits(logging.Handler):
    """Fires once the client has logged ``count`` busy waits (each just before its sleep)."""

    def __init__(self, count: int) -> None:
        super().__init__(logging.WARNING)
        self.count, self.arrived = count, anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("POST /music/song failed (429 "):
            self.count -= 1
            if self.count == 0:
                self.arrived.set()


async def test_a_cancelled_busy_wait_sends_nothing_more(rig):
    rig.fake.inject("POST", "/music/song", status=429, times=None)
    waits, logger = BusyWaits(2), logging.getLogger("tempolor_async")
    logger.addHandler(waits)
    try:
        operation = functools.partial(rig.client.music.create_song, PROMPT)
        attempt = await rig.attempt(operation, waits.arrived.wait, quiet=BUSY_FLOOR * 10)
    finally:
        logger.removeHandler(waits)
    assert attempt.cancelled
    # Cancelled in the wait after the second 429, then silent for ten busy waits.
    assert attempt.count("POST", "/music/song") == 2
    assert attempt.submissions == 0


async def test_closing_the_simulator_ends_handlers_of_abandoned_requests():
    """After ``FakeTempolor.close()`` no task of its server may remain, even for a request
    the client gave up on while the simulator was holding it."""
    before = set(asyncio.all_tasks())
    async with FakeTempolor() as fake, fake.client() as client:
        fake.inject("GET", "/scheduler/", delay=1.0)
        with anyio.move_on_after(0.1) as scope:
            await client.scheduler.list()
        assert scope.cancelled_caught
    await anyio.sleep(0.01)
    left = [task for task in asyncio.all_tasks() - before if not task.done()]
    names = sorted(task_name(task) for task in left)
    for task in left:  # clean up before asserting, so that a failure leaks nothing further
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)
    assert names == []
