"""What a batch tells its caller: an event per change of an item's state, and a report.

An item's ``status`` is one of ``pending``, ``submitting`` (sent, answer not yet known),
``submitted`` (job ids known), ``completed`` (its jobs finished; final when nothing is to be
downloaded), ``failed`` and ``downloaded``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs

Status = Literal["pending", "submitting", "submitted", "completed", "failed", "downloaded"]
STATUSES: tuple[Status, ...] = (
    "pending",
    "submitting",
    "submitted",
    "completed",
    "failed",
    "downloaded",
)


@attrs.frozen
class _ItemState:
    """An item's key, status, jobs, files written and error: what events and results share."""

    key: str
    status: Status
    job_ids: tuple[str, ...] = ()
    files: tuple[Path, ...] = ()
    error: str | None = None


@attrs.frozen
class BatchEvent(_ItemState):
    """An item changed state (passed to ``run_batch(on_event=...)``)."""


@attrs.frozen
class BatchItemResult(_ItemState):
    """Where one item of the run stands: its jobs, the files written for it, its error."""


@attrs.frozen
class BatchReport:
    """The outcome of :meth:`TempolorClient.run_batch`.

    ``completed``, ``failed`` and ``pending`` count every item given to the run, including
    those finished by earlier runs of the same journal; ``completed`` means downloaded (or,
    with no ``out_dir``, generated). ``generations_submitted`` counts the generations this
    run had accepted. ``stopped_reason`` is None, or why submitting stopped early:
    ``"budget"`` (``max_generations``), ``"min_remaining"``, ``"no_account"`` (every account
    refused) or ``"interrupted"``. ``resent_unconfirmed`` counts the items sent again
    because their answer was lost and the service did not show them within
    ``confirm_window``.
    """

    completed: int
    failed: int
    pending: int
    generations_submitted: int
    items: tuple[BatchItemResult, ...]
    stopped_reason: str | None = None
    resent_unconfirmed: int = 0
