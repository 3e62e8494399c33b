"""The results as data (figures per round, targets, tables) and as RESULTS.md."""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .common import ROOT, median

PACKAGES = ("tempolor-async", "aiohttp", "yarl", "multidict", "attrs", "cattrs", "anyio", "orjson")


@dataclass(frozen=True)
class Target:
    op: str  # "<=" or ">="
    limit: float

    def met(self, value: float) -> bool:
        return value <= self.limit if self.op == "<=" else value >= self.limit


@dataclass
class Figure:
    """One number measured once per round; summarised by its median and range."""

    label: str
    values: list[float]
    unit: str = "x"
    target: Target | None = None
    digits: int = 2

    @property
    def median(self) -> float:
        return median(self.values)

    def format(self, value: float) -> str:
        if value != value:  # NaN: not measured
            return "n/a"
        space = " " if self.unit not in ("", "x", "%") else ""
        return f"{value:,.{self.digits}f}{space}{self.unit}"

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.median)


@dataclass
class Section:
    key: str  # "B1"
    title: str
    figures: list[Figure] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)  # the per-round table
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profile: str | None = None
    standalone: str | None = None  # a standalone module's own markdown, included as printed
    failed: bool = False

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    @property
    def missed(self) -> list[Figure]:
        return [figure for figure in self.figures if figure.met is False]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def verdict(figure: Figure) -> str:
    if figure.met is None:
        return ""
    return "met" if figure.met else "**missed**"


def _target(figure: Figure) -> str:
    if figure.target is None:
        return ""
    return f"{figure.target.op} {figure.format(figure.target.limit)}"


def render_section(section: Section) -> list[str]:
    lines = [f"## {section.key}: {section.title}", ""]
    if section.standalone is not None:
        lines += [*section.notes, "", section.standalone or "(no output)"]
        return [*lines, ""]
    rows = [
        [
            figure.label,
            figure.format(figure.median),
            f"{figure.format(min(figure.values))} - {figure.format(max(figure.values))}",
            _target(figure),
            verdict(figure),
        ]
        for figure in section.figures
    ]
    lines += table(["figure", "median", "min - max", "target", ""], rows)
    for note in section.notes:
        lines += ["", note]
    if section.rows:
        lines += ["", "Per round:", ""]
        lines += table(section.headers, section.rows)
    if section.profile:
        lines += ["", section.profile]
    return [*lines, ""]


def render_profile(title: str, summary: dict[str, Any]) -> str:
    """A cProfile summary (from ``common.profile_summary``) as Markdown."""
    share = summary["sdk_share"] * 100
    lines = [
        f"Profile of {title} (cProfile, {summary['total_seconds']:.2f} s of own time; "
        f"{share:.0f} % of it in tempolor_async's own functions). Top by own time:",
        "",
        "```",
        f"{'own s':>8} {'cum s':>8} {'calls':>8}  function",
    ]
    lines += [
        f"{own:8.3f} {cum:8.3f} {calls:8d}  {where}"
        for own, cum, calls, where in summary["by_own_time"]
    ]
    lines += ["```", "", "tempolor_async functions by cumulative time:", "", "```"]
    lines += [
        f"{own:8.3f} {cum:8.3f} {calls:8d}  {where}"
        for own, cum, calls, where in summary["sdk_by_cumulative"][:10]
    ]
    return "\n".join([*lines, "```"])


def _git(*args: str) -> str:
    """Output of a read-only git command, or "" where there is no git or no repository."""
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""


def sdk_source() -> str:
    """What SDK was measured: a digest of tempolor_async's sources, the commit, and the
    files whose content differs from that commit (compared by git blob id, read-only)."""
    package = ROOT / "tempolor_async"
    digest = hashlib.sha256()
    blobs: dict[str, str] = {}
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        data = path.read_bytes()
        digest.update(relative.encode() + b"\0" + data)
        blobs[relative] = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    text = f"tempolor_async sources sha256 {digest.hexdigest()[:12]}"
    commit = _git("rev-parse", "--short", "HEAD").strip()
    if not commit:
        return text
    committed = {}
    for line in _git("ls-tree", "-r", "HEAD", "--", "tempolor_async").splitlines():
        meta, _, name = line.partition("\t")
        if name.endswith(".py"):
            committed[name] = meta.split()[2]
    changed = sorted(
        name for name in blobs.keys() | committed.keys() if blobs.get(name) != committed.get(name)
    )
    state = f"uncommitted changes in {', '.join(changed)}" if changed else "as committed"
    return f"{text}; commit {commit}, {state}"


def machine(
    affinity: Sequence[str], load_before: str, load_after: str, source_before: str
) -> list[str]:
    """Where and when the run happened, and what was measured."""
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo").read().splitlines():  # noqa: SIM115 - tiny file
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    source_after = sdk_source()
    if source_after != source_before:
        source = (
            f"**changed during the run**: {source_before} at the start, {source_after} at the end"
        )
    else:
        source = source_before
    now = datetime.datetime.now(datetime.timezone.utc)
    return [
        f"- Date: {now:%Y-%m-%d %H:%M} UTC",
        f"- SDK measured: {source}",
        f"- CPU: {cpu}, {os.cpu_count()} cores",
        "- CPU affinity, as `Cpus_allowed_list` in /proc/<pid>/status of every process "
        "(the values seen per role; the run stops if a pinned process is elsewhere):",
        *(f"  - {line}" for line in affinity),
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()} ({sys.implementation.name}); " + ", ".join(versions),
        f"- Load (uptime) before: {load_before}; after: {load_after}",
    ]


def render(sections: Sequence[Section], header: Sequence[str], *, smoke: bool, command: str) -> str:
    title = "# Benchmark results" + (" (SMOKE RUN: tiny sizes, no claims)" if smoke else "")
    lines = [title, ""]
    if smoke:
        lines += [
            "This is a `--quick` smoke run, made so the harness cannot rot. Its sizes are too",
            "small and its rounds too few for any of the figures below to mean anything.",
            "",
        ]
    lines += [*header, f"- Command: `{command}`", "", "## Targets", ""]
    rows = [
        [section.key, figure.label, figure.format(figure.median), _target(figure), verdict(figure)]
        for section in sections
        for figure in section.figures
        if figure.target is not None
    ]
    lines += table(["", "figure", "median", "target", ""], rows)
    lines += [
        "",
        "Every ratio is SDK / raw aiohttp, computed per round from the two variants run",
        "back to back in that round (order swapped every round); the median and the range",
        "are over rounds. A target is judged on the median.",
        "",
    ]
    for section in sections:
        lines += render_section(section)
    return "\n".join(lines).rstrip() + "\n"
