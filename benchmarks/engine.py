"""The client's engine, measured: the capacity gate, the shared wait and callbacks.

    python -m benchmarks.engine [--quick]

Prints one markdown table per question, with the conditions of the run:

- **Makespan.** N songs submitted at once to one account with few slots: how long until every
  job is done, against the ideal (jobs / slots x job duration) and against sending at once and
  waiting out each 429 (``capacity_aware=False``, whose busy wait is the documented 30 s for
  3 s jobs: ten job durations). The simulator's request log counts the POSTs it answered 429.
- **Many waiters.** 1,000 jobs awaited by 1,000 separate tasks of one client (``await_job``
  each), against raw per-job aiohttp pollers at the same interval: requests per job (from the
  simulator's log), client CPU seconds and peak RSS (VmHWM). Client and simulator run in
  separate processes; both client processes import the same modules.
- **Callback wake-up.** Jobs awaited with polling at 30 s and a ``CallbackReceiver``: the time
  from the simulator's completion of a job to ``await_job`` returning, and the requests made,
  against the same waits polling every second without callbacks.

The machine is shared: each table says how loaded it was; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import aiohttp
import anyio

from tempolor_async import CallbackReceiver, TempolorClient
from tempolor_async.testing import FakeTempolor

TOKEN = "bench-token"


# ----------------------------------------------------------------- helpers


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def peak_rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def conditions() -> str:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{os.cpu_count()} CPUs, load average {load} (1, 5, 15 min) at the end of the table"


def table(title: str, header: list[str], rows: list[list[object]], notes: list[str]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    lines += [""] + [f"- {note}" for note in notes] + [f"- {conditions()}", ""]
    return "\n".join(lines)


# --------------------------------------------------------------- makespan


class WarningCounter(logging.Handler):
    """Counts the SDK's WARNING lines (one per busy wait or retry) instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


async def makespan(songs: int, slots: int, duration: float, capacity_aware: bool) -> dict[str, Any]:
    logger = logging.getLogger("tempolor_async")
    counter, propagate = WarningCounter(), logger.propagate
    logger.addHandler(counter)
    logger.propagate = False
    try:
        return await _makespan(songs, slots, duration, capacity_aware, counter)
    finally:
        logger.removeHandler(counter)
        logger.propagate = propagate


async def _makespan(
    songs: int, slots: int, duration: float, capacity_aware: bool, counter: WarningCounter
) -> dict[str, Any]:
    async with FakeTempolor(TOKEN, job_duration=duration, max_jobs=slots) as fake:
        async with fake.client(capacity_aware=capacity_aware, busy_timeout=3600) as client:
            # The documented busy wait is 30 s for the service's minutes-long jobs; here it
            # keeps the same ratio to the job duration (30 s at 3 s jobs).
            client._http.busy_retry_seconds = 10 * duration
            started = time.monotonic()

            async def one(number: int) -> None:
                submission = await client.music.create_song(f"song {number}")
                await client.await_jobs(submission.jobs or [], poll_interval=duration / 10)

            async with anyio.create_task_group() as group:
                for number in range(songs):
                    group.start_soon(one, number)
            seen = time.monotonic() - started
        done = max(job.started + job.duration for job in fake.jobs.values()) - started
        posts = len(fake.requests_to("POST", "/music/song"))
        return {
            "makespan": done,
            "seen": seen,
            "posts": posts,
            "answered_429": posts - len(fake.submissions),
            "warnings": counter.count,
        }


async def run_makespan(quick: bool) -> str:
    songs, slots, duration = (6, 4, 0.5) if quick else (12, 4, 1.0)
    ideal = 2 * songs / slots * duration
    rows = []
    for aware in (True, False):
        result = await makespan(songs, slots, duration, aware)
        rows.append(
            [
                "capacity gate" if aware else "`capacity_aware=False` (send, wait out 429)",
                f"{result['makespan']:.1f}",
                f"{result['seen']:.1f}",
                f"{result['makespan'] / ideal:.2f}x",
                result["posts"],
                result["answered_429"],
                result["warnings"],
            ]
        )
    return table(
        f"Makespan: {songs} songs ({2 * songs} jobs) at once, one account, maxJobs {slots}, "
        f"{duration:g} s jobs",
        [
            "client",
            "makespan s",
            "all awaits done s",
            "vs ideal",
            "POSTs",
            "answered 429",
            "WARNING lines",
        ],
        rows,
        [
            f"ideal = {2 * songs} jobs / {slots} slots x {duration:g} s = {ideal:g} s; "
            "target: gate <= 1.15x and 0 answered 429",
            "makespan: the simulator's last job end after the first submission; "
            "awaits poll every job duration / 10",
            f"busy wait after a 429: {10 * duration:g} s (the documented 30 s, scaled to the "
            "job duration as for 3 s jobs)",
        ],
    )


# ------------------------------------------------------------ many waiters


def serve_main(duration: float) -> None:
    """A simulator process: prints its base URL; on each stdin line prints the requests
    counted since the last line (by kind) and starts counting afresh; ends at EOF."""

    async def main() -> None:
        async with FakeTempolor(
            TOKEN, job_duration=duration, max_jobs=1_000_000, max_gen_count_at_once=1_000_000
        ) as fake:
            print(fake.base_url, flush=True)
            while True:
                line = await anyio.to_thread.run_sync(sys.stdin.readline)
                if not line:
                    return
                kinds = Counter(kind_of(r.method, r.path) for r in fake.requests)
                fake.requests.clear()
                print(json.dumps(kinds), flush=True)

    asyncio.run(main())


def kind_of(method: str, path: str) -> str:
    if method == "POST":
        return "submit"
    if path.startswith("/scheduler"):
        return "scheduler"
    if path.startswith("/music/"):
        return "record"
    return "other"


async def submit_raw(session: aiohttp.ClientSession, base_url: str, count: int) -> list[str]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    job_ids: list[str] = []

    async def one(number: int) -> None:
        async with session.post(
            f"{base_url}/music/song", json={"prompt": f"song {number}"}, headers=headers
        ) as reply:
            job_ids.extend((await reply.json())["jobs"])

    limit = anyio.Semaphore(32)

    async def limited(number: int) -> None:
        async with limit:
            await one(number)

    async with anyio.create_task_group() as group:
        for number in range(count // 2):
            group.start_soon(limited, number)
    return job_ids


def waiters_main(mode: str, base_url: str, jobs: int, poll: float, rate: float) -> None:
    """A client process: submit ``jobs`` jobs, then wait for each in its own task."""

    async def main() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            job_ids = await submit_raw(session, base_url, jobs)
            cpu, wall = cpu_seconds(), time.monotonic()
            if mode == "raw":
                headers = {"Authorization": f"Bearer {TOKEN}"}

                async def poll_one(job_id: str) -> None:
                    while True:
                        async with session.get(f"{base_url}/music/{job_id}", headers=headers) as r:
                            record = await r.json()
                        if record.get("status_final"):
                            return
                        await asyncio.sleep(poll)

                async with anyio.create_task_group() as group:
                    for job_id in job_ids:
                        group.start_soon(poll_one, job_id)
            else:
                options: dict[str, Any] = {"max_poll_rate": rate, "session": session}
                client = TempolorClient(TOKEN, base_url=base_url, **options)
                async with client, anyio.create_task_group() as group:
                    for job_id in job_ids:
                        group.start_soon(
                            lambda job_id=job_id: client.await_job(job_id, poll_interval=poll)
                        )
            return {
                "cpu": cpu_seconds() - cpu,
                "wall": time.monotonic() - wall,
                "rss": peak_rss_mib(),
                "jobs": len(job_ids),
            }

    print(json.dumps(asyncio.run(main())), flush=True)


def run_waiters(quick: bool) -> str:
    jobs, duration, poll, rate, rounds = (
        (200, 3.0, 1.0, 1000.0, 1)
        if quick
        else (
            1000,
            10.0,
            1.0,
            1000.0,
            2,
        )
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.engine", "--serve", str(duration)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None
    assert server.stdout is not None
    base_url = server.stdout.readline().strip()
    results: dict[str, list[dict[str, Any]]] = {"raw": [], "sdk": []}
    try:
        for _ in range(rounds):
            for mode in ("raw", "sdk"):
                server.stdin.write("\n")
                server.stdin.flush()
                server.stdout.readline()  # counting starts now
                done = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.engine",
                        "--waiters",
                        mode,
                        base_url,
                        str(jobs),
                        str(poll),
                        str(rate),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                figures = json.loads(done.stdout.strip().rpartition("\n")[2])
                server.stdin.write("\n")
                server.stdin.flush()
                counts = json.loads(server.stdout.readline())
                figures["requests"] = counts.get("record", 0) + counts.get("scheduler", 0)
                results[mode].append(figures)
    finally:
        server.stdin.close()
        server.wait(timeout=30)

    def summary(mode: str, key: str) -> float:
        return statistics.median(figures[key] for figures in results[mode])

    rows = []
    for mode, label in (("raw", "raw aiohttp, one poller per job"), ("sdk", "`await_job` tasks")):
        spread = [f"{figures['cpu']:.2f}" for figures in results[mode]]
        rows.append(
            [
                label,
                f"{summary(mode, 'requests') / jobs:.2f}",
                f"{summary(mode, 'cpu'):.2f} ({', '.join(spread)})",
                f"{summary(mode, 'rss'):.1f}",
                f"{summary(mode, 'wall'):.1f}",
            ]
        )
    rss_delta = summary("sdk", "rss") - summary("raw", "rss")
    return table(
        f"Many waiters: {jobs} jobs, each awaited by its own task, polling every {poll:g} s, "
        f"{duration:g} s jobs",
        ["client", "requests per job", "client CPU s (rounds)", "peak RSS MiB", "wait s"],
        rows,
        [
            "target: SDK requests per job <= 1.2, peak RSS <= raw + 10 MB "
            f"(measured: {rss_delta:+.1f} MiB)",
            "requests per job: record and scheduler GETs the simulator answered during the "
            "wait, divided by the jobs (the submissions are not counted)",
            f"the SDK client runs with max_poll_rate={rate:g}: jobs submitted within a second "
            "end within a second, and the default 20 record fetches per second would spread "
            "their records over a minute",
            f"{rounds} round(s), raw and SDK alternating; medians, each round's CPU in brackets",
        ],
    )


# ---------------------------------------------------------------- callbacks


async def wake_up(callbacks: bool, jobs: int, duration: float) -> dict[str, Any]:
    async with FakeTempolor(TOKEN, job_duration=duration, max_jobs=1000) as fake:
        fake.max_gen_count_at_once = 1000
        receiver = CallbackReceiver(callback_poll_interval=30) if callbacks else None
        latencies: list[float] = []
        async with contextlib.AsyncExitStack() as stack:
            if receiver is not None:
                await stack.enter_async_context(receiver.serve())
            client = await stack.enter_async_context(fake.client(callbacks=receiver))
            poll = 30.0 if callbacks else 1.0

            async def follow(job_id: str) -> None:
                await client.await_job(job_id, poll_interval=poll)
                job = fake.jobs[job_id]
                latencies.append(time.monotonic() - (job.started + job.duration))

            async with anyio.create_task_group() as group:
                for number in range(jobs // 2):
                    submission = await client.music.create_song(f"song {number}")
                    for job_id in submission.jobs or []:
                        group.start_soon(follow, job_id)
                    await anyio.sleep(duration / (jobs // 2))  # completions spread out
            waits = fake.requests_to("GET", "/music/user:*") + fake.requests_to(
                "GET", "/scheduler/"
            )
        return {
            "p50": percentile(latencies, 0.5),
            "p95": percentile(latencies, 0.95),
            "max": max(latencies),
            "requests": len(waits),
            "errors": len(fake.callback_errors),
        }


async def run_wake_up(quick: bool) -> str:
    jobs, duration = (10, 1.0) if quick else (40, 2.0)
    rows = []
    for callbacks in (True, False):
        result = await wake_up(callbacks, jobs, duration)
        rows.append(
            [
                "callbacks, polling every 30 s" if callbacks else "no callbacks, polling every 1 s",
                f"{result['p50'] * 1000:.0f}",
                f"{result['p95'] * 1000:.0f}",
                f"{result['max'] * 1000:.0f}",
                result["requests"],
            ]
        )
    return table(
        f"Callback wake-up: {jobs} jobs ({duration:g} s each, completions spread over "
        f"{duration:g} s), one await_job task per job",
        ["waits", "p50 ms", "p95 ms", "max ms", "GET requests"],
        rows,
        [
            "latency: from the simulator's completion of the job to await_job returning; "
            "target with callbacks: p95 <= 200 ms",
            "the simulator, its callbacks, the receiver and the client share one process",
        ],
    )


# --------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.engine", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--serve", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--waiters", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve_main(args.serve)
        return
    if args.waiters:
        mode, base_url, jobs, poll, rate = args.waiters
        waiters_main(mode, base_url, int(jobs), float(poll), float(rate))
        return
    print(f"## Engine benchmarks{' (quick)' if args.quick else ''}\n")
    print(asyncio.run(run_makespan(args.quick)), flush=True)
    print(run_waiters(args.quick), flush=True)
    print(asyncio.run(run_wake_up(args.quick)), flush=True)


if __name__ == "__main__":
    main()
