"""Batches with a durable journal: ``client.run_batch()`` and ``tempolor batch``.

The request models, the report, and the run itself. See ``_runner`` for how a run works,
``_journal`` for what survives a crash, and ``_reconcile`` for how a generation whose answer
was lost is found again instead of being paid for twice.
"""

from ._report import BatchEvent, BatchItemResult, BatchReport
from ._requests import InstrumentalRequest, SongRequest
from ._runner import BatchRun, account_slots

__all__ = [
    "BatchEvent",
    "BatchItemResult",
    "BatchReport",
    "BatchRun",
    "InstrumentalRequest",
    "SongRequest",
    "account_slots",
]
