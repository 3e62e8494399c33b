"""One measured variant in a fresh process: ``python -m benchmarks.client < task.json``.

The orchestrator (``python -m benchmarks``) writes the task as JSON on standard input and
reads the result, one JSON object, from standard output. A fresh process per variant makes
``getrusage(RUSAGE_SELF)`` that variant's own CPU time, and its peak RSS its own (read as
VmHWM: see ``common.peak_rss_mib`` for why not ``ru_maxrss``). Everything here is
shared by the raw and the SDK variants; only the operation measured differs, and it comes
from ``raw.py`` or ``sdk.py``, the latter imported only when the SDK is the variant.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import json
import sys
import time
import timeit
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

from .common import Control, Meter, cpus_allowed, median, percentile, rotate, warm_allocator

Task = dict[str, Any]
Result = dict[str, Any]

RECORD_PATH = Path(__file__).with_name("job_record.json")


class Api(Protocol):
    """What ``raw.RawApi`` and ``sdk.SdkApi`` both offer."""

    async def get_job(self, job_id: str) -> object: ...
    async def walk(self) -> int: ...
    async def await_job(self, job_id: str, poll_interval: float) -> None: ...
    async def download(self, url: str, dest: Path) -> None: ...


def open_api(task: Task) -> AbstractAsyncContextManager[Any]:
    """The raw or the SDK implementation, imported only when used."""
    name = "raw" if task["variant"].startswith("raw") else "sdk"
    module = importlib.import_module(f"benchmarks.{name}")
    opened: AbstractAsyncContextManager[Any] = module.open_api(task)
    return opened


def run_with_api(task: Task, body: Callable[[Api], Awaitable[Result]]) -> Result:
    async def main() -> Result:
        async with open_api(task) as api:
            return await body(api)

    return asyncio.run(main())


async def drive(call: Callable[[], Awaitable[object]], total: int, concurrency: int) -> None:
    """Make ``total`` calls, ``concurrency`` at a time (each worker takes the next one)."""
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


# ------------------------------------------------------------------ benchmarks


def b1_get(task: Task) -> Result:
    """GET one job record ``requests`` times at ``concurrency``, after a warm-up that opens
    the connections."""

    async def body(api: Api) -> Result:
        def call() -> Awaitable[object]:
            return api.get_job(task["job_id"])

        await drive(call, task["warmup"], task["concurrency"])
        with Meter(task["profile"]) as meter:
            await drive(call, task["requests"], task["concurrency"])
        return meter.result()

    return run_with_api(task, body)


def b2_decode(task: Task) -> Result:
    """Time ``json.loads`` and the SDK's decoding of the documented record, alternating."""
    from tempolor_async import MusicJob
    from tempolor_async._protocol import decode

    content = RECORD_PATH.read_bytes()
    path = "/music/" + json.loads(content)["job_id"]
    if decode(content, MusicJob, "GET", path).status != 30:
        raise RuntimeError("the record did not decode as documented")
    variants: dict[str, Callable[[], object]] = {
        "json.loads": lambda: json.loads(content),
        "decode": lambda: decode(content, MusicJob, "GET", path),
    }
    if task["profile"]:
        with Meter(profile=True) as meter:
            for _ in range(task["number"]):
                variants["decode"]()
        return meter.result()
    best = dict.fromkeys(variants, float("inf"))
    for index in range(task["repeat"]):
        for name in rotate(list(variants), index):
            seconds = timeit.timeit(variants[name], number=task["number"]) / task["number"]
            best[name] = min(best[name], seconds)
    return {"loads_us": best["json.loads"] * 1e6, "decode_us": best["decode"] * 1e6}


def b3_walk(task: Task) -> Result:
    """Walk every song record, page by page, ``walks`` times (after one untimed walk that
    opens the connection); ``seconds`` is the median walk, CPU and faults are per walk."""
    walks = task.get("walks", 1)

    async def body(api: Api) -> Result:
        await api.walk()
        times = []
        with Meter(task["profile"]) as meter:
            for _ in range(walks):
                started = time.perf_counter()
                count = await api.walk()
                times.append(time.perf_counter() - started)
                if count != task["records"]:
                    raise RuntimeError(f"walked {count} records, expected {task['records']}")
        result = meter.result()
        for key in ("cpu_seconds", "user_seconds", "system_seconds", "minor_faults"):
            result[key] /= walks
        return {**result, "seconds": median(times)}

    return run_with_api(task, body)


async def wait_each(api: Any, job_ids: Sequence[str], poll: float, seen: dict[str, float]) -> None:
    """One polling task per job (raw pollers, or ``await_job``)."""

    async def one(job_id: str) -> None:
        await api.await_job(job_id, poll)
        seen[job_id] = time.monotonic()

    await asyncio.gather(*(one(job_id) for job_id in job_ids))


async def wait_shared(
    api: Any, job_ids: Sequence[str], poll: float, seen: dict[str, float]
) -> None:
    """The SDK's shared poll loop, ``as_completed``."""
    finished: AsyncIterator[str] = api.as_completed(job_ids, poll)
    async for job_id in finished:
        seen[job_id] = time.monotonic()


WAIT_STRATEGIES = {"raw-pollers": wait_each, "await_job": wait_each, "as_completed": wait_shared}


def b4_wait(task: Task) -> Result:
    """Restart the jobs on the server, wait for all of them, then count the requests the
    server received. Latency: when the client saw a job final minus when it became final."""
    control = Control(task["server"]["control_url"])
    job_ids: list[str] = task["job_ids"]
    final_at = control("/restart", {"job_ids": job_ids, "durations": task["durations"]})
    strategy = WAIT_STRATEGIES[task["variant"]]
    seen: dict[str, float] = {}

    async def body(api: Api) -> Result:
        with Meter(task["profile"]) as meter:
            await asyncio.wait_for(
                strategy(api, job_ids, task["poll_interval"], seen), task["timeout"]
            )
        return meter.result()

    result = run_with_api(task, body)
    received = control("/requests")
    requests = received["count"]
    ticks = received["scheduler_times"]
    latencies = [seen[job_id] - final_at["final_at"][job_id] for job_id in job_ids]
    return {
        **result,
        "requests": requests,
        "ticks": len(ticks),
        "tick_interval_p50": percentile([b - a for a, b in itertools.pairwise(ticks)], 0.5),
        "requests_per_job": requests / len(job_ids),
        "latency_p50": percentile(latencies, 0.50),
        "latency_p95": percentile(latencies, 0.95),
        "latency_max": max(latencies),
    }


def remove_download(path: Path, size: int) -> None:
    """Check a downloaded file's size, then delete it (the next download starts afresh)."""
    written = path.stat().st_size
    path.unlink()
    if written != size:
        raise RuntimeError(f"downloaded {written} bytes, expected {size}")


def b5_download(task: Task) -> Result:
    """Download a small file first (kept out of the throughput: it opens the connection and
    loads what the first download needs; its time is reported as the first-use cost), then
    the large file ``repeat`` times; ``seconds`` is the median of those. RSS growth is the
    peak during the large downloads minus the resident memory just before them."""
    dest = Path(task["dest"])
    first = dest.with_name("first-" + dest.name)

    async def body(api: Api) -> Result:
        started = time.perf_counter()
        await api.download(task["first_url"], first)
        first_seconds = time.perf_counter() - started
        times = []
        with Meter(task["profile"], reset_peak=True) as meter:
            for _ in range(task["repeat"]):
                started = time.perf_counter()
                await api.download(task["url"], dest)
                times.append(time.perf_counter() - started)
                remove_download(dest, task["size"])
        return {**meter.result(), "seconds": median(times), "first_seconds": first_seconds}

    try:
        return run_with_api(task, body)
    finally:
        dest.unlink(missing_ok=True)
        first.unlink(missing_ok=True)


BENCHMARKS: dict[str, Callable[[Task], Result]] = {
    "b1": b1_get,
    "b2": b2_decode,
    "b3": b3_walk,
    "b4": b4_wait,
    "b5": b5_download,
}


def main() -> None:
    task: Task = json.load(sys.stdin)
    if task.get("allocator_warmup", True):
        warm_allocator()
    if task.get("sdk_path"):
        # An earlier version of the SDK (``--compare``), first on the path.
        sys.path.insert(0, task["sdk_path"])
    # Pinned by the orchestrator before this process started (see run.py); reported as the
    # kernel sees it, and checked there.
    result = BENCHMARKS[task["bench"]](task)
    sdk = sys.modules.get("tempolor_async")
    result["sdk_file"] = getattr(sdk, "__file__", None)
    json.dump({**result, "cpus_allowed": cpus_allowed()}, sys.stdout)


if __name__ == "__main__":
    main()
