"""The client's engine: the capacity gate (``_gate``, where a generation takes a slot) and
the wait loop (``_waits``, where every wait is served), put together.

The two share one view: the loop's scheduler reads keep the gate's slots fresh, and the
gate's queued generations keep the loop running.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from ._gate import BEFORE_SEND, Gate, account_of
from ._models import AccountCapacity, MusicJob, Submission
from ._waits import Waiter, WaitLoop

if TYPE_CHECKING:
    from ._client import TempolorClient


class Engine:
    """Per client: the gate and the loop, and what the rest of the client asks of them."""

    def __init__(self, client: TempolorClient, *, capacity_aware: bool, cooldown: float) -> None:
        self.gate = Gate(client, capacity_aware=capacity_aware, cooldown=cooldown)
        self.loop = WaitLoop(client, self.gate)
        self.gate.loop = self.loop

    @asynccontextmanager
    async def waiter(
        self, job_ids: Sequence[str], poll_interval: float | None, wants_progress: bool
    ) -> AsyncIterator[Waiter]:
        """Register a wait for the duration of the block."""
        async with self.loop.waiter(job_ids, poll_interval, wants_progress) as waiter:
            yield waiter

    def hint(self, job: MusicJob) -> None:
        """A callback said this job changed (the receiver calls this)."""
        self.loop.hint(job)

    async def generate(self, path: str, body: dict[str, Any]) -> Submission:
        return await self.gate.generate(path, body)

    async def capacity(self) -> dict[str, AccountCapacity]:
        return await self.gate.capacity()

    async def aclose(self) -> None:
        await self.loop.aclose()


__all__ = ["BEFORE_SEND", "Engine", "Waiter", "account_of"]
