"""What every benchmark process shares: CPU pinning, the simulator's control port, measuring
one section of a process (wall time, CPU time, memory, optionally a profile), and the small
statistics the report needs.

Imports nothing from ``tempolor_async``: the raw client processes load this module too.
"""

from __future__ import annotations

import contextlib
import cProfile
import json
import os
import pstats
import random
import resource
import statistics
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
SERVER_CPU = 1
PAGE_SIZE = 20  # records per list page, as the service sends them
CLIENT_CPU = 0

T = TypeVar("T")


def pin_to_cpu(cpu: int | None) -> bool:
    """Run this process on ``cpu`` only, where the machine allows it; False if not pinned.

    Used as a child's ``preexec_fn`` (so the process is pinned before it runs any Python of
    its own) and checked afterwards with :func:`cpus_allowed`: a process may only narrow the
    CPUs it inherited, and a refused ``sched_setaffinity`` is easy to miss."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        if cpu not in os.sched_getaffinity(0):
            return False
        os.sched_setaffinity(0, {cpu})
    except OSError:
        return False
    return True


def cpus_allowed(pid: int | str = "self") -> str:
    """``Cpus_allowed_list`` of a process as the kernel reports it (/proc/<pid>/status), the
    only trustworthy record of where it may run; "unknown" where there is no /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


# glibc raises its mmap threshold only after a block above it is freed. Until a process has
# done that, every allocation of 128 KiB or more is mapped and unmapped afresh: asyncio's
# 256 KiB socket read buffer costs two page faults and 15-20 µs of system time per request.
# A process that imported more has usually crossed the threshold already, a bare baseline
# has not. Every benchmark process (raw or SDK) does this once, first, so both run alike.
ALLOCATOR_WARMUP_BYTES = 1024 * 1024


def warm_allocator() -> None:
    """Allocate and free one 1 MiB block, so glibc's mmap threshold is raised in every
    benchmark process alike (see ALLOCATOR_WARMUP_BYTES)."""
    block = bytearray(ALLOCATOR_WARMUP_BYTES)
    del block


class Control:
    """The simulator process's control port (see ``server.py``): a JSON body in, JSON out.

    The fake does not record these requests, so they never count as API traffic.
    """

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def __call__(self, path: str, payload: Any = None) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=300) as response:
            return json.load(response)


# ----------------------------------------------------------------- measuring


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _proc_status_kib(field: str) -> float | None:
    """A ``kB`` field of /proc/self/status (Linux), or None where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return None


def peak_rss_mib() -> float:
    """This process's own high-water resident memory.

    Read from VmHWM where /proc has it, because on Linux ``ru_maxrss`` of a child also holds
    the high-water mark of the address space it replaced at exec, i.e. the parent's RSS when
    the child was spawned (with vfork, the parent's own): a child of a 200 MiB process reports
    at least 200 MiB. Elsewhere ``ru_maxrss`` (KiB on Linux, bytes on macOS)."""
    peak = _proc_status_kib("VmHWM")
    if peak is not None:
        return peak / 1024
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (1024 * 1024) if sys.platform == "darwin" else maxrss / 1024


def current_rss_mib() -> float:
    rss = _proc_status_kib("VmRSS")
    return peak_rss_mib() if rss is None else rss / 1024


def reset_peak_rss() -> None:
    """Start the high-water mark again from the current RSS (Linux 4.0+; else a no-op)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


class Meter:
    """Measures the section under ``with``: wall seconds, CPU seconds of the whole process
    (``getrusage``), resident memory before and the peak after (the process's peak, or the
    section's own with ``reset_peak=True``), and with ``profile=True`` a cProfile summary
    (which slows the section: never mix profiled and timed runs)."""

    def __init__(self, profile: bool = False, *, reset_peak: bool = False) -> None:
        self._profiler = cProfile.Profile() if profile else None
        self._reset_peak = reset_peak
        self.seconds = self.cpu_seconds = self.rss_before_mib = self.peak_rss_mib = 0.0
        self.user_seconds = self.system_seconds = 0.0
        self.minor_faults = 0

    def __enter__(self) -> Meter:
        if self._reset_peak:
            reset_peak_rss()
        self.rss_before_mib = current_rss_mib()
        self._usage = resource.getrusage(resource.RUSAGE_SELF)
        self._cpu = cpu_seconds()
        self._start = time.perf_counter()
        if self._profiler is not None:
            self._profiler.enable()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._profiler is not None:
            self._profiler.disable()
        self.seconds = time.perf_counter() - self._start
        self.cpu_seconds = cpu_seconds() - self._cpu
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.user_seconds = usage.ru_utime - self._usage.ru_utime
        self.system_seconds = usage.ru_stime - self._usage.ru_stime
        self.minor_faults = usage.ru_minflt - self._usage.ru_minflt
        self.peak_rss_mib = max(peak_rss_mib(), current_rss_mib())

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "user_seconds": self.user_seconds,
            "system_seconds": self.system_seconds,
            "minor_faults": self.minor_faults,
            "rss_before_mib": self.rss_before_mib,
            "peak_rss_mib": self.peak_rss_mib,
        }
        if self._profiler is not None:
            out["profile"] = profile_summary(self._profiler)
        return out


def _where(filename: str, line: int, function: str) -> str:
    if filename == "~":
        return function  # a builtin, e.g. "<built-in method _json.scanner>"
    for marker in ("site-packages/", "lib/python3"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    else:
        filename = os.path.relpath(filename, ROOT) if filename.startswith(str(ROOT)) else filename
    return f"{filename}:{line}({function})"


def profile_summary(profiler: cProfile.Profile, top: int = 15) -> dict[str, Any]:
    """The top functions by own time, the SDK's own functions by cumulative time, and the
    share of the profiled time spent in ``tempolor_async`` code itself."""
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in stats.values()) or 1.0
    rows = [
        (own, cumulative, calls, _where(*key), "tempolor_async" in key[0])
        for key, (_, calls, own, cumulative, _callers) in stats.items()
    ]
    sdk_own = sum(row[0] for row in rows if row[4])

    def table(selected: list[tuple[float, float, int, str, bool]]) -> list[list[Any]]:
        return [[round(o, 4), round(c, 4), n, where] for o, c, n, where, _ in selected[:top]]

    return {
        "total_seconds": total,
        "sdk_share": sdk_own / total,
        "by_own_time": table(sorted(rows, reverse=True)),
        "sdk_by_cumulative": table(sorted((r for r in rows if r[4]), key=lambda r: -r[1])),
    }


# ---------------------------------------------------------------- statistics


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear-interpolated percentile, ``fraction`` in [0, 1]."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rotate(items: Sequence[T], round_index: int) -> list[T]:
    """The order to run variants in for a round: rotated each round, so with two variants
    they alternate which goes first (ABBA...), cancelling order effects."""
    shift = round_index % len(items)
    return [*items[shift:], *items[:shift]]


def spread_durations(count: int, low: float, high: float) -> list[float]:
    """``count`` job durations spread evenly over [low, high], in a fixed shuffled order, so
    completions are spread out and the two jobs of a submission do not finish together."""
    if count == 1:
        return [low]
    step = (high - low) / (count - 1)
    values = [round(low + step * index, 3) for index in range(count)]
    random.Random(count).shuffle(values)
    return values
