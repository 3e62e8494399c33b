"""Fleets through Redis (SPEC 17): ``python -m benchmarks.fleet``.

One simulator process, a private ``redis-server`` and 4 worker processes, each a
``TempolorClient(coordination=...)`` with its own ``CallbackReceiver`` (one shared secret),
beside one process doing the same work alone. Every generation's ``replyUrl`` names the
*next* worker's receiver, so every callback reaches another process than its waiter's.

Measured, each over ``--rounds`` rounds (median and range):

- makespan of 40 songs on one account with ``maxJobs`` 3, fleet against one process, and
  the answers 429 the service gave;
- cross-process callback wake-up: from the moment a job turned final in the simulator to
  the moment its waiter (in another process than the receiver) returned it;
- fleet-wide API reads (GET) per awaited job;
- a worker SIGKILLed while it holds leases: from the kill to the moment another worker's
  generation for those slots is accepted (target: within ``lease_ttl`` plus one tick);
- Redis stopped mid-run: every wait ends, every song accepted exactly once.

Processes are pinned (simulator and Redis on CPU 1, workers on CPU 0) and the pinning is
read back from ``/proc/<pid>/status``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.common import CLIENT_CPU, SERVER_CPU, TOKEN, cpus_allowed, median, percentile

SECRET = "bench-fleet-secret-0123456789"
USER = "100349856"
WORKERS = 4
SONGS = 40
MAX_JOBS = 3
LEASE_TTL = 3.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def pinned(cpu: int) -> Any:
    def pin() -> None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})

    return pin


# ----------------------------------------------------------------- simulator


async def serve_simulator(duration: float) -> None:
    """The simulator with a control port: stats, final times, reset."""
    from aiohttp import web

    from tempolor_async.testing import FakeTempolor

    async with FakeTempolor(TOKEN, job_duration=duration, max_jobs=MAX_JOBS) as fake:

        async def stats(request: web.Request) -> web.Response:
            posts = fake.requests_to("POST", "/music/song")
            gets = [r for r in fake.requests if r.method == "GET"]
            finals = {
                job_id: job.started + job.duration
                for job_id, job in fake.jobs.items()
                if job.forced_at is None
            }
            return web.json_response(
                {
                    "posts": len(posts),
                    "submissions": len(fake.submissions),
                    "prompts": [r.json()["prompt"] for r in posts],
                    "gets": len(gets),
                    "scheduler_gets": sum(1 for r in gets if "/scheduler" in r.path),
                    "final_at": finals,
                }
            )

        async def reset(request: web.Request) -> web.Response:
            fake.requests.clear()
            return web.json_response({})

        app = web.Application()
        app.router.add_post("/stats", stats)
        app.router.add_post("/reset", reset)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        control = f"http://127.0.0.1:{runner.addresses[0][1]}"
        print(json.dumps({"base_url": fake.base_url, "control": control}), flush=True)
        try:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        finally:
            await runner.cleanup()


# -------------------------------------------------------------------- worker


async def run_worker(config: dict[str, Any]) -> None:
    """Submit ``songs`` songs (all at once, the gate queues them), wait for each; print one
    JSON line of results. Waits for "go" on stdin first, so that the workers start together."""
    from tempolor_async import CallbackReceiver, RedisCoordination, TempolorClient

    coordination = (
        RedisCoordination(config["redis"], lease_ttl=LEASE_TTL) if config["redis"] else None
    )
    receiver = CallbackReceiver(config["reply_to"], secret=SECRET, callback_poll_interval=60)
    loop = asyncio.get_running_loop()
    async with contextlib.AsyncExitStack() as stack:
        own = CallbackReceiver(secret=SECRET, callback_poll_interval=60)
        # This worker's receiver: the callbacks of the previous worker's jobs land here.
        listening = await stack.enter_async_context(
            own.serve(port=config["port"])  # type: ignore[arg-type]
        )
        client = await stack.enter_async_context(
            TempolorClient(
                TOKEN,
                base_url=config["base_url"],
                callbacks=receiver,
                coordination=coordination,
                busy_timeout=600,
            )
        )
        # The receiver serving here wakes this process's waits too.
        own._attach(client._engine)
        print(json.dumps({"ready": listening}), flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        started = time.monotonic()
        returned: dict[str, float] = {}

        async def one(index: int) -> None:
            submission = await client.music.create_song(f"{config['name']} song {index}")
            async for job in client.as_completed(submission.jobs or []):
                returned[job.job_id or ""] = time.monotonic()

        await asyncio.gather(*(one(index) for index in range(config["songs"])))
        print(json.dumps({"started": started, "returned": returned}), flush=True)
        # Serve the other workers' callbacks until every worker is done.
        await loop.run_in_executor(None, sys.stdin.read)


# ------------------------------------------------------------------ the runs


class Fleet:
    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.processes: list[subprocess.Popen[str]] = []
        self.pinning: dict[str, str] = {}

    def start(self, argv: list[str], cpu: int, name: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=pinned(cpu),
        )
        self.processes.append(process)
        self.pinning[name] = cpus_allowed(process.pid)
        return process

    def simulator(self) -> tuple[subprocess.Popen[str], dict[str, str]]:
        argv = [sys.executable, "-m", "benchmarks.fleet", "--serve", str(self.duration)]
        process = self.start(argv, SERVER_CPU, "simulator")
        assert process.stdout is not None
        return process, json.loads(process.stdout.readline())

    def redis(self) -> tuple[subprocess.Popen[str], str]:
        port = free_port()
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no"]
        process = self.start(argv, SERVER_CPU, "redis")
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    return process, url
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def workers(
        self, count: int, songs: Sequence[int], base_url: str, redis: str | None
    ) -> list[subprocess.Popen[str]]:
        ports = [free_port() for _ in range(count)]
        started = []
        for index in range(count):
            reply_to = f"http://127.0.0.1:{ports[(index + 1) % count]}"
            config = {
                "name": f"w{index}",
                "songs": songs[index],
                "base_url": base_url,
                "redis": redis,
                "port": ports[index],
                "reply_to": reply_to,
            }
            argv = [sys.executable, "-m", "benchmarks.fleet", "--worker", json.dumps(config)]
            started.append(self.start(argv, CLIENT_CPU, f"worker {index}"))
        for process in started:
            assert process.stdout is not None
            json.loads(process.stdout.readline())  # ready
        return started

    def stop(self) -> None:
        for process in reversed(self.processes):  # the workers first, Redis last but one
            if process.poll() is None:
                with contextlib.suppress(OSError):
                    if process.stdin:
                        process.stdin.close()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for stream in (process.stdout, process.stdin):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()


def control(url: str, path: str) -> Any:
    import urllib.request

    request = urllib.request.Request(url + path, data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


def go_and_collect(workers: list[subprocess.Popen[str]]) -> tuple[float, dict[str, float]]:
    for process in workers:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    first = time.monotonic()
    returned: dict[str, float] = {}
    for process in workers:
        assert process.stdout is not None
        result = json.loads(process.stdout.readline())
        first = min(first, result["started"])
        returned.update(result["returned"])
    return first, returned


def one_round(duration: float, fleet_mode: bool) -> dict[str, Any]:
    """40 songs: 4 fleet workers (10 each), or one process alone (40)."""
    fleet = Fleet(duration)
    try:
        _, info = fleet.simulator()
        redis = fleet.redis()[1] if fleet_mode else None
        if fleet_mode:
            workers = fleet.workers(WORKERS, [SONGS // WORKERS] * WORKERS, info["base_url"], redis)
        else:
            workers = fleet.workers(1, [SONGS], info["base_url"], None)
        started, returned = go_and_collect(workers)
        stats = control(info["control"], "/stats")
        makespan = max(returned.values()) - started
        wakeups = [returned[job] - stats["final_at"][job] for job in returned]
        return {
            "makespan": makespan,
            "answers_429": stats["posts"] - SONGS,
            "accepted": len(set(stats["prompts"])),
            "gets_per_job": stats["gets"] / len(returned),
            "scheduler_gets_per_job": stats["scheduler_gets"] / len(returned),
            "wakeup_p95": percentile(wakeups, 0.95),
            "wakeup_p50": percentile(wakeups, 0.5),
            "pinning": fleet.pinning,
        }
    finally:
        fleet.stop()


def killed_holder(duration: float) -> dict[str, Any]:
    """A worker holds leases (its jobs run), is SIGKILLed; how long until another worker's
    queued generation for those slots is accepted."""
    fleet = Fleet(duration)
    try:
        _, info = fleet.simulator()
        _, redis = fleet.redis()
        # Two generations: four jobs, more than the account's three slots.
        victim, survivor = fleet.workers(2, [2, 1], info["base_url"], redis)
        assert victim.stdin is not None
        assert survivor.stdin is not None
        victim.stdin.write("go\n")
        victim.stdin.flush()
        time.sleep(0.3)  # its generations are accepted: every slot is leased
        survivor.stdin.write("go\n")
        survivor.stdin.flush()
        time.sleep(0.2)  # the survivor's generation queues for the fleet's slots
        killed = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)
        assert survivor.stdout is not None
        result = json.loads(survivor.stdout.readline())
        final_at = control(info["control"], "/stats")["final_at"]
        # The simulator started its jobs when it accepted the survivor's generation.
        accepted = min(final_at[job_id] for job_id in result["returned"]) - duration
        return {"slots_back_after": accepted - killed, "lease_ttl": LEASE_TTL}
    finally:
        fleet.stop()


def redis_stopped(duration: float) -> dict[str, Any]:
    fleet = Fleet(duration)
    try:
        _, info = fleet.simulator()
        redis_process, redis = fleet.redis()
        workers = fleet.workers(WORKERS, [SONGS // WORKERS] * WORKERS, info["base_url"], redis)
        for process in workers:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        time.sleep(duration * 4)
        redis_process.kill()
        redis_process.wait()
        returned: dict[str, float] = {}
        for process in workers:
            assert process.stdout is not None
            line = process.stdout.readline()
            returned.update(json.loads(line)["returned"] if line else {})
        stats = control(info["control"], "/stats")
        return {
            "jobs_returned": len(returned),
            "songs_accepted": len(set(stats["prompts"])),
            "generations_accepted": stats["submissions"],
            "posts": stats["posts"],
            "answers_429": stats["posts"] - stats["submissions"],
        }
    finally:
        fleet.stop()


def spread(values: list[float]) -> str:
    return f"{median(values):.3f} (range {min(values):.3f}-{max(values):.3f}, n={len(values)})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=0.5, help="seconds per job")
    parser.add_argument("--serve", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        asyncio.run(serve_simulator(args.serve))
        return
    if args.worker is not None:
        asyncio.run(run_worker(json.loads(args.worker)))
        return
    alone, fleet = [], []
    for _ in range(args.rounds):
        alone.append(one_round(args.duration, fleet_mode=False))
        fleet.append(one_round(args.duration, fleet_mode=True))
    ratios = [f["makespan"] / a["makespan"] for a, f in zip(alone, fleet, strict=True)]
    report = {
        "conditions": {
            "songs": SONGS,
            "workers": WORKERS,
            "max_jobs": MAX_JOBS,
            "job_seconds": args.duration,
            "lease_ttl": LEASE_TTL,
            "pinning": fleet[-1]["pinning"],
        },
        "makespan_alone_s": spread([r["makespan"] for r in alone]),
        "makespan_fleet_s": spread([r["makespan"] for r in fleet]),
        "makespan_ratio": spread(ratios),
        "answers_429_fleet": [r["answers_429"] for r in fleet],
        "songs_accepted_fleet": [r["accepted"] for r in fleet],
        "wakeup_p95_fleet_s": spread([r["wakeup_p95"] for r in fleet]),
        "wakeup_p50_fleet_s": spread([r["wakeup_p50"] for r in fleet]),
        "gets_per_job_fleet": spread([r["gets_per_job"] for r in fleet]),
        "gets_per_job_alone": spread([r["gets_per_job"] for r in alone]),
        "scheduler_gets_per_job_fleet": spread([r["scheduler_gets_per_job"] for r in fleet]),
        "scheduler_gets_per_job_alone": spread([r["scheduler_gets_per_job"] for r in alone]),
        "killed_holder": [killed_holder(args.duration) for _ in range(args.rounds)],
        "redis_stopped": redis_stopped(args.duration),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
