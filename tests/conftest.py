"""Shared fixtures for the simulator tests: a started FakeTempolor, a tiny HTTP helper that
talks to it over loopback with a plain aiohttp session, and a callback receiver.

Options for the ``fake`` fixture come from ``@pytest.mark.fake(**kwargs)`` markers (module
and test markers merge; the test's own wins), so each test gets the simulator it needs.
Unless a test is marked ``faults`` (it injects them), every answer it got must be neither a
5xx nor HTML: the simulator itself never errs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio
import pytest
from _redis import RedisServer, running_redis
from aiohttp import web

from tempolor_async import TempolorClient
from tempolor_async.testing import FakeTempolor

DEFAULT_USER = "100349856"  # the pre-configured account of FakeTempolor


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fake(**options): keyword arguments for FakeTempolor")
    config.addinivalue_line("markers", "faults: the test injects faults (5xx/HTML expected)")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeTempolor]:
    options: dict[str, Any] = {"job_duration": 0.3}
    for marker in reversed(list(request.node.iter_markers("fake"))):
        options.update(marker.kwargs)
    async with FakeTempolor(**options) as server:
        yield server


@dataclass
class Api:
    """Calls the fake with the bearer token and returns ``(status, parsed JSON or bytes)``."""

    session: aiohttp.ClientSession
    fake: FakeTempolor
    seen: list[tuple[str, str, int, str]] = field(default_factory=list)

    async def __call__(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        timeout: float | None = None,
    ) -> tuple[int, Any]:
        sent = dict(headers or {})
        if auth:
            sent.setdefault("Authorization", f"Bearer {self.fake.token}")
        url = path if path.startswith("http") else self.fake.base_url + path
        async with self.session.request(
            method,
            url,
            json=json,
            data=data,
            params=params,
            headers=sent,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            raw = await response.read()
            self.seen.append((method, url, response.status, response.content_type))
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, raw

    async def fetch(self, url: str) -> tuple[int, str, bytes]:
        """GET a media URL as a browser would: no Authorization header."""
        async with self.session.get(url) as response:
            data = await response.read()
            self.seen.append(("GET", url, response.status, response.content_type))
            return response.status, response.content_type, data

    async def generate(self, kind: str = "song", **fields: Any) -> list[str]:
        """Submit a generation that must be accepted; return its two job ids."""
        payload = {"prompt": "a calm piano piece", **fields}
        status, body = await self("POST", f"/music/{kind}", json=payload)
        assert status == 200, body
        jobs: list[str] = body["jobs"]
        return jobs

    async def job(self, job_id: str) -> dict[str, Any]:
        status, record = await self("GET", f"/music/{job_id}")
        assert status == 200, record
        return record  # type: ignore[no-any-return]

    async def records_until_final(self, job_id: str, limit: float = 5.0) -> list[dict[str, Any]]:
        """Poll the job's record until it is final; return every record seen."""
        seen = []
        with anyio.fail_after(limit):
            while True:
                seen.append(await self.job(job_id))
                if seen[-1]["status_final"]:
                    return seen
                await anyio.sleep(0.02)


@pytest.fixture
async def api(request: pytest.FixtureRequest, fake: FakeTempolor) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        client = Api(session, fake)
        yield client
    if request.node.get_closest_marker("faults") is None:
        for method, url, status, content_type in client.seen:
            assert status < 500, (method, url, status)
            assert content_type != "text/html", (method, url, content_type)


@dataclass
class Receiver:
    """A local HTTP endpoint that collects the JSON bodies POSTed to ``url``."""

    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    arrived: anyio.Event = field(default_factory=anyio.Event)

    async def collect(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        self.arrived.set()
        return web.Response(status=204)

    def for_job(self, job_id: str) -> list[dict[str, Any]]:
        return [body for body in self.bodies if body.get("job_id") == job_id]

    async def wait_until(self, condition: Callable[[], bool], limit: float = 5.0) -> None:
        """Wait, as callbacks arrive, until ``condition()`` holds."""
        with anyio.fail_after(limit):
            while not condition():
                self.arrived = anyio.Event()
                await self.arrived.wait()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.collect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hook.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield hook
    finally:
        await runner.cleanup()


@pytest.fixture
async def client(fake: FakeTempolor) -> AsyncIterator[TempolorClient]:
    """An SDK client pointed at the ``fake`` fixture, polling fast enough for tests."""
    async with fake.client() as sdk_client:
        yield sdk_client


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server on a free loopback port (see tests/_redis.py)."""
    with running_redis() as server:
        yield server
