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

_I_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def count(task: dict[str, Any]) -> int:
    """Instructions of one ``client.py`` process running ``task`` under cachegrind."""
    with tempfile.TemporaryDirectory() as folder:
        command = [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
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
    found = _I_REFS.search(done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def per_operation(task: dict[str, Any], key: str, small: int, large: int) -> float:
    low = count({**task, key: small})
    high = count({**task, key: large})
    return (high - low) / (large - small)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__)
    parser.add_argument("--bench", choices=("b1", "b3"), default="b1")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--small", type=int, default=200, help="operations in the first run")
    parser.add_argument("--large", type=int, default=800, help="operations in the second run")
    parser.add_argument("--repeat", type=int, default=1, help="counts per figure (median kept)")
    parser.add_argument("--variants", nargs="+", default=["raw", "sdk"])
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
        results: dict[str, dict[str, float]] = {}
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
                figures = [per_operation(task, key, small, large) for _ in range(args.repeat)]
                results.setdefault(variant, {})[str(concurrency)] = median(figures)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)
    if args.json:
        print(json.dumps(results))
        return
    unit = "request" if args.bench == "b1" else "walk"
    print(f"instructions per {unit} ({args.bench}), thousands")
    for variant, by_concurrency in results.items():
        row = ", ".join(f"c{c}: {n / 1000:,.1f}k" for c, n in by_concurrency.items())
        print(f"  {variant}: {row}")
    if "raw" in results and "sdk" in results:
        for c in results["sdk"]:
            print(f"  raw/sdk c{c}: {results['raw'][c] / results['sdk'][c]:.3f}")


if __name__ == "__main__":
    main()
