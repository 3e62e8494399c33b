"""Batches: makespan against the ideal, requests per item, journal cost, memory, resume cost.

``python -m benchmarks.batch [--quick]`` prints a markdown table. The simulator runs in its own
process (``python -m tempolor_async.testing``) with four accounts of 2-4 slots; where the
machine has two CPUs it is pinned to CPU 1 and this process to CPU 0. Requests are counted
from the SDK's own DEBUG line per HTTP exchange, retries included.

- **Makespan**: ``run_batch`` of N songs (downloads included) against the ideal, jobs / total
  slots x job duration.
- **Journal**: commits per item, their mean and longest time (on the worker thread), and the
  longest stall of the event loop seen by a 5 ms ticker during the run.
- **Resume**: a journal of finished items (their files on disk) run again: requests and time.
- **Reconciliation**: the same small batch twice against an in-process simulator, once with
  every answer delivered and once with every generation accepted but its answer lost (a 502
  after the service acted), among other programs' records of the same type; the difference
  in requests, per item, is what exact reconciliation costs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tempolor_async import SongRequest, TempolorClient
from tempolor_async.batch import BatchRun
from tempolor_async.batch._journal import UPSERT, ItemRecord, Journal

TOKEN = "bench-token"
SLOTS = {"acc-2": 3, "acc-4": 4, "acc-3": 3}  # plus the simulator's own account, with 2


class RequestCounter(logging.Handler):
    """Counts the SDK's one DEBUG line per HTTP exchange, by method and endpoint."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("%s %s -> ") and isinstance(record.args, tuple):
            method, path = str(record.args[0]), str(record.args[1])
            endpoint = re.sub(r"/music/download/.*-job:[^/?]+$", "/music/download/{job_id}", path)
            endpoint = re.sub(r"/music/[^/]*-job:[^/?]+$", "/music/{job_id}", endpoint)
            if path.startswith("/cdn/"):
                endpoint = "media file"
            self.counts[f"{method} {endpoint}"] += 1

    def total(self) -> int:
        return sum(self.counts.values())


class LoopWatch:
    """A task that wakes every 5 ms and notes how late it woke: the event loop's stalls."""

    def __init__(self) -> None:
        self.longest = 0.0

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            self.longest = max(self.longest, time.perf_counter() - started - 0.005)


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def start_simulator(job_duration: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tempolor_async.testing",
            "--port",
            "0",
            "--token",
            TOKEN,
            "--job-duration",
            str(job_duration),
            "--max-jobs",
            "2",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("base URL:"):
            return process, line.split(":", 1)[1].strip()
    raise RuntimeError("the simulator did not start")


def pin(server_pid: int) -> str:
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        return "not pinned"
    os.sched_setaffinity(server_pid, {1})
    os.sched_setaffinity(0, {0})
    return "simulator on CPU 1, client on CPU 0"


async def makespan(base_url: str, items: int, job_duration: float, folder: Path) -> dict[str, Any]:
    counter = RequestCounter()
    logger = logging.getLogger("tempolor_async")
    logger.addHandler(counter)
    logger.setLevel(logging.DEBUG)
    watch = LoopWatch()
    requests = [SongRequest(f"benchmark song {n}", key=f"song-{n:04d}") for n in range(items)]
    async with TempolorClient(TOKEN, base_url=base_url) as client:
        for user_id, max_jobs in SLOTS.items():
            await client.accounts.create({"user_id": user_id}, max_jobs=max_jobs)
        counter.counts.clear()
        run = BatchRun(client, requests, journal=folder / "run.sqlite", out_dir=folder / "out")
        watcher = asyncio.ensure_future(watch.run())
        started, cpu_started = time.perf_counter(), time.process_time()
        report = await run.run()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        watcher.cancel()
    logger.removeHandler(counter)
    slots = sum(SLOTS.values()) + 2
    ideal = items * 2 / slots * job_duration
    # A generation (two jobs) is let in while an account runs fewer jobs than its max_jobs,
    # as the service does: an account with 3 slots runs 4 jobs at once.
    at_once = sum(2 * -(-max_jobs // 2) for max_jobs in (2, *SLOTS.values()))
    return {
        "effective_ideal": items * 2 / at_once * job_duration,
        "at_once": at_once,
        "items": items,
        "completed": report.completed,
        "seconds": elapsed,
        "ideal": ideal,
        "ratio": elapsed / ideal,
        "requests": counter.total(),
        "cpu_ms_per_item": cpu / items * 1000,
        "by_endpoint": dict(counter.counts.most_common()),
        "commits": run.commits,
        "commit_mean_ms": run.commit_seconds / max(1, run.commits) * 1000,
        "commit_longest_ms": run.longest_commit * 1000,
        "loop_stall_ms": watch.longest * 1000,
    }


async def resume(base_url: str, items: int, folder: Path) -> dict[str, Any]:
    """A journal whose items are all downloaded, run again with the same items."""
    requests = [SongRequest(f"finished song {n}", key=f"done-{n:05d}") for n in range(items)]
    out = folder / "out"
    out.mkdir()
    journal = await Journal.open(folder / "done.sqlite")
    rows = []
    for n, request in enumerate(requests):
        jobs = [f"user:1-tempolor:x-job:a{n}", f"user:1-tempolor:x-job:b{n}"]
        files = [f"{request.item_key}-1.mp3", f"{request.item_key}-2.mp3"]
        for name in files:
            (out / name).write_bytes(b"ID3")
        record = _finished_record(request, jobs, files)
        rows.append(record.row())
    # The setup writes all rows in one transaction; the run measured is the normal one.
    journal._connection.execute("BEGIN")
    journal._connection.executemany(UPSERT, rows)
    journal._connection.execute("COMMIT")
    journal.close()
    counter = RequestCounter()
    logger = logging.getLogger("tempolor_async")
    logger.addHandler(counter)
    logger.setLevel(logging.DEBUG)
    async with TempolorClient(TOKEN, base_url=base_url) as client:
        started = time.perf_counter()
        report = await client.run_batch(requests, journal=folder / "done.sqlite", out_dir=out)
        elapsed = time.perf_counter() - started
    logger.removeHandler(counter)
    return {
        "items": items,
        "completed": report.completed,
        "seconds": elapsed,
        "requests": counter.total(),
    }


def _finished_record(request: SongRequest, jobs: list[str], files: list[str]) -> ItemRecord:
    return ItemRecord(
        key=request.item_key,
        stem=request.item_key,
        type=request.type,
        params=request.parameters(),
        digest=request.digest,
        reply_ref=f"ref-{request.item_key}",
        state="downloaded",
        job_ids=jobs,
        files=files,
        generations=1,
    )


async def commit_cost(folder: Path, commits: int) -> dict[str, Any]:
    """Journal commits alone, one after another, with the loop watched meanwhile."""
    journal = await Journal.open(folder / "commits.sqlite")
    watch = LoopWatch()
    watcher = asyncio.ensure_future(watch.run())
    record = _finished_record(SongRequest("x", key="x"), ["a", "b"], [])
    started = time.perf_counter()
    for n in range(commits):
        record.state = "submitting" if n % 2 else "submitted"
        await journal.save(record)
    elapsed = time.perf_counter() - started
    watcher.cancel()
    journal.close()
    return {
        "commits": commits,
        "per_commit_ms": elapsed / commits * 1000,
        "thread_ms": journal.commit_seconds / commits * 1000,
        "longest_ms": journal.longest_commit * 1000,
        "loop_stall_ms": watch.longest * 1000,
    }


async def reconciliation_cost(folder: Path, items: int) -> dict[str, Any]:
    """Requests per reconciled item: a batch whose every answer is lost, against the same
    batch with every answer delivered (in-process simulator, 40 records of strangers)."""
    from tempolor_async.testing import FakeTempolor

    counts = {}
    for lost in (False, True):
        # Room for every generation at once: a lost answer hides its jobs from the gate
        # until it reads the slots again, and a refused generation would only be re-sent.
        async with FakeTempolor(job_duration=0.3, max_jobs=400, max_gen_count_at_once=400) as fake:
            async with fake.client() as stranger:
                for number in range(20):
                    await stranger.music.create_song(f"someone else's song {number}")
            if lost:
                fake.inject("POST", "/music/*", status=502, handled=True, times=None)
            before = len(fake.requests)
            requests = [SongRequest(f"song {n}", key=f"s{n}") for n in range(items)]
            async with fake.client() as client:
                report = await client.run_batch(
                    requests, journal=folder / f"lost-{lost}.sqlite", confirm_window=30.0
                )
            assert report.completed == items, report
            assert len(fake.submissions) == 20 + items  # nothing paid twice
            assert report.resent_unconfirmed == 0
            counts[lost] = len(fake.requests) - before
    return {
        "items": items,
        "clean": counts[False],
        "lost": counts[True],
        "per_item": (counts[True] - counts[False]) / items,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = parser.parse_args(argv)
    items, job_duration, finished = (24, 1.0, 1000) if args.quick else (200, 3.0, 10_000)
    server, base_url = start_simulator(job_duration)
    try:
        pinning = pin(server.pid)
        load = os.getloadavg()
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            (folder / "a").mkdir()
            (folder / "b").mkdir()
            (folder / "c").mkdir()
            batch = asyncio.run(makespan(base_url, items, job_duration, folder / "a"))
            rss = peak_rss_mib()
            resumed = asyncio.run(resume(base_url, finished, folder / "b"))
            commits = asyncio.run(commit_cost(folder / "c", 500 if args.quick else 2000))
            (folder / "d").mkdir()
            reconciled = asyncio.run(reconciliation_cost(folder / "d", 10 if args.quick else 40))
    finally:
        server.terminate()
        server.wait()
    slots = sum(SLOTS.values()) + 2
    print(f"## Batches ({'quick smoke run, no claims' if args.quick else 'full run'})\n")
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {pinning}; "
        f"load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"4 accounts, {slots} slots (2+3+4+3), job duration {job_duration} s.\n"
    )
    print("| measure | value | target |")
    print("|---|---|---|")
    print(
        f"| makespan, {batch['items']} songs | {batch['seconds']:.1f} s vs ideal "
        f"{batch['ideal']:.1f} s = **{batch['ratio']:.2f}x** | <= 1.15x |"
    )
    print(
        f"| makespan against the jobs the accounts really run at once ({batch['at_once']}) | "
        f"ideal {batch['effective_ideal']:.1f} s = "
        f"**{batch['seconds'] / batch['effective_ideal']:.2f}x** | |"
    )
    print(f"| items completed | {batch['completed']}/{batch['items']} | all |")
    print(f"| requests per item | {batch['requests'] / batch['items']:.2f} | |")
    print(f"| client CPU per item (all threads) | {batch['cpu_ms_per_item']:.1f} ms | |")
    print(
        f"| journal commits per item | {batch['commits'] / batch['items']:.1f} "
        f"(mean {batch['commit_mean_ms']:.2f} ms, longest {batch['commit_longest_ms']:.1f} ms, "
        "on the worker thread) | |"
    )
    print(f"| longest event-loop stall during the batch | {batch['loop_stall_ms']:.1f} ms | |")
    print(
        f"| {commits['commits']} commits alone | {commits['per_commit_ms']:.2f} ms each "
        f"(thread {commits['thread_ms']:.2f} ms, longest {commits['longest_ms']:.1f} ms); "
        f"longest loop stall {commits['loop_stall_ms']:.1f} ms | |"
    )
    print(f"| peak RSS of the client process | {rss:.0f} MiB | |")
    print(
        f"| resume, {resumed['items']} finished items | {resumed['seconds']:.2f} s, "
        f"{resumed['requests']} requests | 0 requests, < 2 s |"
    )
    print(
        f"| reconciliation, {reconciled['items']} items with every answer lost | "
        f"{reconciled['lost']} requests vs {reconciled['clean']} with the answers = "
        f"**{reconciled['per_item']:.2f} requests per reconciled item** | |"
    )
    print("\nRequests of the batch by endpoint:\n")
    for endpoint, count in batch["by_endpoint"].items():
        print(f"- `{endpoint}`: {count} ({count / batch['items']:.2f} per item)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
