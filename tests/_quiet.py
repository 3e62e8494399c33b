"""Checking that a wait that has ended sends nothing more."""

from __future__ import annotations

import anyio

from tempolor_async.testing import FakeTempolor


async def assert_nothing_more_sent(fake: FakeTempolor, before: int, window: float = 0.2) -> None:
    """``before`` requests had reached ``fake`` when the wait ended. One already on its way
    then (the loop's fetch or read of that very moment) may still land; after it, nothing
    more arrives for ``window`` seconds, where a loop still polling every 20 ms would send
    several."""
    await anyio.sleep(window)
    landed = len(fake.requests)
    assert landed - before <= 1, [(r.method, r.path) for r in fake.requests[before:]]
    await anyio.sleep(window)
    assert len(fake.requests) == landed
