"""Waiting for jobs: the waiter's side of the client's shared poll loop.

Every ``await_job``, ``as_completed`` and ``await_jobs`` of a client registers with the
client's engine (``_engine.Engine``), which runs one poll loop for all of them and hands each
record it sees, or the error that ends a wait, to every waiter of that job through the
waiter's own memory object stream. What belongs to one wait (its deadline, its
``on_progress``, ``raise_on_failure``) runs here, in the waiter's own task: a slow or failing
callback ends that wait alone, and cancelling a waiter disturbs no other.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import anyio
import attrs

from ._errors import JobFailedError, JobTimeoutError, ResponseDecodeError
from ._models import MusicJob

if TYPE_CHECKING:
    from ._engine import Engine
    from ._waits import Waiter

JobCallback = Callable[[MusicJob], Awaitable[None] | None]
# What the loop hands a waiter: a record of one of its jobs, or the error that ends its wait.
Delivery = tuple[str, MusicJob | BaseException]


async def notify(callback: Callable[[MusicJob], object] | None, job: MusicJob) -> None:
    """Call a sync or async callback with a job record."""
    if callback is None:
        return
    result = callback(job)
    if inspect.isawaitable(result):
        await result


def matched(job_id: str, job: MusicJob, path: str) -> MusicJob:
    """The record fetched for ``job_id``, as that job's: a record with no ``job_id`` is the
    asked-for job's (filled in); one naming another job is a broken answer."""
    if job.job_id is None:
        return attrs.evolve(job, job_id=job_id)
    if job.job_id != job_id:
        raise ResponseDecodeError(
            f"asked for {job_id} but the record is for {job.job_id}", method="GET", path=path
        )
    return job


class _Watch:
    """What one wait has seen of one job."""

    __slots__ = ("last", "reported")

    def __init__(self) -> None:
        self.last: MusicJob | None = None
        self.reported: tuple[object, object] | None = None

    async def see(self, job: MusicJob, on_progress: JobCallback | None) -> None:
        self.last = job
        state = (job.status, job.progress)
        if on_progress is not None and state != self.reported:
            self.reported = state
            await notify(on_progress, job)


class _Wait:
    """One caller's wait for some jobs, fed by the engine."""

    def __init__(
        self,
        engine: Engine,
        job_ids: Sequence[str],
        timeout: float | None,
        on_progress: JobCallback | None,
    ) -> None:
        self.engine = engine
        self.pending = dict.fromkeys(job_ids)  # ordered set
        self.watches = {job_id: _Watch() for job_id in self.pending}
        self.on_progress = on_progress
        self.timeout = timeout
        self.deadline = math.inf if timeout is None else time.monotonic() + timeout

    async def _handle(self, delivery: Delivery, finished: list[MusicJob]) -> None:
        job_id, item = delivery
        if isinstance(item, BaseException):
            raise item
        if job_id not in self.pending:
            return
        if item.is_final:
            # Seen final now: the result, even if on_progress runs past the deadline.
            del self.pending[job_id]
            finished.append(item)
        await self.watches[job_id].see(item, self.on_progress)

    async def next_finished(self, waiter: Waiter) -> list[MusicJob]:
        """The jobs seen final next (at least one), or JobTimeoutError at the deadline.

        No scope is open when this returns, so an async generator may yield the result."""
        finished: list[MusicJob] = []
        with anyio.move_on_after(self.deadline - time.monotonic()):
            while not finished:
                await self._handle(await waiter.receive(), finished)
                # Take what else has arrived meanwhile, without waiting.
                while (delivery := waiter.receive_nowait()) is not None:
                    await self._handle(delivery, finished)
        if not finished:
            # The deadline: a final record already handed over still counts as seen.
            while (delivery := waiter.receive_nowait()) is not None:
                await self._handle(delivery, finished)
        if not finished:
            raise self.timeout_error()
        return finished

    def timeout_error(self) -> JobTimeoutError:
        unfinished = list(self.pending)
        last = self.watches[unfinished[0]].last if unfinished else None
        return JobTimeoutError(unfinished, self.timeout or 0.0, last=last)


async def await_job(
    engine: Engine,
    job_id: str,
    *,
    timeout: float | None,
    poll_interval: float | None,
    on_progress: JobCallback | None,
    raise_on_failure: bool,
) -> MusicJob:
    """Wait for one job through the client's shared loop; see ``TempolorClient.await_job``."""
    wait = _Wait(engine, [job_id], timeout, on_progress)
    async with engine.waiter([job_id], poll_interval, on_progress is not None) as waiter:
        (job,) = await wait.next_finished(waiter)
    if job.is_failed and raise_on_failure:
        raise JobFailedError(job)
    return job


async def as_completed(
    engine: Engine,
    job_ids: Sequence[str],
    *,
    timeout: float | None,
    poll_interval: float | None,
    on_progress: JobCallback | None,
) -> AsyncGenerator[MusicJob, None]:
    """Yield each job's final record as soon as it is seen; see ``TempolorClient.as_completed``."""
    if not job_ids:
        return
    wait = _Wait(engine, job_ids, timeout, on_progress)
    async with engine.waiter(job_ids, poll_interval, on_progress is not None) as waiter:
        while wait.pending:
            for job in await wait.next_finished(waiter):
                yield job


class RateLimiter:
    """At most ``rate`` acquisitions per second, spaced evenly, first come first served.

    An acquirer cancelled while it waits gives its slot back when nobody queued behind it,
    so that cancelled waits leave no growing gap."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = 0.0

    async def acquire(self) -> None:
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + self._interval
        if start <= now:
            return
        try:
            await anyio.sleep(start - now)
        except BaseException:
            if self._next == start + self._interval:
                self._next = start
            raise


__all__ = [
    "Delivery",
    "JobCallback",
    "RateLimiter",
    "as_completed",
    "await_job",
    "matched",
    "notify",
]
