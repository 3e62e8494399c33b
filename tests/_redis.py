"""A private redis-server for the fleet tests: started on a free loopback port with
persistence off, stopped after. Without ``redis-server`` the tests skip, unless
``TEMPOLOR_REQUIRE_REDIS=1`` (CI) turns that into a failure."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process; ``stop()`` and ``start()`` again on the same port."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *(self.executable, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def redis_executable() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if found is None:
        if os.environ.get("TEMPOLOR_REQUIRE_REDIS") == "1":
            pytest.fail("redis-server is not installed and TEMPOLOR_REQUIRE_REDIS=1")
        pytest.skip("redis-server is not installed")
    try:
        import redis  # noqa: F401
    except ImportError:
        if os.environ.get("TEMPOLOR_REQUIRE_REDIS") == "1":
            pytest.fail('the redis package is missing: pip install "tempolor-async[redis]"')
        pytest.skip("the redis package is not installed")
    return found


@contextmanager
def running_redis() -> Iterator[RedisServer]:
    server = RedisServer(redis_executable())
    server.start()
    try:
        yield server
    finally:
        server.stop()
