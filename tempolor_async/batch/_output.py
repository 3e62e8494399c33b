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
# Names the one journal whose files this folder holds.
OWNER = ".tempolor-batch-owner"
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


def claim_folder(out_dir: Path, journal: Path, identity: tuple[int, int] | None) -> None:
    """Make ``out_dir`` belong to ``journal``, or refuse it (``ValidationError``, before
    anything is sent) when another journal owns it.

    ``out_dir/.tempolor-batch-owner`` names the owner by its resolved path and its file
    identity (device, inode): the same file under another name (a link, a journal moved
    within its file system) is the same owner, and the file then names its new path."""
    owner_path = out_dir / OWNER
    resolved = os.path.realpath(journal)
    mine = {
        "journal": resolved,
        "device": identity[0] if identity else None,
        "inode": identity[1] if identity else None,
    }
    try:
        with open(owner_path, encoding="utf-8") as file:
            owner = json.load(file)
    except FileNotFoundError:
        owner = None
    except (OSError, ValueError) as exc:
        raise ValidationError(
            "out_dir",
            f"{os.fspath(out_dir)!r} has an unreadable {OWNER} ({exc}); "
            "remove it if this folder is free",
        ) from None
    if owner is None:
        _write_owner(owner_path, mine, exclusive=True)
        return
    if not isinstance(owner, dict):
        owner = {}
    if identity is not None:
        same = (owner.get("device"), owner.get("inode")) == identity
    else:  # no file identity on this system: the path decides
        same = owner.get("journal") == resolved
    if same:
        if owner.get("journal") != resolved:  # moved or renamed: name it as it is now
            _write_owner(owner_path, mine, exclusive=False)
        return
    named = owner.get("journal")
    raise ValidationError(
        "out_dir",
        f"{os.fspath(out_dir)!r} belongs to the batch journal {named!r}, not to "
        f"{os.fspath(journal)!r}: give this journal its own --out folder (two journals in "
        f"one folder overwrite each other's files), or remove {OWNER} to hand it over",
    )


def _write_owner(owner_path: Path, owner: dict[str, Any], *, exclusive: bool) -> None:
    """Write the owner file whole; ``exclusive``: only if no other run wrote one meanwhile."""
    text = json.dumps(owner, ensure_ascii=False) + "\n"
    if not exclusive:
        partial = AtomicFile(owner_path)
        try:
            partial.write(text.encode())
            partial.commit()
        except BaseException:
            partial.discard()
            raise
        return
    descriptor, temporary = tempfile.mkstemp(prefix=f"{OWNER}.", dir=owner_path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, owner_path)  # fails if another run claimed it first
            taken = False
        except FileExistsError:
            taken = True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    if taken:
        raise ValidationError(
            "out_dir",
            f"{os.fspath(owner_path.parent)!r} was just claimed by another batch journal",
        )


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
        if name.startswith(OWNER + "."):  # an owner file a killed run was writing
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(name)
            continue
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
