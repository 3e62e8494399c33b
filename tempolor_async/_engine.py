"""The client's engine: the capacity gate (``_gate``, where a generation takes a slot) and
the wait loop (``_waits``, where every wait is served), put together, and the coordination
seam (``_coordination``) they speak to: this process alone, or a fleet through Redis.

The gate and the loop share one view: the loop's scheduler reads keep the gate's slots
fresh, and the gate's queued generations keep the loop running.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

from ._coordination import Alone, Coordination, Slots
from ._gate import BEFORE_SEND, Gate, account_of
from ._models import AccountCapacity, MusicJob, Submission
from ._waits import Waiter, WaitLoop

if TYPE_CHECKING:
    from ._client import TempolorClient

logger = logging.getLogger("tempolor_async")


class Engine:
    """Per client: the gate, the loop and the fleet, and what the rest of the client asks
    of them."""

    def __init__(
        self,
        client: TempolorClient,
        *,
        capacity_aware: bool,
        cooldown: float,
        coordination: Coordination | None = None,
        fleet: str = "",
    ) -> None:
        self._client = client
        self.coordination = coordination or Alone()
        self._fleet = fleet
        self._opened = False
        self._open_lock = anyio.Lock()
        self.gate = Gate(client, capacity_aware=capacity_aware, cooldown=cooldown)
        self.loop = WaitLoop(client, self.gate)
        self.gate.loop = self.loop
        self.gate.coordination = self.coordination

    async def open(self) -> None:
        """Join the fleet, if any (CoordinationError when its Redis cannot be reached)."""
        if self._opened:
            return
        async with self._open_lock:
            if self._opened:
                return
            await self.coordination.open(self._fleet, self)
            self._opened = True
            receiver = self._client.callbacks
            fleet = not isinstance(self.coordination, Alone)
            if fleet and getattr(receiver, "_random_secret", False):
                logger.warning(
                    "this fleet client's CallbackReceiver has a random secret: callbacks "
                    "that reach another process will be refused; give every process the "
                    "same secret (secret=, or TEMPOLOR_CALLBACK_SECRET)"
                )

    # The fleet's hooks (FleetHooks).

    def hinted(self, job_id: str, final: bool) -> None:
        self.loop.hint_id(job_id, final)

    def ended(self, job_ids: Collection[str]) -> None:
        self.gate.fleet_ended(job_ids)

    def listed(self, job_ids: Collection[str], read_at: float, slots: Slots) -> None:
        self.loop.heard_listing(job_ids, read_at, slots)

    def wanted(self) -> None:
        self.gate.want_view()

    # What the client asks.

    @asynccontextmanager
    async def waiter(
        self, job_ids: Sequence[str], poll_interval: float | None, wants_progress: bool
    ) -> AsyncIterator[Waiter]:
        """Register a wait for the duration of the block."""
        await self.open()
        async with self.loop.waiter(job_ids, poll_interval, wants_progress) as waiter:
            yield waiter

    def hint(self, job: MusicJob) -> None:
        """A receiver of this process accepted a callback: wake this client's waits of the
        job, and every other process's of the fleet."""
        self.loop.hint(job)
        self.coordination.publish_hint(job.job_id or "", job.is_final)

    async def generate(self, path: str, body: dict[str, Any]) -> Submission:
        await self.open()
        return await self.gate.generate(path, body)

    async def capacity(self) -> dict[str, AccountCapacity]:
        return await self.gate.capacity()

    async def aclose(self) -> None:
        await self.loop.aclose()
        with anyio.CancelScope(shield=True):
            await self.coordination.aclose()


__all__ = ["BEFORE_SEND", "Engine", "Waiter", "account_of"]
