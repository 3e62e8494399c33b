"""CallbackReceiver (SPEC 14): what it answers to good and hostile requests on each of its
mount points, and how callbacks wake a client's waits while polling stays the proof."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from tempolor_async import CallbackReceiver, ConfigurationError, JobStatus, MusicJob
from tempolor_async.testing import FakeTempolor

pytestmark = pytest.mark.anyio

JOB_ID = "user:12345-tempolor:100349856-job:abcdef123456789"
RECORD = {"job_id": JOB_ID, "status": 0, "status_name": "GENERATING", "progress": 40}
Poster = Callable[..., Awaitable[int]]


# ------------------------------------------------------------ three mount points


@pytest.fixture(params=["serve", "aiohttp", "asgi"])
async def mounted(request: pytest.FixtureRequest) -> AsyncIterator[tuple[CallbackReceiver, str]]:
    """A receiver collecting ``on_job`` records, and the base URL its callbacks go under."""
    seen: list[MusicJob] = []
    receiver = CallbackReceiver(on_job=seen.append)
    receiver.seen = seen  # type: ignore[attr-defined]
    if request.param == "serve":
        async with receiver.serve() as url:
            yield receiver, url
        return
    app = web.Application()
    if request.param == "aiohttp":
        app.router.add_route("*", "/hooks/tempolor/{secret}", receiver.aiohttp_handler)
    else:
        app.router.add_route("*", "/hooks/tempolor/{tail:.*}", _asgi_bridge(receiver))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield receiver, f"http://127.0.0.1:{runner.addresses[0][1]}/hooks/tempolor"
    finally:
        await runner.cleanup()


def _asgi_bridge(receiver: CallbackReceiver) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Serve ``receiver.asgi`` from aiohttp through the raw ASGI 3 protocol, mounted at
    ``/hooks/tempolor`` the way Starlette's ``Mount`` passes it (``root_path``)."""

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "method": request.method,
            "path": request.path,
            "root_path": "/hooks/tempolor",
            "headers": [(k.lower().encode(), v.encode()) for k, v in request.headers.items()],
        }
        await receiver.asgi(scope, receive, send)
        start = sent[0]
        headers = {k.decode(): v.decode() for k, v in start["headers"]}
        headers.pop("content-length", None)
        return web.Response(status=start["status"], headers=headers, body=sent[1]["body"])

    return handle


async def post(url: str, *, data: Any = None, method: str = "POST", **options: Any) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=data, **options) as response,
    ):
        await response.read()
        return response.status


async def test_a_record_is_accepted_with_204(mounted: tuple[CallbackReceiver, str]) -> None:
    receiver, base = mounted
    status = await post(f"{base}/{receiver.secret}", data=json.dumps(RECORD))
    assert status == 204
    [job] = receiver.seen  # type: ignore[attr-defined]
    assert (job.job_id, job.status, job.progress) == (JOB_ID, JobStatus.GENERATING, 40)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(b"not json", 400, id="not-json"),
        pytest.param(b"[1, 2]", 400, id="array"),
        pytest.param(b'"text"', 400, id="string"),
        pytest.param(b"{}", 400, id="no-job_id"),
        pytest.param(b'{"job_id": 7}', 400, id="job_id-not-text"),
        pytest.param(b'{"job_id": "a/b"}', 400, id="job_id-with-slash"),
        pytest.param(b'{"job_id": "x", "status": "thirty"}', 400, id="wrong-type"),
        pytest.param(b"", 400, id="empty"),
        pytest.param(b'{"job_id": "' + b"a" * (1024 * 1024) + b'"}', 413, id="over-1-MiB"),
    ],
)
async def test_bad_bodies_are_refused(
    mounted: tuple[CallbackReceiver, str], body: bytes, status: int
) -> None:
    receiver, base = mounted
    assert await post(f"{base}/{receiver.secret}", data=io.BytesIO(body)) == status
    assert receiver.seen == []  # type: ignore[attr-defined]


async def test_an_oversize_body_without_length_is_refused(
    mounted: tuple[CallbackReceiver, str],
) -> None:
    receiver, base = mounted

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 64 * 1024

    assert await post(f"{base}/{receiver.secret}", data=chunks()) == 413
    assert receiver.seen == []  # type: ignore[attr-defined]


async def test_wrong_secrets_paths_and_methods(mounted: tuple[CallbackReceiver, str]) -> None:
    receiver, base = mounted
    record = json.dumps(RECORD)
    near = receiver.secret[:-1] + ("A" if receiver.secret[-1] != "A" else "B")
    assert await post(f"{base}/{near}", data=record) == 404
    assert await post(f"{base}/{receiver.secret[:8]}", data=record) == 404
    assert await post(f"{base}/", data=record) == 404
    assert await post(f"{base}/{receiver.secret}/more", data=record) == 404
    assert await post(f"{base}/{receiver.secret}", method="GET") == 405
    assert await post(f"{base}/{receiver.secret}", method="PUT", data=record) == 405
    assert await post(f"{base}/{near}", method="GET") == 404  # nothing told to a stranger
    assert receiver.seen == []  # type: ignore[attr-defined]


async def test_a_failing_on_job_still_answers_204() -> None:
    def explode(job: MusicJob) -> None:
        raise RuntimeError("boom")

    receiver = CallbackReceiver(on_job=explode)
    async with receiver.serve() as url:
        assert await post(f"{url}/{receiver.secret}", data=json.dumps(RECORD)) == 204
        assert await post(f"{url}/{receiver.secret}", data=json.dumps(RECORD)) == 204


def test_options_are_checked() -> None:
    with pytest.raises(ConfigurationError):
        CallbackReceiver("ftp://example.com/hook")
    with pytest.raises(ConfigurationError):
        CallbackReceiver("https://example.com/hook?x=1")
    with pytest.raises(ConfigurationError):
        CallbackReceiver(secret="short")
    with pytest.raises(ConfigurationError):
        CallbackReceiver(secret="has/slash" * 4)
    with pytest.raises(ConfigurationError):
        CallbackReceiver(callback_poll_interval=0)
    receiver = CallbackReceiver("https://example.com/hooks/")
    assert receiver.reply_url() == f"https://example.com/hooks/{receiver.secret}"
    assert len(receiver.secret) >= 40  # token_urlsafe(32)
    assert receiver.secret not in repr(receiver)
    assert CallbackReceiver().secret != receiver.secret


# ------------------------------------------------------------ waking the waits


@pytest.mark.fake(job_duration=1.0)
async def test_callbacks_wake_a_wait_that_barely_polls(fake: FakeTempolor) -> None:
    receiver = CallbackReceiver(callback_poll_interval=60)
    async with receiver.serve() as url, fake.client(callbacks=receiver) as client:
        submission = await client.music.create_song("woken")
        [body] = [request.json() for request in fake.requests_to("POST", "/music/song")]
        assert body["replyUrl"] == f"{url}/{receiver.secret}"
        with anyio.fail_after(10):  # far less than the 60 s safety-net poll
            jobs = await client.await_jobs(submission.jobs or [])
    assert all(job.is_completed for job in jobs)
    # The generation's answer was the first look at its jobs (no tick when the wait
    # began); the callbacks did the waking, and each record was confirmed by the
    # client's own GET.
    assert len(fake.requests_to("GET", "/scheduler/")) == 0
    for job_id in submission.jobs or []:
        assert 1 <= len(fake.requests_to("GET", f"/music/{job_id}")) <= 12
    assert fake.callback_errors == []


@pytest.mark.fake(job_duration=60)
async def test_a_forged_callback_is_never_returned(fake: FakeTempolor) -> None:
    receiver = CallbackReceiver(callback_poll_interval=60)
    async with receiver.serve() as url, fake.client(callbacks=receiver) as client:
        submission = await client.music.create_song("running")
        job_id = (submission.jobs or [])[0]
        forged = {**RECORD, "job_id": job_id, "status": 30, "status_final": True}
        outcome: list[MusicJob] = []

        async def wait() -> None:
            outcome.append(await client.await_job(job_id))

        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await anyio.sleep(0.1)
            before = len(fake.requests_to("GET", f"/music/{job_id}"))
            assert await post(f"{url}/{receiver.secret}", data=json.dumps(forged)) == 204
            await anyio.sleep(0.3)
            assert outcome == []  # the confirming GET said it still runs
            assert len(fake.requests_to("GET", f"/music/{job_id}")) == before + 1
            fake.complete(job_id)  # the simulator's own callback follows
    assert [job.status for job in outcome] == [JobStatus.COMPLETED]


@pytest.mark.fake(job_duration=0.3)
async def test_a_callback_nobody_waits_for_wakes_nothing(fake: FakeTempolor) -> None:
    seen: list[MusicJob] = []
    receiver = CallbackReceiver(on_job=seen.append)
    async with receiver.serve(), fake.client(callbacks=receiver) as client:
        submission = await client.music.create_song("unwatched")
        with anyio.fail_after(5):
            while not any(job.status_final for job in seen):  # noqa: ASYNC110
                await anyio.sleep(0.02)
    assert {job.job_id for job in seen} <= set(submission.jobs or [])
    assert fake.requests_to("GET", "/music/user:*") == []
    assert fake.requests_to("GET", "/scheduler/") == []


async def test_a_reply_url_of_the_callers_own_is_kept(fake: FakeTempolor) -> None:
    receiver = CallbackReceiver("https://hooks.example.com/t")
    async with fake.client(callbacks=receiver) as client:
        await client.music.create_song("mine", reply_url="https://mine.example.com/x")
        await client.music.create_instrumental("theirs", reply_ref="ref-1")
    song, instrumental = (r.json() for r in fake.requests_to("POST", "/music/*"))
    assert song["replyUrl"] == "https://mine.example.com/x"
    assert instrumental["replyUrl"] == f"https://hooks.example.com/t/{receiver.secret}"
    assert instrumental["replyRef"] == "ref-1"


async def test_a_receiver_without_public_url_refuses_before_sending(fake: FakeTempolor) -> None:
    async with fake.client(callbacks=CallbackReceiver()) as client:
        with pytest.raises(ConfigurationError):
            await client.music.create_song("x")
    assert fake.requests_to("POST", "/music/*") == []


async def test_the_asgi_app_speaks_lifespan_and_ignores_websockets() -> None:
    receiver = CallbackReceiver()
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await receiver.asgi({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    sent.clear()
    await receiver.asgi({"type": "websocket", "path": f"/{receiver.secret}"}, receive, send)
    assert sent == []


async def test_serve_lends_its_url_to_a_receiver_without_one() -> None:
    receiver = CallbackReceiver()
    async with receiver.serve() as url:
        assert url.startswith("http://127.0.0.1:")
        assert receiver.reply_url() == f"{url}/{receiver.secret}"
    assert receiver.public_url is None
    given = CallbackReceiver("https://hooks.example.com/t")
    async with given.serve() as url:
        assert url == "https://hooks.example.com/t"  # the address the service is told
