"""SPEC 2 and 7 against a hostile server: a raw ``aiohttp.web`` server written here, over
loopback, that echoes the token back, sends bodies without end or bombs of gzip, answers
with status lines nobody can parse, redirects, and hands out download links that are not
URLs. Whatever it does, the caller gets a TempolorError whose text holds no token, and the
client's memory stays bounded.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import logging
import os
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import anyio
import pytest
from aiohttp import web

import tempolor_async as sdk

pytestmark = pytest.mark.anyio

# A token with characters that percent-encoding and JSON escape differently.
TOKEN = "tok-Echo/9+Kq=Zr:s3cr3t-W4x"
FORMS = [TOKEN, quote(TOKEN, safe=""), quote(TOKEN)]
JOB = "user:1-tempolor:100349856-job:abc"
FAILED_JOB = "user:1-tempolor:100349856-job:failed"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[dict[str, Handler]], Awaitable[str]]]:
    """Start a raw aiohttp.web server with the given routes (``"GET /path"``: handler);
    returns its base URL."""
    runners: list[web.AppRunner] = []

    async def start(routes: dict[str, Handler]) -> str:
        app = web.Application()
        for route, handler in routes.items():
            method, path = route.split(" ", 1)
            app.router.add_route(method, path, handler)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


def texts_of(error: BaseException) -> list[str]:
    """str and repr of an exception and of everything in its cause/context chain."""
    texts: list[str] = []
    seen: BaseException | None = error
    while seen is not None:
        texts += [str(seen), repr(seen), *(str(arg) for arg in seen.args)]
        if isinstance(seen, sdk.APIStatusError):
            texts.append(seen.message)
        seen = seen.__cause__ or seen.__context__
    return texts


def assert_no_token(texts: list[str]) -> None:
    for text in texts:
        for form in FORMS:
            assert form not in text, text


# ----------------------------------------------------------- the token echoed back


def echo_handlers() -> dict[str, Handler]:
    """Every way a server or proxy may hand the Authorization header back."""

    def auth(request: web.Request) -> str:
        return request.headers.get("Authorization", "")

    async def error_text(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": f"bad credentials {auth(request)}"}, status=400)

    async def reason_phrase(request: web.Request) -> web.StreamResponse:
        return web.Response(status=503, reason=f"Echo {auth(request)}")

    async def html_body(request: web.Request) -> web.StreamResponse:
        return web.Response(status=502, text=f"proxy saw {auth(request)}")

    async def success_not_json(request: web.Request) -> web.StreamResponse:
        return web.Response(status=200, text=f"hello {auth(request)}")

    async def job_record(request: web.Request) -> web.StreamResponse:
        if request.match_info["job_id"] == FAILED_JOB:  # a FAILED job whose error echoes
            record = {"job_id": FAILED_JOB, "status": 10, "status_final": True}
            return web.json_response({**record, "error": auth(request)})
        return web.json_response({"job_id": JOB, "status": auth(request)})  # a wrong type

    async def url_encoded(request: web.Request) -> web.StreamResponse:
        text = f"no route /x?auth={quote(auth(request), safe='')}"
        return web.json_response({"error": text}, status=404)

    async def busy(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": f"busy for {auth(request)}"}, status=429)

    async def bad_cursor(request: web.Request) -> web.StreamResponse:
        return web.json_response({"records": [], "hasNext": True, "cursor": [auth(request)]})

    return {
        "GET /v1/accounts": error_text,
        "GET /v1/scheduler/": reason_phrase,
        "GET /v1/scheduler/available": html_body,
        "GET /v1/accounts/{user_id}": success_not_json,
        "GET /v1/music/{job_id}": job_record,
        "DELETE /v1/music/{job_id}": url_encoded,
        "GET /v1/music/artist-voices/": bad_cursor,
        "DELETE /v1/scheduler/{job_id}": busy,
    }


async def test_a_token_echoed_by_the_server_reaches_no_message_and_no_log(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    base = await serve(echo_handlers())
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    async with sdk.TempolorClient(TOKEN, base_url=f"{base}/v1", max_retries=1) as client:
        calls = [
            client.accounts.list(),
            client.scheduler.list(),
            client.scheduler.available(),
            client.accounts.get("777"),
            client.music.get(JOB),
            client.music.delete(JOB),
            client.voices.list_artist().to_list(),
            client.scheduler.cancel(JOB),
        ]
        for call in calls:
            with pytest.raises(sdk.TempolorError) as caught:
                await call
            errors.append(caught.value)
        with pytest.raises(sdk.JobFailedError) as failed:
            await client.await_job(FAILED_JOB, poll_interval=0.01)
        errors.append(failed.value)
    assert [type(error).__name__ for error in errors] == [
        "BadRequestError",
        "ServerError",
        "ServerError",
        "ResponseDecodeError",
        "ResponseDecodeError",
        "NotFoundError",
        "ResponseDecodeError",
        "RateLimitError",
        "JobFailedError",
    ]
    assert "[redacted]" in str(errors[0])  # the message is kept, the token replaced
    assert any(record.levelno == logging.WARNING for record in caplog.records)
    texts = [text for error in errors for text in texts_of(error)]
    texts += [record.getMessage() for record in caplog.records]
    assert_no_token(texts)


async def test_the_command_never_prints_an_echoed_token(serve: Any) -> None:
    base = await serve(echo_handlers())
    env = {k: v for k, v in os.environ.items() if k not in ("USEAPI_TOKEN", "TEMPOLOR_BASE_URL")}
    for args in (("accounts", "list"), ("status", JOB), ("status", JOB, "--json")):
        result = await anyio.run_process(
            [sys.executable, "-m", "tempolor_async.cli", "--token", TOKEN, *args],
            env={**env, "TEMPOLOR_BASE_URL": f"{base}/v1"},
            check=False,
        )
        output = result.stdout.decode() + result.stderr.decode()
        assert result.returncode == 1, output
        assert output.startswith("error: ")
        assert_no_token([output])


# ------------------------------------------------------------- bounded memory

# Reads one API response in a fresh interpreter and reports the error and its own peak
# resident memory (VmHWM), so that nothing else in the test process blurs the figure.
MEASURE = """
import asyncio, json, sys
import tempolor_async as sdk

async def main():
    async with sdk.TempolorClient("t" * 16, base_url=sys.argv[1], max_retries=0,
                                  timeout=20) as client:
        try:
            await client.scheduler.list()
            error = None
        except Exception as exc:
            error = type(exc).__name__ + ": " + str(exc)
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    print(json.dumps({"error": error, "peak_kib": int(fields["VmHWM"].split()[0])}))

asyncio.run(main())
"""
MEMORY_BOUND_KIB = 200 * 1024  # the interpreter and the SDK take about 60 MiB of it


async def measure(base: str) -> dict[str, Any]:
    result = await anyio.run_process(
        [sys.executable, "-c", MEASURE, f"{base}/v1"], check=False, stderr=subprocess.STDOUT
    )
    assert result.returncode == 0, result.stdout.decode()
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@functools.lru_cache(maxsize=1)
def gzip_bomb() -> bytes:
    """About 1 MiB of gzip that inflates to 1 GiB: 64 members of 16 MiB of zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = compressor.compress(bytes(16 << 20)) + compressor.flush()
    return member * 64


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
async def test_a_gzip_bomb_is_refused_with_memory_bounded(serve: Any) -> None:
    async def bomb(request: web.Request) -> web.StreamResponse:
        body = gzip_bomb()
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        response = web.StreamResponse(headers=headers)
        response.content_length = len(body)
        await response.prepare(request)
        for start in range(0, len(body), 64 * 1024):
            await response.write(body[start : start + 64 * 1024])
        return response

    report = await measure(await serve({"GET /v1/scheduler/": bomb}))
    assert report["error"].startswith("ResponseDecodeError"), report
    assert "32 MiB" in report["error"]
    assert report["peak_kib"] < MEMORY_BOUND_KIB, report


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
async def test_an_endless_chunked_body_is_refused_with_memory_bounded(serve: Any) -> None:
    sent = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b"[" + b" " * (256 * 1024 - 1)
        with anyio.move_on_after(60):
            while sent < 1 << 30:  # endless, as far as any client should care
                await response.write(chunk)
                sent += len(chunk)
        return response

    report = await measure(await serve({"GET /v1/scheduler/": endless}))
    assert report["error"].startswith("ResponseDecodeError"), report
    assert report["peak_kib"] < MEMORY_BOUND_KIB, report
    assert sent < 256 << 20  # the client hung up soon after the limit


async def test_a_large_compressed_answer_under_the_limit_is_read(serve: Any) -> None:
    records = [{"job_id": f"{JOB}{n}", "user_id": "1", "started": 1} for n in range(50_000)]
    body = gzip.compress(json.dumps(records).encode())

    async def big(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        return web.Response(body=body, headers=headers)

    base = await serve({"GET /v1/scheduler/": big})
    async with sdk.TempolorClient(TOKEN, base_url=f"{base}/v1") as client:
        running = await client.scheduler.list()
    assert len(running) == 50_000


# ---------------------------------------------- answers aiohttp cannot parse


def raw_answer(data: bytes) -> Handler:
    """A handler that writes ``data`` straight to the socket and hangs up."""

    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.write(data.replace(b"TOKEN", request.headers["Authorization"].encode()))
        request.transport.close()
        await asyncio.sleep(0.5)  # the connection is gone; aiohttp cancels this handler
        return web.Response()

    return handler


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 abc Broken\r\nContent-Length: 0\r\n\r\n",
        b"\x00garbage TOKEN\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz TOKEN\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{",
    ],
)
async def test_a_response_aiohttp_cannot_parse_is_a_tempolor_error(
    serve: Any, answer: bytes
) -> None:
    base = await serve({"GET /v1/scheduler/": raw_answer(answer)})
    async with sdk.TempolorClient(TOKEN, base_url=f"{base}/v1", max_retries=0) as client:
        with pytest.raises(sdk.APIConnectionError) as caught:
            await client.scheduler.list()
    assert "GET /scheduler/" in str(caught.value)
    assert_no_token(texts_of(caught.value)[:3])  # the chain below is aiohttp's own


# ------------------------------------------------------------------ redirects


async def test_an_api_redirect_is_not_followed(serve: Any) -> None:
    followed: list[str] = []

    async def moved(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"/elsewhere?auth={request.headers['Authorization']}")

    async def elsewhere(request: web.Request) -> web.StreamResponse:
        followed.append(request.path)
        return web.json_response([])

    base = await serve({"GET /v1/scheduler/": moved, "GET /elsewhere": elsewhere})
    async with sdk.TempolorClient(TOKEN, base_url=f"{base}/v1", max_retries=0) as client:
        with pytest.raises(sdk.APIStatusError, match="unexpected redirect") as caught:
            await client.scheduler.list()
    assert caught.value.status == 302
    assert followed == []


@pytest.mark.parametrize(
    ("location", "fragment"),
    [
        ("/media/loop?sig=SIGNED", "redirected too many times"),
        ("file:///etc/passwd", "redirected to an unusable URL"),
        ("http://[::1", "redirected to an unusable URL"),
    ],
)
async def test_a_bad_media_redirect_is_a_tempolor_error_without_the_url(
    serve: Any, tmp_path: Path, location: str, fragment: str
) -> None:
    async def redirect(request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": location})

    base = await serve({"GET /media/loop": redirect})
    async with sdk.TempolorClient(TOKEN, base_url=f"{base}/v1", max_retries=0) as client:
        with pytest.raises(sdk.TempolorError, match=fragment) as caught:
            await client.download_file(f"{base}/media/loop?sig=SIGNED", tmp_path / "x.mp3")
    assert "SIGNED" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------- unusable download links


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",
        "http://127.0.0.1:99999/x.mp3",
        "http://127.0.0.1:0/x.mp3",
        "http://127.0.0.1/a\x00b.mp3",
        "http://127.0.0.1/a\nb.mp3",
        "http://exa mple.com/x.mp3",
        "http://\udcff.example/x.mp3",
        "http://" + "a" * 300 + ".example/x.mp3",
        "ftp://127.0.0.1/x.mp3",
        "/relative/x.mp3",
        "",
    ],
)
async def test_an_unusable_download_link_is_a_response_decode_error(
    serve: Any, tmp_path: Path, url: str
) -> None:
    async def link(request: web.Request) -> web.StreamResponse:
        return web.json_response({"url": url, "remainSeconds": 60})

    base = await serve({"GET /v1/music/download/{job_id}": link})
    async with sdk.TempolorClient(TOKEN, base_url=f"{base}/v1") as client:
        with pytest.raises(sdk.ResponseDecodeError, match="download link") as caught:
            await client.music.download(JOB, tmp_path)
        with pytest.raises(sdk.ValidationError) as refused:
            await client.download_file(url, tmp_path)
    assert f"/music/download/{JOB}" in str(caught.value)
    assert refused.value.parameter == "url"
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------- a closed session


async def test_a_closed_caller_session_is_a_configuration_error(serve: Any) -> None:
    base = await serve({})
    session = aiohttp.ClientSession()
    await session.close()
    async with sdk.TempolorClient(TOKEN, base_url=f"{base}/v1", session=session) as client:
        with pytest.raises(sdk.ConfigurationError, match="closed"):
            await client.scheduler.list()
        with pytest.raises(sdk.ConfigurationError, match="closed"):
            await client.download_file(f"{base}/x.mp3", ".")
