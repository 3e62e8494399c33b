"""The one wait loop of a client: where every wait (``await_job``, ``as_completed``) is
served.

The loop runs in a task the client owns (never in a caller's task, so that cancelling a
caller cannot end it for the others) and only while something needs it: a waiter, or a
generation queued at the gate for a slot. Each tick asks the scheduler once which jobs still
run (``GET scheduler/``, or ``GET scheduler/available`` while generations are queued, which
also refreshes the gate's slots) and fetches a job's own record only when it has left that
list, when the scheduler does not list it, or when a waiter's ``on_progress`` wants its
progress. Records and errors go to each waiter through its memory object stream; callbacks
(``CallbackReceiver``) wake the loop to confirm a job at once.

In a fleet one process holds the poller lease and reads the scheduler for all
(``scheduler/available``), publishing each listing with the accounts' slots; the others read
no scheduler: they take their view of the slots from it, confirm at once the jobs of their
waits that left it, serve their ticks from it, and ask the poller for a fresh read when
their view is due (they read for themselves only when no poller has been heard from for
HEARD_FRESH_SECONDS).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING

import anyio

from . import _protocol
from ._errors import APIStatusError, NotFoundError, ResponseDecodeError, TempolorError
from ._gate import FLEET_VIEW_SECONDS, REFUSALS, Gate
from ._models import AccountCapacity, Capacity, MusicJob, RunningJob
from ._polling import Delivery, RateLimiter, matched

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ._client import TempolorClient
    from ._coordination import Slots

logger = logging.getLogger("tempolor_async")

# Records fetched at once within one tick.
FETCH_CONCURRENCY = 16
# A waiter due within this share of its interval is served by a tick that comes first, so
# that waiters started at different moments settle on shared ticks.
DUE_SLACK = 0.25
# A waited job the scheduler keeps listing still has its own record read this often: a
# scheduler that lags behind the records must not hold a wait for ever.
LISTED_FETCH_SECONDS = 60.0
# In a fleet, the poller's published listing serves the other processes' ticks while it is
# at most this old (seconds); an older one (a slow or silent poller) is read afresh.
HEARD_FRESH_SECONDS = 15.0
# Seconds taken off the moment a published listing was read, for the clocks of two hosts.
HEARD_MARGIN = 0.5


# ------------------------------------------------------------------- waiters


class Waiter:
    """One registered wait: its jobs, its schedule, and the stream that feeds it."""

    def __init__(
        self,
        job_ids: Sequence[str],
        delays: Iterator[float],
        wants_progress: bool,
    ) -> None:
        self.job_ids = set(job_ids)
        self.delays = delays
        self.interval = next(delays)
        self.next_due = 0.0  # at once
        self.wants_progress = wants_progress
        self.started = time.monotonic()
        self._send: MemoryObjectSendStream[Delivery]
        self._receive: MemoryObjectReceiveStream[Delivery]
        self._send, self._receive = anyio.create_memory_object_stream[Delivery](math.inf)

    def deliver(self, job_id: str, item: MusicJob | BaseException) -> None:
        with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._send.send_nowait((job_id, item))

    def close(self) -> None:
        """No more deliveries: what was sent can still be received."""
        self._send.close()

    def closed(self) -> None:
        """The wait is over."""
        self._receive.close()

    async def receive(self) -> Delivery:
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            raise TempolorError("the client was closed while waiting for jobs") from None

    def receive_nowait(self) -> Delivery | None:
        try:
            return self._receive.receive_nowait()
        except anyio.WouldBlock:
            return None
        except anyio.EndOfStream:
            raise TempolorError("the client was closed while waiting for jobs") from None

    def served(self, tick: float) -> None:
        """A tick that started at ``tick`` looked at this waiter's jobs: the next is one
        interval of its schedule later."""
        self.next_due = tick + self.interval
        self.interval = next(self.delays)


# ------------------------------------------------------------------ the loop


class WaitLoop:
    """Per client: every registered wait, and the one loop that serves them all."""

    def __init__(self, client: TempolorClient, gate: Gate) -> None:
        self._client = client
        self.gate = gate
        self.limiter = RateLimiter(client.max_poll_rate)
        self._waiters: set[Waiter] = set()
        self._jobs: dict[str, set[Waiter]] = {}
        self._listed: set[str] = set()  # waited jobs the scheduler listed at the last tick
        self._scheduler_failing = False
        self._wake = anyio.Event()
        self._hints: set[str] = set()
        self._hinted = anyio.Event()
        self._current: anyio.CancelScope | None = None  # the loop that takes new work
        self._group: TaskGroup | None = None  # its task group, for record fetches
        self._fetching: set[str] = set()
        self._refetch: set[str] = set()  # hinted while their fetch was in flight
        self._fetched_at: dict[str, float] = {}  # waited job -> its record's last read
        self._fetch_limit = anyio.CapacityLimiter(FETCH_CONCURRENCY)
        self._hosts: dict[asyncio.Task[None], tuple[anyio.CancelScope, anyio.Event]] = {}
        self._closed = False
        self._heard: set[str] | None = None  # the fleet poller's last published listing
        self._heard_at = -math.inf  # when it arrived (monotonic)
        self._heard_started = -math.inf  # when it was read (monotonic, with a margin)

    @asynccontextmanager
    async def waiter(
        self, job_ids: Sequence[str], poll_interval: float | None, wants_progress: bool
    ) -> AsyncIterator[Waiter]:
        """Register a wait for the duration of the block."""
        if self._closed:
            raise TempolorError("the client is closed")
        waiter = Waiter(job_ids, self._delays(poll_interval), wants_progress)
        submitted = self.gate.submitted
        sent_at = [submitted[job_id][1] for job_id in waiter.job_ids if job_id in submitted]
        if not wants_progress and sent_at and len(sent_at) == len(waiter.job_ids):
            # This client sent these jobs: the answer to their generation was the first
            # look at them (they run), so the next comes one interval after it. (A wait
            # that reports progress has its first record at once.)
            waiter.served(max(sent_at))
        self._waiters.add(waiter)
        for job_id in waiter.job_ids:
            self._jobs.setdefault(job_id, set()).add(waiter)
            self._fetched_at.setdefault(job_id, waiter.started)
        self.ensure_loop()
        try:
            yield waiter
        finally:
            self._forget(waiter)
            waiter.closed()
            await self.stop_if_idle()

    def _delays(self, poll_interval: float | None) -> Iterator[float]:
        receiver = self._client.callbacks
        if receiver is None:
            return _protocol.poll_delays(poll_interval)
        # Callbacks do most of the waking; polling is the safety net, at least this often.
        every = receiver.callback_poll_interval
        return _protocol.poll_delays(every if poll_interval is None else min(poll_interval, every))

    def _forget(self, waiter: Waiter) -> None:
        if waiter not in self._waiters:
            return
        self._waiters.discard(waiter)
        for job_id in waiter.job_ids:
            self._drop_waiter_of(job_id, waiter)
        waiter.job_ids.clear()
        waiter.close()

    def _drop_waiter_of(self, job_id: str, waiter: Waiter) -> None:
        waiters = self._jobs.get(job_id)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._jobs[job_id]
                self._listed.discard(job_id)
                self._fetched_at.pop(job_id, None)

    def _deliver(self, job_id: str, item: MusicJob | BaseException, only: Iterable[Waiter]) -> None:
        for waiter in list(only):
            waiter.deliver(job_id, item)
            if isinstance(item, BaseException):
                self._forget(waiter)  # its wait ends with this error
            elif item.is_final:
                waiter.job_ids.discard(job_id)
                self._drop_waiter_of(job_id, waiter)

    def hint(self, job: MusicJob) -> None:
        """A callback said this job changed: confirm it at once if anything cares, that is
        if it claims the job ended (a wait, or a queued generation, needs that) or if a wait
        of the job reports progress. The confirming GET is the proof, never the callback."""
        self.hint_id(job.job_id or "", job.is_final)

    def hint_id(self, job_id: str, final: bool) -> None:
        """``hint`` for a callback another process of the fleet accepted."""
        waiters = self._jobs.get(job_id)
        if final:
            wanted = waiters is not None or (
                bool(self.gate.queue) and job_id in self.gate.submitted
            )
        else:
            wanted = waiters is not None and any(w.wants_progress for w in waiters)
        if wanted:
            self._hints.add(job_id)
            self._hinted.set()

    def heard_listing(self, job_ids: Iterable[str], read_at: float, slots: Slots) -> None:
        """The fleet's poller read the scheduler (at wall time ``read_at``): take the slots
        from it, confirm at once the waited jobs that left its list, and keep it for this
        process's ticks."""
        now = time.monotonic()
        listing = set(job_ids)
        before = self._heard or set()
        left = [
            job_id
            for job_id in self._jobs
            if job_id not in listing and (job_id in before or job_id in self._listed)
        ]
        self._heard = listing
        self._heard_at = now
        self._heard_started = now - max(0.0, time.time() - read_at) - HEARD_MARGIN
        capacity = Capacity(
            executing=self._heard_jobs(),
            available=[
                AccountCapacity(user_id=user_id, max_jobs=max_jobs, executing=executing)
                for user_id, (max_jobs, executing) in slots.items()
            ],
        )
        self.gate.apply_capacity(capacity, self._heard_started)
        for job_id in left:
            if job_id not in self._fetching:  # a fetch under way (a callback's) will tell
                self.hint_id(job_id, True)

    def _heard_jobs(self) -> list[RunningJob]:
        return [RunningJob(job_id=job_id) for job_id in self._heard or ()]

    async def _from_the_poller(self, started: float) -> set[str] | None:
        """In a fleet whose poller is another process: its last listing, if fresh enough;
        None: read the scheduler here. When the slots are due for a read (or wanted after a
        429), the poller is asked for one: its listing brings them."""
        if await self.gate.coordination.poller():
            return None
        if self._heard is None or started - self._heard_at > HEARD_FRESH_SECONDS:
            return None
        due = started - self._heard_at >= FLEET_VIEW_SECONDS
        if self.gate.refresh_now or (due and (self.gate.queue or self.gate.watching_leases())):
            self.gate.coordination.want_view()
        self.gate.view_served(started)
        # Jobs waited on since that read are presumed running: the next listing that lacks
        # them has them confirmed at once.
        read = self._heard_started + HEARD_MARGIN
        newer = {
            job_id
            for job_id, waiters in self._jobs.items()
            if min((w.started for w in waiters), default=-math.inf) > read
        }
        return self._heard | newer

    def ensure_loop(self) -> None:
        if self._current is None and not self._closed:
            scope, done = anyio.CancelScope(), anyio.Event()
            self._current = scope
            task = asyncio.get_running_loop().create_task(self._host(scope, done))
            self._hosts[task] = (scope, done)
            task.add_done_callback(self._hosts.pop)
        self._wake.set()

    def _idle(self) -> bool:
        if self.gate.queue or self.gate.watching_leases():
            return False
        return not any(waiter.job_ids for waiter in self._waiters)

    async def stop_if_idle(self) -> None:
        """When nothing is left to serve, end the loop and wait for it: a finished wait
        leaves no task of the client behind."""
        if not self._idle():
            return
        await self._stop()

    async def _host(self, scope: anyio.CancelScope, done: anyio.Event) -> None:
        try:
            with scope:
                async with anyio.create_task_group() as group:
                    self._group = group
                    try:
                        group.start_soon(self._confirm_hints)
                        await self._run(scope)
                        group.cancel_scope.cancel()
                    finally:
                        if self._group is group:
                            self._group = None
        except Exception as exc:  # a defect must end the waits, not leave them hanging
            logger.exception("the wait loop failed")
            error = exc if isinstance(exc, TempolorError) else TempolorError(f"wait loop: {exc!r}")
            for waiter in list(self._waiters):
                waiter.deliver(next(iter(waiter.job_ids), ""), error)
                self._forget(waiter)
            self.gate.fail_queue(error)
        finally:
            if self._current is scope:
                self._current = None
            if self._current is None:
                self.gate.coordination.stop_polling()  # another process may poll for the fleet
            done.set()

    async def _run(self, scope: anyio.CancelScope) -> None:
        while not self._idle():
            now = time.monotonic()
            due = self._next_tick()
            if due > now:
                self._wake = anyio.Event()
                with anyio.move_on_after(due - now):
                    await self._wake.wait()
                continue
            await self._tick()
        # Nothing left to serve: this loop ends, and the next wait starts another.
        if self._current is scope:
            self._current = None

    def _next_tick(self) -> float:
        due = min((waiter.next_due for waiter in self._waiters if waiter.job_ids), default=math.inf)
        return min(due, self.gate.next_read())

    async def _tick(self) -> None:
        started = time.monotonic()
        due = {w for w in self._waiters if w.next_due <= started + DUE_SLACK * w.interval}
        watched = {
            job_id
            for job_id, waiters in self._jobs.items()
            if any(w.wants_progress and w in due for w in waiters)
        }
        running: set[str] | None = None
        # The scheduler's list spares record fetches; when every record is wanted anyway
        # (progress for every job) and no generation waits for a slot, it is not needed.
        needs_slots = self.gate.queue or self.gate.refresh_now or self.gate.watching_leases()
        if len(watched) < len(self._jobs) or needs_slots:
            running = await self._from_the_poller(started)
            if running is None:
                running = await self._read_scheduler(started)
        wanted: list[str] = []
        for job_id, waiters in self._jobs.items():
            if job_id in watched:
                wanted.append(job_id)
            elif running is not None and job_id in running:
                self._listed.add(job_id)
                if started - self._fetched_at.get(job_id, started) >= LISTED_FETCH_SECONDS:
                    wanted.append(job_id)
            elif job_id in self._listed or not due.isdisjoint(waiters):
                self._listed.discard(job_id)
                wanted.append(job_id)
        for waiter in due:
            waiter.served(started)
        self._fetch_soon(wanted)

    async def _read_scheduler(self, started: float) -> set[str] | None:
        """The ids the scheduler lists as running (refreshing the slots), or None if it
        could not be read: then every due job is polled directly."""
        await self.limiter.acquire()
        # The fleet's poller reads the slots for every process of the fleet.
        coordination = self.gate.coordination
        use_available = bool(self.gate.queue) or self.gate.refresh_now or coordination.polling
        read_at = time.time()
        try:
            if use_available:
                capacity = await self._client.scheduler.available()
                jobs = capacity.executing or []
                self.gate.apply_capacity(capacity, started)
            else:
                jobs = await self._client.scheduler.list()
                self.gate.apply_running(jobs, started)
        except TempolorError as exc:
            if use_available:
                self.gate.read_failed()
            if isinstance(exc, APIStatusError) and exc.status in REFUSALS:
                # The token itself is refused: every wait and queued generation ends with it.
                for job_id, waiters in list(self._jobs.items()):
                    self._deliver(job_id, exc, waiters)
                self.gate.fail_queue(exc)
                return None
            if not self._scheduler_failing:
                logger.warning("scheduler unavailable (%s); polling jobs directly", exc)
            self._scheduler_failing = True
            return None
        self._scheduler_failing = False
        running = {job.job_id for job in jobs if job.job_id}
        if use_available and coordination.polling:
            slots = {
                entry.user_id: (entry.max_jobs, entry.executing)
                for entry in capacity.available or []
                if entry.user_id is not None
            }
            coordination.publish_listing(sorted(running), read_at, slots)
        return running

    def _fetch_soon(self, job_ids: Iterable[str]) -> None:
        """Fetch these records in the loop's task group, each on its own: a slow answer
        holds up neither the ticks nor the other jobs."""
        group = self._group
        if group is None:
            return
        for job_id in job_ids:
            if job_id not in self._fetching:
                self._fetching.add(job_id)
                group.start_soon(self._fetch_limited, job_id)

    async def _fetch_limited(self, job_id: str) -> None:
        try:
            async with self._fetch_limit:
                await self._fetch(job_id)
                # A callback that came while this fetch was in flight may know more than
                # its answer: read the record once more.
                while job_id in self._refetch:
                    self._refetch.discard(job_id)
                    await self._fetch(job_id)
        finally:
            self._fetching.discard(job_id)
            self._refetch.discard(job_id)

    async def _fetch(self, job_id: str) -> None:
        """Fetch one record and hand it (or the error that ends their waits) to every waiter
        of that job. Never raises a TempolorError: each waiter decides for itself."""
        if job_id not in self._jobs and job_id not in self.gate.submitted:
            return
        await self.limiter.acquire()
        if job_id in self._fetched_at:
            self._fetched_at[job_id] = time.monotonic()
        try:
            job = matched(job_id, await self._client.music.get(job_id), f"/music/{job_id}")
        except NotFoundError as exc:
            grace = _protocol.NOT_FOUND_GRACE_SECONDS
            now = time.monotonic()
            late = [w for w in self._jobs.get(job_id, ()) if now - w.started > grace]
            if late:
                self._deliver(job_id, exc, late)
            else:
                logger.debug("job %s not visible yet; polling on", job_id)
            return
        except TempolorError as exc:
            if _protocol.transient(exc):
                logger.warning("polling %s failed (%s); trying again next round", job_id, exc)
            elif not isinstance(exc, ResponseDecodeError) or job_id in self._jobs:
                self._deliver(job_id, exc, self._jobs.get(job_id, ()))
            return
        if job.is_final:
            self.gate.job_ended(job_id)
        self._deliver(job_id, job, self._jobs.get(job_id, ()))

    async def _confirm_hints(self) -> None:
        """Callbacks are hints: each hinted job is confirmed by its own authenticated GET."""
        while True:
            await self._hinted.wait()
            self._hinted = anyio.Event()
            hinted, self._hints = list(self._hints), set()
            self._refetch.update(job_id for job_id in hinted if job_id in self._fetching)
            self._fetch_soon(hinted)

    async def _stop(self) -> None:
        """Cancel the loop's tasks and wait until they have ended."""
        self._current = None
        hosts = list(self._hosts.values())
        for scope, _ in hosts:
            scope.cancel()
        with anyio.CancelScope(shield=True):
            for _, done in hosts:
                await done.wait()

    async def aclose(self) -> None:
        """End the loop and every wait and queued generation; no task is left behind."""
        self._closed = True
        closed = TempolorError("the client was closed while waiting for jobs")
        for waiter in list(self._waiters):
            self._forget(waiter)
        self.gate.fail_queue(closed)
        await self._stop()
