"""The README's web apps under several worker processes ("Several workers"), exactly as
written, against the simulator: the FastAPI app under ``uvicorn --workers 4``, the aiohttp.web
app under gunicorn with four aiohttp workers; alone (a shared callback secret) and as a fleet
(a private redis-server)."""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import anyio
import pytest
from anyio.abc import Process
from test_readme import free_port, web_example

from tempolor_async.testing import FakeTempolor

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def serving(
    command: Sequence[str], folder: Path, env: dict[str, str], base: str
) -> AsyncIterator[Process]:
    """The command's server, once it answers at ``base``; stopped (its workers too) after."""
    log = (folder / "server.log").open("wb")
    process = await anyio.open_process(
        list(command), cwd=folder, env=env, stdout=log, stderr=log, start_new_session=True
    )
    try:
        async with aiohttp.ClientSession() as session:
            with anyio.fail_after(60):  # four workers importing on a loaded machine
                while True:
                    assert process.returncode is None, (folder / "server.log").read_text()
                    try:
                        async with session.get(f"{base}/songs/not-a-job/events") as reply:
                            if reply.status == 404:
                                break
                    except aiohttp.ClientConnectionError:
                        pass
                    await anyio.sleep(0.2)
        yield process
    finally:
        if process.returncode is None:
            process.terminate()  # the server stops its workers
            with anyio.move_on_after(20, shield=True):
                await process.wait()
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)  # the session this test started
        with anyio.CancelScope(shield=True):
            await process.aclose()
        log.close()


async def callbacks_sent(fake: FakeTempolor, jobs: list[str]) -> None:
    """Until every job is final and the simulator has sent its last callback."""
    with anyio.fail_after(60):
        while fake._callback_tasks or any(  # noqa: ASYNC110 - the simulator has no event for it
            fake.jobs[job].next_change(time.monotonic()) is not None for job in jobs
        ):
            await anyio.sleep(0.1)


def app_env(fake: FakeTempolor, base: str, secret: str) -> dict[str, str]:
    return {
        **os.environ,
        "USEAPI_TOKEN": fake.token,
        "TEMPOLOR_BASE_URL": fake.base_url,
        "PUBLIC_URL": base,
        "TEMPOLOR_CALLBACK_SECRET": secret,
    }


def command(app: str, port: int) -> list[str]:
    """The README's command for ``app`` under four workers, on ``port``."""
    if app == "FastAPI":
        pytest.importorskip("uvicorn")
        pytest.importorskip("fastapi")
        server = ["-m", "uvicorn", "app:app", "--workers", "4", "--no-access-log"]
        return [sys.executable, *server, "--port", str(port)]
    pytest.importorskip("gunicorn")
    factory = f'app:create_app("http://127.0.0.1:{port}")'
    server = ["-m", "gunicorn", factory, "--worker-class", "aiohttp.GunicornWebWorker"]
    return [sys.executable, *server, "--workers", "4", "--bind", f"127.0.0.1:{port}"]


async def follow(base: str, jobs: list[str]) -> dict[str, float]:
    """Each job's event stream, as a browser opens them, each on its own connection (so on
    any worker): the monotonic time each stream ended with its final record."""
    ended: dict[str, float] = {}

    async def one(session: aiohttp.ClientSession, job_id: str) -> None:
        async with session.get(f"{base}/songs/{job_id}/events") as stream:
            assert stream.status == 200, await stream.text()
            async for raw in stream.content:
                line = raw.decode().strip()
                if line.startswith("data: ") and '"COMPLETED"' in line:
                    ended[job_id] = time.monotonic()

    fresh = aiohttp.TCPConnector(force_close=True, limit=0)
    async with aiohttp.ClientSession(connector=fresh) as session, anyio.create_task_group() as tg:
        for job_id in jobs:
            tg.start_soon(one, session, job_id)
    return ended


@pytest.mark.parametrize("fleet", [False, True], ids=["alone", "fleet"])
@pytest.mark.parametrize("app", ["FastAPI", "aiohttp.web"])
@pytest.mark.fake(job_duration=2.0, max_jobs=10)
async def test_four_workers_accept_every_callback(
    fake: FakeTempolor, tmp_path: Path, app: str, fleet: bool, request: pytest.FixtureRequest
) -> None:
    """Every callback accepted, whichever worker it reaches; in a fleet (Redis), every
    browser's wait also ends within seconds of its job, whichever worker serves it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = command(app, port)
    (tmp_path / "app.py").write_text(web_example(app), encoding="utf-8")
    env = app_env(fake, base, secrets.token_urlsafe(32))
    if fleet:
        env["TEMPOLOR_COORDINATION"] = request.getfixturevalue("redis_server").url
    fresh = aiohttp.TCPConnector(force_close=True)  # a connection per request
    async with (
        serving(server, tmp_path, env, base),
        aiohttp.ClientSession(connector=fresh) as session,
    ):
        jobs: list[str] = []
        for number in range(4):  # each answered by whichever worker takes the connection
            async with session.post(f"{base}/songs", json={"prompt": f"song {number}"}) as reply:
                assert reply.status == 200, await reply.text()
                jobs += (await reply.json())["jobs"]
        if fleet:  # without one, a wait may last until its worker's 60 s safety poll
            with anyio.fail_after(60):
                ended = await follow(base, jobs)
        await callbacks_sent(fake, jobs)
    assert len(jobs) == 8
    assert fake.callback_errors == []  # none refused by a worker with another secret
    if fleet:
        late = {
            job: ended[job] - (fake.jobs[job].started + fake.jobs[job].duration) for job in jobs
        }
        assert max(late.values()) < 5, late  # seconds after the job completed


def test_the_readme_shows_these_commands() -> None:
    from test_readme import section

    several = section("### Several workers")
    assert "uvicorn app:app --workers 4 --no-access-log" in several
    assert "--workers 4 --worker-class aiohttp.GunicornWebWorker" in several
    assert "app:create_app(" in several
    assert "TEMPOLOR_CALLBACK_SECRET" in several
    assert "export TEMPOLOR_COORDINATION=" in several
