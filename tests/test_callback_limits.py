"""CallbackReceiver against hostile senders (SPEC 14): stalled and abandoned bodies, floods,
and wrong secrets with odd headers, on each mount point over real sockets: the standalone
``serve()``, an ``aiohttp.web`` app, and the ASGI app under uvicorn."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import pytest
from aiohttp import web
from anyio.abc import SocketStream

from tempolor_async import CallbackReceiver, ConfigurationError, MusicJob
from tempolor_async import _callbacks as callbacks

pytestmark = pytest.mark.anyio

RECORD = json.dumps({"job_id": "user:1-tempolor:2-job:abc", "status": 0, "progress": 40}).encode()
Mounted = tuple[CallbackReceiver, int, str]  # the receiver, its port, the path before the secret


@pytest.fixture(params=["serve", "aiohttp", "asgi"])
async def mounted(request: pytest.FixtureRequest) -> AsyncIterator[Mounted]:
    """A receiver collecting ``on_job`` records, served on one of its mount points."""
    seen: list[MusicJob] = []
    receiver = CallbackReceiver(on_job=seen.append)
    receiver.seen = seen  # type: ignore[attr-defined]
    if request.param == "serve":
        async with receiver.serve() as url:
            yield receiver, int(url.rsplit(":", 1)[1]), "/"
    elif request.param == "aiohttp":
        app = web.Application()
        app.router.add_post("/hooks/tempolor/{secret}", receiver.aiohttp_handler)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.25)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            yield receiver, runner.addresses[0][1], "/hooks/tempolor/"
        finally:
            await runner.cleanup()
    else:
        uvicorn = pytest.importorskip("uvicorn")
        config = uvicorn.Config(
            receiver.asgi,
            host="127.0.0.1",
            port=0,
            interface="asgi3",  # a bound method: uvicorn would guess ASGI 2
            lifespan="off",
            log_level="warning",
        )
        server = uvicorn.Server(config)
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve)
            with anyio.fail_after(10):
                while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for this
                    await anyio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            try:
                yield receiver, port, "/"
            finally:
                server.should_exit = True


async def send_head(
    port: int, path: str, *, length: int | str = 1000, body: bytes = b"{", method: str = "POST"
) -> SocketStream:
    """A connection that sent a request head and ``body`` (of a declared ``length``)."""
    stream = await anyio.connect_tcp("127.0.0.1", port)
    head = f"{method} {path} HTTP/1.1\r\nHost: hooks\r\nContent-Length: {length}\r\n\r\n"
    await stream.send(head.encode() + body)
    return stream


async def answer(stream: SocketStream) -> int | None:
    """The status of the answer on ``stream``, None if it was closed without one."""
    data = b""
    try:
        while b"\r\n" not in data:
            data += await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
        return None
    return int(data.split(b" ", 2)[1])


async def closed(stream: SocketStream) -> bool:
    """True once the server has closed ``stream`` (whatever it sent before)."""
    try:
        while await stream.receive():
            pass
    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
        pass
    return True


async def post_record(port: int, path: str) -> int | None:
    async with await send_head(port, path, length=len(RECORD), body=RECORD) as stream:
        return await answer(stream)


async def wait_until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110 - a count, not an event
            await anyio.sleep(0.01)


async def test_a_stalled_body_is_given_up(
    mounted: Mounted, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(callbacks, "BODY_TIMEOUT", 1.0, raising=False)
    receiver, port, prefix = mounted
    async with await send_head(port, prefix + receiver.secret) as stalled:
        with anyio.fail_after(8):  # held for ever before
            assert await answer(stalled) in (408, None)
            assert await closed(stalled)
    assert await post_record(port, prefix + receiver.secret) == 204  # the receiver still works
    assert len(receiver.seen) == 1  # type: ignore[attr-defined]


async def test_at_most_64_bodies_are_read_at_once(mounted: Mounted) -> None:
    receiver, port, prefix = mounted
    async with AsyncExitStack() as stack:
        for _ in range(64):
            stalled = await send_head(port, prefix + receiver.secret)
            await stack.enter_async_context(stalled)
        await wait_until(lambda: getattr(receiver, "_reading", 64) >= 64)
        with anyio.fail_after(5):  # the body is never sent: an answer means it was not awaited
            async with await send_head(port, prefix + receiver.secret, body=b"") as one_more:
                assert await answer(one_more) == 503
                assert await closed(one_more)
            wrong = prefix + "w" * len(receiver.secret)
            async with await send_head(port, wrong, body=b"") as stranger:
                assert await answer(stranger) == 404  # the secret first, even while full
    await wait_until(lambda: getattr(receiver, "_reading", 0) == 0)
    assert await post_record(port, prefix + receiver.secret) == 204
    assert len(receiver.seen) == 1  # type: ignore[attr-defined]


async def test_a_sender_leaving_mid_body_is_logged_at_debug_only(
    mounted: Mounted, caplog: pytest.LogCaptureFixture
) -> None:
    receiver, port, prefix = mounted
    caplog.set_level(logging.DEBUG)
    for _ in range(3):
        async with await send_head(port, prefix + receiver.secret, body=b'{"job_id": "'):
            await wait_until(lambda: getattr(receiver, "_reading", 1) == 1)
    await wait_until(lambda: getattr(receiver, "_reading", 0) == 0)
    assert await post_record(port, prefix + receiver.secret) == 204  # the next one is served
    loud = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert loud == [], [record.getMessage() for record in loud]
    assert receiver.seen[0].progress == 40  # type: ignore[attr-defined]


async def test_a_wrong_secret_with_a_malformed_length_tells_nothing(mounted: Mounted) -> None:
    """aiohttp's and uvicorn's HTTP parsers refuse a malformed ``Content-Length`` before any
    handler runs, whatever the path: the right and a wrong secret get the same answer."""
    receiver, port, prefix = mounted
    statuses = []
    for secret in (receiver.secret, "w" * len(receiver.secret)):
        async with await send_head(port, prefix + secret, length="12x", body=b"") as stream:
            statuses.append(await answer(stream))
    assert statuses[0] == statuses[1]
    assert statuses[0] in (400, 404)
    assert receiver.seen == []  # type: ignore[attr-defined]


# -------------------------------------------------- the ASGI app as a server calls it


async def call_asgi(
    receiver: CallbackReceiver,
    path: str,
    headers: list[tuple[bytes, bytes]],
    receive: Callable[[], Any] | None = None,
) -> int:
    sent: list[dict[str, Any]] = []

    async def nothing() -> dict[str, Any]:
        raise AssertionError("the body was read")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "root_path": "", "headers": headers}
    await receiver.asgi(scope, receive or nothing, send)
    return int(sent[0]["status"]) if sent else 0  # 0: nothing answered


@pytest.mark.parametrize("length", [b"abc", b"-1", b"1e3", b"99999999999"])
async def test_the_asgi_app_checks_the_secret_before_any_header(length: bytes) -> None:
    receiver = CallbackReceiver()
    headers = [(b"host", b"hooks"), (b"content-length", length)]
    assert await call_asgi(receiver, "/" + "w" * len(receiver.secret), headers) == 404


async def test_the_asgi_app_answers_a_wrong_secret_while_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = CallbackReceiver()
    stall = anyio.Event()

    async def never() -> dict[str, Any]:
        await stall.wait()
        return {"type": "http.disconnect"}

    path = "/" + receiver.secret
    async with anyio.create_task_group() as group:
        for _ in range(64):
            group.start_soon(call_asgi, receiver, path, [], never)
        await wait_until(lambda: getattr(receiver, "_reading", 64) >= 64)
        with anyio.fail_after(5):
            assert await call_asgi(receiver, path, []) == 503
            stranger = "/" + "w" * len(receiver.secret)
            assert await call_asgi(receiver, stranger, [(b"content-length", b"x")]) == 404
        stall.set()


# ----------------------------------------------------------- serve()'s own server


async def test_serve_caps_its_connections_and_closes_idle_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(callbacks, "MAX_CONNECTIONS", 4, raising=False)
    monkeypatch.setattr(callbacks, "BODY_TIMEOUT", 1.0, raising=False)
    receiver = CallbackReceiver()
    async with receiver.serve() as url, AsyncExitStack() as stack:
        port = int(url.rsplit(":", 1)[1])
        held = [await stack.enter_async_context(await anyio.connect_tcp("127.0.0.1", port))]
        await held[0].send(b"POST /" + receiver.secret.encode() + b" HTTP/1.1\r\nHost: h")
        for _ in range(3):  # connected, nothing sent
            held.append(await stack.enter_async_context(await anyio.connect_tcp("127.0.0.1", port)))
        await anyio.sleep(0.2)
        with anyio.fail_after(0.8):  # before the idle ones are closed
            async with await send_head(port, "/" + receiver.secret) as fifth:
                assert await answer(fifth) is None  # closed unanswered: no sixth connection
        with anyio.fail_after(8):  # an unfinished request head or silence: closed in time
            for stream in held:
                assert await closed(stream)
        assert await post_record(port, "/" + receiver.secret) == 204


# ------------------------------------------------------------- the shared secret


def test_the_secret_comes_from_the_environment_when_not_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared = "fleet-secret-0123456789abcdef"
    monkeypatch.setenv("TEMPOLOR_CALLBACK_SECRET", shared)
    assert CallbackReceiver().secret == shared
    assert CallbackReceiver("https://hooks.example/t").reply_url().endswith(f"/{shared}")
    assert CallbackReceiver(secret="given-secret-0123456789").secret == "given-secret-0123456789"
    monkeypatch.setenv("TEMPOLOR_CALLBACK_SECRET", "")  # empty is unset
    assert CallbackReceiver().secret != CallbackReceiver().secret
    monkeypatch.setenv("TEMPOLOR_CALLBACK_SECRET", "short but secret")
    with pytest.raises(ConfigurationError, match="TEMPOLOR_CALLBACK_SECRET") as raised:
        CallbackReceiver()
    assert "short but secret" not in str(raised.value)
