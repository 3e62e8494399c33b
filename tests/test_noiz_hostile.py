"""NoizClient against raw aiohttp.web servers written here: answers the simulator would never
give (errors inside a 200, the key echoed back, a connection dropped mid-clone)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tempolor_async import (
    APIConnectionError,
    AuthenticationError,
    NotFoundError,
    PaymentRequiredError,
    ResponseDecodeError,
    TempolorError,
)
from tempolor_async.noiz import NoizClient
from tempolor_async.testing import sample_audio

pytestmark = pytest.mark.anyio

KEY = "nz-live-3f9a0c1b2d4e5f60718293a4b5c6d7e8"


@dataclass
class Server:
    """A one-route-per-test server that counts what it received."""

    base_url: str = ""
    hits: list[tuple[str, str, bytes]] = field(default_factory=list)


Answer = Callable[[web.Request], Any]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Answer], Any]]:
    runners: list[web.AppRunner] = []

    async def start(answer: Answer) -> Server:
        server = Server()

        async def handle(request: web.Request) -> web.StreamResponse:
            server.hits.append((request.method, request.path, await request.read()))
            return await answer(request)  # type: ignore[no-any-return]

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        server.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
        return server

    yield start
    for runner in runners:
        await runner.cleanup()


def leaks(texts: list[str]) -> list[str]:
    return [text for text in texts if KEY in text]


async def test_an_error_inside_a_200_carries_the_envelopes_message(serve):
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"code": 402, "message": "Insufficient credits", "data": None})

    server = await serve(answer)
    async with NoizClient(KEY, base_url=server.base_url) as noiz:
        with pytest.raises(PaymentRequiredError) as info:
            await noiz.voices.get("v1")
    assert info.value.status == 402
    assert info.value.message == "Insufficient credits"
    assert str(info.value) == "GET /voices/v1 -> 402: Insufficient credits"
    assert len(server.hits) == 1  # 402 is not retried


async def test_an_echoed_key_never_reaches_a_message_or_a_log_line(serve, caplog):
    caplog.set_level(logging.DEBUG, logger="tempolor_async")
    answers = iter(
        [
            web.json_response({"code": 401, "message": f"bad key {KEY}", "data": None}, status=401),
            web.json_response({"code": 404, "message": f"no voice for {KEY}", "data": None}),
            web.Response(status=503, text=f"upstream rejected Authorization: {KEY}"),
            web.Response(status=503, text=f"upstream rejected Authorization: {KEY}"),
            web.Response(status=200, text=f"<html>hello {KEY}</html>", content_type="text/html"),
        ]
    )

    async def answer(request: web.Request) -> web.Response:
        return next(answers)

    server = await serve(answer)
    texts = []
    async with NoizClient(KEY, base_url=server.base_url, max_retries=1) as noiz:
        for expected in (AuthenticationError, NotFoundError, TempolorError, ResponseDecodeError):
            with pytest.raises(expected) as info:
                await noiz.voices.get("v1")
            texts += [str(info.value), repr(info.value), getattr(info.value, "message", "")]
        texts.append(repr(noiz))
    assert texts[0] == "GET /voices/v1 -> 401: bad key [redacted]"
    assert "[redacted]" in texts[3]
    assert leaks(texts + [record.getMessage() for record in caplog.records]) == []
    assert len(server.hits) == 5


async def test_a_connection_dropped_during_a_clone_is_not_resent(serve, tmp_path: Path, caplog):
    caplog.set_level(logging.WARNING, logger="tempolor_async")
    sample = tmp_path / "me.wav"
    sample.write_bytes(sample_audio(1.0))

    async def answer(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()  # the request arrived whole; the answer never leaves
        return web.Response()

    server = await serve(answer)
    async with NoizClient(KEY, base_url=server.base_url, max_retries=3) as noiz:
        with pytest.raises(APIConnectionError):
            await noiz.voices.clone(file=sample, display_name="Me")
        with pytest.raises(APIConnectionError):
            await noiz.speech.synthesize("Hi", tmp_path / "hi.wav", voice_id="v1")
    assert [(method, path) for method, path, _ in server.hits] == [
        ("POST", "/v1/voices"),
        ("POST", "/v1/text-to-speech"),
    ]
    assert sample_audio(1.0) in server.hits[0][2]  # the file travelled in the multipart body
    assert not any("retrying" in record.getMessage() for record in caplog.records)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["me.wav"]


async def test_a_clone_is_retried_when_the_connection_could_not_be_opened(caplog):
    caplog.set_level(logging.WARNING, logger="tempolor_async")
    async with NoizClient(KEY, base_url="http://127.0.0.1:9/v1", max_retries=2) as noiz:
        with pytest.raises(APIConnectionError, match="cannot connect"):
            await noiz.voices.clone(url="https://example.com/me.mp3")
    assert sum("retrying" in record.getMessage() for record in caplog.records) == 2


async def test_a_json_answer_to_a_synthesis_is_not_taken_for_audio(serve, tmp_path: Path):
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"code": 0, "message": "success", "data": {"queued": True}})

    server = await serve(answer)
    async with NoizClient(KEY, base_url=server.base_url) as noiz:
        with pytest.raises(ResponseDecodeError, match="expected audio"):
            await noiz.speech.synthesize("Hi", tmp_path / "hi.wav", voice_id="v1")
    assert list(tmp_path.iterdir()) == []


async def test_an_envelope_error_under_200_ends_a_synthesis_without_a_file(serve, tmp_path):
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"code": 402, "message": "Out of credits", "data": None})

    server = await serve(answer)
    async with NoizClient(KEY, base_url=server.base_url, max_retries=3) as noiz:
        with pytest.raises(PaymentRequiredError, match="Out of credits"):
            await noiz.speech.synthesize("Hi", tmp_path / "hi.wav", voice_id="v1")
    assert list(tmp_path.iterdir()) == []
    assert len(server.hits) == 1


async def test_a_list_without_data_is_a_decode_error(serve):
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"code": 0, "message": "success"})

    server = await serve(answer)
    async with NoizClient(KEY, base_url=server.base_url) as noiz:
        with pytest.raises(ResponseDecodeError, match="envelope"):
            await noiz.voices.list().to_list()


async def test_an_endless_json_answer_to_a_synthesis_is_cut_short(serve, tmp_path: Path):
    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"code": 0, "data": "')
        for _ in range(64):
            await response.write(b"x" * 65536)  # 4 MiB in all, past the 1 MiB limit
        return response

    server = await serve(answer)
    async with NoizClient(KEY, base_url=server.base_url) as noiz:
        with pytest.raises(ResponseDecodeError, match="over 1048576 bytes"):
            await noiz.speech.synthesize("Hi", tmp_path / "hi.wav", voice_id="v1")
    assert list(tmp_path.iterdir()) == []
