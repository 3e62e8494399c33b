"""What the TemPolor commands share: the client built from the global options, folders
checked before anything is sent, waiting with live progress, the tables every command
prints, and the options several commands take."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import _files
from .._client import TempolorClient
from .._errors import ValidationError
from .._models import FileFormat, InstrumentalModel, MusicJob, SongModel
from ._output import Output, human_size, positive_int

Handler = Callable[[argparse.Namespace, Output], Coroutine[Any, Any, int]]
Command = Callable[..., argparse.ArgumentParser]
JOB_COLUMNS = ["job_id", "status", "progress", "title", "created"]
# The models the service documents, by kind. Names are open (the service adds models), so
# another name is sent as given, with a note.
DOCUMENTED_MODELS = {
    "song": [model.value for model in SongModel],
    "instrumental": [model.value for model in InstrumentalModel],
}


def tempolor_client(args: argparse.Namespace) -> TempolorClient:
    return TempolorClient(
        getattr(args, "token", None),
        base_url=getattr(args, "base_url", None),
        user_id=getattr(args, "user_id", None),
        coordination=getattr(args, "coordination", None),
    )


def destination_folder(path: str, option: str) -> str:
    """``path`` as a folder for the SDK: a trailing separator makes it one, created if
    missing. Checked (and created) here, before anything is sent."""
    folder = os.path.join(path, "")
    try:
        _files.check_destination(folder)
    except ValidationError as exc:
        raise ValidationError(option, str(exc).removeprefix("dest: ")) from None
    return folder


@contextmanager
def options_named(**names: str) -> Iterator[None]:
    """A ValidationError about an SDK parameter raised inside, named as the command's own
    option or argument instead: ``options_named(dest="--out")`` turns ``dest: ...`` into
    ``--out: ...``."""
    try:
        yield
    except ValidationError as exc:
        name = names.get(exc.parameter)
        if name is None:
            raise
        message = str(exc).removeprefix(f"{exc.parameter}: ")
        raise ValidationError(name, message.replace(f" {exc.parameter} ", f" {name} ")) from None


def undocumented_model(kind: str, model: str | None) -> str | None:
    """A note for a model name the service does not document, else None."""
    documented = DOCUMENTED_MODELS[kind]
    if model is None or not model.strip() or model in documented:
        return None
    return (
        f"model {model!r} is not a documented {kind} model ({', '.join(documented)}); "
        "it is sent as given"
    )


# ------------------------------------------------------------------- output


def job_rows(jobs: Sequence[MusicJob]) -> list[list[Any]]:
    return [
        [job.job_id, job.status_name, job.progress, job.title_en, job.create_time] for job in jobs
    ]


async def wait_for(
    client: TempolorClient, out: Output, job_ids: Sequence[str], poll_interval: float | None
) -> list[MusicJob]:
    """Wait for every job with the shared poll loop; a live bar per job on a terminal.
    Returns the final records in the order of ``job_ids``."""
    finished: list[MusicJob] = []
    with out.job_progress({job_id: job_id for job_id in job_ids}) as bars:
        on_progress = bars.update if out.live else None
        async for job in client.as_completed(
            job_ids, poll_interval=poll_interval, on_progress=on_progress
        ):
            finished.append(job)
    order = {job_id: index for index, job_id in enumerate(job_ids)}
    return sorted(finished, key=lambda job: order.get(job.job_id or "", len(order)))


def report_failures(out: Output, jobs: Sequence[MusicJob]) -> int:
    failed = [job for job in jobs if not job.is_completed]
    for job in failed:
        out.error(
            f"job {job.job_id} ended {job.status_name}{': ' + job.error if job.error else ''}"
        )
    return 1 if failed else 0


def file_entry(
    origin: str | None, fmt: str, path: Path, *, origin_is: str = "job_id"
) -> dict[str, Any]:
    """One file written: what it came from (a job id, or the file a command was given)."""
    return {origin_is: origin, "format": fmt, "path": str(path), "bytes": path.stat().st_size}


def show_files(out: Output, files: list[dict[str, Any]], origin_is: str = "job_id") -> None:
    if out.as_json:
        out.json({"files": files})
        return
    rows = [[f[origin_is], f["format"], f["path"], human_size(f["bytes"])] for f in files]
    out.table([origin_is, "format", "path", "size"], rows)


def listing(out: Output, data: Any, columns: list[str], rows: list[list[Any]]) -> int:
    if out.as_json:
        out.json(data)
    else:
        out.table(columns, rows)
    return 0


# ------------------------------------------------------------------ options


def text_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise argparse.ArgumentTypeError(f"{path} is not UTF-8 text") from None


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return seconds


def model_option(parser: argparse.ArgumentParser, kind: str) -> None:
    parser.add_argument(
        "--model",
        metavar="MODEL",
        help=f"model name: {', '.join(DOCUMENTED_MODELS[kind])} (default: the service's "
        "default); another name is sent as given, with a note",
    )


def format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        default="mp3",
        choices=[f.value for f in FileFormat],
        help="file format (default: %(default)s)",
    )


def poll_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--poll-interval",
        type=_positive_seconds,
        metavar="SECONDS",
        help="fixed poll interval (default: adaptive, about 2 s growing to 15 s)",
    )


def limit_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--limit", type=positive_int, metavar="N", help="at most N items (default: all)"
    )


def content_type_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--content-type",
        metavar="TYPE",
        help="audio type, e.g. audio/mpeg (default: from the file's extension)",
    )
