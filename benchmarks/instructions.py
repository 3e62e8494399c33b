"""``python -m benchmarks.instructions``: client instructions per request, raw against SDK.

Time on a shared 2-core machine wanders by tens of percent between runs; the number of
user-space instructions a client executes does not (repeated runs agree within about 1 %).
This counts them with valgrind's cachegrind (no cache simulation) for one client process
making ``--small`` and then one making ``--large`` B1 or B3 operations against the fast
server; the difference divided by ``large - small`` is the cost of one operation, with
start-up, imports and the warm-up cancelled out. The raw and the SDK variants run the same
``client.py`` task, so both have the same allocator warm-up and pinning.

Needs ``valgrind`` on the PATH. Prints one table; ``--json`` prints the numbers instead.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .common import CLIENT_CPU, ROOT, SERVER_CPU, median, pin_to_cpu

# What cachegrind prints at the end, by the name used here.
_COUNTERS = {
    "instructions": re.compile(r"I\s+refs:\s+([\d,]+)"),
    "data refs": re.compile(r"D\s+refs:\s+([\d,]+)"),
    "I1 misses": re.compile(r"I1\s+misses:\s+([\d,]+)"),
    "D1 misses": re.compile(r"D1\s+misses:\s+([\d,]+)"),
    "LL misses": re.compile(r"LL misses:\s+([\d,]+)"),
}


def count(task: dict[str, Any], cache_sim: bool = False) -> dict[str, int]:
    """Instructions (and with ``cache_sim``, data references and the simulated cache misses)
    of one ``client.py`` process running ``task`` under cachegrind."""
    with tempfile.TemporaryDirectory() as folder:
        command = [
            "valgrind",
            "--tool=cachegrind",
            f"--cache-sim={'yes' if cache_sim else 'no'}",
            f"--cachegrind-out-file={Path(folder) / 'out'}",
            sys.executable,
            "-m",
            "benchmarks.client",
        ]
        done = subprocess.run(
            command,
            input=json.dumps(task),
            capture_output=True,
            text=True,
            cwd=ROOT,
            preexec_fn=lambda: pin_to_cpu(CLIENT_CPU) and None,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"client failed under valgrind:\n{done.stderr[-2000:]}")
    counts = {}
    for name, pattern in _COUNTERS.items():
        found = pattern.search(done.stderr)
        if found is not None:
            counts[name] = int(found.group(1).replace(",", ""))
    if "instructions" not in counts:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return counts


def per_operation(
    task: dict[str, Any], key: str, small: int, large: int, cache_sim: bool = False
) -> dict[str, float]:
    low = count({**task, key: small}, cache_sim)
    high = count({**task, key: large}, cache_sim)
    return {name: (high[name] - low[name]) / (large - small) for name in high}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__)
    parser.add_argument("--bench", choices=("b1", "b3"), default="b1")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--small", type=int, default=200, help="operations in the first run")
    parser.add_argument("--large", type=int, default=800, help="operations in the second run")
    parser.add_argument("--repeat", type=int, default=1, help="counts per figure (median kept)")
    parser.add_argument("--variants", nargs="+", default=["raw", "sdk"])
    parser.add_argument(
        "--cache-sim",
        action="store_true",
        help="also simulate the caches: data references and I1, D1 and last-level misses",
    )
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not on the PATH")

    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.fastserver", "--max-seconds=3600"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        preexec_fn=lambda: pin_to_cpu(SERVER_CPU) and None,
    )
    assert server.stdout is not None
    try:
        info = json.loads(server.stdout.readline())
        results: dict[str, dict[str, dict[str, float]]] = {}
        for variant in args.variants:
            for concurrency in args.concurrency if args.bench == "b1" else [1]:
                task: dict[str, Any] = {
                    "bench": args.bench,
                    "variant": variant,
                    "server": info,
                    "profile": False,
                    "job_id": info["job_id"],
                    "concurrency": concurrency,
                    "warmup": 50,
                    "requests": 0,
                    "records": info["records"],
                    "walks": 0,
                }
                key = "requests" if args.bench == "b1" else "walks"
                small, large = args.small, args.large
                if args.bench == "b3":  # a walk is 50 requests
                    small, large = max(1, small // 100), max(2, large // 100)
                figures = [
                    per_operation(task, key, small, large, args.cache_sim)
                    for _ in range(args.repeat)
                ]
                results.setdefault(variant, {})[str(concurrency)] = {
                    name: median([figure[name] for figure in figures]) for name in figures[0]
                }
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)
    if args.json:
        print(json.dumps(results))
        return
    unit = "request" if args.bench == "b1" else "walk"
    names = list(next(iter(next(iter(results.values())).values())))
    for name in names:
        print(f"{name} per {unit} ({args.bench}), thousands")
        for variant, by_concurrency in results.items():
            row = ", ".join(f"c{c}: {n[name] / 1000:,.1f}k" for c, n in by_concurrency.items())
            print(f"  {variant}: {row}")
        if "raw" in results and "sdk" in results:
            for c, sdk in results["sdk"].items():
                raw = results["raw"][c][name]
                print(f"  raw/sdk c{c}: {raw / sdk[name]:.3f}" if sdk[name] else "")


if __name__ == "__main__":
    main()
