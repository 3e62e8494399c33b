"""Noiz path vs raw aiohttp on the same loopback server: ``python -m benchmarks.noiz [--quick]``.

Two measures, each in a fresh client process per side and round, the sides alternating:

- **list pages**: workers walk ``GET /voices`` page by page (10 voices a page, the envelope
  decoded: the SDK into ``Voice`` models, raw aiohttp into dicts with the ``code`` checked,
  parsed once with ``orjson`` and once with ``json.loads``, what ``response.json()`` uses);
  throughput in pages per second.
- **large synthesis**: one ``POST /text-to-speech`` (multipart) answered with a large WAV,
  streamed to disk (the SDK atomically; raw aiohttp into a file); throughput in MiB/s and the
  growth of the process's peak resident memory (VmHWM) during it.
- **streaming** (against ``FakeNoiz`` itself, in its own process): the time from opening
  ``speech.stream`` on a 20,000-character text to its first audio chunk (raw aiohttp alike,
  for scale), and the peak memory growth while streaming at least 64 MiB of speech.

The server is a small ``aiohttp.web`` app in its own process that answers both sides alike
(Noiz's envelope, pages that differ by page number, audio in 256 KiB chunks), so its cost is
the same on both sides. The server is pinned to one CPU and every client process to the
other (checked in /proc; the run stops if a pin did not take). Prints a markdown table:
medians over the rounds, with ranges.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import CLIENT_CPU, SERVER_CPU, cpus_allowed, pin_to_cpu

KEY = "bench-noiz-key"
PAGE_VOICES = 10
AUDIO_CHUNK = 256 * 1024
TARGET_RATIO = 0.95
TARGET_GROWTH_MIB = 16.0
SIDES = ("sdk", "raw", "raw-json")
FAKE_KEY = "bench-fake-noiz-key"
FIRST_CHUNK_TEXT = "A sentence to say out loud. " * 715  # 20,020 characters
FIRST_CHUNK_TRIES = 20
# FakeNoiz speaks 0.06 s a character at 44,100 bytes a second: 25,400 characters > 64 MiB.
STREAM_TEXT = "Streaming, sentence after sentence. " * 706


# ------------------------------------------------------------------------------ server


def voice_page(skip: int) -> bytes:
    voices = [
        {
            "id": skip * PAGE_VOICES + index,
            "voice_id": f"v{skip}-{index}",
            "display_name": f"Voice {skip}-{index}",
            "voice_type": "built-in",
            "labels": "female, warm, narration",
            "sample": f"https://cdn.example.com/samples/v{skip}-{index}.wav",
            "meta": {"text": "A sample sentence for this voice."},
            "url": f"https://cdn.example.com/voices/v{skip}-{index}.wav",
            "create_time": 1735689600000 + index,
        }
        for index in range(PAGE_VOICES)
    ]
    envelope = {"code": 0, "message": "success", "data": {"voices": voices, "total_count": 10**9}}
    return json.dumps(envelope).encode()


def wav_header(data_bytes: int) -> bytes:
    import struct

    rate, channels, width = 22050, 1, 2
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack(
            "<IHHIIHH",
            16,
            1,
            channels,
            rate,
            rate * channels * width,
            channels * 8 * width // 8,
            16,
        )
        + b"data"
        + struct.pack("<I", data_bytes)
    )


async def serve(audio_mib: int) -> None:
    from aiohttp import web

    audio_bytes = audio_mib * 1024 * 1024
    chunk = bytes(AUDIO_CHUNK)

    async def voices(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != KEY:
            return web.json_response(
                {"code": 401, "message": "Unauthorized", "data": None}, status=401
            )
        return web.Response(
            body=voice_page(int(request.query.get("skip", "0"))), content_type="application/json"
        )

    async def speech(request: web.Request) -> web.StreamResponse:
        await request.read()
        seconds = audio_bytes / (22050 * 2)
        response = web.StreamResponse(headers={"X-Audio-Duration": f"{seconds:.3f}"})
        response.content_type = "audio/wav"
        response.content_length = 44 + audio_bytes
        await response.prepare(request)
        await response.write(wav_header(audio_bytes))
        left = audio_bytes
        while left:
            piece = chunk if left >= len(chunk) else chunk[:left]
            await response.write(piece)
            left -= len(piece)
        return response

    app = web.Application(client_max_size=64 * 1024**2)
    app.router.add_get("/v1/voices", voices)
    app.router.add_post("/v1/text-to-speech", speech)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(json.dumps({"base_url": f"http://127.0.0.1:{runner.addresses[0][1]}/v1"}), flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), stop.set)  # the orchestrator closed our stdin: done
    await stop.wait()
    await runner.cleanup()


async def serve_fake() -> None:
    """FakeNoiz, as ``tempolor simulate --noiz`` serves it, until stdin closes."""
    from tempolor_async.testing import FakeNoiz

    async with FakeNoiz(FAKE_KEY) as fake:
        print(json.dumps({"base_url": fake.base_url}), flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_reader(sys.stdin.fileno(), stop.set)
        await stop.wait()


# ------------------------------------------------------------------------------ clients


def restart_peak() -> None:
    """Start VmHWM again from the current RSS (Linux 4.0+; elsewhere nothing happens)."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")


async def sample_rss(stop: asyncio.Event) -> float:
    """The highest VmRSS seen, every 2 ms until ``stop`` is set."""
    highest = _status_kib("VmRSS")
    while not stop.is_set():
        await asyncio.sleep(0.002)
        highest = max(highest, _status_kib("VmRSS"))
    return highest


def _status_kib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    return float("nan")


async def list_sdk(base_url: str, workers: int, pages: int) -> int:
    from tempolor_async.noiz import NoizClient

    async with NoizClient(KEY, base_url=base_url, max_retries=0) as noiz:

        async def walk() -> int:
            count = 0
            async for page in noiz.voices.list(
                voice_type="built-in", page_size=PAGE_VOICES
            ).pages():
                count += len(page.items) > 0
                if count == pages:
                    return count
            return count

        done = await asyncio.gather(*(walk() for _ in range(workers)))
    return sum(done)


async def list_raw(base_url: str, workers: int, pages: int, loads: Any = None) -> int:
    import aiohttp
    import orjson

    loads = loads or orjson.loads

    async with aiohttp.ClientSession() as session:

        async def walk() -> int:
            count = 0
            for skip in range(pages):
                params = {"voice_type": "built-in", "skip": skip, "limit": PAGE_VOICES}
                async with session.get(
                    f"{base_url}/voices", params=params, headers={"Authorization": KEY}
                ) as response:
                    envelope = loads(await response.read())
                if response.status != 200 or envelope["code"] != 0:
                    raise RuntimeError(envelope)
                count += len(envelope["data"]["voices"]) > 0
            return count

        done = await asyncio.gather(*(walk() for _ in range(workers)))
    return sum(done)


async def speak_sdk(base_url: str, dest: Path) -> int:
    from tempolor_async.noiz import NoizClient

    async with NoizClient(KEY, base_url=base_url, max_retries=0, upload_timeout=600) as noiz:
        speech = await noiz.speech.synthesize("A long read.", dest, voice_id="v0-0")
    return speech.path.stat().st_size


async def speak_raw(base_url: str, dest: Path) -> int:
    import aiohttp

    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in (
        ("text", "A long read."),
        ("voice_id", "v0-0"),
        ("output_format", "wav"),
        ("speed", "1.0"),
    ):
        form.add_field(name, value)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base_url}/text-to-speech", data=form, headers={"Authorization": KEY}
        ) as response,
    ):
        if response.status != 200:
            raise RuntimeError(response.status)
        # Written synchronously chunk by chunk, as the SDK's atomic writer does.
        with open(dest, "wb") as out:  # noqa: ASYNC230
            async for chunk in response.content.iter_chunked(AUDIO_CHUNK):
                out.write(chunk)
    return dest.stat().st_size  # noqa: ASYNC240


async def measure(side: str, base_url: str, workers: int, pages: int) -> dict[str, Any]:
    # Both sides import the same modules and cross glibc's dynamic mmap threshold alike.
    import aiohttp  # noqa: F401
    import orjson  # noqa: F401

    import tempolor_async.noiz  # noqa: F401

    bytearray(1024 * 1024)
    if side == "raw-json":
        lister: Any = functools.partial(list_raw, loads=json.loads)
    else:
        lister = list_sdk if side == "sdk" else list_raw
    speaker = speak_sdk if side == "sdk" else speak_raw
    await lister(base_url, 1, 2)  # warm up connections and code paths
    started, cpu_started = time.perf_counter(), time.process_time()
    walked = await lister(base_url, workers, pages)
    list_seconds = time.perf_counter() - started
    list_cpu = time.process_time() - cpu_started
    listed = {"pages_per_s": walked / list_seconds, "cpu_us_per_page": list_cpu / walked * 1e6}
    if side == "raw-json":  # the synthesis has no JSON: measured for the other two sides
        return {**listed, "cpus_allowed": cpus_allowed()}
    with tempfile.TemporaryDirectory() as folder:
        await speaker(base_url, Path(folder) / "warm.wav")
        before = _status_kib("VmRSS")
        restart_peak()
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_rss(stop))
        started = time.perf_counter()
        size = await speaker(base_url, Path(folder) / "speech.wav")
        speak_seconds = time.perf_counter() - started
        stop.set()
        # VmHWM is updated lazily by the kernel; a sampled VmRSS catches what it misses.
        peak = max(_status_kib("VmHWM"), await sampler)
    return {
        **listed,
        "cpus_allowed": cpus_allowed(),
        "mib_per_s": size / 1024**2 / speak_seconds,
        "rss_growth_mib": (peak - before) / 1024,
        "audio_mib": size / 1024**2,
    }


async def measure_stream(base_url: str, quick: bool) -> dict[str, Any]:
    """Time to the first chunk (SDK and raw aiohttp, alternating), then memory while
    streaming the long text to nowhere."""
    import aiohttp

    from tempolor_async.noiz import NoizClient

    bytearray(1024 * 1024)
    tries = 3 if quick else FIRST_CHUNK_TRIES
    first_sdk: list[float] = []
    first_raw: list[float] = []
    first_urlencoded: list[float] = []
    async with (
        NoizClient(FAKE_KEY, base_url=base_url, max_retries=0, upload_timeout=600) as noiz,
        aiohttp.ClientSession() as session,
    ):

        async def sdk_first() -> float:
            started = time.perf_counter()
            async with noiz.speech.stream(FIRST_CHUNK_TEXT) as audio:
                async for _chunk in audio:
                    return time.perf_counter() - started
            raise RuntimeError("no audio")

        async def raw_first(multipart: bool = True) -> float:
            """Multipart as the SDK sends it, or urlencoded (FakeNoiz parses that faster)."""
            started = time.perf_counter()
            fields = {"text": FIRST_CHUNK_TEXT, "stream": "true", "output_format": "wav"}
            form = aiohttp.FormData(fields, default_to_multipart=multipart)
            async with session.post(
                f"{base_url}/text-to-speech", data=form, headers={"Authorization": FAKE_KEY}
            ) as response:
                if response.status != 200 or not await response.content.readany():
                    raise RuntimeError(response.status)
                return time.perf_counter() - started

        await sdk_first()  # warm up connections and code paths
        await raw_first()
        for _ in range(tries):
            first_sdk.append(await sdk_first())
            first_raw.append(await raw_first())
            first_urlencoded.append(await raw_first(multipart=False))

        text = STREAM_TEXT[: 2000 if quick else None]
        before = _status_kib("VmRSS")
        restart_peak()
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_rss(stop))
        streamed = 0
        started = time.perf_counter()
        async with noiz.speech.stream(text) as audio:
            async for chunk in audio:
                streamed += len(chunk)
        seconds = time.perf_counter() - started
        stop.set()
        peak = max(_status_kib("VmHWM"), await sampler)
    return {
        "cpus_allowed": cpus_allowed(),
        "first_chunk_ms_sdk": statistics.median(first_sdk) * 1000,
        "first_chunk_ms_raw": statistics.median(first_raw) * 1000,
        "first_chunk_ms_urlencoded": statistics.median(first_urlencoded) * 1000,
        "stream_mib": streamed / 1024**2,
        "stream_mib_per_s": streamed / 1024**2 / seconds,
        "stream_rss_growth_mib": (peak - before) / 1024,
    }


def run_stream_client(base_url: str, quick: bool) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.noiz", "--measure-stream", "--base-url", base_url]
    output = subprocess.run(
        command + (["--quick"] if quick else []),
        check=True,
        capture_output=True,
        text=True,
        preexec_fn=functools.partial(pin_to_cpu, CLIENT_CPU),
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    check_pinned("stream client", result["cpus_allowed"], CLIENT_CPU)
    return result


def stream_rounds(rounds: int, quick: bool) -> list[dict[str, Any]]:
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.noiz", "--serve-fake"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=functools.partial(pin_to_cpu, SERVER_CPU),
    )
    try:
        assert server.stdout is not None
        base_url = json.loads(server.stdout.readline())["base_url"]
        check_pinned("FakeNoiz server", cpus_allowed(server.pid), SERVER_CPU)
        return [run_stream_client(base_url, quick) for _ in range(rounds)]
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)


# --------------------------------------------------------------------------- orchestrator


def run_client(side: str, base_url: str, workers: int, pages: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.noiz", "--measure", side, "--base-url", base_url]
    command += ["--workers", str(workers), "--pages", str(pages)]
    output = subprocess.run(
        command,
        check=True,
        capture_output=True,
        text=True,
        preexec_fn=functools.partial(pin_to_cpu, CLIENT_CPU),
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    check_pinned(f"{side} client", result["cpus_allowed"], CLIENT_CPU)
    return result


def check_pinned(role: str, allowed: str, cpu: int) -> None:
    """Stop the run when a process is not where it was pinned (and the machine has the CPU)."""
    if cpu in os.sched_getaffinity(0) and allowed != str(cpu):
        raise SystemExit(f"the {role} runs on CPUs {allowed}, not on CPU {cpu} alone")


def spread(values: Sequence[float], digits: int = 2) -> str:
    low, middle, high = min(values), statistics.median(values), max(values)
    return f"{middle:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.noiz", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes, 1 round")
    parser.add_argument("--rounds", type=int, help="rounds per side (default 5; 1 with --quick)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--audio-mib", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--measure-stream", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=16, help=argparse.SUPPRESS)
    parser.add_argument("--pages", type=int, default=150, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.audio_mib))
        return 0
    if args.serve_fake:
        asyncio.run(serve_fake())
        return 0
    if args.measure_stream:
        print(json.dumps(asyncio.run(measure_stream(args.base_url, args.quick))))
        return 0
    if args.measure:
        print(
            json.dumps(asyncio.run(measure(args.measure, args.base_url, args.workers, args.pages)))
        )
        return 0
    rounds = args.rounds or (1 if args.quick else 5)
    audio_mib, workers, pages = (
        (4, 4, 10) if args.quick else (args.audio_mib, args.workers, args.pages)
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.noiz", "--serve", "--audio-mib", str(audio_mib)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=functools.partial(pin_to_cpu, SERVER_CPU),
    )
    try:
        assert server.stdout is not None
        base_url = json.loads(server.stdout.readline())["base_url"]
        check_pinned("server", cpus_allowed(server.pid), SERVER_CPU)
        results: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
        for index in range(rounds):
            for side in SIDES[index % len(SIDES) :] + SIDES[: index % len(SIDES)]:
                results[side].append(run_client(side, base_url, workers, pages))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)
    print(report(results, rounds, audio_mib, workers, pages, args.quick))
    print()
    print(stream_report(stream_rounds(rounds, args.quick), args.quick))
    return 0


def stream_report(results: list[dict[str, Any]], quick: bool) -> str:
    tries = 3 if quick else FIRST_CHUNK_TRIES
    mib = min(r["stream_mib"] for r in results)
    return "\n".join(
        [
            "## Noiz streaming against FakeNoiz" + (" (smoke run, no claims)" if quick else ""),
            "",
            f"{len(results)} round(s), each a fresh client process pinned to CPU {CLIENT_CPU}, "
            f"FakeNoiz in its own process on CPU {SERVER_CPU}. First chunk: the median of "
            f"{tries} tries per round for a {len(FIRST_CHUNK_TEXT):,}-character text, SDK and "
            "raw aiohttp alternating (FakeNoiz parses a multipart body with the standard "
            "library's email parser: most of the multipart rows is its work); then one stream of "
            f"{mib:.0f} MiB read to nowhere. Medians over rounds, range in brackets.",
            "",
            "| measure | value | target |",
            "|---|---|---|",
            f"| first audio chunk, SDK (ms) | "
            f"{spread([r['first_chunk_ms_sdk'] for r in results], 1)} | |",
            f"| first audio chunk, raw aiohttp, multipart as the SDK (ms) | "
            f"{spread([r['first_chunk_ms_raw'] for r in results], 1)} | |",
            f"| first audio chunk, raw aiohttp, urlencoded (ms) | "
            f"{spread([r['first_chunk_ms_urlencoded'] for r in results], 1)} | |",
            f"| streaming throughput (MiB/s) | "
            f"{spread([r['stream_mib_per_s'] for r in results], 0)} | |",
            f"| peak RSS growth while streaming (MiB) | "
            f"{spread([r['stream_rss_growth_mib'] for r in results], 1)} | "
            f"< {TARGET_GROWTH_MIB:g} MiB |",
        ]
    )


def report(
    results: dict[str, list[dict[str, Any]]],
    rounds: int,
    audio_mib: int,
    workers: int,
    pages: int,
    quick: bool,
) -> str:
    sdk, raw, raw_json = results["sdk"], results["raw"], results["raw-json"]
    target = f">= {TARGET_RATIO}"

    def ratios(key: str, baseline: list[dict[str, Any]]) -> list[float]:
        return [s[key] / r[key] for s, r in zip(sdk, baseline, strict=True)]

    list_ratio, json_ratio = ratios("pages_per_s", raw), ratios("pages_per_s", raw_json)
    cpu_ratio, cpu_json = ratios("cpu_us_per_page", raw), ratios("cpu_us_per_page", raw_json)
    sdk_pages = spread([s["pages_per_s"] for s in sdk], 0)
    sdk_cpu = spread([s["cpu_us_per_page"] for s in sdk], 0)
    speak_ratio = [s["mib_per_s"] / r["mib_per_s"] for s, r in zip(sdk, raw, strict=False)]
    growth_sdk = [s["rss_growth_mib"] for s in sdk]
    growth_raw = [r["rss_growth_mib"] for r in raw]
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    lines = [
        "## Noiz: the SDK vs raw aiohttp" + (" (smoke run, no claims)" if quick else ""),
        "",
        f"{rounds} round(s), sides in turn, each in a fresh process pinned to CPU {CLIENT_CPU} "
        f"(the server to CPU {SERVER_CPU}; checked in /proc); {workers} workers x "
        f"{pages} pages of {PAGE_VOICES} voices; one synthesis of {audio_mib} MiB of WAV. "
        f"Load average before the report: {load}. Medians, with the range in brackets. "
        "Raw aiohttp parses each page with orjson (as the SDK does), and in the last two rows "
        "with json.loads (as `response.json()` does); neither builds typed records.",
        "",
        "| measure | SDK | raw aiohttp | SDK / raw | target |",
        "|---|---|---|---|---|",
        f"| list pages (pages/s) | {sdk_pages} | "
        f"{spread([r['pages_per_s'] for r in raw], 0)} | {spread(list_ratio)} | {target} |",
        f"| client CPU per page (us) | {sdk_cpu} | "
        f"{spread([r['cpu_us_per_page'] for r in raw], 0)} | {spread(cpu_ratio)} | |",
        f"| large synthesis to disk (MiB/s) | {spread([s['mib_per_s'] for s in sdk], 0)} | "
        f"{spread([r['mib_per_s'] for r in raw], 0)} | {spread(speak_ratio)} | {target} |",
        f"| peak RSS growth during the synthesis (MiB) | {spread(growth_sdk, 1)} | "
        f"{spread(growth_raw, 1)} | | <= {TARGET_GROWTH_MIB:g} MiB |",
        f"| list pages (pages/s), raw with json.loads | {sdk_pages} | "
        f"{spread([r['pages_per_s'] for r in raw_json], 0)} | {spread(json_ratio)} | |",
        f"| client CPU per page (us), raw with json.loads | {sdk_cpu} | "
        f"{spread([r['cpu_us_per_page'] for r in raw_json], 0)} | {spread(cpu_json)} | |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
