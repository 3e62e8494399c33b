"""Kill campaign: a batch killed with SIGKILL at random instants, over and over, against a
simulator that loses answers, accepts generations and then answers 502, accepts them after the
client gave up, runs its clock behind this machine's and serves files late.

Run it as ``python tests/batch_kills.py`` (``--kills N``, ``--items N``, ``--seed S``; by
default 60 kills over 250 items). The simulator lives in this process; each run of the batch
is a child process (``run_batch`` with a 3 s request timeout and a 5 s ``confirm_window``)
killed after a random 0.2-4 s, until at least ``--kills`` kills have landed; then one last
run goes to the end. It checks, and exits non-zero naming every failure: every item was paid
exactly once (one accepted generation per item's replyRef), the journal says ``downloaded``
with those job ids, every file is whole (byte-identical to what the simulator serves), no
temporary file is left, and the manifest matches the journal and the files. The last line on
stdout is a JSON object of figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio

ACCOUNTS = {"100349856": 6, "200000001": 4}  # the first is the simulator's own
JOB_SECONDS = 1.5
CLIENT_TIMEOUT = 3.0
CONFIRM_WINDOW = 5.0
CLOCK_OFFSET = -7.0
DOWNLOAD_LAG = 0.5
FAULTS: tuple[dict[str, Any], ...] = (
    {"drop": True, "probability": 0.08},  # lost before the service: nothing accepted
    {"status": 502, "handled": True, "probability": 0.08},  # accepted, answer lost
    {"delay": CLIENT_TIMEOUT + 1.0, "probability": 0.05},  # accepted after the client gave up
    {"delay": 1.0, "probability": 0.1},  # slow: a kill here leaves an accept after death
)


def child(base_url: str, token: str, folder: Path, items: int) -> int:
    """One run of the batch (the process the campaign kills)."""
    from tempolor_async import InstrumentalRequest, SongRequest, TempolorClient

    requests = [
        (SongRequest if number % 3 else InstrumentalRequest)(
            f"track number {number % (items // 2 or 1)}",  # pairs of identical prompts
            key=f"item-{number:03d}",
            **({"reply_ref": "shared"} if number % 5 == 0 else {}),
        )
        for number in range(items)
    ]

    async def run() -> None:
        async with TempolorClient(token, base_url=base_url, timeout=CLIENT_TIMEOUT) as client:
            await client.run_batch(
                requests,
                journal=folder / "journal.sqlite",
                out_dir=folder / "out",
                confirm_window=CONFIRM_WINDOW,
            )

    anyio.run(run)
    return 0


async def campaign(kills: int, items: int, seed: int, folder: Path) -> dict[str, Any]:
    from tempolor_async.testing import FakeTempolor

    rng = random.Random(seed)
    figures: Counter[str] = Counter()
    started = time.monotonic()
    async with FakeTempolor(
        "kill-token",
        job_duration=JOB_SECONDS,
        max_jobs=ACCOUNTS["100349856"],
        clock_offset=CLOCK_OFFSET,
        download_lag=DOWNLOAD_LAG,
        max_gen_count_at_once=100,
    ) as fake:
        for user_id, slots in ACCOUNTS.items():
            if user_id not in fake.accounts:
                fake.add_account(user_id, max_jobs=slots)
        faults = [
            fake.inject("POST", "/music/*", times=None, seed=seed + number, **fault)
            for number, fault in enumerate(FAULTS)
        ]
        command = [sys.executable, __file__, "--child", fake.base_url, fake.token, str(folder)]
        command += ["--items", str(items)]
        env = {**os.environ, "PYTHONPYCACHEPREFIX": str(folder / "pycache")}
        while True:
            process = await anyio.open_process(command, env=env)
            figures["runs"] += 1
            # Enough kills, or the batch has long been finished (nothing left to kill).
            last = figures["kills"] >= kills or figures["runs"] > 4 * kills
            if last:
                fake.clear_faults()  # the last run must be able to finish
                with anyio.fail_after(600):
                    code = await process.wait()
                figures["last_run_exit"] = code
                break
            with anyio.move_on_after(rng.uniform(0.2, 4.0)):
                await process.wait()
            if process.returncode is None:
                process.send_signal(signal.SIGKILL)
                await process.wait()
                figures["kills"] += 1
            else:
                figures["runs_that_ended_before_the_kill"] += 1
            await anyio.sleep(rng.uniform(0.0, 1.5))  # late accepts land while it is down
        figures["seconds"] = round(time.monotonic() - started)
        for fault in faults:  # how often each fault struck
            kind = "handled 502" if fault.handled else "drop" if fault.drop else "delay"
            figures[f"fault {kind} {fault.delay:g}s hits"] += fault.hits
        figures.update(check(fake, folder, items))
    return dict(figures)


def check(fake: Any, folder: Path, items: int) -> Counter[str]:
    problems: Counter[str] = Counter()
    with contextlib.closing(sqlite3.connect(folder / "journal.sqlite")) as connection:
        rows = connection.execute("SELECT key, state, job_ids, files, reply_ref FROM items")
        journal = {row[0]: row[1:] for row in rows}
    accepted = Counter(fake.jobs[jobs[0]].reply_ref for jobs in fake.submissions)
    problems["generations_accepted"] = len(fake.submissions)
    problems["items"] = len(journal)
    out = folder / "out"
    for key, (state, job_ids, files, reply_ref) in journal.items():
        job_ids, files = json.loads(job_ids), json.loads(files)
        if accepted[reply_ref] != 1:
            problems[f"paid {accepted[reply_ref]} times"] += 1
            print(f"{key}: paid {accepted[reply_ref]} times", file=sys.stderr)
        if state != "downloaded":
            problems[f"ended {state}"] += 1
        if sorted(job_ids) not in [sorted(jobs) for jobs in fake.submissions]:
            problems["job ids not one generation"] += 1
        if any(fake.jobs[job_id].reply_ref != reply_ref for job_id in job_ids):
            problems["someone else's jobs"] += 1
        for name in files:
            index = int(name.rsplit("-", 1)[1].split(".")[0])
            if (out / name).read_bytes() != fake.media_bytes(job_ids[index - 1], "mp3"):
                problems["file not whole"] += 1
    if len(journal) != items:
        problems["items missing from the journal"] += items - len(journal)
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".part")]
    problems["temporary files left"] = len(leftovers)
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    for line in manifest:
        state, job_ids, files, _ = journal[line["key"]]
        if (line["status"], line["job_ids"], line["files"]) != (
            state,
            json.loads(job_ids),
            json.loads(files),
        ):
            problems["manifest differs from the journal"] += 1
        if not all((out / name).is_file() for name in line["files"]):
            problems["manifest names a missing file"] += 1
    if len(manifest) != len(journal):
        problems["manifest lines missing"] += 1
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--kills", type=int, default=60)
    parser.add_argument("--items", type=int, default=250)
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--child", nargs=3, metavar=("BASE_URL", "TOKEN", "FOLDER"))
    args = parser.parse_args()
    if args.child:
        base_url, token, folder = args.child
        return child(base_url, token, Path(folder), args.items)
    with tempfile.TemporaryDirectory(prefix="tempolor-kills-") as folder:
        figures = asyncio.run(campaign(args.kills, args.items, args.seed, Path(folder)))
    failures = {
        name: count
        for name, count in figures.items()
        if count
        and (
            name.startswith(("paid", "ended", "job ids", "someone", "file", "items missing"))
            or name.startswith(("temporary", "manifest"))
        )
    }
    if figures.get("kills", 0) < args.kills:
        failures["kills landed"] = figures.get("kills", 0)
    if figures.get("last_run_exit") != 0:
        failures["last run exit"] = figures.get("last_run_exit", -1)
    if figures.get("generations_accepted") != args.items:
        failures["generations accepted != items"] = figures.get("generations_accepted", 0)
    for name, count in failures.items():
        print(f"FAILED: {name}: {count}", file=sys.stderr)
    print(json.dumps(figures, sort_keys=True))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
