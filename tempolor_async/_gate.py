"""The capacity gate: the client's view of every account's slots, and where a generation
takes one.

A generation waits here for a free slot on the account named (or the freest one), is sent
once, and gives its slot back when its jobs are known to run (they then count as running
until they leave the scheduler or end). The view is read once from
``GET accounts`` and ``GET scheduler/available``; afterwards the wait loop (``_waits``) keeps
it fresh with every scheduler read. Accounts that refuse a generation are set aside.
"""

from __future__ import annotations

import contextvars
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from . import _protocol
from ._coordination import Alone, Coordination
from ._errors import (
    APIConnectionError,
    APIStatusError,
    NotFoundError,
    RateLimitError,
    TempolorError,
)
from ._models import AccountCapacity, Capacity, RunningJob, Submission
from ._protocol import ApiRequest, Kind

if TYPE_CHECKING:
    from ._client import TempolorClient
    from ._waits import WaitLoop

logger = logging.getLogger("tempolor_async")

# How often the slots are re-read while generations wait for one: a share of the job
# duration seen so far, within these bounds (1 s until a job has been seen to end).
GATE_POLL_SHARE = 1 / 15
GATE_POLL_MIN = 0.2
GATE_POLL_MAX = 5.0
GATE_POLL_FIRST = 1.0
# In a fleet, how often the slots are read while generations wait (at least).
FLEET_VIEW_SECONDS = 5.0
# After the view could not be read, generations are sent without it for this long.
VIEW_RETRY_SECONDS = 30.0
# Statuses of a generation that set its account aside (section 12).
REFUSALS = (401, 402, 403)
# A song or instrumental generation creates two jobs, each on a slot.
JOBS_PER_GENERATION = 2
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


# ------------------------------------------------------------- the slot view


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


# ------------------------------------------------------------------- the gate


class Gate:
    """Per client: the accounts' slots and the queue of generations waiting for one."""

    def __init__(self, client: TempolorClient, *, capacity_aware: bool, cooldown: float) -> None:
        self._client = client
        self.capacity_aware = capacity_aware
        self.cooldown = cooldown
        self.loop: WaitLoop  # set by the engine: it keeps the view fresh while slots are awaited
        self.coordination: Coordination = Alone()  # set by the engine: the fleet, if any
        self._accounts: dict[str, _Account] = {}
        self._view_read = False
        self._view_failed_at = -math.inf
        self._view_lock = anyio.Lock()
        self.snapshot_at = -math.inf  # when the slots were last read
        self.refresh_now = False  # read them at the next tick
        self._slots_stale = False  # see reread_slots_before_next_send
        self.running_read_at = -math.inf  # when the scheduler's list was last applied
        self.queue: list[_Ticket] = []
        self.submitted: dict[str, tuple[str, float]] = {}  # job id -> (account, when)
        self._ended: dict[str, float] = {}  # our jobs seen to end -> when
        self._typical_duration: float | None = None

    def next_read(self) -> float:
        """When the loop should read the slots next (inf when nothing needs them)."""
        if self.refresh_now:
            return -math.inf
        if self.queue:
            return self.snapshot_at + self.view_every()
        if self.watching_leases():
            return self.running_read_at + FLEET_VIEW_SECONDS
        return math.inf

    def watching_leases(self) -> bool:
        """In a fleet: jobs of this process hold leases and were not seen to end. The loop
        reads the scheduler until they end, so their leases end rather than being renewed
        for as long as the process lives."""
        return self.coordination.joined and bool(self.submitted)

    def view_every(self) -> float:
        """How often the slots are read while generations wait. In a fleet the leases in
        Redis decide, and their ends are published at once: the view (for the jobs of other
        programs) is read far less often."""
        if self.coordination.joined:
            return max(FLEET_VIEW_SECONDS, self.poll_every())
        return self.poll_every()

    def poll_every(self) -> float:
        if self._typical_duration is None:
            return GATE_POLL_FIRST
        return min(GATE_POLL_MAX, max(GATE_POLL_MIN, self._typical_duration * GATE_POLL_SHARE))

    def view_served(self, at: float) -> None:
        """In a fleet, a tick at ``at`` was served by the poller's last listing (whose
        arrival refreshed the view): the next look is due one interval later."""
        self.snapshot_at = max(self.snapshot_at, at)
        self.running_read_at = max(self.running_read_at, at)
        self.refresh_now = False

    def read_failed(self) -> None:
        """The slots could not be read at a tick: try again one interval later."""
        self.snapshot_at = time.monotonic()
        self.refresh_now = False

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
            self.apply_capacity(capacity, started)
            self._view_read = True
            return True

    @property
    def polled_elsewhere(self) -> bool:
        """In a fleet whose poller is another process: it reads the slots for this one."""
        return self.coordination.joined and not self.coordination.polling

    def want_view(self) -> None:
        """The slots are wanted afresh: read at this process's next tick or, in a fleet
        whose poller is another process, by that poller (its listing answers here)."""
        if self.polled_elsewhere:
            self.coordination.want_view()
        else:
            self.refresh_now = True
            self.loop.ensure_loop()

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
        self.apply_capacity(capacity, started)

    def apply_capacity(self, capacity: Capacity, started: float) -> None:
        for entry in capacity.available or []:
            if entry.user_id is None:
                continue
            account = self._accounts.get(entry.user_id)
            if account is None:
                account = self._accounts[entry.user_id] = _Account(entry.max_jobs)
            if entry.max_jobs is not None:
                account.max_jobs = entry.max_jobs
        executing = capacity.executing or []
        self.apply_running(executing, started)
        named: dict[str, int] = {}
        for job in executing:
            owner = account_of(job)
            if owner is not None:
                named[owner] = named.get(owner, 0) + 1
        for entry in capacity.available or []:
            if entry.user_id in self._accounts and entry.executing is not None:
                counted = named.get(entry.user_id, 0)
                self._accounts[entry.user_id].other = max(0, entry.executing - counted)
        self.snapshot_at = time.monotonic()
        self.refresh_now = False

    def apply_running(self, jobs: Sequence[RunningJob], started: float) -> None:
        """The scheduler's list of running jobs, read from ``started`` on: our own
        submissions since then, and jobs seen to end since then, outrank it."""
        self.running_read_at = time.monotonic()
        running: dict[str, set[str]] = {user_id: set() for user_id in self._accounts}
        for job in jobs:
            owner = account_of(job)
            if owner in running and job.job_id and self._ended.get(job.job_id, 0) < started:
                running[owner].add(job.job_id)
        for job_id, (owner, when) in self.submitted.items():
            if when >= started and owner in running and job_id not in self._ended:
                running[owner].add(job_id)
        for user_id, account in self._accounts.items():
            for job_id in account.executing - running[user_id]:
                self.job_ended(job_id)
            account.executing = running[user_id]
        self._prune(started)
        self._dispatch()

    def job_ended(self, job_id: str) -> None:
        submitted = self.submitted.pop(job_id, None)
        if submitted is None:
            for account in self._accounts.values():
                account.executing.discard(job_id)
            return
        owner, when = submitted
        self.coordination.ended([job_id])
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

    def _dispatch(self) -> None:
        """Grant slots to queued generations, first come first served per account."""
        if not self.queue:
            return
        blocked: set[str] = set()
        now = time.monotonic()
        for ticket in list(self.queue):
            if ticket.named is not None:
                candidates = [ticket.named]
            else:
                candidates = [
                    user_id
                    for user_id, account in self._accounts.items()
                    if user_id not in ticket.excluded and account.set_aside_until <= now
                ]
            if not candidates:  # every account is set aside
                self.queue.remove(ticket)
                ticket.error = self._latest_refusal()
                ticket.granted.set()
                continue
            open_ = [user_id for user_id in candidates if user_id not in blocked]
            best = self._best(open_, ticket.max_jobs)
            if best is None:
                blocked.update(candidates)
                continue
            self.queue.remove(ticket)
            self._accounts[best].reserved += JOBS_PER_GENERATION
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

    def fail_queue(self, error: BaseException) -> None:
        for ticket in self.queue:
            ticket.error = error
            ticket.granted.set()
        self.queue.clear()

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
            leases = await self._lease(account, max_jobs)
            if leases is None:  # the fleet's other processes hold the account's slots
                self._release(account)
                await self._await_fleet_slot(path, named, started)
                continue
            sent = body if named is not None or not several else {**body, "user_id": account}
            attempt = time.monotonic()
            try:
                submission = await self._post(path, sent, 0.0)
            except RateLimitError as exc:
                self.coordination.give_back(account, leases)
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
                if self.polled_elsewhere:
                    self.want_view()  # the fleet's poller reads them for this process
                else:
                    await self._refresh_slots()  # within the wait, not after it
                await anyio.sleep(max(0.0, resume - time.monotonic()))
                continue
            except APIStatusError as exc:
                self.coordination.give_back(account, leases)
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
                # Sent or not is unknown: the leases are no longer renewed and expire; its
                # jobs, if any, count as running jobs no lease covers once listed.
                self.coordination.abandon(leases)
                self._release(account)
                raise
            self._submitted_jobs(account, submission)  # before the slot is given back
            self.coordination.bind(account, leases, list(submission.jobs or []))
            if leases and self.watching_leases():
                self.loop.ensure_loop()  # to see the jobs end, and their leases with them
            self._release(account)
            return submission

    async def _lease(self, user_id: str, max_jobs: int | None) -> list[str] | None:
        """The fleet's leases on the slots this generation's jobs will take (``[]`` when no
        fleet is consulted), or None when the fleet holds them all."""
        if not self.coordination.joined:
            return []
        account = self._accounts[user_id]
        limit = max_jobs or account.max_jobs or JOBS_PER_GENERATION
        return await self.coordination.take(
            user_id, JOBS_PER_GENERATION, limit, sorted(account.executing), account.other
        )

    async def _await_fleet_slot(self, path: str, named: str | None, started: float) -> None:
        """Wait until a lease of the fleet ends (or a gate poll passes); RateLimitError at
        ``busy_timeout``."""
        remaining = self._client._http.busy_timeout - (time.monotonic() - started)
        if remaining <= 0:
            raise self._no_slot_error(path, named)
        if self.coordination.view_stale:
            # Refused for running jobs of the view that no lease covers: they may have ended
            # (a killed holder's), so the slots are wanted afresh (the fleet's poller reads
            # them once for every waiting generation; its listing ends this wait).
            if time.monotonic() - self.snapshot_at > self.poll_every():
                self.want_view()
            await self.coordination.slot_freed(min(remaining, FLEET_VIEW_SECONDS))
            return
        await self.coordination.slot_freed(min(remaining, self.poll_every()))

    def fleet_ended(self, job_ids: Collection[str]) -> None:
        """Another process of the fleet saw these jobs end: their slots are free."""
        for job_id in job_ids:
            if job_id not in self.submitted:
                for account in self._accounts.values():
                    account.executing.discard(job_id)
        self._dispatch()

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
        self.queue.append(ticket)
        self._dispatch()
        if ticket.account is None:
            if time.monotonic() - self.snapshot_at > self.view_every():
                self.refresh_now = True
            self.loop.ensure_loop()
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
        await self.loop.stop_if_idle()
        return ticket.account

    def _withdraw(self, ticket: _Ticket) -> None:
        if ticket in self.queue:
            self.queue.remove(ticket)
        elif ticket.account is not None:
            self._release(ticket.account)
            ticket.account = None

    def _release(self, user_id: str) -> None:
        account = self._accounts.get(user_id)
        if account is not None:
            account.reserved = max(0, account.reserved - JOBS_PER_GENERATION)
        self._dispatch()

    def _submitted_jobs(self, user_id: str, submission: Submission) -> None:
        account = self._accounts.get(user_id)
        if account is None:
            return
        now = time.monotonic()
        for job_id in submission.jobs or []:
            self.submitted[job_id] = (user_id, now)
            account.executing.add(job_id)

    def _note_busy(self, error: RateLimitError) -> None:
        """A 429 arrived although the view had a slot: another program shares the account."""
        for user_id, jobs in error.running_jobs.items():
            account = self._accounts.get(user_id)
            if account is not None:
                account.executing |= {job.job_id for job in jobs if job.job_id}
        self.refresh_now = True

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
