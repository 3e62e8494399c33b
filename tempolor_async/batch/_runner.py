"""Running a batch: keep every account's slots busy, survive a crash, leave files behind.

One task hands queued items to the generation tasks as the submission bound and the budget
allow; the capacity gate inside ``create_song``/``create_instrumental`` decides when each is
sent. An item's own task then commits its intent, sends, commits the job ids, waits for the
jobs (the client's shared wait) and downloads the files. Any error of one item stays with
that item; only what concerns the whole run (the journal, the token, a raising ``on_event``)
ends the run, and then as that error itself, never as an ``ExceptionGroup``.
"""

from __future__ import annotations

import inspect
import os
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.lowlevel
import anyio.to_thread

from .. import _protocol, _validation
from .._engine import BEFORE_SEND
from .._errors import (
    APIStatusError,
    NotFoundError,
    RateLimitError,
    TempolorError,
    ValidationError,
)
from .._models import Submission
from . import _output
from ._journal import ItemRecord, Journal, total_generations
from ._reconcile import (
    MAX_BATCH_REPLY_REF,
    batch_reply_ref,
    find_generations,
    look_interval,
    new_token,
    resend_due,
)
from ._report import BatchEvent, BatchItemResult, BatchReport, Status
from ._requests import InstrumentalRequest, SongRequest

if TYPE_CHECKING:
    from .._client import TempolorClient

BatchRequest = SongRequest | InstrumentalRequest
BatchItems = Iterable[BatchRequest] | AsyncIterable[BatchRequest]
EventCallback = Callable[[BatchEvent], Awaitable[None] | None]

# Seconds to let a generation whose answer was lost settle before the first look for it.
SETTLE_SECONDS = 2.0
# Seconds an unconfirmed item waits (looking again meanwhile) before it is sent again.
DEFAULT_CONFIRM_WINDOW = 120.0
# Items downloading at once.
DOWNLOAD_CONCURRENCY = 4
# Generations in flight (queued at the gate or being sent) when the slots cannot be read.
DEFAULT_SUBMISSION_BOUND = 8
# Sends per item and run whose answer was lost and that were then not found.
MAX_UNANSWERED_SENDS = 3
# Statuses an account's refusal of a generation answers with (section 12 sets it aside).
ACCOUNT_REFUSALS = (401, 402, 403)


class _CalledOff(Exception):
    """Raised right before a POST to call it off: the run stopped while it waited."""


async def account_slots(client: TempolorClient) -> dict[str, tuple[int, int]]:
    """Each account's slots as ``(in use, max_jobs)``, from the client's own view (no
    request once it has one): what the progress display shows and what bounds the
    generations in flight."""
    return {
        user_id: (entry.executing or 0, entry.max_jobs or 0)
        for user_id, entry in (await client.capacity()).items()
    }


class BatchRun:
    """One run of a batch over a journal. :meth:`TempolorClient.run_batch` is the public
    entry point; the command line keeps the object to report on an interrupted run."""

    def __init__(
        self,
        client: TempolorClient,
        items: BatchItems,
        *,
        journal: str | os.PathLike[str],
        out_dir: str | os.PathLike[str] | None = None,
        formats: Sequence[str] = ("mp3",),
        max_generations: int | None = None,
        min_remaining: int | None = None,
        on_event: EventCallback | None = None,
        retry_failed: bool = False,
        confirm_window: float = DEFAULT_CONFIRM_WINDOW,
    ) -> None:
        if isinstance(formats, str):
            formats = [formats]
        self.formats = list(dict.fromkeys(_validation.file_format(f).value for f in formats))
        if not self.formats and out_dir is not None:
            raise ValidationError("formats", "must name at least one of mp3, wav, stems")
        for name, value in (("max_generations", max_generations), ("min_remaining", min_remaining)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ValidationError(name, f"must be a whole number, zero or more (got {value!r})")
        if not isinstance(journal, (str, os.PathLike)) or not os.fspath(journal):
            raise ValidationError("journal", "must be the path of a journal file")
        if on_event is not None and not callable(on_event):
            raise ValidationError("on_event", "must be callable")
        if (
            isinstance(confirm_window, bool)
            or not isinstance(confirm_window, (int, float))
            or not 0 <= confirm_window < float("inf")
        ):
            raise ValidationError("confirm_window", "must be a finite number of seconds, >= 0")
        if isinstance(items, (Sequence, set, frozenset)):
            for number, item in enumerate(items, 1):
                _check_item(number, item)
            check_file_names((number, item.item_key) for number, item in enumerate(items, 1))
        self._client = client
        self._items = items
        self.journal_path = Path(journal)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self._out_text = os.fspath(self.out_dir or "")
        self.max_generations = max_generations
        self.min_remaining = min_remaining
        self._on_event = on_event
        self.retry_failed = retry_failed
        self.confirm_window = float(confirm_window)
        self.started = time.monotonic()
        self.generations_submitted = 0
        self.resent_unconfirmed = 0
        self.stopped_reason: str | None = None
        # This run's items in the order given: a key, its type, and the result of an item
        # refused within the run (None: the journal row tells).
        self._entries: list[tuple[str, str, BatchItemResult | None]] = []
        self._seen: set[str] = set()
        self._records: dict[str, ItemRecord] = {}
        self._stems: dict[str, str] = {}
        self._refusals: dict[str, str] = {}  # key -> why this run refused its journal row
        self._resending: set[str] = set()  # unconfirmed keys queued to be sent again
        self._unconfirmed = 0  # items whose answer was lost, still being looked for
        self._journal: Journal | None = None
        self._folder_claimed = False  # the manifest is written only into a folder it owns
        self._accepted = 0
        self._queue: deque[tuple[BatchRequest, ItemRecord]] = deque()
        self._bound: int | None = None
        self._in_flight = 0
        self._generating = 0
        self._producer_done = False
        self._unanswered: dict[str, int] = {}
        self._sends: set[anyio.CancelScope] = set()
        self._fatal: BaseException | None = None
        self._group_scope: anyio.CancelScope | None = None
        self.commits = 0
        self.commit_seconds = 0.0
        self.longest_commit = 0.0

    # ------------------------------------------------------------------ the run

    async def run(self) -> BatchReport:
        """Run to the end; on cancellation or an error, write the manifest and re-raise."""
        self.started = time.monotonic()
        self._wake = anyio.Event()
        self._stopped = anyio.Event()
        self._downloads = anyio.CapacityLimiter(DOWNLOAD_CONCURRENCY)
        if self.out_dir is not None:
            await anyio.to_thread.run_sync(_output.prepare, self.out_dir)
        self._journal = await Journal.open(self.journal_path)
        try:
            self._records = dict(self._journal.records)
            self._stems = {record.stem.lower(): key for key, record in self._records.items()}
            self._accepted = total_generations(self._records)
            if isinstance(self._items, (Sequence, set, frozenset)):
                self._check_against_journal(self._items)
            if self.out_dir is not None:
                identity = self._journal.identity
                await anyio.to_thread.run_sync(
                    _output.claim_folder, self.out_dir, self.journal_path, identity
                )
                self._folder_claimed = True
                stems = [record.stem for record in self._records.values()]
                await anyio.to_thread.run_sync(_output.remove_leftovers, self.out_dir, stems)
            await self._reconcile_leftovers()
            async with anyio.create_task_group() as group:
                self._group_scope = group.cancel_scope
                group.start_soon(self._guarded, self._dispatch, group)
                try:
                    async for number, request in _enumerate(self._items):
                        _check_item(number, request)
                        await self._take(request, group)
                except Exception as exc:
                    self._fail_run(exc)
                finally:
                    self._producer_done = True
                    self._notify()
            if self._fatal is not None:
                raise self._fatal
            return self.report()
        finally:
            with anyio.CancelScope(shield=True):
                await self._finish()

    async def _finish(self) -> None:
        journal, self._journal = self._journal, None
        try:
            if self.out_dir is not None and journal is not None and self._folder_claimed:
                lines = self.manifest_lines()
                await anyio.to_thread.run_sync(_output.write_manifest, self.out_dir, lines)
        finally:
            if journal is not None:
                self.commits, self.commit_seconds = journal.commits, journal.commit_seconds
                self.longest_commit = journal.longest_commit
                journal.close()

    def results(self) -> tuple[BatchItemResult, ...]:
        """Where every item of this run stands now, in the order given."""
        return tuple(
            refused if refused is not None else self._result(self._records[key])
            for key, _, refused in self._entries
        )

    def report(self, stopped_reason: str | None = None) -> BatchReport:
        """The report on this run so far (``stopped_reason`` overrides the run's own)."""
        items = self.results()
        completed = sum(1 for item in items if self._finished(item.status))
        failed = sum(1 for item in items if item.status == "failed")
        return BatchReport(
            completed=completed,
            failed=failed,
            pending=len(items) - completed - failed,
            generations_submitted=self.generations_submitted,
            items=items,
            stopped_reason=stopped_reason or self.stopped_reason,
            resent_unconfirmed=self.resent_unconfirmed,
        )

    def counts(self) -> dict[str, int]:
        """Items of this run per status (for a progress display)."""
        counts: dict[str, int] = {}
        for item in self.results():
            counts[item.status] = counts.get(item.status, 0) + 1
        return counts

    def _result(self, record: ItemRecord) -> BatchItemResult:
        return BatchItemResult(
            key=record.key,
            status=record.state,  # type: ignore[arg-type]
            job_ids=tuple(record.job_ids),
            files=tuple(self._path(name) for name in record.files),
            error=record.error,
        )

    def manifest_lines(self) -> list[dict[str, Any]]:
        """One line per item the journal holds, whichever run or input file brought it; an
        item this run refused keeps its recorded state, with the refusal as its error."""
        return [
            {
                "key": key,
                "type": record.type,
                "status": record.state,
                "job_ids": list(record.job_ids),
                "files": list(record.files),
                "error": self._refusals.get(key, record.error),
            }
            for key, record in self._records.items()
        ]

    def _finished(self, status: str) -> bool:
        return status == "downloaded" or (status == "completed" and self.out_dir is None)

    def _path(self, name: str) -> Path:
        return (self.out_dir or Path()) / name

    # ----------------------------------------------------------- taking items

    async def _take(self, request: BatchRequest, group: anyio.abc.TaskGroup) -> None:
        """Decide what an item needs: nothing, a wait, a download, or a generation."""
        key = request.item_key
        if key in self._seen:
            await self._refuse(request, "is given to two items of this batch")
            return
        self._seen.add(key)
        record = self._records.get(key)
        if record is None:
            stem = _output.stem_for(key)
            other = self._stems.get(stem.lower())
            if other is not None:
                await self._refuse(
                    request, f"makes the same file names as key {other!r}; give it another key"
                )
                return
            self._stems[stem.lower()] = key
            record = ItemRecord(
                key=key,
                stem=stem,
                type=request.type,
                params=request.parameters(),
                digest=request.digest,
                reply_ref=batch_reply_ref(request.reply_ref, new_token()),
            )
            self._records[key] = record
        elif record.digest != request.digest:
            await self._refuse(
                request,
                "names different parameters in this journal than in an earlier run; "
                "give the changed item a new key (nothing was sent for it)",
                keep=record,
            )
            return
        self._entries.append((key, record.type, None))
        state = record.state
        if state == "pending":
            self._enqueue(request, record)
        elif state == "submitting":  # a crashed run's lost answer, not found at the start
            self._generating += 1
            ended = (record.intent_at or time.time()) + self._client._http.timeout
            group.start_soon(self._guarded, self._leftover, request, record, ended)
        elif state == "submitted":
            group.start_soon(self._guarded, self._follow, record)
        elif state in ("completed", "downloaded"):
            if self.out_dir is not None and self._missing_files(record):
                group.start_soon(self._guarded, self._download, record)
        elif state == "failed":
            if record.failure == "download" and self.out_dir is not None:
                group.start_soon(self._guarded, self._download, record)
            elif self.retry_failed and record.failure != "download":
                record.state, record.error, record.failure = "pending", None, None
                record.job_ids, record.files = [], []
                self._enqueue(request, record)
        if len(self._entries) % 64 == 0:  # a long list of finished items yields now and then
            await anyio.lowlevel.checkpoint()

    async def _refuse(
        self, request: BatchRequest, reason: str, *, keep: ItemRecord | None = None
    ) -> None:
        """An item this run will not touch: failed in the report. Its journal row (``keep``,
        if any) stays as recorded, and the manifest names the refusal."""
        key = request.item_key
        error = ValidationError("key", f"{key!r} {reason}")
        refused = BatchItemResult(
            key=key,
            status="failed",
            job_ids=tuple(keep.job_ids) if keep is not None else (),
            files=tuple(self._path(name) for name in keep.files) if keep is not None else (),
            error=str(error),
        )
        if keep is not None:
            self._refusals[key] = str(error)
        self._entries.append((key, request.type, refused))
        await self._emit_result(refused)

    def _check_against_journal(self, items: Iterable[BatchRequest]) -> None:
        """Before anything is sent: no new key of the input may make the file names of a
        key the journal already holds."""
        for number, item in enumerate(items, 1):
            key = item.item_key
            if key in self._records:
                continue
            other = self._stems.get(_output.stem_for(key).lower())
            if other is not None and other != key:
                raise ValidationError(
                    "items",
                    f"item {number}: key {key!r} makes the same file names as key {other!r} "
                    "of this journal; give it another key (nothing was sent)",
                )

    def _missing_files(self, record: ItemRecord) -> list[tuple[str, str, str]]:
        """``(job id, format, file name)`` of each file this run wants and does not have."""
        return [
            (job_id, file_format, name)
            for index, job_id in enumerate(record.job_ids, 1)
            for file_format in self.formats
            if not self._have(record, name := _output.file_name(record.stem, index, file_format))
        ]

    def _have(self, record: ItemRecord, name: str) -> bool:
        """A file counts as downloaded only if the journal says so and it is on disk (under
        its final name, which only a complete file ever gets)."""
        return name in record.files and os.path.isfile(os.path.join(self._out_text, name))

    # ------------------------------------------------------------- submitting

    def _enqueue(self, request: BatchRequest, record: ItemRecord, *, first: bool = False) -> None:
        if first:
            self._queue.appendleft((request, record))
        else:
            self._queue.append((request, record))
        self._notify()

    def _notify(self) -> None:
        self._wake.set()
        self._wake = anyio.Event()

    def _budget_left(self) -> bool:
        limit = self.max_generations
        spent = self._accepted + self._in_flight + self._unconfirmed
        return limit is None or spent < limit

    async def _dispatch(self, group: anyio.abc.TaskGroup) -> None:
        """Start a generation task per queued item while the bound and budget allow."""
        while True:
            wake = self._wake
            if self.stopped_reason is not None:
                return
            if self._queue and self._bound is None:
                self._bound = await self._submission_bound()
                continue
            if self._queue and self._bound is not None and self._in_flight < self._bound:
                if self._budget_left():
                    request, record = self._queue.popleft()
                    self._in_flight += 1
                    self._generating += 1
                    group.start_soon(self._guarded, self._generate, request, record)
                    continue
                if self._in_flight == 0 and self._unconfirmed == 0:
                    self._stop("budget")
                    return
            if not self._queue and self._producer_done and self._generating == 0:
                return
            await wake.wait()

    async def _submission_bound(self) -> int:
        """Twice the generations all accounts can run at once: enough queued at the gate to
        fill every slot the moment it frees, few enough to stop at once."""
        try:
            slots = await account_slots(self._client)
        except TempolorError:
            return DEFAULT_SUBMISSION_BOUND
        at_once = sum(max(1, maximum // 2) for _, maximum in slots.values())
        return max(2, 2 * at_once) if at_once else DEFAULT_SUBMISSION_BOUND

    def _stop(self, reason: str) -> None:
        """Stop submitting: nothing new is sent, and sends still waiting are called off
        (those that may have gone out are looked for, as after a crash)."""
        if self.stopped_reason is None:
            self.stopped_reason = reason
        self._stopped.set()
        for scope in list(self._sends):
            scope.cancel()
        self._notify()

    async def _generate(self, request: BatchRequest, record: ItemRecord) -> None:
        admitted = True
        try:
            if self.stopped_reason is not None:
                return
            submission, error = await self._send(request, record)
            # The intent is committed right before the POST; an item still "pending" here was
            # never sent (called off, or refused while it waited for a slot).
            sent = record.state == "submitting"
            if submission is not None:
                await self._accept(record, list(submission.jobs or []), sent_now=True)
                remain = submission.remain_num
                limit = self.min_remaining
                if limit is not None and remain is not None and remain < limit:
                    self._stop("min_remaining")
            elif isinstance(error, RateLimitError):
                # Nothing was accepted: back in the queue once the busy period has passed.
                await self._set(record, "pending", error=None)
                self._in_flight -= 1
                admitted = False
                self._notify()
                with anyio.move_on_after(_protocol.busy_delay(error.retry_after)):
                    await self._stopped.wait()
                if self.stopped_reason is None:
                    self._enqueue(request, record, first=True)
                return
            elif isinstance(error, APIStatusError) and error.status in ACCOUNT_REFUSALS:
                if request.user_id is None:
                    await self._set(record, "pending", error=None)
                    self._stop("no_account")
                else:
                    await self._set(record, "failed", error=str(error), failure="refused")
            elif isinstance(error, APIStatusError) and 400 <= error.status < 500:
                await self._set(record, "failed", error=str(error), failure="refused")
            elif not sent:  # nothing went out: called off, or failed before the POST
                tries = self._unanswered[record.key] = self._unanswered.get(record.key, 0) + 1
                if error is not None and tries >= MAX_UNANSWERED_SENDS:
                    await self._set(record, "failed", error=str(error), failure="send")
                    return
                await self._set(record, "pending", error=None)
                if error is not None:  # e.g. the slots could not be read: not at once
                    with anyio.move_on_after(_protocol.retry_delay(tries)):
                        await self._stopped.wait()
                if self.stopped_reason is None:
                    self._enqueue(request, record, first=True)
            else:
                # The answer is unknown (no response, a 5xx, an unreadable body, or a stop
                # called the send off mid-flight): the service may have accepted it.
                self._client._engine.gate.reread_slots_before_next_send()
                self._in_flight -= 1  # the wait for it must not hold back other items
                admitted = False
                self._notify()
                await self._settle_unconfirmed(request, record, time.time(), error, sent_now=True)
        finally:
            if admitted:
                self._in_flight -= 1
            self._generating -= 1
            self._notify()
        if record.state == "submitted":
            await self._follow(record)

    async def _send(
        self, request: BatchRequest, record: ItemRecord
    ) -> tuple[Submission | None, TempolorError | None]:
        """Send the generation, committing its intent once the capacity gate has a slot for
        it, right before the POST. Returns the submission, or the error (neither when a stop
        called the send off)."""
        parameters = request.parameters()
        parameters["reply_ref"] = record.reply_ref

        scope = anyio.CancelScope()

        async def commit_intent() -> None:
            if self.stopped_reason is not None:
                raise _CalledOff
            if record.key in self._resending:
                self._resending.discard(record.key)
                self.resent_unconfirmed += 1
            record.intent_at = time.time()
            record.job_ids = []
            await self._set(record, "submitting", error=None)
            if self.stopped_reason is not None:  # stopped during the commit: nothing sent
                await self._set(record, "pending", error=None)
                raise _CalledOff
            # From here the POST goes out: a stop no longer calls it off (its answer is
            # worth more than a lost one); only a cancellation of the whole run does.
            self._sends.discard(scope)

        submission: Submission | None = None
        error: TempolorError | None = None
        with scope:
            self._sends.add(scope)
            hook = BEFORE_SEND.set(commit_intent)
            try:
                if isinstance(request, SongRequest):
                    submission = await self._client.music.create_song(**parameters)
                else:
                    submission = await self._client.music.create_instrumental(**parameters)
            except _CalledOff:
                pass
            except TempolorError as exc:
                error = exc
            finally:
                BEFORE_SEND.reset(hook)
                self._sends.discard(scope)
        return submission, error

    async def _accept(self, record: ItemRecord, job_ids: list[str], *, sent_now: bool) -> None:
        record.job_ids = job_ids
        record.generations += 1
        self._accepted += 1
        if sent_now:
            self.generations_submitted += 1
        await self._set(record, "submitted", error=None)

    async def _find(self, records: list[ItemRecord]) -> dict[str, list[str]]:
        """Reconcile (``_reconcile`` holds the rules), riding out transient failures; other
        errors end the run (the items stay ``submitting``, for the next run to look for).
        Running jobs seen to be someone else's are remembered in the journal."""
        assert self._journal is not None
        failures = 0
        while True:
            try:
                lookup = await find_generations(
                    self._client,
                    records,
                    journal_records=self._records.values(),
                    foreign=self._journal.foreign,
                )
            except TempolorError as exc:
                if not _protocol.transient(exc):
                    raise
                failures += 1
                await anyio.sleep(_protocol.retry_delay(min(failures, 5)))
                continue
            with anyio.CancelScope(shield=True):
                await self._journal.remember_foreign(lookup.foreign)
            return lookup.found

    async def _reconcile_leftovers(self) -> None:
        """Items a previous run left ``submitting``: before anything new is sent, adopt what
        the service accepted, and return to ``pending`` those whose confirm window has
        passed. The others stay ``submitting`` and are looked for while the run goes on."""
        leftovers = [record for record in self._records.values() if record.state == "submitting"]
        if not leftovers:
            return
        self._client._engine.gate.reread_slots_before_next_send()
        found = await self._find(leftovers)
        timeout = self._client._http.timeout
        for record in leftovers:
            if record.key in found:
                await self._accept(record, found[record.key], sent_now=False)
            elif resend_due((record.intent_at or 0.0) + timeout, self.confirm_window):
                self._resending.add(record.key)
                await self._set(record, "pending", error=None)

    async def _leftover(self, request: BatchRequest, record: ItemRecord, ended: float) -> None:
        """A crashed run's item whose generation was not found yet: look on, then resend."""
        try:
            await self._settle_unconfirmed(
                request, record, ended, None, sent_now=False, looked=True
            )
        finally:
            self._generating -= 1
            self._notify()
        if record.state == "submitted":
            await self._follow(record)

    async def _settle_unconfirmed(
        self,
        request: BatchRequest,
        record: ItemRecord,
        ended: float,
        error: TempolorError | None,
        *,
        sent_now: bool,
        looked: bool = False,
    ) -> None:
        """An item whose answer was lost (``ended``: when its request ended, wall clock).
        Look for its generation, again at least every 10 s, until found or until
        ``confirm_window`` has passed; only then is it sent again. A stop leaves it
        ``submitting`` (the next run looks again); it fails only after being sent and not
        found ``MAX_UNANSWERED_SENDS`` times."""
        self._unconfirmed += 1
        try:
            interval = look_interval(self.confirm_window)
            delay = interval if looked else min(SETTLE_SECONDS, interval)
            while True:
                if self.stopped_reason is None:
                    remaining = ended + self.confirm_window - time.time()
                    with anyio.move_on_after(max(0.0, min(delay, remaining))):
                        await self._stopped.wait()
                delay = interval
                found = await self._find([record])
                if record.key in found:
                    await self._accept(record, found[record.key], sent_now=sent_now)
                    return
                if self.stopped_reason is not None:
                    return  # stays submitting: the next run looks again, window and all
                if resend_due(ended, self.confirm_window):
                    break
        finally:
            self._unconfirmed -= 1
        unanswered = self._unanswered[record.key] = self._unanswered.get(record.key, 0) + 1
        if error is not None and unanswered >= MAX_UNANSWERED_SENDS:
            # Sent that often, looked for each time, never found: known not accepted.
            await self._set(record, "failed", error=str(error), failure="send")
            return
        self._resending.add(record.key)
        await self._set(record, "pending", error=None)
        self._enqueue(request, record, first=True)

    # ------------------------------------------------------- waiting, files

    async def _follow(self, record: ItemRecord) -> None:
        """Wait for the item's jobs (the client's shared wait), then download."""
        try:
            jobs = await self._client.await_jobs(record.job_ids, timeout=None)
        except NotFoundError as exc:  # the job is gone; any other error ends the run
            await self._set(record, "failed", error=str(exc), failure="job")
            return
        unfinished = [job for job in jobs if not job.is_completed]
        if unfinished or not jobs:
            job = unfinished[0] if unfinished else None
            reason = (
                f"job {job.job_id} ended {job.status_name or job.status}"
                + (f": {job.error}" if job.error else "")
                if job is not None
                else "the submission named no jobs"
            )
            await self._set(record, "failed", error=reason, failure="job")
            return
        await self._set(record, "completed", error=None)
        if self.out_dir is not None:
            await self._download(record)

    async def _download(self, record: ItemRecord) -> None:
        assert self.out_dir is not None
        missing = self._missing_files(record)
        async with self._downloads:
            for number, (job_id, file_format, name) in enumerate(missing, 1):
                try:
                    await self._client.music.download(
                        job_id, self.out_dir / name, file_format=file_format
                    )
                except (TempolorError, OSError) as exc:
                    error = f"download of {name} failed: {exc}"
                    await self._set(record, "failed", error=error, failure="download")
                    return
                if name not in record.files:
                    record.files.append(name)
                if number < len(missing):  # the last one is committed with the new state
                    await self._save(record)
        await self._set(record, "downloaded", error=None)

    # ------------------------------------------------------------- plumbing

    async def _set(
        self, record: ItemRecord, state: Status, *, error: str | None, failure: str | None = None
    ) -> None:
        record.state, record.error, record.failure = state, error, failure
        await self._save(record)
        await self._emit_result(self._result(record))

    async def _save(self, record: ItemRecord) -> None:
        """Commit, shielded: a cancellation never separates a side effect from its record."""
        assert self._journal is not None
        with anyio.CancelScope(shield=True):
            await self._journal.save(record)

    async def _emit_result(self, item: BatchItemResult) -> None:
        if self._on_event is None:
            return
        event = BatchEvent(item.key, item.status, item.job_ids, item.files, item.error)
        outcome = self._on_event(event)
        if inspect.isawaitable(outcome):
            await outcome

    async def _guarded(self, function: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run a task of the run; an error that escapes an item ends the whole run as
        itself (not as an ExceptionGroup)."""
        try:
            await function(*args)
        except Exception as exc:
            self._fail_run(exc)

    def _fail_run(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
        if self._group_scope is not None:
            self._group_scope.cancel()


def _check_item(number: int, item: object) -> None:
    if not isinstance(item, (SongRequest, InstrumentalRequest)):
        raise ValidationError(
            "items",
            f"item {number} is a {type(item).__name__}, not a SongRequest or InstrumentalRequest",
        )
    if item.reply_ref is not None and len(item.reply_ref) > MAX_BATCH_REPLY_REF:
        raise ValidationError(
            "reply_ref",
            f"item {number}: at most {MAX_BATCH_REPLY_REF} characters in a batch "
            "(the batch's own token follows it)",
        )


def check_file_names(keys: Iterable[tuple[int, str]]) -> None:
    """Refuse keys that reduce to one file name (``a/b`` and ``a_b``, or a difference of
    case only), naming both keys and their numbers (lines, items), before anything is sent."""
    seen: dict[str, tuple[int, str]] = {}
    for number, key in keys:
        stem = _output.stem_for(key).lower()
        first = seen.get(stem)
        if first is not None and first[1] != key:
            raise ValidationError(
                "key",
                f"{key!r} (item {number}) and {first[1]!r} (item {first[0]}) make the same "
                f"file names ({_output.stem_for(key)}-1.*); give one another key",
            )
        seen.setdefault(stem, (number, key))


async def _enumerate(items: BatchItems) -> AsyncIterator[tuple[int, BatchRequest]]:
    number = 0
    if isinstance(items, AsyncIterable):
        async for item in items:
            number += 1
            yield number, item
        return
    for item in items:
        number += 1
        yield number, item
