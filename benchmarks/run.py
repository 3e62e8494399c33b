"""``python -m benchmarks``: every benchmark, raw aiohttp against the SDK, in one run.

Starts the simulator (``server.py``) and a fast canned-answer server (``fastserver.py``) in
their own processes on one CPU, runs each measured variant in a fresh client process
(``client.py``) on the other, alternating raw and SDK round by round, checks where every
process was allowed to run, and writes RESULTS.md and the B4 plot. See benchmarks/README.md
for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import (
    ALLOCATOR_WARMUP_BYTES,
    CLIENT_CPU,
    PAGE_SIZE,
    ROOT,
    SERVER_CPU,
    Control,
    cpus_allowed,
    median,
    pin_to_cpu,
    rotate,
    spread_durations,
)
from .report import Figure, Section, Target, machine, render, render_profile, sdk_source

MIB = 1024 * 1024
AS_COMPLETED_MAX_POLL_RATE = 200.0
FIRST_DOWNLOAD_BYTES = MIB  # B5's untimed first download
IMPORT_SDK = "import tempolor_async"
IMPORT_DEPS = "import aiohttp, attrs, cattrs, anyio"
Runs = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Sizes:
    rounds: int  # B5, B6
    client_rounds: int  # B1-B3: cheap rounds with a wide spread, so more of them
    b4_rounds: int  # long rounds (about a minute) with a narrow spread, so fewer
    b1_requests: dict[int, int]  # concurrency -> requests measured
    b1_warmup: int
    b2_number: int
    b2_repeat: int
    b3_records: int
    b3_walks: int  # timed walks per process
    b4_jobs: int
    b4_plot_jobs: tuple[int, ...]  # extra sizes for the plot (b4_jobs comes from the rounds)
    b4_durations: tuple[float, float]
    b4_poll: float
    b5_bytes: int
    b5_repeat: int  # large downloads per process (the median is kept)
    b6_runs: int


FULL = Sizes(
    rounds=5,
    client_rounds=7,
    b4_rounds=3,
    b1_requests={1: 2000, 16: 6000, 128: 6000},
    b1_warmup=500,
    b2_number=2000,
    b2_repeat=7,
    b3_records=1000,
    b3_walks=3,
    b4_jobs=1000,
    b4_plot_jobs=(50, 200, 500),
    b4_durations=(5.0, 20.0),
    b4_poll=1.0,
    b5_bytes=100 * MIB,
    b5_repeat=3,
    b6_runs=20,
)
QUICK = Sizes(
    rounds=1,
    client_rounds=1,
    b4_rounds=1,
    b1_requests={1: 100, 16: 300, 128: 300},
    b1_warmup=50,
    b2_number=200,
    b2_repeat=3,
    b3_records=100,
    b3_walks=1,
    b4_jobs=20,
    b4_plot_jobs=(5, 10),
    b4_durations=(0.5, 2.0),
    b4_poll=0.5,
    b5_bytes=4 * MIB,
    b5_repeat=1,
    b6_runs=3,
)


class BenchmarkError(RuntimeError):
    pass


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def child_environment(workdir: Path) -> dict[str, str]:
    """Bytecode cached in a private folder: an installed package has its .pyc files, and
    PYTHONDONTWRITEBYTECODE (set on these machines) would make every process recompile the
    SDK from source, which B6 would then count against it."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return env


class Pinning:
    """Where each process may run, as the kernel reports it (``Cpus_allowed_list`` in
    /proc/<pid>/status), checked against what was asked. Every process is pinned by the
    orchestrator before it runs any Python (``preexec_fn``), and the orchestrator itself is
    never pinned: a process may only narrow the CPUs it inherits, so a pinned parent would
    silently keep its children on its own CPU."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.seen: dict[str, set[str]] = {}

    def cpu(self, role: str) -> int | None:
        if not self.enabled:
            return None
        return SERVER_CPU if role.endswith("server") else CLIENT_CPU

    def preexec(self, role: str) -> Callable[[], object] | None:
        cpu = self.cpu(role)
        return None if cpu is None else functools.partial(pin_to_cpu, cpu)

    def check(self, role: str, allowed: str) -> None:
        """Record a process's CPUs; fail loudly if it is not where it was pinned."""
        self.seen.setdefault(role, set()).add(allowed)
        cpu = self.cpu(role)
        if cpu is not None and allowed not in (str(cpu), "unknown"):
            raise BenchmarkError(
                f"{role} process runs on CPUs {allowed}, not on CPU {cpu} as pinned: "
                "the figures would mix client and server on one CPU"
            )

    def lines(self) -> list[str]:
        orchestrator = cpus_allowed()
        rows = [f"orchestrator (not pinned): {orchestrator}"]
        for role, values in sorted(self.seen.items()):
            asked = self.cpu(role)
            wanted = f"pinned to CPU {asked}" if asked is not None else "not pinned"
            rows.append(f"{role} ({wanted}): {', '.join(sorted(values))}")
        return rows


def spawn(pinning: Pinning, role: str, command: list[str], **options: Any) -> subprocess.Popen[str]:
    """Start a process pinned for its role and check its CPUs at once. ``Popen`` returns only
    after the exec, so its /proc/<pid>/status already shows the affinity it runs with."""
    process = subprocess.Popen(
        command, cwd=ROOT, text=True, preexec_fn=pinning.preexec(role), **options
    )
    allowed = cpus_allowed(process.pid)
    try:
        pinning.check(role, allowed)
    except BenchmarkError:
        process.kill()
        process.wait()
        raise
    return process


@contextmanager
def server_process(
    pinning: Pinning, role: str, command: list[str], env: dict[str, str]
) -> Iterator[dict[str, Any]]:
    """A server process; it prints one JSON line when ready, and stops when its standard
    input closes (here, on exit)."""
    process = spawn(pinning, role, command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        ready, _, _ = select.select([process.stdout], [], [], 60)
        line = process.stdout.readline() if ready else ""
        if not line:
            raise BenchmarkError(f"the {role} process did not start")
        info: dict[str, Any] = json.loads(line)
        pinning.check(role, info["cpus_allowed"])
        pinning.check(role, cpus_allowed(process.pid))
        yield info
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def simulator(
    pinning: Pinning, max_seconds: float, env: dict[str, str]
) -> contextlib.AbstractContextManager[dict[str, Any]]:
    """The simulator process (``server.py``)."""
    command = [sys.executable, "-m", "benchmarks.server", f"--max-seconds={max_seconds}"]
    command.append(f"--page-size={PAGE_SIZE}")
    return server_process(pinning, "simulator server", command, env)


def fast_server(
    pinning: Pinning, records: int, max_seconds: float, env: dict[str, str]
) -> contextlib.AbstractContextManager[dict[str, Any]]:
    """The canned-answer server of B1 and B3 (``fastserver.py``)."""
    command = [sys.executable, "-m", "benchmarks.fastserver", f"--max-seconds={max_seconds}"]
    command += [f"--records={records}", f"--page-size={PAGE_SIZE}"]
    return server_process(pinning, "fast server", command, env)


class Harness:
    """Runs client processes against the servers and keeps what the benchmarks share."""

    def __init__(
        self,
        servers: dict[str, dict[str, Any]],
        sizes: Sizes,
        rounds: int,
        client_rounds: int,
        pinning: Pinning,
        workdir: Path,
        *,
        profile: bool,
        allocator_warmup: bool,
    ) -> None:
        self.server = servers["simulator"]
        self.fast = servers["fast"]
        self.control = Control(self.server["control_url"])
        self.sizes = sizes
        self.rounds = rounds
        self.client_rounds = client_rounds
        self.b4_rounds = rounds if rounds != sizes.rounds else sizes.b4_rounds
        self.pinning = pinning
        self.workdir = workdir
        self.profile = profile
        self.allocator_warmup = allocator_warmup
        self.env = child_environment(workdir)
        self.b4_ids: list[str] = []
        self.b5_url = self.b5_first_url = ""
        self.compared: dict[str, Path] = {}  # --compare: revision -> its sources

    def compare_with(self, revisions: Sequence[str]) -> None:
        """Export each revision's ``tempolor_async`` for B1-B3's extra SDK variants."""
        for revision in revisions:
            where = self.workdir / f"sdk-{revision}"
            where.mkdir()
            archive = subprocess.run(
                ["git", "archive", revision, "tempolor_async"],
                cwd=ROOT, capture_output=True, check=True, timeout=60,
            )  # fmt: skip
            subprocess.run(
                ["tar", "-x", "-C", str(where)], input=archive.stdout, check=True, timeout=60
            )
            self.compared[revision] = where

    def seed(self, keys: set[str]) -> None:
        """Create, once, what the selected benchmarks read from the simulator: instrumentals
        for B4 (restarted with chosen durations per variant), the files for B5. B1 and B3
        read the fast server's canned records."""
        if "B4" in keys:
            most = max(self.sizes.b4_jobs, *self.sizes.b4_plot_jobs)
            seeded = self.control(
                "/seed", {"kind": "instrumental", "submissions": math.ceil(most / 2)}
            )
            self.b4_ids = seeded["job_ids"]
        if "B5" in keys:
            media = {"name": "b5-download.bin", "size": self.sizes.b5_bytes}
            self.b5_url = self.control("/media", media)["url"]
            media = {"name": "b5-first.bin", "size": FIRST_DOWNLOAD_BYTES}
            self.b5_first_url = self.control("/media", media)["url"]

    def client(
        self,
        bench: str,
        variant: str,
        *,
        profile: bool = False,
        **params: Any,
    ) -> dict[str, Any]:
        """One variant in a fresh client process, pinned and checked; returns its result."""
        self.control("/reset")
        task = {
            "bench": bench,
            "variant": variant,
            "server": self.fast if bench in ("b1", "b3") else self.server,
            "profile": profile,
            "allocator_warmup": self.allocator_warmup,
            **params,
        }
        if variant.startswith(("sdk@", "both@")):
            task["sdk_path"] = str(self.compared[variant.split("@", 1)[1]])
        side = "raw" if variant.startswith("raw") else "SDK"
        role = f"{side} client"
        process = spawn(
            self.pinning,
            role,
            [sys.executable, "-m", "benchmarks.client"],
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            stdout, stderr = process.communicate(
                json.dumps(task), timeout=600.0 + float(params.get("timeout", 0.0))
            )  # B4 adds its wait limit
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise BenchmarkError(f"{bench} {variant} timed out") from None
        if process.returncode != 0:
            raise BenchmarkError(f"{bench} {variant} failed:\n{stderr}")
        result: dict[str, Any] = {**params, **json.loads(stdout)}
        self.pinning.check(role, result["cpus_allowed"])
        expected = task.get("sdk_path") or str(ROOT)
        if result.get("sdk_file") and not result["sdk_file"].startswith(expected):
            raise BenchmarkError(f"{variant} measured the SDK at {result['sdk_file']}")
        return result

    def alternate(
        self, round_index: int, bench: str, variants: Sequence[str], **params: Any
    ) -> Runs:
        """Each variant once, in an order that rotates with the round."""
        return {v: self.client(bench, v, **params) for v in rotate(variants, round_index)}

    def profiled(
        self, section: Section, what: str, bench: str, variant: str, **params: Any
    ) -> None:
        """Where a target is missed, profile the SDK side once and attach it to the section."""
        if not (self.profile and section.missed):
            return
        say(f"{section.key}: target missed; profiling {what}")
        summary = self.client(bench, variant, profile=True, **params)["profile"]
        section.profile = render_profile(what, summary)


# ------------------------------------------------------------------- helpers

Value = Callable[[dict[str, Any]], float]


@dataclass(frozen=True)
class Metric:
    """A column of a raw-vs-SDK table: raw, SDK and their ratio, per round."""

    name: str
    value: Value
    digits: int = 1


def cpu_time(run: dict[str, Any]) -> float:
    return float(run["cpu_seconds"])


def wall_time(run: dict[str, Any]) -> float:
    return float(run["seconds"])


def rss_growth(run: dict[str, Any]) -> float:
    return float(run["peak_rss_mib"] - run["rss_before_mib"])


def ratio_text(raw: float, sdk: float) -> str:
    return f"{sdk / raw:.2f}" if raw else "n/a"


def per_round(runs: Sequence[Runs], value: Value, variant: str) -> list[float]:
    return [value(round_runs[variant]) for round_runs in runs]


def ratios(runs: Sequence[Runs], value: Value, variant: str = "sdk") -> list[float]:
    """SDK / raw of one value, per round (or another SDK variant's, e.g. ``sdk@<rev>``)."""
    return [value(r[variant]) / value(r["raw"]) for r in runs]


# B1 and B3 also measure the SDK's HTTP path with no models (``sdk.UntypedApi``): the
# difference from the SDK is what typed, checked decoding costs.
UNTYPED = "sdk-untyped"


def other_sdks(h: Harness, untyped: bool = False) -> list[tuple[str, str, str]]:
    """The SDK variants measured beside the current one, as (variant, column, figure label):
    each ``--compare`` revision, and with ``untyped`` the SDK without its models."""
    others = [(f"sdk@{rev}", f"SDK {rev}", f"SDK at {rev}") for rev in h.compared]
    if untyped:
        others.append((UNTYPED, "SDK no models", "SDK's HTTP path, no models"))
    return others


def add_compared(
    h: Harness,
    section: Section,
    runs: Sequence[Runs],
    label: str,
    value: Value,
    invert: bool,
    untyped: bool = False,
) -> None:
    """For each other SDK variant: its ratio to raw beside the current SDK's."""
    for variant, _, name in other_sdks(h, untyped):
        values = ratios(runs, value, variant)
        section.add(Figure(f"{label} ({name})", [1 / x for x in values] if invert else values))


def run_pairs(
    h: Harness,
    section: Section,
    bench: str,
    metrics: Sequence[Metric],
    cases: Sequence[dict[str, Any]] = ({},),
    case_column: str = "",
    rounds: int | None = None,
    untyped: bool = False,
) -> list[list[Runs]]:
    """Raw and SDK, back to back in a rotating order, for each case in each round; fills
    the section's per-round table. Returns the runs per case, per round."""
    others = other_sdks(h, untyped)
    section.headers = ["round"] + ([case_column] if case_column else [])
    for metric in metrics:
        section.headers += [f"raw {metric.name}", f"SDK {metric.name}", "ratio"]
        for _, column, _ in others:
            section.headers += [f"{column} {metric.name}", "ratio"]
    results: list[list[Runs]] = [[] for _ in cases]
    rounds = rounds or h.rounds
    variants = ["raw", "sdk", *(variant for variant, _, _ in others)]
    for index in range(rounds):
        for case, params in enumerate(cases):
            runs = h.alternate(index, bench, variants, **params)
            results[case].append(runs)
            row = [str(index + 1)] + ([str(params[case_column])] if case_column else [])
            for metric in metrics:
                raw, sdk = metric.value(runs["raw"]), metric.value(runs["sdk"])
                row += [f"{raw:,.{metric.digits}f}", f"{sdk:,.{metric.digits}f}"]
                row.append(ratio_text(raw, sdk))
                for variant, _, _ in others:
                    other = metric.value(runs[variant])
                    row += [f"{other:,.{metric.digits}f}", ratio_text(raw, other)]
            section.rows.append(row)
            say(f"{section.key} round {index + 1}/{rounds}: " + " | ".join(row[1:]))
    return results


def add_absolute(section: Section, runs: Sequence[Runs], metric: Metric, suffix: str = "") -> None:
    """The median of a metric for each side, as figures without a target."""
    for variant, name in (("raw", "raw"), ("sdk", "SDK")):
        values = per_round(runs, metric.value, variant)
        section.add(Figure(f"{name} {metric.name}{suffix}", values, "", digits=metric.digits))


# ---------------------------------------------------------------- benchmarks


def per_request(key: str, scale: float = 1e6) -> Value:
    return lambda r: float(r[key]) / r["requests"] * scale


def bench_b1(h: Harness) -> Section:
    section = Section(
        "B1", "`client.music.get(job_id)` against raw aiohttp GET + `json.loads`, fast server"
    )
    levels = h.sizes.b1_requests
    cases: list[dict[str, Any]] = [
        {
            "concurrency": concurrency,
            "requests": total,
            "warmup": max(h.sizes.b1_warmup, 2 * concurrency),
            "job_id": h.fast["job_id"],
        }
        for concurrency, total in levels.items()
    ]
    throughput = Metric("req/s", lambda r: r["requests"] / wall_time(r), 0)
    cpu = Metric("CPU µs/req", per_request("cpu_seconds"))
    system = Metric("system µs/req", per_request("system_seconds"))
    faults = Metric("minor faults/req", per_request("minor_faults", 1.0), 2)
    results = run_pairs(
        h, section, "b1", [throughput, cpu, system, faults], cases, "concurrency",
        rounds=h.client_rounds, untyped=True,
    )  # fmt: skip
    missed = []
    for case, runs in zip(cases, results, strict=True):
        level = case["concurrency"]
        label = f"throughput SDK/raw, concurrency {level}"
        figure = Figure(label, ratios(runs, throughput.value), target=Target(">=", 1.0))
        if section.add(figure).met is False:
            missed.append(case)
        label = f"client CPU per request raw/SDK, concurrency {level}"
        section.add(Figure(label, [1 / x for x in ratios(runs, cpu.value)]))
    for case, runs in zip(cases, results, strict=True):
        level = case["concurrency"]
        add_compared(h, section, runs, f"throughput SDK/raw, concurrency {level}",
                     throughput.value, invert=False, untyped=True)  # fmt: skip
        add_compared(h, section, runs, f"client CPU per request raw/SDK, concurrency {level}",
                     cpu.value, invert=True, untyped=True)  # fmt: skip
    for case, runs in zip(cases, results, strict=True):
        suffix = f", concurrency {case['concurrency']}"
        add_absolute(section, runs, throughput, suffix)
        add_absolute(section, runs, cpu, suffix)
        add_absolute(section, runs, faults, suffix)
    section.notes.append(
        f"Against the fast server (`fastserver.py`: the documented record, rendered once, "
        f"behind a token check), so the client's own cost is what differs. Requests timed per "
        f"run (concurrency: requests): {levels}, after an untimed warm-up that opens the "
        "connections. Both sides use aiohttp's default connector (at most 100 connections), "
        "so concurrency 128 queues in the connector on both. CPU is the client process's user "
        "+ system time over the timed part; the CPU ratio is raw/SDK, so above 1 means the "
        "SDK used less. Minor faults per request show the allocator effect: about 2 where "
        "asyncio's read buffer is mapped afresh for every response."
    )
    if missed:
        level = missed[0]["concurrency"]
        h.profiled(section, f"the SDK side at concurrency {level}", "b1", "sdk", **missed[0])
    return section


def bench_b2(h: Harness) -> Section:
    section = Section(
        "B2",
        "decoding the documented 58-field job record into `MusicJob` against `json.loads`",
    )
    section.headers = ["round", "json.loads µs", "decode µs", "ratio"]
    sizes: dict[str, Any] = {"number": h.sizes.b2_number, "repeat": h.sizes.b2_repeat}
    runs = []
    compared: dict[str, list[float]] = {revision: [] for revision in h.compared}
    for index in range(h.client_rounds):
        run = h.client("b2", "both", **sizes)
        runs.append(run)
        for revision in h.compared:
            other = h.client("b2", f"both@{revision}", **sizes)
            compared[revision].append(other["decode_us"] / other["loads_us"])
        section.rows.append(
            [
                str(index + 1),
                f"{run['loads_us']:.2f}",
                f"{run['decode_us']:.2f}",
                ratio_text(run["loads_us"], run["decode_us"]),
            ]
        )
        say(f"B2 round {index + 1}/{h.client_rounds}: " + " | ".join(section.rows[-1][1:]))
    section.add(
        Figure(
            "decode time / json.loads time",
            [r["decode_us"] / r["loads_us"] for r in runs],
            target=Target("<=", 1.0),
        )
    )
    for revision, values in compared.items():
        section.add(Figure(f"decode time / json.loads time (SDK at {revision})", values))
    section.add(Figure("json.loads", [r["loads_us"] for r in runs], "µs"))
    section.add(Figure("decode (parse + structuring)", [r["decode_us"] for r in runs], "µs"))
    section.notes.append(
        '`tempolor_async._protocol.decode(content, MusicJob, "GET", path)` parses the bytes '
        "itself (with whatever parser the SDK uses), so the ratio is (parse + structure) / "
        "`json.loads`. The record is "
        "the documentation's example response (benchmarks/job_record.json). Timed in one fresh "
        f"process per round with `timeit`: {sizes['number']} calls per timing, "
        f"{sizes['repeat']} timings per side alternating, best timing kept."
    )
    number = 20 * sizes["number"]
    h.profiled(section, f"{number} decodes", "b2", "sdk", number=number, repeat=1)
    return section


def bench_b3(h: Harness) -> Section:
    records = h.fast["records"]
    pages = math.ceil(records / PAGE_SIZE)
    section = Section(
        "B3",
        f"walking {records} records over {pages} pages with `client.music.list()` "
        "against a raw cursor loop, fast server",
    )
    walk = Metric("s", wall_time, 4)
    cpu = Metric("CPU s", cpu_time, 4)
    params = {"records": records, "walks": h.sizes.b3_walks}
    (runs,) = run_pairs(
        h, section, "b3", [walk, cpu], [params], rounds=h.client_rounds, untyped=True
    )
    speed = [1 / x for x in ratios(runs, walk.value)]
    section.add(Figure("walk speed SDK/raw (raw time / SDK time)", speed, target=Target(">=", 0.9)))
    section.add(Figure("client CPU raw/SDK", [1 / x for x in ratios(runs, cpu.value)]))
    add_compared(h, section, runs, "walk speed SDK/raw", walk.value, invert=True, untyped=True)
    add_compared(h, section, runs, "client CPU raw/SDK", cpu.value, invert=True, untyped=True)
    add_absolute(section, runs, walk, " per walk")
    add_absolute(section, runs, cpu, " per walk")
    section.notes.append(
        f"Against the fast server: {pages} canned pages of {PAGE_SIZE} copies of the "
        "documented record, so the client's cost (decoding 20 records into models per page) "
        f"is what differs. Each process walks once untimed, then {h.sizes.b3_walks} time(s): "
        "the time is the median walk, the CPU the mean per walk."
    )
    h.profiled(section, "the SDK walk", "b3", "sdk", **params)
    return section


B4_VARIANTS = {
    "raw-pollers": "raw pollers",
    "await_job": "await_job tasks",
    "as_completed": "as_completed",
}


def b4_params(h: Harness, jobs: int) -> dict[str, Any]:
    low, high = h.sizes.b4_durations
    return {
        "job_ids": h.b4_ids[:jobs],
        "durations": spread_durations(jobs, low, high),
        "poll_interval": h.sizes.b4_poll,
        "timeout": high + 60.0,
        "client_options": {"max_poll_rate": AS_COMPLETED_MAX_POLL_RATE},
    }


def bench_b4(h: Harness, out_dir: Path) -> Section:
    jobs = h.sizes.b4_jobs
    low, high = h.sizes.b4_durations
    poll = h.sizes.b4_poll
    section = Section(
        "B4", f"waiting for {jobs} jobs: raw per-job pollers, `await_job` tasks, `as_completed`"
    )
    section.headers = [
        "round", "variant", "requests", "per job", "CPU s", "peak RSS MiB",
        "RSS before wait MiB", "latency p50 s", "p95 s", "max s", "scheduler/ ticks",
        "tick interval s",
    ]  # fmt: skip
    params = b4_params(h, jobs)
    runs: list[Runs] = []
    for index in range(h.b4_rounds):
        round_runs = h.alternate(index, "b4", list(B4_VARIANTS), **params)
        runs.append(round_runs)
        for variant, run in round_runs.items():
            section.rows.append(
                [str(index + 1), B4_VARIANTS[variant], str(run["requests"])]
                + [f"{run[key]:.2f}" for key in ("requests_per_job", "cpu_seconds")]
                + [f"{run[key]:.1f}" for key in ("peak_rss_mib", "rss_before_mib")]
                + [f"{run[key]:.2f}" for key in ("latency_p50", "latency_p95", "latency_max")]
                + [str(run["ticks"]), f"{run['tick_interval_p50']:.2f}" if run["ticks"] > 1 else ""]
            )
            say(f"B4 round {index + 1}/{h.b4_rounds}: " + " | ".join(section.rows[-1][1:]))
    latency_target = Target("<=", poll + 0.5)
    for variant, name in B4_VARIANTS.items():
        target = Target("<=", 1.5) if variant == "as_completed" else None
        section.add(
            Figure(
                f"{name}: requests per job",
                per_round(runs, lambda r: r["requests_per_job"], variant),
                "",
                target,
            )
        )
    latency_p95: dict[str, Figure] = {}
    for variant, name in B4_VARIANTS.items():
        target = None if variant == "raw-pollers" else latency_target
        latency_p95[variant] = section.add(
            Figure(
                f"{name}: detection latency p95",
                per_round(runs, lambda r: r["latency_p95"], variant),
                "s",
                target,
            )
        )
        section.add(
            Figure(
                f"{name}: detection latency p50",
                per_round(runs, lambda r: r["latency_p50"], variant),
                "s",
            )
        )
    for variant, name in B4_VARIANTS.items():
        section.add(
            Figure(
                f"{name}: peak RSS",
                per_round(runs, lambda r: r["peak_rss_mib"], variant),
                "MiB",
                digits=1,
            )
        )
        if variant != "raw-pollers":
            excess = [r[variant]["peak_rss_mib"] - r["raw-pollers"]["peak_rss_mib"] for r in runs]
            section.add(
                Figure(
                    f"{name}: peak RSS minus raw pollers'",
                    excess,
                    "MiB",
                    Target("<=", 10.0),
                    digits=1,
                )
            )
    for variant, name in B4_VARIANTS.items():
        section.add(Figure(f"{name}: client CPU", per_round(runs, cpu_time, variant), "s"))
    section.notes += [
        f"{jobs} jobs ({math.ceil(jobs / 2)} instrumental submissions), restarted on the server "
        f"for each variant with the same durations, spread evenly over {low:g}-{high:g} s in a "
        f"fixed shuffled order; poll interval {poll:g} s fixed in all three variants. The SDK "
        f"clients are made with `max_poll_rate={AS_COMPLETED_MAX_POLL_RATE:g}` (default 20), "
        f"enough for the completion rate here (about {jobs / (high - low):.0f} jobs/s); the "
        "option only affects `as_completed`.",
        "Requests are counted on the server side: the number the simulator recorded between "
        "the restart of the jobs and the end of the wait, read over the simulator process's "
        "control port (whose own requests it does not record). This counts what the service "
        "sees, including any retry, with no hook into either client.",
        "Detection latency, per job: the client's `time.monotonic()` when it saw the job final "
        "(the poller's response, `await_job` returning, `as_completed` yielding) minus the "
        "moment it became final on the server (its restart time plus its duration, on the "
        "same system-wide monotonic clock). Ticks: the `GET scheduler/` requests the server "
        "received, and the median time between them.",
        "Peak RSS: the client process's own high-water mark (VmHWM), imports included. Not "
        "`ru_maxrss`: on Linux a child's `ru_maxrss` starts at its parent's RSS at spawn time "
        "(the kernel carries the replaced address space's peak over at exec), so every variant "
        "would report at least the orchestrator's size.",
    ]
    plot_b4(h, runs, out_dir / "b4_requests.png", section)
    if latency_p95["as_completed"].met is False:
        section.notes.append(shared_loop_timing([r["as_completed"] for r in runs], poll))
    missed_variants = [
        v
        for v, name in B4_VARIANTS.items()
        if any(f.met is False and f.label.startswith(name + ":") for f in section.figures)
    ]
    if missed_variants:
        variant = missed_variants[-1]
        h.profiled(section, f"the {B4_VARIANTS[variant]} client", "b4", variant, **params)
    return section


def shared_loop_timing(runs: Sequence[dict[str, Any]], poll: float) -> str:
    """Where the shared loop's detection time goes, from what the server saw (medians)."""
    interval = median([r["tick_interval_p50"] for r in runs])
    fetches = median([(r["requests"] - r["ticks"]) / max(r["ticks"], 1) for r in runs])
    spacing = fetches / AS_COMPLETED_MAX_POLL_RATE
    return (
        f"`as_completed` timing, as the server saw it: a `GET scheduler/` tick every "
        f"{interval:.2f} s (median) for a poll interval of {poll:g} s, so each tick itself "
        f"lasted about {interval - poll:.2f} s; {fetches:.0f} record fetches per tick on "
        f"average, which `max_poll_rate={AS_COMPLETED_MAX_POLL_RATE:g}` spaces over at least "
        f"{spacing:.2f} s. A job that becomes final waits for the next tick to start (up to "
        f"one tick interval) and for its record's fetch within that tick."
    )


def plot_b4(h: Harness, runs: Sequence[Runs], path: Path, section: Section) -> None:
    """Requests against the number of jobs, per-job loops against the shared loop: extra
    sizes measured once each, the full size from the rounds (median)."""
    from .plot import plot_requests

    lines = {
        "await_job": "per-job loops (await_job tasks)",
        "as_completed": "shared loop (as_completed)",
    }
    points: dict[str, dict[int, float]] = {label: {} for label in lines.values()}
    for variant, label in lines.items():
        points[label][h.sizes.b4_jobs] = median(per_round(runs, lambda r: r["requests"], variant))
    for index, jobs in enumerate(h.sizes.b4_plot_jobs):
        params = b4_params(h, jobs)
        for variant, run in h.alternate(index, "b4", list(lines), **params).items():
            points[lines[variant]][jobs] = run["requests"]
            say(f"B4 plot: {jobs} jobs, {variant}: {run['requests']} requests")
    low, high = h.sizes.b4_durations
    plot_requests(
        points, path, subtitle=f"durations {low:g}-{high:g} s, poll interval {h.sizes.b4_poll:g} s"
    )
    sizes = sorted(next(iter(points.values())))
    section.notes.append(
        f"![B4: requests against number of jobs]({path.name})\n\n"
        f"Requests against jobs (the plot above, {path.name}; the largest size is the median "
        "of the rounds, the others one run each):\n\n"
        + "\n".join(
            [
                "| jobs | " + " | ".join(points) + " |",
                "|---|" + "---|" * len(points),
                *(
                    f"| {n} | "
                    + " | ".join(f"{series[n]:,.0f}" for series in points.values())
                    + " |"
                    for n in sizes
                ),
            ]
        )
    )


def bench_b5(h: Harness) -> Section:
    size = h.sizes.b5_bytes
    section = Section(
        "B5",
        f"`client.download_file(url, dest)` of a {size / MIB:g} MiB file "
        "against raw aiohttp streaming to disk",
    )
    speed = Metric("MiB/s", lambda r: size / MIB / wall_time(r))
    growth = Metric("peak RSS growth MiB", rss_growth)
    first = Metric("first download ms", lambda r: r["first_seconds"] * 1000)
    task = {
        "url": h.b5_url,
        "first_url": h.b5_first_url,
        "size": size,
        "repeat": h.sizes.b5_repeat,
        "dest": str(h.workdir / "download.bin"),
    }
    (runs,) = run_pairs(h, section, "b5", [speed, growth, first], [task])
    section.add(Figure("throughput SDK/raw", ratios(runs, speed.value), target=Target(">=", 0.95)))
    section.add(
        Figure(
            "SDK peak RSS growth during the download",
            per_round(runs, rss_growth, "sdk"),
            "MiB",
            Target("<=", 16.0),
            digits=1,
        )
    )
    section.add(
        Figure(
            "raw peak RSS growth during the download",
            per_round(runs, rss_growth, "raw"),
            "MiB",
            digits=1,
        )
    )
    add_absolute(section, runs, speed)
    add_absolute(section, runs, first, f" ({FIRST_DOWNLOAD_BYTES // MIB} MiB file, cold)")
    section.notes.append(
        "The file is pseudo-random bytes served from memory by the simulator process; both "
        "sides write it to the same folder on local disk (the page cache absorbs most of it). "
        f"Each process first downloads a {FIRST_DOWNLOAD_BYTES // MIB} MiB file the same way, "
        "kept out of the throughput: it opens the connection and pays one-time costs (the SDK "
        'loads anyio\'s asyncio backend on first use); its time is the "first download" '
        f"figure. Then it downloads the large file {h.sizes.b5_repeat} time(s); the throughput "
        "is from the median. RSS growth: the process's peak RSS during the large downloads "
        "(its high-water mark reset just before, through /proc/self/clear_refs) minus its "
        "RSS just before."
    )
    h.profiled(section, "the SDK download", "b5", "sdk", **task)
    return section


def time_imports(h: Harness, round_index: int) -> dict[str, list[float]]:
    """Wall time of ``python -c CODE`` for both imports, alternating run by run."""
    times: dict[str, list[float]] = {IMPORT_SDK: [], IMPORT_DEPS: []}
    for index in range(h.sizes.b6_runs):
        for code in rotate(list(times), round_index + index):
            start = time.perf_counter()
            command = [sys.executable, "-c", code]
            process = spawn(h.pinning, "import client (B6)", command, env=h.env)
            # A blocking wait returns the moment the child exits; ``wait(timeout=)`` polls in
            # sleeps of up to 50 ms, which would round every time up to that step.
            guard = threading.Timer(60, process.kill)
            guard.start()
            try:
                status = process.wait()
            finally:
                guard.cancel()
            times[code].append(time.perf_counter() - start)
            if status != 0:
                raise BenchmarkError(f"python -c {code!r} failed")
    return times


def import_profile(h: Harness) -> str:
    """What ``import tempolor_async`` loads beyond its dependencies, by ``-X importtime``."""

    def self_times(code: str) -> dict[str, int]:
        stderr = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            capture_output=True, text=True, check=True, cwd=ROOT, env=h.env, timeout=60,
        ).stderr  # fmt: skip
        found = {}
        for line in stderr.splitlines():
            parts = line.split("|")
            if (
                len(parts) == 3
                and parts[0].startswith("import time:")
                and parts[1].strip().isdigit()
            ):
                found[parts[2].strip()] = int(parts[0].split(":")[1])
        return found

    sdk, deps = self_times(IMPORT_SDK), self_times(IMPORT_DEPS)
    extra = sorted(((us, name) for name, us in sdk.items() if name not in deps), reverse=True)
    lines = [
        f"Modules `import tempolor_async` loads beyond its dependencies' own: {len(extra)}, "
        f"{sum(us for us, _ in extra) / 1000:.1f} ms of self time in all "
        "(`-X importtime`, one run). Top by self time:",
        "",
        "```",
        *(f"{us / 1000:8.2f} ms  {name}" for us, name in extra[:15]),
        "```",
    ]
    return "\n".join(lines)


def bench_b6(h: Harness) -> Section:
    section = Section(
        "B6",
        f'`python -c "{IMPORT_SDK}"` against `python -c "{IMPORT_DEPS}"`',
    )
    section.headers = ["round", "dependencies ms", "tempolor_async ms", "ratio"]
    medians: list[dict[str, float]] = []
    for code in (IMPORT_SDK, IMPORT_DEPS):  # untimed: fills the bytecode cache for both
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=h.env, timeout=60)
    for index in range(h.rounds):
        times = time_imports(h, index)
        medians.append({code: median(values) * 1000 for code, values in times.items()})
        deps, sdk = medians[-1][IMPORT_DEPS], medians[-1][IMPORT_SDK]
        section.rows.append([str(index + 1), f"{deps:.1f}", f"{sdk:.1f}", ratio_text(deps, sdk)])
        say(f"B6 round {index + 1}/{h.rounds}: " + " | ".join(section.rows[-1][1:]))
    section.add(
        Figure(
            "wall time ratio",
            [m[IMPORT_SDK] / m[IMPORT_DEPS] for m in medians],
            target=Target("<=", 1.2),
        )
    )
    section.add(Figure("`import tempolor_async`", [m[IMPORT_SDK] for m in medians], "ms", digits=1))
    section.add(
        Figure(
            "`import aiohttp, attrs, cattrs, anyio`",
            [m[IMPORT_DEPS] for m in medians],
            "ms",
            digits=1,
        )
    )
    section.add(
        Figure("difference", [m[IMPORT_SDK] - m[IMPORT_DEPS] for m in medians], "ms", digits=1)
    )
    section.notes.append(
        f"Each round: {h.sizes.b6_runs} runs of each command, alternating, the median of each; "
        "the times include starting the interpreter, up to a blocking wait for its exit (a "
        "wait with a timeout polls in sleeps of up to 50 ms and rounds the times up). "
        "Bytecode is cached for both (as it is for an installed package), in a private "
        "PYTHONPYCACHEPREFIX folder warmed by one untimed run of each."
    )
    if h.profile and section.missed:
        section.profile = import_profile(h)
    return section


# ----------------------------------------------------------------------- main


# The SDK before the speed work of B1-B3 (typed models at raw aiohttp's speed): a full run
# measures it beside the current one, so before and after share one machine and one run.
BASELINE = "45d277d"


def comparisons(option: str | None, quick: bool) -> list[str]:
    """The revisions to measure beside the current SDK."""
    if option is None:
        if quick:
            return []
        known = subprocess.run(
            ["git", "cat-file", "-e", f"{BASELINE}^{{commit}}"],
            cwd=ROOT, capture_output=True, timeout=30, check=False,
        )  # fmt: skip
        return [BASELINE] if known.returncode == 0 else []
    return [r.strip() for r in option.split(",") if r.strip() and r.strip() != "none"]


# Standalone benchmark modules of other parts of the SDK: each runs as
# ``python -m benchmarks.<name> [--quick]`` and prints a markdown table, included as it is.
EXTRA_MODULES = ("engine", "batch", "noiz")
# Each module's time in a run of all, so that a full run stays near 20 minutes; a module
# stopped at it is reported as such (run it alone for its whole length).
EXTRA_TIMEOUT = 240.0


def extra_modules(keys: Sequence[str]) -> list[str]:
    """The standalone modules present in benchmarks/ and selected by ``--only``."""
    present = [n for n in EXTRA_MODULES if (ROOT / "benchmarks" / f"{n}.py").exists()]
    return [n for n in present if n.upper() in keys]


def run_extra(name: str, quick: bool, env: dict[str, str]) -> Section:
    """One standalone module in its own process; its table (or its failure) as a section."""
    command = [sys.executable, "-m", f"benchmarks.{name}", *(["--quick"] if quick else [])]
    say(f"{name}: {' '.join(command[1:])}")
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=EXTRA_TIMEOUT
        )
        output, code = done.stdout.strip(), done.returncode
        error = done.stderr.strip()[-3000:]
    except subprocess.TimeoutExpired:
        output, code = "", None
        error = f"stopped after {EXTRA_TIMEOUT:.0f} s; run it alone for its whole length"
    elapsed = time.monotonic() - started
    section = Section(name, f"`python -m benchmarks.{name}`" + (" --quick" if quick else ""))
    section.standalone = output
    if code == 0:
        state = "exit status 0"
    elif code is None:
        state = f"**failed**: {error}"
    else:
        state = f"**failed** with exit status {code}"
    section.notes.append(
        f"Run as its own process by `python -m benchmarks` ({elapsed:.0f} s, {state}); it "
        "does its own rounds (and pinning, where its table says so), and its table is "
        "included as printed."
    )
    if code != 0:
        section.notes.append("```\n" + error + "\n```")
        section.failed = code is not None  # a module stopped at its time limit is not broken
    return section


def allocator_note(warmup: bool) -> str:
    if not warmup:
        return (
            "- Allocator: **no warm-up** (`--no-allocator-warmup`): each process keeps glibc's "
            "mmap threshold as it finds it, so a bare raw process maps and unmaps asyncio's "
            "256 KiB read buffer on every response (see the minor faults per request in B1)"
        )
    return (
        f"- Allocator: every client process, raw and SDK alike, allocates and frees one "
        f"{ALLOCATOR_WARMUP_BYTES // MIB} MiB block before anything else "
        "(`common.warm_allocator`), which raises glibc's dynamic mmap threshold in both; "
        "without it the raw side alone maps and unmaps asyncio's 256 KiB read buffer for "
        "every response (about 2 minor faults and 15-20 µs of system time per request). "
        "B1 reports minor faults per request for both sides"
    )


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--rounds",
        type=int,
        help="rounds of each benchmark (default 7 for B1-B3, 3 for B4, 5 for B5-B6; "
        "1 with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run for CI: tiny sizes, no claims; writes to a temporary folder unless --out",
    )
    parser.add_argument(
        "--out", type=Path, help="where to write RESULTS.md (the plot goes beside it)"
    )
    parser.add_argument(
        "--only", help="a comma-separated subset, e.g. B1,B4 (or ENGINE, BATCH, NOIZ)"
    )
    parser.add_argument(
        "--compare",
        help="git revisions whose SDK B1-B3 also measure, comma-separated (default: "
        f"{BASELINE}, the SDK before the speed work, where the repository has it; "
        "'none' for no comparison)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--no-allocator-warmup",
        action="store_true",
        help="skip the 1 MiB allocation every client process makes first (shows its effect)",
    )
    parser.add_argument("--no-profile", action="store_true", help="do not profile missed targets")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    rounds = args.rounds or sizes.rounds
    everything = ["B1", "B2", "B3", "B4", "B5", "B6", *(n.upper() for n in EXTRA_MODULES)]
    keys = [key.strip().upper() for key in (args.only or ",".join(everything)).split(",")]
    unknown = set(keys) - set(everything)
    if unknown or rounds < 1:
        say(
            f"error: unknown benchmark {sorted(unknown)}"
            if unknown
            else "error: --rounds must be 1 or more"
        )
        return 2
    if args.out is not None:
        out = args.out
    elif args.quick:
        out = Path(tempfile.mkdtemp(prefix="tempolor-bench-")) / "RESULTS.md"
    else:
        out = ROOT / "benchmarks" / "RESULTS.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    pinning = Pinning(not args.no_pin and {CLIENT_CPU, SERVER_CPU} <= usable)
    load_before = uptime()
    source = sdk_source()
    started = time.monotonic()
    mode = " (quick)" if args.quick else ""
    say(f"benchmarks: {', '.join(keys)}, {rounds} round(s){mode}; {load_before}")
    with tempfile.TemporaryDirectory(prefix="tempolor-bench-work-") as work:
        workdir = Path(work)
        env = child_environment(workdir)
        lifetime = 600.0 if args.quick else 4 * 3600.0
        with (
            simulator(pinning, lifetime, env) as server,
            fast_server(pinning, sizes.b3_records, lifetime, env) as fast,
        ):
            h = Harness(
                {"simulator": server, "fast": fast},
                sizes,
                rounds,
                args.rounds or sizes.client_rounds,
                pinning,
                workdir,
                profile=not (args.quick or args.no_profile),
                allocator_warmup=not args.no_allocator_warmup,
            )
            h.compare_with(comparisons(args.compare, args.quick))
            h.seed(set(keys))
            runners: dict[str, Callable[[], Section]] = {
                "B1": lambda: bench_b1(h),
                "B2": lambda: bench_b2(h),
                "B3": lambda: bench_b3(h),
                "B4": lambda: bench_b4(h, out.parent),
                "B5": lambda: bench_b5(h),
                "B6": lambda: bench_b6(h),
            }
            sections = [runners[key]() for key in keys if key in runners]
        sections += [run_extra(name, args.quick, env) for name in extra_modules(keys)]
    elapsed = time.monotonic() - started
    header = machine(pinning.lines(), load_before, uptime(), source)
    header.append(allocator_note(not args.no_allocator_warmup))
    header.append(
        f"- Rounds: {h.client_rounds} for B1-B3, {h.b4_rounds} for B4, {rounds} for B5-B6; "
        f"whole run: {elapsed:.0f} s"
    )
    command = " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])])
    out.write_text(render(sections, header, smoke=args.quick, command=command))
    for section in sections:
        for figure in section.figures:
            if figure.target is not None:
                state = "met" if figure.met else "MISSED"
                say(f"{section.key} {figure.label}: {figure.format(figure.median)} ({state})")
    say(f"wrote {out} in {elapsed:.0f} s")
    failed = [section.key for section in sections if section.failed]
    if failed:
        say(f"failed: {', '.join(failed)} (see {out})")
        return 1
    return 0
