"""Waiting for jobs: await_job polls one job until its status is final.

The wait runs in the caller's task (no task of its own), so cancelling the caller stops it
at once and leaves nothing behind; the deadline is one anyio scope around the whole wait.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable

import anyio

from . import _protocol
from ._errors import JobFailedError, JobTimeoutError, NotFoundError, TempolorError
from ._models import MusicJob

logger = logging.getLogger("tempolor_async")

JobCallback = Callable[[MusicJob], Awaitable[None] | None]
FetchJob = Callable[[str], Awaitable[MusicJob]]


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
