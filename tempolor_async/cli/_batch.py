"""``tempolor batch FILE``: many tracks from a JSON Lines or CSV file, resumably.

Every line is checked before anything is sent (bad lines are listed with their numbers, exit
2). The run keeps a journal (``<out>/.tempolor-batch.sqlite`` by default), so running the
same command again resumes where the last run stopped, crashed or was interrupted. On a
terminal a live display shows the items per state, each account's slots in use, the time
elapsed and an estimate of the time left; piped, it prints one row per item as soon as that
item finishes (flushed), then the rest and the summary. Exit 0 when every item completed, 1
when any failed (or some could not be submitted), 130 when interrupted (Ctrl-C), 143 after
SIGTERM (``kill``, ``docker stop``, ``timeout``): both stop gracefully.
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import anyio
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .._client import TempolorClient
from .._errors import TempolorError, ValidationError
from .._models import FileFormat
from ..batch import BatchReport, BatchRun, account_slots
from ..batch._output import stem_for
from ..batch._reconcile import MAX_BATCH_REPLY_REF
from ..batch._report import STATUSES, BatchEvent
from ..batch._requests import FIELDS, REQUEST_TYPES, InstrumentalRequest, SongRequest
from ._common import DOCUMENTED_MODELS, undocumented_model
from ._common import tempolor_client as _client
from ._output import Output, _cell

JOURNAL_NAME = ".tempolor-batch.sqlite"
INTEGER_FIELDS = frozenset({"bpm", "max_jobs"})
ALL_FIELDS = tuple(dict.fromkeys(("key", "type", *FIELDS["song"], *FIELDS["instrumental"])))
MAX_LISTED_ERRORS = 20
STOP_REASONS = {
    "budget": "the --max-generations budget is spent",
    "min_remaining": "the account's remaining generations fell below --min-remaining",
    "no_account": "every account refused to generate",
    "interrupted": "interrupted",
}


def add_command(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Register ``tempolor batch`` with the command line's ``command`` helper."""
    batch = command("batch", cmd_batch, "generate many tracks from a file, resumably")
    batch.add_argument(
        "file",
        help="JSON Lines (one object per line) or CSV with a header row; an item's model: "
        + "; ".join(f"{kind} {', '.join(names)}" for kind, names in DOCUMENTED_MODELS.items())
        + " (another name is sent as given, with a note)",
    )
    batch.add_argument(
        "--out", default="tempolor-batch", metavar="DIR", help="folder (default ./tempolor-batch)"
    )
    batch.add_argument(
        "--format",
        dest="formats",
        default=["mp3"],
        type=_formats,
        metavar="mp3,wav,stems",
        help="formats to download, comma-separated (default mp3)",
    )
    batch.add_argument(
        "--journal", metavar="PATH", help=f"journal file (default <out>/{JOURNAL_NAME})"
    )
    batch.add_argument(
        "--max-generations",
        type=_count,
        metavar="N",
        help="never submit more than N generations in this journal, all runs together",
    )
    batch.add_argument(
        "--min-remaining",
        type=_count,
        metavar="N",
        help="stop submitting once the service's remainNum falls below N",
    )
    batch.add_argument(
        "--retry-failed", action="store_true", help="send failed items again (pays again)"
    )
    batch.add_argument(
        "--confirm-window",
        type=_seconds,
        default=120.0,
        metavar="S",
        help="seconds before an item whose answer was lost, and that the service does not "
        "show, is sent again (default 120; shorter risks paying twice for a late accept)",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds, zero or more (got {text!r})"
        )
    return value


def _formats(text: str) -> list[str]:
    formats = [part.strip() for part in text.split(",") if part.strip()]
    known = [f.value for f in FileFormat]
    unknown = [part for part in formats if part not in known]
    if unknown or not formats:
        raise argparse.ArgumentTypeError(f"must be some of {','.join(known)}, comma-separated")
    return list(dict.fromkeys(formats))


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number, zero or more (got {text!r})")
    return value


# ----------------------------------------------------------------- reading


class BadInput(Exception):
    """The file's problems, one ``(line, message)`` per bad line."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        super().__init__(f"{len(problems)} bad lines")
        self.problems = problems


def load_items(path: Path) -> list[SongRequest | InstrumentalRequest]:
    """Every item of the file, or BadInput listing every bad line (nothing is sent)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise BadInput([(0, f"cannot read {path}: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise BadInput([(0, f"{path} is not UTF-8 text")]) from None
    if path.suffix.lower() == ".csv" or (
        path.suffix.lower() not in (".jsonl", ".ndjson", ".json") and text.lstrip()[:1] != "{"
    ):
        rows = _csv_rows(text)
    else:
        rows = _jsonl_rows(text)
    items: list[SongRequest | InstrumentalRequest] = []
    problems: list[tuple[int, str]] = []
    first_line: dict[str, int] = {}
    stems: dict[str, tuple[int, str]] = {}
    for line, row in rows:
        if isinstance(row, str):
            problems.append((line, row))
            continue
        try:
            item = _request(row)
        except ValidationError as exc:
            problems.append((line, str(exc)))
            continue
        key = item.item_key
        if key in first_line:
            problems.append((line, f"key {key!r} is already used on line {first_line[key]}"))
            continue
        if item.reply_ref is not None and len(item.reply_ref) > MAX_BATCH_REPLY_REF:
            problems.append(
                (line, f"reply_ref: at most {MAX_BATCH_REPLY_REF} characters in a batch")
            )
            continue
        stem = stem_for(key)
        other = stems.get(stem.lower())
        if other is not None:
            problems.append(
                (
                    line,
                    f"key {key!r} makes the same file names ({stem}-1.*) as key {other[1]!r} "
                    f"on line {other[0]}; give one of them another key",
                )
            )
            continue
        stems[stem.lower()] = (line, key)
        first_line[key] = line
        items.append(item)
    if not items and not problems:
        problems.append((0, f"{path} holds no items"))
    if problems:
        raise BadInput(problems)
    return items


def _jsonl_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            yield number, f"not valid JSON ({exc})"
            continue
        if not isinstance(row, dict):
            yield number, f"must be a JSON object, not {type(row).__name__}"
            continue
        yield number, row


def _csv_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.DictReader(text.splitlines(keepends=True))
    header = [name.strip() for name in reader.fieldnames or []]
    unknown = [name for name in header if name not in ALL_FIELDS]
    if unknown or "prompt" not in header:
        problem = (
            f"unknown column(s) {', '.join(map(repr, unknown))}"
            if unknown
            else "no 'prompt' column"
        )
        yield 1, f"{problem}; the columns are {', '.join(ALL_FIELDS)}"
        return
    reader.fieldnames = header
    for row in reader:
        if None in row:
            yield reader.line_num, "more cells than the header has columns"
            continue
        values: dict[str, Any] = {}
        for name, cell in row.items():
            if cell is None or not cell.strip():
                continue
            if name in INTEGER_FIELDS:
                try:
                    values[name] = int(cell)
                except ValueError:
                    values[name] = cell  # refused below, with the parameter's own rule
            else:
                values[name] = cell
        if values:
            yield reader.line_num, values


def _request(row: dict[str, Any]) -> SongRequest | InstrumentalRequest:
    values = dict(row)
    kind = values.pop("type", None) or "song"
    if kind not in REQUEST_TYPES:
        raise ValidationError("type", f"must be song or instrumental (got {kind!r})")
    allowed = FIELDS[kind]
    unknown = [name for name in values if name not in allowed]
    if unknown:
        name = unknown[0]
        what = f"a parameter of a {kind}" if name in ALL_FIELDS else "a known field"
        raise ValidationError(name, f"is not {what}; the fields are {', '.join(allowed)}")
    if "prompt" not in values:
        raise ValidationError("prompt", "is required")
    prompt = values.pop("prompt")
    return REQUEST_TYPES[kind](prompt, **values)


# ----------------------------------------------------------------- running


async def cmd_batch(args: argparse.Namespace, out: Output) -> int:
    path = Path(args.file)
    try:
        items = load_items(path)
    except BadInput as bad:
        for line, message in bad.problems[:MAX_LISTED_ERRORS]:
            out.error(f"{path}:{line}: {message}" if line else message)
        if len(bad.problems) > MAX_LISTED_ERRORS:
            out.error(f"... and {len(bad.problems) - MAX_LISTED_ERRORS} more bad lines")
        return 2
    notes = (
        undocumented_model("song" if isinstance(item, SongRequest) else "instrumental", item.model)
        for item in items
    )
    for note in dict.fromkeys(note for note in notes if note):
        out.warn(note)
    out_dir = Path(args.out)
    journal = Path(args.journal) if args.journal else out_dir / JOURNAL_NAME
    printed: set[str] = set()
    async with _client(args) as client:
        run = BatchRun(
            client,
            items,
            journal=journal,
            out_dir=out_dir,
            formats=args.formats,
            max_generations=args.max_generations,
            min_remaining=args.min_remaining,
            retry_failed=args.retry_failed,
            confirm_window=args.confirm_window,
            on_event=None if out.live or out.as_json else _print_finished(printed),
        )
        report: BatchReport | None = None
        error: Exception | None = None
        received: list[int] = []
        async with anyio.create_task_group() as group:
            group.start_soon(_cancel_on_signal, group.cancel_scope, received)
            try:
                with _progress(out, run, client, group):
                    report = await run.run()
            except Exception as exc:  # raised below, outside the task group
                error = exc
            group.cancel_scope.cancel()
        if error is not None:
            if any(item.job_ids for item in run.results()):
                _show(out, run.report(), out_dir, journal, printed)  # paid jobs stay in view
            raise error
    if report is None:
        report = run.report("interrupted")
    _show(out, report, out_dir, journal, printed)
    if report.stopped_reason == "interrupted":
        return 143 if received == [signal.SIGTERM] else 130
    return 0 if report.completed == len(report.items) else 1


async def _cancel_on_signal(scope: anyio.CancelScope, received: list[int]) -> None:
    """Ctrl-C (SIGINT) and SIGTERM stop the run gracefully: nothing new is sent, every job
    id is kept, the manifest is written and the journal folded; ``received`` tells which."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for number in signals:
            received.append(int(number))
            scope.cancel()
            return


def _print_finished(printed: set[str]) -> Callable[[BatchEvent], None]:
    """Piped: one row per item as soon as it finishes (flushed, so a reader sees it now)."""

    def on_event(event: BatchEvent) -> None:
        if event.status not in ("downloaded", "failed") or event.key in printed:
            return
        printed.add(event.key)
        sys.stdout.write(_row(event.key, event.status, event.job_ids, event.files, event.error))
        sys.stdout.flush()

    return on_event


def _row(key: str, status: str, job_ids: Any, files: Any, error: str | None) -> str:
    return "\t".join(_cell(value) for value in (key, status, job_ids, files, error)) + "\n"


@contextmanager
def _progress(
    out: Output, run: BatchRun, client: TempolorClient, group: anyio.abc.TaskGroup
) -> Iterator[None]:
    """A live view of the run on a terminal; nothing when piped."""
    if not out.live:
        yield
        return
    slots: dict[str, tuple[int, int]] = {}

    async def refresh_slots() -> None:
        while True:
            with suppress(TempolorError):  # the display goes on without a fresh view
                slots.update(await account_slots(client))
            await anyio.sleep(3.0)

    done_before: int | None = None

    def view() -> Group:
        nonlocal done_before
        counts = run.counts()
        total = sum(counts.values())
        finished = counts.get("downloaded", 0) + counts.get("failed", 0)
        if run.out_dir is None:
            finished += counts.get("completed", 0)
        if done_before is None and total:
            done_before = finished
        elapsed = time.monotonic() - run.started
        finished_now = finished - (done_before or 0)
        left = "estimating"
        if finished_now and total > finished:
            left = _clock(elapsed / finished_now * (total - finished))
        elif total and finished == total:
            left = "done"
        head = Text(
            f"tempolor batch  {finished}/{total} finished  elapsed {_clock(elapsed)}  left {left}",
            style="bold",
        )
        states = Table.grid(padding=(0, 2))
        states.add_row(*(f"{status} {counts.get(status, 0)}" for status in STATUSES))
        accounts = Table.grid(padding=(0, 2))
        accounts.add_row(
            "slots",
            *(_slots(user, used, maximum) for user, (used, maximum) in slots.items()),
        )
        parts: list[Any] = [head, states, accounts]
        if run.stopped_reason:
            parts.append(Text(f"stopped submitting: {STOP_REASONS[run.stopped_reason]}"))
        return Group(*parts)

    async def redraw(live: Live) -> None:
        while True:
            live.update(view())
            await anyio.sleep(0.5)

    with Live(view(), console=out.console, refresh_per_second=4) as live:
        group.start_soon(refresh_slots)
        group.start_soon(redraw, live)
        yield
        counts = run.counts()
        if not counts.get("submitting") and not counts.get("submitted"):
            # Nothing of the batch runs any more: its slots are free (the view last read
            # may be seconds old).
            slots.update({user: (0, maximum) for user, (_, maximum) in slots.items()})
        live.update(view())


def _slots(user: str, used: int, maximum: int) -> str:
    """An account's slots in use out of its maxJobs. A generation is two jobs and may start
    while one slot is left, so the jobs running can pass maxJobs by one: the slots are full."""
    if not maximum:
        return f"{user}: {used} running"
    return f"{user}: {min(used, maximum)}/{maximum}"


def _clock(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes = f"{rest // 60:02d}:{rest % 60:02d}"
    return f"{hours}:{minutes}" if hours else minutes


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _summary(report: BatchReport) -> str:
    """Counts by what they mean to the payer: submitted items are paid, pending ones not."""
    submitted = sum(
        1 for item in report.items if item.status in ("submitting", "submitted", "completed")
    )
    waiting = report.pending - submitted
    parts = [f"{report.completed} completed", f"{report.failed} failed"]
    if submitted:
        parts.append(f"{submitted} submitted (paid, not finished yet)")
    parts.append(f"{waiting} pending")
    sent = report.generations_submitted
    text = (
        f"{_plural(len(report.items), 'item')}: {', '.join(parts)}; "
        f"{_plural(sent, 'generation')} submitted in this run"
    )
    if report.resent_unconfirmed:
        text += f" ({report.resent_unconfirmed} sent again after their answer was lost)"
    return text


def _show(
    out: Output,
    report: BatchReport,
    out_dir: Path,
    journal: Path,
    printed: set[str] | None = None,
) -> None:
    if out.as_json:
        out.json(
            {
                "completed": report.completed,
                "failed": report.failed,
                "pending": report.pending,
                "generations_submitted": report.generations_submitted,
                "resent_unconfirmed": report.resent_unconfirmed,
                "stopped_reason": report.stopped_reason,
                "journal": str(journal),
                "manifest": str(out_dir / "manifest.jsonl"),
                "items": [
                    {
                        "key": item.key,
                        "status": item.status,
                        "job_ids": list(item.job_ids),
                        "files": [str(path) for path in item.files],
                        "error": item.error,
                    }
                    for item in report.items
                ],
            }
        )
        return
    summary = _summary(report)
    stopped = (
        f"stopped submitting: {STOP_REASONS.get(report.stopped_reason, report.stopped_reason)}"
        if report.stopped_reason
        else ""
    )
    if out.live:
        failed = [item for item in report.items if item.status == "failed"]
        if failed:
            out.table(["key", "error"], [[item.key, item.error] for item in failed], "failed")
        out.print(summary)
        if stopped:
            out.print(stopped)
        out.note(f"files and manifest.jsonl in {out_dir}; run the same command again to resume")
        return
    for item in report.items:  # the items not printed as they finished
        if printed is None or item.key not in printed:
            sys.stdout.write(_row(item.key, item.status, item.job_ids, item.files, item.error))
    sys.stdout.flush()
    sys.stderr.write(summary + "\n" + (stopped + "\n" if stopped else ""))
