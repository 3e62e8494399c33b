"""The coordination seam: what the gate and the wait loop ask of the processes that share
the accounts. ``Alone`` is this process by itself (sections 12-14: every call is a no-op and
the local view decides); ``RedisCoordination`` (``_fleet``) is a fleet through Redis.

The calls are few: take leases on an account's slots before a generation is sent, bind them
to the jobs it created, end them when those jobs end, give them back when nothing was sent,
let go of them when whether anything was sent is unknown (they expire), publish a
callback's job id to the fleet, and hold the fleet's poller lease: one process reads the
scheduler for all and publishes what it lists and the accounts' slots; the others ask it for
a fresh read instead of reading. A fleet that cannot be reached answers as ``Alone`` would:
the service's 429 stays the arbiter.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Protocol

import anyio

ENV = "TEMPOLOR_COORDINATION"

# An account's slots as the scheduler counted them: (maxJobs, jobs executing), each None
# when the service left it out.
Slots = Mapping[str, tuple[int | None, int | None]]


class FleetHooks(Protocol):
    """What a coordination tells its engine."""

    def hinted(self, job_id: str, final: bool) -> None:
        """A receiver in another process accepted a callback for this job."""

    def ended(self, job_ids: Collection[str]) -> None:
        """These jobs ended (seen by another process): their slots are free."""

    def listed(self, job_ids: Collection[str], read_at: float, slots: Slots) -> None:
        """The fleet's poller read the scheduler at wall time ``read_at``: these jobs run,
        and the accounts' slots are these."""

    def wanted(self) -> None:
        """Another process of the fleet wants the slots read afresh (this one polls)."""


class Coordination(Protocol):
    """The seam. ``take`` answers the leases taken (``[]`` when the fleet is not consulted)
    or None when the fleet's slots of that account are all taken."""

    @property
    def joined(self) -> bool:
        """True while the fleet answers (leases and callbacks go through it)."""

    view_stale: bool  # the last refusal counted running jobs no lease covers
    polling: bool  # this process holds the fleet's poller lease

    async def open(self, fleet: str, hooks: FleetHooks) -> None: ...

    async def aclose(self) -> None: ...

    async def take(
        self, user_id: str, count: int, limit: int, running: Collection[str], other: int
    ) -> list[str] | None: ...

    def bind(self, user_id: str, leases: list[str], job_ids: list[str]) -> None: ...

    def give_back(self, user_id: str, leases: list[str]) -> None: ...

    def abandon(self, leases: list[str]) -> None: ...

    def ended(self, job_ids: Iterable[str]) -> None: ...

    def publish_hint(self, job_id: str, final: bool) -> None: ...

    async def slot_freed(self, timeout: float) -> None: ...

    async def poller(self) -> bool: ...

    def stop_polling(self) -> None: ...

    def publish_listing(self, job_ids: Collection[str], read_at: float, slots: Slots) -> None: ...

    def want_view(self) -> None: ...


class Alone:
    """This process by itself: no fleet to ask."""

    joined = False
    view_stale = False
    polling = False

    async def open(self, fleet: str, hooks: FleetHooks) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def take(
        self, user_id: str, count: int, limit: int, running: Collection[str], other: int
    ) -> list[str] | None:
        return []

    def bind(self, user_id: str, leases: list[str], job_ids: list[str]) -> None:
        pass

    def give_back(self, user_id: str, leases: list[str]) -> None:
        pass

    def abandon(self, leases: list[str]) -> None:
        pass

    def ended(self, job_ids: Iterable[str]) -> None:
        pass

    def publish_hint(self, job_id: str, final: bool) -> None:
        pass

    async def slot_freed(self, timeout: float) -> None:
        await anyio.sleep(timeout)

    async def poller(self) -> bool:
        return True

    def stop_polling(self) -> None:
        pass

    def publish_listing(self, job_ids: Collection[str], read_at: float, slots: Slots) -> None:
        pass

    def want_view(self) -> None:
        pass


def coordination_from(value: object, make_fleet: Callable[[str], Coordination]) -> Coordination:
    """``coordination=``: None (the environment variable, else this process alone), a
    Redis URL, or a ready coordination."""
    if value is None:
        value = os.environ.get(ENV) or None
    if value is None:
        return Alone()
    if isinstance(value, str):
        return make_fleet(value)
    return value  # type: ignore[return-value]  # checked by the caller
