"""How the command prints: rich tables and live progress on a terminal, plain tab-separated
text when piped (a header line first when there are several columns), JSON with ``--json``.
Errors go to stderr as one line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .._errors import redact
from .._models import MusicJob


class Output:
    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        self.console = Console(highlight=False)
        self.errors = Console(stderr=True, highlight=False)

    @property
    def live(self) -> bool:
        """Progress displays and colour only for a person at a terminal."""
        return self.console.is_terminal and not self.as_json

    def json(self, value: Any) -> None:
        text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        sys.stdout.write(redact(text) + "\n")

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> None:
        if self.live:
            table = Table(title=title or None)
            for column in columns:
                table.add_column(column, overflow="fold")  # wrap long paths and ids, never cut
            for row in rows:
                table.add_row(*(Text(_cell(value)) for value in row))  # no markup: data
            self.console.print(table)
            return
        # Piped: a header line names the columns (several numbers side by side are
        # otherwise anonymous); a single column of ids stays bare, for xargs and friends.
        lines = [columns] if len(columns) > 1 else []
        lines += rows
        sys.stdout.write("".join("\t".join(map(_cell, line)) + "\n" for line in lines))

    def fields(self, pairs: Sequence[tuple[str, Any]]) -> None:
        """A record as aligned ``name: value`` lines."""
        width = max((len(name) for name, _ in pairs), default=0)
        for name, value in pairs:
            if value is not None:
                self.print(f"{name.ljust(width)}  {_cell(value)}")

    def print(self, text: str) -> None:
        text = redact(text)
        if self.live:
            self.console.print(text, markup=False)
        else:
            sys.stdout.write(text + "\n")

    def note(self, text: str) -> None:
        """Side information: shown at a terminal, silent when piped."""
        if self.live:
            self.console.print(text, style="dim")

    def warn(self, text: str) -> None:
        """One line on stderr, at a terminal or not, that does not stop the command."""
        self.errors.print(f"note: {redact(text)}", style="yellow", markup=False, soft_wrap=True)

    def error(self, text: str) -> None:
        self.errors.print(f"error: {redact(text)}", style="bold red", markup=False, soft_wrap=True)

    @contextmanager
    def job_progress(self, labels: dict[str, str]) -> Iterator[JobProgress]:
        """A live bar per job on a terminal; nothing otherwise."""
        if not self.live:
            yield JobProgress(None, {})
            return
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        with progress:
            tasks = {
                job_id: progress.add_task(label, total=100, status="SUBMITTED")
                for job_id, label in labels.items()
            }
            yield JobProgress(progress, tasks)


class JobProgress:
    def __init__(self, progress: Progress | None, tasks: dict[str, TaskID]) -> None:
        self._progress = progress
        self._tasks = tasks

    def update(self, job: MusicJob) -> None:
        if self._progress is None or job.job_id not in self._tasks:
            return
        self._progress.update(
            self._tasks[job.job_id],
            completed=job.progress or 0,
            status=job.status_name or str(job.status),
        )


def _cell(value: Any) -> str:
    """A value as table text; a token a server echoed into a record is hidden here too."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(item) for item in value)
    return redact(str(value))


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return number
