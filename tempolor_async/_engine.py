"""The client's engine: its view of every account's slots, the capacity gate in front of
generations, and the one poll loop that serves every wait of the client.

The loop runs in a task the client owns (never in a caller's task, so that cancelling a
caller cannot end it for the others) and only while something needs it: a waiter, or a
generation queued for a slot. Each tick asks the scheduler once which jobs still run
(``GET scheduler/``, or ``GET scheduler/available`` while generations are queued, which also
refreshes the slots) and fetches a job's own record only when it has left that list, when
the scheduler does not list it, or when a waiter's ``on_progress`` wants its progress.
Records and errors go to each waiter through its memory object stream; callbacks
(``CallbackReceiver``) wake the loop to confirm a job at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any

import anyio

from . import _protocol
from ._errors import (
    APIConnectionError,
    APIStatusError,
    NotFoundError,
    RateLimitError,
    ResponseDecodeError,
    TempolorError,
)
from ._models import AccountCapacity, Capacity, MusicJob, RunningJob, Submission
from ._polling import Delivery, RateLimiter, matched
from ._protocol import ApiRequest, Kind

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ._client import TempolorClient

logger = logging.getLogger("tempolor_async")

# Records fetched at once within one tick.
FETCH_CONCURRENCY = 16
# A waiter due within this share of its interval is served by a tick that comes first, so
# that waiters started at different moments settle on shared ticks.
DUE_SLACK = 0.25
# How often the slots are re-read while generations wait for one: a share of the job
# duration seen so far, within these bounds (1 s until a job has been seen to end).
GATE_POLL_SHARE = 1 / 15
GATE_POLL_MIN = 0.2
GATE_POLL_MAX = 5.0
GATE_POLL_FIRST = 1.0
# After the view could not be read, generations are sent without it for this long.
VIEW_RETRY_SECONDS = 30.0
# Statuses of a generation that set its account aside (section 12).
REFUSALS = (401, 402, 403)
# Awaited right before each generation POST is sent (after its slot was granted), by the
# task that sends it: a batch commits its intent there, so an item still queued for a slot
# is never recorded as possibly sent. It may raise to call the send off.
BEFORE_SEND: contextvars.ContextVar[Callable[[], Awaitable[None]] | None] = contextvars.ContextVar(
    "tempolor_before_send", default=None
)
# Job ids name their account: user:<n>-tempolor:<user_id>-job:<itemId>.
_ACCOUNT_OF_JOB = re.compile(r"-tempolor:(?P<user_id>.+?)-job:")


def account_of(job: RunningJob | str) -> str | None:
    """The account a job runs on: its ``user_id``, else the one its id names."""
    if isinstance(job, RunningJob):
        if job.user_id:
            return job.user_id
        job = job.job_id or ""
    found = _ACCOUNT_OF_JOB.search(job)
    return found["user_id"] if found else None


# ---------------------------------------------------------------- the slot view


class _Account:
    """What the client knows of one account's slots."""

    __slots__ = ("executing", "max_jobs", "other", "refusal", "reserved", "set_aside_until")

    def __init__(self, max_jobs: int | None) -> None:
        self.max_jobs = max_jobs
        self.executing: set[str] = set()  # job ids running on it
        self.other = 0  # running jobs the scheduler counted but did not name
        self.reserved = 0  # jobs of generations being sent now
        self.set_aside_until = 0.0
        self.refusal: APIStatusError | None = None

    def busy(self) -> int:
        return len(self.executing) + self.other + self.reserved

    def free(self, max_jobs: int | None = None) -> int:
        """Free slots; unknown ``max_jobs`` counts as one free slot while nothing runs."""
        limit = max_jobs or self.max_jobs
        if limit is None:
            return 1 if self.busy() == 0 else 0
        return limit - self.busy()


class _Ticket:
    """A generation waiting for a slot: granted when ``account`` is set."""

    __slots__ = ("account", "error", "excluded", "granted", "max_jobs", "named")

    def __init__(self, named: str | None, max_jobs: int | None, excluded: set[str]) -> None:
        self.named = named
        self.max_jobs = max_jobs
        self.excluded = excluded
        self.account: str | None = None
        self.error: BaseException | None = None  # why it will get no slot
        self.granted = anyio.Event()


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


# -------------------------------------------------------------------- engine


class Engine:
    """Per client: account slots, the capacity gate and the shared poll loop."""

    def __init__(self, client: TempolorClient, *, capacity_aware: bool, cooldown: float) -> None:
        self._client = client
        self.capacity_aware = capacity_aware
        self.cooldown = cooldown
        self.limiter = RateLimiter(client.max_poll_rate)
        # Waits.
        self._waiters: set[Waiter] = set()
        self._jobs: dict[str, set[Waiter]] = {}
        self._listed: set[str] = set()  # waited jobs the scheduler listed at the last tick
        self._scheduler_failing = False
        # Slots.
        self._accounts: dict[str, _Account] = {}
        self._view_read = False
        self._view_failed_at = -math.inf
        self._view_lock = anyio.Lock()
        self._snapshot_at = -math.inf
        self._refresh_now = False
        self._slots_stale = False  # see reread_slots_before_next_send
        self._queue: list[_Ticket] = []
        self._submitted: dict[str, tuple[str, float]] = {}  # job id -> (account, when)
        self._ended: dict[str, float] = {}  # our jobs seen to end -> when
        self._typical_duration: float | None = None
        # The loop.
        self._wake = anyio.Event()
        self._hints: set[str] = set()
        self._hinted = anyio.Event()
        self._current: anyio.CancelScope | None = None  # the loop that takes new work
        self._group: TaskGroup | None = None  # its task group, for record fetches
        self._fetching: set[str] = set()
        self._fetch_limit = anyio.CapacityLimiter(FETCH_CONCURRENCY)
        self._hosts: dict[asyncio.Task[None], tuple[anyio.CancelScope, anyio.Event]] = {}
        self._closed = False

    # --------------------------------------------------------------- waiting

    @asynccontextmanager
    async def waiter(
        self, job_ids: Sequence[str], poll_interval: float | None, wants_progress: bool
    ) -> AsyncIterator[Waiter]:
        """Register a wait for the duration of the block."""
        if self._closed:
            raise TempolorError("the client is closed")
        waiter = Waiter(job_ids, self._delays(poll_interval), wants_progress)
        self._waiters.add(waiter)
        for job_id in waiter.job_ids:
            self._jobs.setdefault(job_id, set()).add(waiter)
        self._ensure_loop()
        try:
            yield waiter
        finally:
            self._forget(waiter)
            waiter.closed()
            await self._stop_if_idle()

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
        job_id = job.job_id or ""
        waiters = self._jobs.get(job_id)
        if job.is_final:
            wanted = waiters is not None or (bool(self._queue) and job_id in self._submitted)
        else:
            wanted = waiters is not None and any(w.wants_progress for w in waiters)
        if wanted:
            self._hints.add(job_id)
            self._hinted.set()

    # ------------------------------------------------------------- the loop

    def _ensure_loop(self) -> None:
        if self._current is None and not self._closed:
            scope, done = anyio.CancelScope(), anyio.Event()
            self._current = scope
            task = asyncio.get_running_loop().create_task(self._host(scope, done))
            self._hosts[task] = (scope, done)
            task.add_done_callback(self._hosts.pop)
        self._wake.set()

    def _idle(self) -> bool:
        return not self._queue and not any(waiter.job_ids for waiter in self._waiters)

    async def _stop_if_idle(self) -> None:
        """When nothing is left to serve, end the loop and wait for it: a finished wait
        leaves no task of the client behind."""
        if not self._idle():
            return
        self._current = None
        hosts = list(self._hosts.values())
        for scope, _ in hosts:
            scope.cancel()
        with anyio.CancelScope(shield=True):
            for _, done in hosts:
                await done.wait()

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
            self._fail_queue(error)
        finally:
            if self._current is scope:
                self._current = None
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
        if self._queue:
            due = min(
                due, -math.inf if self._refresh_now else self._snapshot_at + self._gate_poll()
            )
        return due

    def _gate_poll(self) -> float:
        if self._typical_duration is None:
            return GATE_POLL_FIRST
        return min(GATE_POLL_MAX, max(GATE_POLL_MIN, self._typical_duration * GATE_POLL_SHARE))

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
        if len(watched) < len(self._jobs) or self._queue or self._refresh_now:
            running = await self._read_scheduler(started)
        wanted: list[str] = []
        for job_id, waiters in self._jobs.items():
            if job_id in watched:
                wanted.append(job_id)
            elif running is not None and job_id in running:
                self._listed.add(job_id)
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
        use_available = bool(self._queue) or self._refresh_now
        try:
            if use_available:
                capacity = await self._client.scheduler.available()
                jobs = capacity.executing or []
                self._apply_capacity(capacity, started)
            else:
                jobs = await self._client.scheduler.list()
                self._apply_running(jobs, started)
        except TempolorError as exc:
            if use_available:
                self._snapshot_at = time.monotonic()
                self._refresh_now = False
            if isinstance(exc, APIStatusError) and exc.status in REFUSALS:
                # The token itself is refused: every wait and queued generation ends with it.
                for job_id, waiters in list(self._jobs.items()):
                    self._deliver(job_id, exc, waiters)
                self._fail_queue(exc)
                return None
            if not self._scheduler_failing:
                logger.warning("scheduler unavailable (%s); polling jobs directly", exc)
            self._scheduler_failing = True
            return None
        self._scheduler_failing = False
        return {job.job_id for job in jobs if job.job_id}

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
        finally:
            self._fetching.discard(job_id)

    async def _fetch(self, job_id: str) -> None:
        """Fetch one record and hand it (or the error that ends their waits) to every waiter
        of that job. Never raises a TempolorError: each waiter decides for itself."""
        if job_id not in self._jobs and job_id not in self._submitted:
            return
        await self.limiter.acquire()
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
            self._job_ended(job_id)
        self._deliver(job_id, job, self._jobs.get(job_id, ()))

    async def _confirm_hints(self) -> None:
        """Callbacks are hints: each hinted job is confirmed by its own authenticated GET."""
        while True:
            await self._hinted.wait()
            self._hinted = anyio.Event()
            hinted, self._hints = list(self._hints), set()
            self._fetch_soon(hinted)

    # ---------------------------------------------------------- the slot view

    async def capacity(self) -> dict[str, AccountCapacity]:
        """The current view, read from the service only when there is none yet."""
        if not self._view_read:
            await self._read_view(strict=True)
        view: dict[str, AccountCapacity] = {}
        for user_id, account in self._accounts.items():
            executing = account.busy()
            available = None if account.max_jobs is None else max(0, account.max_jobs - executing)
            view[user_id] = AccountCapacity(
                user_id=user_id,
                max_jobs=account.max_jobs,
                executing=executing,
                available=available,
            )
        return view

    async def _read_view(self, *, strict: bool = False) -> bool:
        """Read the accounts (for their order and maxJobs) and the slots. False if it could
        not be read (then generations go out without the gate for a while)."""
        async with self._view_lock:
            if self._view_read:
                return True
            if not strict and time.monotonic() - self._view_failed_at < VIEW_RETRY_SECONDS:
                return False
            started = time.monotonic()
            try:
                accounts = await self._client.accounts.list()
                capacity = await self._client.scheduler.available()
            except TempolorError as exc:
                if strict or isinstance(exc, APIConnectionError):
                    raise  # the service is out of reach: the generation would be too
                self._view_failed_at = time.monotonic()
                logger.warning(
                    "cannot read the accounts' slots (%s); sending generations without them", exc
                )
                return False
            for user_id, account in accounts.items():
                self._accounts.setdefault(user_id, _Account(account.max_jobs))
            self._apply_capacity(capacity, started)
            self._view_read = True
            return True

    def reread_slots_before_next_send(self) -> None:
        """A generation's answer was lost: its jobs may hold slots this view cannot see.
        Mark the view stale, so the gate re-reads ``scheduler/available`` before its next
        send (instead of meeting a 429 for its own jobs)."""
        self._slots_stale = True

    async def _refresh_slots(self) -> None:
        """Read the slots again now (after a 429: the view missed something)."""
        started = time.monotonic()
        try:
            capacity = await self._client.scheduler.available()
        except TempolorError as exc:
            logger.debug("cannot read the slots (%s)", exc)
            return
        self._apply_capacity(capacity, started)

    def _apply_capacity(self, capacity: Capacity, started: float) -> None:
        for entry in capacity.available or []:
            if entry.user_id is None:
                continue
            account = self._accounts.get(entry.user_id)
            if account is None:
                account = self._accounts[entry.user_id] = _Account(entry.max_jobs)
            if entry.max_jobs is not None:
                account.max_jobs = entry.max_jobs
        executing = capacity.executing or []
        self._apply_running(executing, started)
        named: dict[str, int] = {}
        for job in executing:
            owner = account_of(job)
            if owner is not None:
                named[owner] = named.get(owner, 0) + 1
        for entry in capacity.available or []:
            if entry.user_id in self._accounts and entry.executing is not None:
                counted = named.get(entry.user_id, 0)
                self._accounts[entry.user_id].other = max(0, entry.executing - counted)
        self._snapshot_at = time.monotonic()
        self._refresh_now = False

    def _apply_running(self, jobs: Sequence[RunningJob], started: float) -> None:
        """The scheduler's list of running jobs, read from ``started`` on: our own
        submissions since then, and jobs seen to end since then, outrank it."""
        running: dict[str, set[str]] = {user_id: set() for user_id in self._accounts}
        for job in jobs:
            owner = account_of(job)
            if owner in running and job.job_id and self._ended.get(job.job_id, 0) < started:
                running[owner].add(job.job_id)
        for job_id, (owner, when) in self._submitted.items():
            if when >= started and owner in running and job_id not in self._ended:
                running[owner].add(job_id)
        for user_id, account in self._accounts.items():
            for job_id in account.executing - running[user_id]:
                self._job_ended(job_id)
            account.executing = running[user_id]
        self._prune(started)
        self._dispatch()

    def _job_ended(self, job_id: str) -> None:
        submitted = self._submitted.pop(job_id, None)
        if submitted is None:
            for account in self._accounts.values():
                account.executing.discard(job_id)
            return
        owner, when = submitted
        now = time.monotonic()
        self._ended[job_id] = now
        duration = now - when
        typical = self._typical_duration
        self._typical_duration = duration if typical is None else 0.7 * typical + 0.3 * duration
        if owner in self._accounts:
            self._accounts[owner].executing.discard(job_id)
        self._dispatch()

    def _prune(self, now: float) -> None:
        horizon = now - 600.0
        if len(self._ended) > 256:
            self._ended = {job_id: at for job_id, at in self._ended.items() if at > horizon}

    # -------------------------------------------------------------- the gate

    def _dispatch(self) -> None:
        """Grant slots to queued generations, first come first served per account."""
        if not self._queue:
            return
        blocked: set[str] = set()
        now = time.monotonic()
        for ticket in list(self._queue):
            if ticket.named is not None:
                candidates = [ticket.named]
            else:
                candidates = [
                    user_id
                    for user_id, account in self._accounts.items()
                    if user_id not in ticket.excluded and account.set_aside_until <= now
                ]
            if not candidates:  # every account is set aside
                self._queue.remove(ticket)
                ticket.error = self._latest_refusal()
                ticket.granted.set()
                continue
            open_ = [user_id for user_id in candidates if user_id not in blocked]
            best = self._best(open_, ticket.max_jobs)
            if best is None:
                blocked.update(candidates)
                continue
            self._queue.remove(ticket)
            self._accounts[best].reserved += 2
            ticket.account = best
            ticket.granted.set()

    def _best(self, user_ids: Sequence[str], max_jobs: int | None) -> str | None:
        """The account with the most free slots (the first on a tie), if any is free."""
        best, most = None, 0
        for user_id in user_ids:
            free = self._accounts[user_id].free(max_jobs)
            if free > most:
                best, most = user_id, free
        return best

    def _fail_queue(self, error: BaseException) -> None:
        for ticket in self._queue:
            ticket.error = error
            ticket.granted.set()
        self._queue.clear()

    async def generate(self, path: str, body: dict[str, Any]) -> Submission:
        """Send a generation through the capacity gate: wait for a free slot on the account
        named (or the freest one), send once, and set aside accounts that refuse."""
        http = self._client._http
        started = time.monotonic()
        if not self.capacity_aware or not await self._read_view():
            return await self._post(path, body, http.busy_timeout)
        named = body.get("user_id")
        max_jobs = body.get("maxJobs")
        several = len(self._accounts) > 1
        excluded: set[str] = set()
        while True:
            if not self._accounts or (named is not None and named not in self._accounts):
                return await self._post(
                    path, body, http.busy_timeout - (time.monotonic() - started)
                )
            if named is None and several:
                self._raise_if_all_set_aside(excluded)
            if self._slots_stale:
                self._slots_stale = False
                await self._refresh_slots()
            account = await self._take_slot(path, named, max_jobs, excluded, started)
            if self._slots_stale:  # marked while this one queued: read, then queue again
                self._release(account)
                continue
            sent = body if named is not None or not several else {**body, "user_id": account}
            attempt = time.monotonic()
            try:
                submission = await self._post(path, sent, 0.0)
            except RateLimitError as exc:
                self._note_busy(exc)
                self._release(account)
                delay = _protocol.busy_delay(exc.retry_after, floor=http.busy_retry_seconds)
                # The next answer would come a wait and an exchange from now.
                answer = time.monotonic() + delay + (time.monotonic() - attempt)
                if answer - started > http.busy_timeout:
                    raise
                reason = f"{exc.status} {exc.message}"
                logger.warning("POST %s failed (%s); retrying in %.1f s", path, reason, delay)
                resume = time.monotonic() + delay
                await self._refresh_slots()  # within the wait, not after it
                await anyio.sleep(max(0.0, resume - time.monotonic()))
                continue
            except APIStatusError as exc:
                refused = exc.status in REFUSALS and several
                if refused:  # before its slot is given back, so no one else is sent there
                    self._set_aside(account, exc)
                self._release(account)
                if refused and named is None:
                    excluded.add(account)
                    continue
                vanished = isinstance(exc, NotFoundError) and named is None and several
                if vanished and await self._account_vanished(account):
                    excluded.add(account)
                    continue
                raise
            except BaseException:
                self._release(account)
                raise
            self._submitted_jobs(account, submission)  # before the slot is given back
            self._release(account)
            return submission

    async def _post(self, path: str, body: dict[str, Any], busy_timeout: float) -> Submission:
        before_send = BEFORE_SEND.get()
        if before_send is not None:
            await before_send()
        request = ApiRequest("POST", path, kind=Kind.GENERATION, json=body)
        reply = await self._client._http.send(request, busy_timeout=max(0.0, busy_timeout))
        submission: Submission = _protocol.decode(reply.content, Submission, "POST", path)
        return submission

    async def _take_slot(
        self,
        path: str,
        named: str | None,
        max_jobs: int | None,
        excluded: set[str],
        started: float,
    ) -> str:
        """Queue for a slot until one is free, or raise RateLimitError at ``busy_timeout``."""
        ticket = _Ticket(named, max_jobs, excluded)
        self._queue.append(ticket)
        self._dispatch()
        if ticket.account is None:
            if time.monotonic() - self._snapshot_at > self._gate_poll():
                self._refresh_now = True
            self._ensure_loop()
        remaining = self._client._http.busy_timeout - (time.monotonic() - started)
        try:
            with anyio.move_on_after(remaining):
                await ticket.granted.wait()
        except BaseException:
            self._withdraw(ticket)
            raise
        if ticket.account is None:
            self._withdraw(ticket)
            if ticket.error is not None:
                raise ticket.error
            raise self._no_slot_error(path, named)
        await self._stop_if_idle()
        return ticket.account

    def _withdraw(self, ticket: _Ticket) -> None:
        if ticket in self._queue:
            self._queue.remove(ticket)
        elif ticket.account is not None:
            self._release(ticket.account)
            ticket.account = None

    def _release(self, user_id: str) -> None:
        account = self._accounts.get(user_id)
        if account is not None:
            account.reserved = max(0, account.reserved - 2)
        self._dispatch()

    def _submitted_jobs(self, user_id: str, submission: Submission) -> None:
        account = self._accounts.get(user_id)
        if account is None:
            return
        now = time.monotonic()
        for job_id in submission.jobs or []:
            self._submitted[job_id] = (user_id, now)
            account.executing.add(job_id)

    def _note_busy(self, error: RateLimitError) -> None:
        """A 429 arrived although the view had a slot: another program shares the account."""
        for user_id, jobs in error.running_jobs.items():
            account = self._accounts.get(user_id)
            if account is not None:
                account.executing |= {job.job_id for job in jobs if job.job_id}
        self._refresh_now = True

    def _set_aside(self, user_id: str, error: APIStatusError) -> None:
        account = self._accounts[user_id]
        now = time.monotonic()
        if account.set_aside_until <= now:
            logger.warning(
                "account %s refused a generation (%s); set aside for %g s",
                user_id,
                error.status,
                self.cooldown,
            )
        account.set_aside_until = now + self.cooldown
        account.refusal = error
        self._dispatch()

    def _raise_if_all_set_aside(self, excluded: set[str]) -> None:
        now = time.monotonic()
        aside = [
            account
            for user_id, account in self._accounts.items()
            if user_id in excluded or account.set_aside_until > now
        ]
        if len(aside) == len(self._accounts):
            raise self._latest_refusal()

    def _latest_refusal(self) -> BaseException:
        refused = [account for account in self._accounts.values() if account.refusal]
        if not refused:
            return TempolorError("every account refused this generation")
        latest = max(refused, key=lambda account: account.set_aside_until)
        assert latest.refusal is not None
        return latest.refusal

    async def _account_vanished(self, user_id: str) -> bool:
        """After a 404 for an account the client picked: is the account gone?"""
        try:
            accounts = await self._client.accounts.list()
        except TempolorError:
            return False
        if user_id in accounts:
            return False
        logger.warning("account %s is no longer configured; set aside", user_id)
        self._accounts.pop(user_id, None)
        return True

    def _no_slot_error(self, path: str, named: str | None) -> RateLimitError:
        where = f"account {named}" if named else "any account"
        running: dict[str, list[RunningJob]] = {}
        for user_id, account in self._accounts.items():
            if named in (None, user_id) and account.executing:
                running[user_id] = [
                    RunningJob(job_id=job_id, user_id=user_id)
                    for job_id in sorted(account.executing)
                ]
        busy_timeout = self._client._http.busy_timeout
        return RateLimitError(
            f"no free slot on {where} within busy_timeout ({busy_timeout:g} s); nothing was sent",
            status=429,
            method="POST",
            path=path,
            running_jobs=running,
        )

    # ------------------------------------------------------------- closing

    async def aclose(self) -> None:
        """End the loop and every wait and queued generation; no task is left behind."""
        self._closed = True
        closed = TempolorError("the client was closed while waiting for jobs")
        for waiter in list(self._waiters):
            self._forget(waiter)
        self._fail_queue(closed)
        self._current = None
        hosts = list(self._hosts.values())
        for scope, _ in hosts:
            scope.cancel()
        with anyio.CancelScope(shield=True):
            for _, done in hosts:
                await done.wait()
