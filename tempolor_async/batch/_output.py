"""Where a batch writes: ``out_dir/<key>-1.<ext>``, ``<key>-2.<ext>`` and ``manifest.jsonl``.

Every file is written beside its target under a temporary name and renamed into place when
complete (the SDK's own ``AtomicFile``), so a file under its final name is always whole. A
process killed mid-write leaves only such temporary files; the next run removes the ones
that belong to its journal's items.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .._errors import ValidationError
from .._files import AtomicFile, safe_name
from .._models import FileFormat

MANIFEST = "manifest.jsonl"
_TARGET = re.compile(r"^(?P<stem>.+)-\d+\.(?:mp3|wav|zip)$")


def stem_for(key: str) -> str:
    """The key reduced to a safe file name stem (separators become ``_``)."""
    return safe_name(key.replace("/", "_").replace("\\", "_"), fallback="item")


def file_name(stem: str, index: int, file_format: str) -> str:
    """``<stem>-<index>.<ext>``: ``-1`` for a submission's first job, ``-2`` for its second."""
    return f"{stem}-{index}.{FileFormat(file_format).extension}"


def prepare(out_dir: Path) -> None:
    """Create ``out_dir`` if missing and prove it writable, before anything is sent."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(prefix=".tempolor-probe.", dir=out_dir)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = os.fspath(out_dir)
        raise ValidationError("out_dir", f"cannot write to {where!r}: {reason}") from None


def remove_leftovers(out_dir: Path, stems: Iterable[str]) -> list[str]:
    """Delete the temporary files a killed run left for these stems (and the manifest);
    return their names. Files of other programs are left alone."""
    known = set(stems)
    removed: list[str] = []
    try:
        entries = list(os.scandir(out_dir))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(".") and name.endswith(".part")):
            continue
        target, dot, _random = name[1 : -len(".part")].rpartition(".")
        match = _TARGET.match(target) if dot else None
        if target == MANIFEST or (match is not None and match["stem"] in known):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(name)
    return removed


def write_manifest(out_dir: Path, lines: Sequence[dict[str, Any]]) -> Path:
    """Replace ``out_dir/manifest.jsonl`` atomically: one JSON object per item."""
    partial = AtomicFile(out_dir / MANIFEST)
    try:
        for line in lines:
            partial.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
        return partial.commit()
    except BaseException:
        partial.discard()
        raise
