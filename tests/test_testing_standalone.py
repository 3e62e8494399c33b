"""The simulator run standalone: ``python -m tempolor_async.testing``."""

from __future__ import annotations

import re
import signal
import socket
import sys
from contextlib import asynccontextmanager

import aiohttp
import anyio
import pytest

pytestmark = pytest.mark.anyio

COMMAND = [sys.executable, "-m", "tempolor_async.testing"]


@asynccontextmanager
async def _simulator(*args):
    process = await anyio.open_process([*COMMAND, *args])
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.aclose()


async def _read_until(stream, marker):
    text = ""
    with anyio.fail_after(20):
        while marker not in text or not text.endswith("\n"):
            text += (await stream.receive()).decode()
    return text


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_standalone_serves_until_signalled(signum):
    args = ["--port", "0", "--token", "T0k3n", "--job-duration", "0.1", "--max-jobs", "4"]
    async with _simulator(*args) as process:
        banner = await _read_until(process.stdout, "token:")
        base_url = re.search(r"base URL: (http://127\.0\.0\.1:\d+/v1/tempolor)\n", banner)
        assert base_url is not None, banner
        assert re.search(r"token:\s+T0k3n\n", banner), banner
        async with aiohttp.ClientSession(base_url[1] + "/") as session:
            async with session.get("accounts", headers={"Authorization": "Bearer T0k3n"}) as r:
                assert r.status == 200
                [account] = (await r.json()).values()
                assert account["maxJobs"] == 4
            async with session.get("accounts", headers={"Authorization": "Bearer nope"}) as r:
                assert r.status == 401
        process.send_signal(signum)
        with anyio.fail_after(10):
            assert await process.wait() == 0
        with pytest.raises(anyio.EndOfStream):  # a clean exit: nothing on stderr
            await process.stderr.receive()


async def test_standalone_reports_a_busy_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with _simulator("--port", str(port)) as process:
            with anyio.fail_after(20):
                assert await process.wait() == 1
            message = await _read_until(process.stderr, "error:")
            assert f"cannot listen on 127.0.0.1:{port}" in message
