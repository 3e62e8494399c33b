"""Waiting for jobs.

``await_job`` polls one job until its status is final. ``as_completed`` waits for many with
one shared loop: ``GET scheduler/`` lists every running job in one response, so a job's own
record is fetched only when it leaves that list (or when ``on_progress`` wants its progress);
jobs the scheduler does not list are polled directly. Waiting for N jobs so costs about one
request per job plus one per tick, not one per job per tick.

Both run in the caller's task. The shared loop starts a task group only inside a tick, to
fetch records concurrently, and finishes it before yielding; so cancelling the caller, or
leaving the iteration, stops everything at once and leaves nothing behind.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

import anyio

from . import _protocol
from ._errors import JobFailedError, JobTimeoutError, NotFoundError, TempolorError
from ._models import MusicJob, RunningJob

logger = logging.getLogger("tempolor_async")

JobCallback = Callable[[MusicJob], Awaitable[None] | None]
FetchJob = Callable[[str], Awaitable[MusicJob]]
ListRunning = Callable[[], Awaitable[list[RunningJob]]]

# Records fetched at once within one tick of the shared loop.
FETCH_CONCURRENCY = 16


async def notify(callback: JobCallback | None, job: MusicJob) -> None:
    """Call a sync or async ``on_progress`` callback."""
    if callback is None:
        return
    result = callback(job)
    if inspect.isawaitable(result):
        await result


class _Watch:
    """What one wait has seen so far."""

    def __init__(self) -> None:
        self.last: MusicJob | None = None
        self.reported: tuple[object, object] | None = None

    async def see(self, job: MusicJob, on_progress: JobCallback | None) -> None:
        self.last = job
        state = (job.status, job.progress)
        if on_progress is not None and state != self.reported:
            self.reported = state
            await notify(on_progress, job)


async def await_job(
    fetch: FetchJob,
    job_id: str,
    *,
    timeout: float | None,
    poll_interval: float | None,
    on_progress: JobCallback | None,
    raise_on_failure: bool,
) -> MusicJob:
    watch = _Watch()
    with anyio.move_on_after(math.inf if timeout is None else timeout) as deadline:
        job = await _poll(fetch, job_id, watch, poll_interval, on_progress)
    if deadline.cancelled_caught:
        raise JobTimeoutError([job_id], timeout or 0.0, last=watch.last)
    if job.is_failed and raise_on_failure:
        raise JobFailedError(job)
    return job


async def _poll(
    fetch: FetchJob,
    job_id: str,
    watch: _Watch,
    poll_interval: float | None,
    on_progress: JobCallback | None,
) -> MusicJob:
    started = time.monotonic()
    delays = _protocol.poll_delays(poll_interval)
    failures = 0
    while True:
        try:
            job = await fetch(job_id)
        except NotFoundError:
            if time.monotonic() - started > _protocol.NOT_FOUND_GRACE_SECONDS:
                raise
            logger.debug("job %s not visible yet; polling on", job_id)
        except TempolorError as exc:
            if not _protocol.transient(exc):
                raise
            failures += 1
            delay = _protocol.retry_delay(failures)
            logger.warning("polling %s failed (%s); retrying in %.1f s", job_id, exc, delay)
            await anyio.sleep(delay)
            continue
        else:
            failures = 0
            await watch.see(job, on_progress)
            if job.is_final:
                return job
        await anyio.sleep(next(delays))


class RateLimiter:
    """At most ``rate`` acquisitions per second, spaced evenly."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = 0.0

    async def acquire(self) -> None:
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + self._interval
        if start > now:
            await anyio.sleep(start - now)


class _SharedWait:
    """The state of one ``as_completed`` wait."""

    def __init__(
        self,
        fetch: FetchJob,
        list_running: ListRunning,
        job_ids: Sequence[str],
        on_progress: JobCallback | None,
        limiter: RateLimiter,
    ) -> None:
        self.fetch = fetch
        self.list_running = list_running
        self.pending = dict.fromkeys(job_ids)  # ordered set
        self.watches = {job_id: _Watch() for job_id in self.pending}
        self.on_progress = on_progress
        self.limiter = limiter
        self.started = time.monotonic()

    async def tick(self) -> list[MusicJob]:
        """One round: ask the scheduler, fetch the records that need fetching, and return
        the jobs found final (removed from ``pending``)."""
        await self.limiter.acquire()
        try:
            running = {job.job_id for job in await self.list_running()}
        except TempolorError as exc:
            if not _protocol.transient(exc):
                raise
            logger.warning("scheduler unavailable (%s); polling every job directly", exc)
            running = set()
        wanted = [
            job_id
            for job_id in self.pending
            if job_id not in running or self.on_progress is not None
        ]
        finished: list[MusicJob] = []
        if wanted:
            limit = anyio.CapacityLimiter(FETCH_CONCURRENCY)
            async with anyio.create_task_group() as group:
                for job_id in wanted:
                    group.start_soon(self._check, job_id, limit, finished)
        position = {job_id: index for index, job_id in enumerate(self.pending)}
        finished.sort(key=lambda job: position[job.job_id or ""])
        for job in finished:
            self.pending.pop(job.job_id or "", None)
        return finished

    async def _check(
        self, job_id: str, limit: anyio.CapacityLimiter, finished: list[MusicJob]
    ) -> None:
        async with limit:
            await self.limiter.acquire()
            try:
                job = await self.fetch(job_id)
            except NotFoundError:
                if time.monotonic() - self.started > _protocol.NOT_FOUND_GRACE_SECONDS:
                    raise
                return
            except TempolorError as exc:
                if not _protocol.transient(exc):
                    raise
                logger.warning("polling %s failed (%s); trying again next round", job_id, exc)
                return
        await self.watches[job_id].see(job, self.on_progress)
        if job.is_final:
            finished.append(job)

    def timeout_error(self, timeout: float) -> JobTimeoutError:
        unfinished = list(self.pending)
        last = self.watches[unfinished[0]].last if unfinished else None
        return JobTimeoutError(unfinished, timeout, last=last)


async def as_completed(
    fetch: FetchJob,
    list_running: ListRunning,
    job_ids: Sequence[str],
    *,
    timeout: float | None,
    poll_interval: float | None,
    on_progress: JobCallback | None,
    limiter: RateLimiter,
) -> AsyncGenerator[MusicJob, None]:
    """Yield each job's final record as soon as it is seen; see the module docstring."""
    wait = _SharedWait(fetch, list_running, job_ids, on_progress, limiter)
    deadline = math.inf if timeout is None else time.monotonic() + timeout
    delays = _protocol.poll_delays(poll_interval)
    while wait.pending:
        tick_started = time.monotonic()
        # Scopes end before each yield: an async generator must not yield inside one.
        with anyio.move_on_after(deadline - tick_started) as scope:
            finished = await wait.tick()
        if scope.cancelled_caught:
            raise wait.timeout_error(timeout or 0.0)
        for job in finished:
            yield job
        if not wait.pending:
            return
        # Rounds start at the poll interval however long a round took (not a round's
        # length plus the interval), so a job is seen at most about one interval late.
        pause = next(delays) - (time.monotonic() - tick_started)
        with anyio.move_on_after(deadline - time.monotonic()) as scope:
            await anyio.sleep(max(0.0, pause))
        if scope.cancelled_caught:
            raise wait.timeout_error(timeout or 0.0)
