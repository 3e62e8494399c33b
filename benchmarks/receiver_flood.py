"""A flood of stalled callbacks against ``CallbackReceiver.serve()``: what it holds, and for
how long.

``python -m benchmarks.receiver_flood`` starts ``serve()`` in a child process, opens
``--connections`` (300) connections to it that each send a request head and ``--sent-kib``
(900) KiB of a declared 1,000,000-byte body, then stall; it samples the child's resident
memory and counts the connections the server still holds, once a second for ``--watch``
(20) seconds, ``--rounds`` (1) floods one after the other, and prints a markdown table.
Without a read deadline every connection is held for ever, with its body in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

DECLARED = 1_000_000


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def serve() -> None:
    """The child: a receiver served until stdin closes."""
    from tempolor_async import CallbackReceiver

    receiver = CallbackReceiver()
    async with receiver.serve() as url:
        print(url.rsplit(":", 1)[1], receiver.secret, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


async def flood(
    connections: int, sent_kib: int, watch: float, rounds: int
) -> list[tuple[float, float, int]]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.receiver_flood",
        "--serve",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    assert child.stdin is not None
    port, secret = (await child.stdout.readline()).decode().split()
    await asyncio.sleep(0.5)
    rows = [(0.0, rss_mib(child.pid), 0)]
    for _ in range(rounds):
        rows += await one_round(child.pid, int(port), secret, connections, sent_kib, watch)
    child.stdin.close()
    await child.wait()
    return rows


async def one_round(
    pid: int, port: int, secret: str, connections: int, sent_kib: int, watch: float
) -> list[tuple[float, float, int]]:
    rows = []
    head = (
        f"POST /{secret} HTTP/1.1\r\nHost: hooks\r\nContent-Type: application/json\r\n"
        f"Content-Length: {DECLARED}\r\n\r\n"
    ).encode()
    body = b" " * (sent_kib * 1024)
    held: list[asyncio.StreamWriter] = []
    open_count = 0

    async def one() -> None:
        nonlocal open_count
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        held.append(writer)
        open_count += 1
        writer.write(head + body)  # left to drain in the background: the sender stalls after
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        open_count -= 1

    tasks = [asyncio.create_task(one()) for _ in range(connections)]
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < watch:
        await asyncio.sleep(1.0)
        rows.append((round(elapsed + 1.0), rss_mib(pid), open_count))
    for writer in held:
        writer.transport.abort()
    await asyncio.gather(*tasks, return_exceptions=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.receiver_flood")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--sent-kib", type=int, default=900)
    parser.add_argument("--watch", type=float, default=20.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=1, help="floods, one after the other")
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return
    rows = asyncio.run(flood(args.connections, args.sent_kib, args.watch, args.rounds))
    print(
        f"{args.connections} connections, each {args.sent_kib} KiB of a {DECLARED}-byte body "
        f"then stalled, against serve() (pid RSS before: {rows[0][1]:.0f} MiB)\n"
    )
    print("| seconds | serve() RSS (MiB) | connections still open |")
    print("|---:|---:|---:|")
    for seconds, rss, still_open in rows[1:]:
        print(f"| {seconds:.0f} | {rss:.0f} | {still_open} |")
    if os.environ.get("PYTHONPATH"):
        print(f"\n(PYTHONPATH={os.environ['PYTHONPATH']})")


if __name__ == "__main__":
    main()
