"""FakeNoiz itself, over loopback with a plain aiohttp session: the envelope, its error codes,
paging, search, cloning and real audio, as a client in any language would see them."""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tempolor_async.testing import FakeNoiz, sample_audio

pytestmark = pytest.mark.anyio


@pytest.fixture
async def noiz_fake() -> AsyncIterator[FakeNoiz]:
    async with FakeNoiz(api_key="k-123") as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    fake: FakeNoiz,
    method: str,
    path: str,
    *,
    key: str | None = None,
    **options: Any,
) -> tuple[int, Any, aiohttp.ClientResponse]:
    headers = {"Authorization": fake.api_key if key is None else key}
    async with http.request(method, fake.base_url + path, headers=headers, **options) as response:
        body = await response.read()
        if response.content_type == "application/json":
            return response.status, await response.json(), response
        return response.status, body, response


def form(**fields: Any) -> aiohttp.FormData:
    data = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        if isinstance(value, tuple):
            filename, content, content_type = value
            data.add_field(name, content, filename=filename, content_type=content_type)
        else:
            data.add_field(name, value)
    return data


@pytest.mark.parametrize("key", ["Bearer k-123", "k-124", ""])
async def test_only_the_bare_key_is_accepted(http, noiz_fake, key):
    status, body, _ = await call(http, noiz_fake, "GET", "/voices", key=key)
    assert status == 401
    assert body["code"] == 401
    assert body["data"] is None
    assert "Unauthorized" in body["message"]


async def test_every_answer_is_the_envelope(http, noiz_fake):
    status, body, _ = await call(http, noiz_fake, "GET", "/voices/builtin-03")
    assert status == 200
    assert (body["code"], body["message"]) == (0, "success")
    assert body["data"]["display_name"] == "Chen Jing"
    status, body, _ = await call(http, noiz_fake, "GET", "/voices/nope")
    assert (status, body["code"], body["message"]) == (404, 404, "Voice nope not found")
    status, body, _ = await call(http, noiz_fake, "GET", "/nowhere")
    assert (status, body["code"]) == (404, 404)


async def test_paging_by_skip_and_limit_with_total_count(http, noiz_fake):
    seen = []
    for skip in range(3):
        params = {"voice_type": "built-in", "skip": str(skip), "limit": "5"}
        status, body, _ = await call(http, noiz_fake, "GET", "/voices", params=params)
        assert status == 200
        assert body["data"]["total_count"] == 12
        seen += [voice["voice_id"] for voice in body["data"]["voices"]]
    assert seen == [f"builtin-{n:02d}" for n in range(1, 13)]
    status, body, _ = await call(http, noiz_fake, "GET", "/voices", params={"voice_type": "nope"})
    assert (status, body["code"]) == (400, 400)


async def test_keyword_search_and_custom_by_default(http, noiz_fake):
    status, body, _ = await call(http, noiz_fake, "GET", "/voices")
    assert status == 200
    assert body["data"] == {"voices": [], "total_count": 0}
    params = {"voice_type": "built-in", "keyword": "NARRATION"}
    _status, body, _ = await call(http, noiz_fake, "GET", "/voices", params=params)
    assert [voice["display_name"] for voice in body["data"]["voices"]] == ["Aria"]


async def test_clone_by_file_or_url_then_soft_delete(http, noiz_fake):
    sample = ("me.wav", sample_audio(1.5), "audio/wav")
    status, body, _ = await call(
        http, noiz_fake, "POST", "/voices", data=form(file=sample, display_name="Me")
    )
    assert status == 200
    assert body["data"]["duration"] == 1.5
    by_file = body["data"]["voice_id"]
    status, body, _ = await call(
        http, noiz_fake, "POST", "/voices", data=form(voice_url="http://example.com/a/b.m4a")
    )
    assert status == 200
    assert body["data"]["voice_display_name"] == "b"
    status, body, _ = await call(http, noiz_fake, "GET", "/voices")
    assert body["data"]["total_count"] == 2
    status, body, _ = await call(http, noiz_fake, "DELETE", f"/voices/{by_file}")
    assert status == 200
    assert body["data"]["voice_id"] == by_file
    assert body["data"]["delete_time"]
    status, body, _ = await call(http, noiz_fake, "GET", f"/voices/{by_file}")
    assert status == 404
    assert [v.voice_id for v in noiz_fake.custom_voices(deleted=True)].count(by_file) == 1
    status, body, _ = await call(http, noiz_fake, "DELETE", "/voices/builtin-01")
    assert status == 403


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"voice_url": "ftp://example.com/a.wav"},
        {"file": ("a.ogg", b"OggS", "audio/ogg")},
        {"file": ("a.wav", b"", "audio/wav")},
        {"file": ("a.wav", b"RIFF", "audio/wav"), "voice_url": "https://example.com/a.wav"},
    ],
)
async def test_bad_clones_answer_400_in_the_envelope(http, noiz_fake, fields):
    status, body, _ = await call(http, noiz_fake, "POST", "/voices", data=form(**fields))
    assert (status, body["code"]) == (400, 400)
    assert noiz_fake.custom_voices() == []


async def test_speech_is_real_audio_with_its_duration(http, noiz_fake):
    fields = form(text="Hello there", voice_id="builtin-01", duration="2.5")
    status, body, response = await call(http, noiz_fake, "POST", "/text-to-speech", data=fields)
    assert status == 200
    assert response.content_type == "audio/wav"
    with wave.open(io.BytesIO(body)) as reader:
        seconds = reader.getnframes() / reader.getframerate()
    assert seconds == pytest.approx(2.5, abs=0.01)
    assert response.headers["X-Audio-Duration"] == "2.500"
    fields = form(text="Hello", voice_id="builtin-01", output_format="mp3")
    status, body, response = await call(http, noiz_fake, "POST", "/text-to-speech", data=fields)
    assert response.content_type == "audio/mpeg"
    assert body[:3] == b"ID3"


@pytest.mark.parametrize(
    "fields",
    [
        {"text": " ", "voice_id": "builtin-01"},
        {"text": "x" * 5001, "voice_id": "builtin-01"},
        {"text": "Hi"},
        {"text": "Hi", "voice_id": "builtin-01", "duration": "37"},
        {"text": "Hi", "voice_id": "builtin-01", "emo": "[1]"},
        {"text": "Hi", "voice_id": "builtin-01", "output_format": "aac"},
    ],
)
async def test_bad_speech_requests_answer_400(http, noiz_fake, fields):
    status, body, _ = await call(http, noiz_fake, "POST", "/text-to-speech", data=form(**fields))
    assert (status, body["code"]) == (400, 400)
    assert noiz_fake.speech_count == 0


async def test_an_injected_status_answers_with_the_envelope(http, noiz_fake):
    noiz_fake.inject("GET", "/voices", status=429)
    status, body, _ = await call(http, noiz_fake, "GET", "/voices")
    assert (status, body) == (429, {"code": 429, "message": "Too Many Requests", "data": None})
    assert [request.path for request in noiz_fake.requests] == ["/voices"]
