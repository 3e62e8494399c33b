"""FakeNoiz itself, over loopback with a plain aiohttp session: the envelope, its error codes,
paging, search, cloning and real audio, as a client in any language would see them."""

from __future__ import annotations

import io
import re
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
    status, body, _ = await call(http, noiz_fake, "GET", "/voices/3b9f1e27")
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
    assert seen == [voice.voice_id for voice in noiz_fake.voices.values()]
    assert all(re.fullmatch("[0-9a-f]{8}", voice_id) for voice_id in seen)
    assert {"95814add", "3b9f1e27", "063a4491"} <= set(seen)  # the published defaults
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
    status, body, _ = await call(http, noiz_fake, "DELETE", "/voices/95814add")
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
    fields = form(text="Hello there", voice_id="95814add", duration="2.5")
    status, body, response = await call(http, noiz_fake, "POST", "/text-to-speech", data=fields)
    assert status == 200
    assert response.content_type == "audio/wav"
    with wave.open(io.BytesIO(body)) as reader:
        seconds = reader.getnframes() / reader.getframerate()
    assert seconds == pytest.approx(2.5, abs=0.01)
    assert response.headers["X-Audio-Duration"] == "2.500"
    fields = form(text="Hello", voice_id="95814add", output_format="mp3")
    status, body, response = await call(http, noiz_fake, "POST", "/text-to-speech", data=fields)
    assert response.content_type == "audio/mpeg"
    assert body[:3] == b"ID3"


@pytest.mark.parametrize(
    "fields",
    [
        {"text": " ", "voice_id": "95814add"},
        {"text": "x" * 5001, "voice_id": "95814add"},
        {"text": "Hi", "quality_preset": "best"},
        {"text": "Hi", "voice_id": "95814add", "duration": "-1"},
        {"text": "Hi", "trim_silence": "maybe"},
        {"text": "Hi", "voice_id": "95814add", "emo": "[1]"},
        {"text": "Hi", "voice_id": "95814add", "output_format": "aac"},
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


# --------------------------------------------------------- as the service publishes it


async def test_urlencoded_speech_without_a_voice_uses_the_default(http, noiz_fake):
    """What Noiz's own scripts send when there is no file: a urlencoded form."""
    fields = {"text": "Hello there", "output_format": "wav", "speed": "1.0"}
    status, body, response = await call(http, noiz_fake, "POST", "/text-to-speech", data=fields)
    assert status == 200
    assert noiz_fake.requests[-1].headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert body[:4] == b"RIFF"
    assert float(response.headers["X-Audio-Duration"]) > 0
    assert int(response.headers["X-Timestamp"]) > 10**12  # milliseconds
    status, body, _ = await call(
        http, noiz_fake, "POST", "/text-to-speech", data={"text": "Hi", "voice_id": "00000000"}
    )
    assert (status, body["code"]) == (404, 404)


async def test_every_published_speech_field_is_accepted(http, noiz_fake):
    fields = {
        "text": "Hello there",
        "voice_id": "3b9f1e27",
        "output_format": "mp3",
        "speed": "1.2",
        "emo": '{"Joy": 0.5}',
        "target_lang": "zh+en",
        "similarity_enh": "true",
        "duration": "40",
        "quality_preset": "3",
        "trim_silence": "false",
        "save_voice": "false",
        "stream": "false",
    }
    status, body, response = await call(http, noiz_fake, "POST", "/text-to-speech", data=fields)
    assert status == 200, body
    assert body[:3] == b"ID3"
    assert response.headers["X-Audio-Duration"] == "40.000"  # no 36-second cap
    fields.update(duration="0", output_format="wav")  # 0: the natural length
    status, body, response = await call(http, noiz_fake, "POST", "/text-to-speech", data=fields)
    assert status == 200
    assert float(response.headers["X-Audio-Duration"]) == pytest.approx(11 * 0.06 / 1.2, abs=0.01)


async def test_timestamps_are_epoch_seconds(http, noiz_fake):
    _status, body, _ = await call(http, noiz_fake, "GET", "/voices/95814add")
    assert body["data"]["create_time"] == 1_735_689_600
    clone = form(file=("me.wav", sample_audio(1.0), "audio/wav"))
    _status, body, _ = await call(http, noiz_fake, "POST", "/voices", data=clone)
    _status, body, _ = await call(http, noiz_fake, "DELETE", f"/voices/{body['data']['voice_id']}")
    assert 10**9 < body["data"]["delete_time"] < 10**11


async def test_a_stream_is_chunked_and_sent_as_it_is_made(http, noiz_fake):
    text = "One sentence after another. " * 3000  # 84,000 characters is over the limit
    fields = {"text": text[:50_000], "stream": "true", "voice_id": "95814add"}
    headers = {"Authorization": noiz_fake.api_key}
    url = noiz_fake.base_url + "/text-to-speech"
    async with http.post(url, data=fields, headers=headers) as response:
        assert response.status == 200
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in response.headers
        first = await response.content.readany()
        assert first[:4] == b"RIFF"
        assert not response.content.at_eof()  # audio arrives before synthesis ends
        rest = b"".join([chunk async for chunk in response.content.iter_any()])
    with wave.open(io.BytesIO(first + rest)) as reader:
        assert reader.getnframes() == (len(first) + len(rest) - 44) // 2
    fields["text"] = text[:50_001]
    status, body, _ = await call(http, noiz_fake, "POST", "/text-to-speech", data=fields)
    assert (status, body["code"]) == (400, 400)


async def test_credits_run_out_with_402(http, noiz_fake):
    noiz_fake.credits = 12
    status, _body, _ = await call(
        http, noiz_fake, "POST", "/text-to-speech", data={"text": "x" * 10}
    )
    assert status == 200
    assert noiz_fake.credits == 2
    status, body, _ = await call(http, noiz_fake, "POST", "/text-to-speech", data={"text": "xyz"})
    assert (status, body) == (402, {"code": 402, "message": "Insufficient credits", "data": None})


async def test_emotion_enhance(http, noiz_fake):
    status, body, _ = await call(
        http, noiz_fake, "POST", "/emotion-enhance", json={"text": "I won! Really?"}
    )
    assert status == 200
    assert body["data"]["emotion_enhance"] == "<Joy>I won! <Surprise>Really?"
    status, body, _ = await call(http, noiz_fake, "POST", "/emotion-enhance", json={"text": " "})
    assert (status, body["code"]) == (400, 400)


async def test_voice_design_gives_real_wav_previews(http, noiz_fake):
    import base64

    fields = form(voice_description="A calm old man telling a bedtime story", loudness="-1")
    status, body, _ = await call(http, noiz_fake, "POST", "/voice-design", data=fields)
    assert status == 200
    data = body["data"]
    assert data["features"]["gender"] == "male"
    assert data["from_cache"] is False
    for preview in data["previews"]:
        with wave.open(io.BytesIO(base64.b64decode(preview["audio"]))) as reader:
            assert reader.getnframes() > 0
        assert re.fullmatch("[0-9a-f]{8}", preview["voice_id"])
    for bad in ({"voice_description": "too short"}, {"guidance_scale": "101"}, {}):
        status, body, _ = await call(http, noiz_fake, "POST", "/voice-design", data=form(**bad))
        assert (status, body["code"]) == (400, 400)


async def test_speech_to_text_gives_back_its_own_words(http, noiz_fake):
    said = "The rain in Spain. It stays mainly in the plain!"
    _status, audio, _ = await call(http, noiz_fake, "POST", "/text-to-speech", data={"text": said})
    upload = form(file=("said.wav", audio, "audio/wav"), language="en")
    status, body, _ = await call(http, noiz_fake, "POST", "/speech-to-text", data=upload)
    assert status == 200
    assert body["data"]["transcript"] == said
    assert [s["text"] for s in body["data"]["segments"]] == [
        "The rain in Spain.",
        "It stays mainly in the plain!",
    ]
    other = form(file=("other.wav", sample_audio(1.0), "audio/wav"))
    _status, first, _ = await call(http, noiz_fake, "POST", "/speech-to-text", data=other)
    other = form(file=("other.wav", sample_audio(1.0), "audio/wav"))
    _status, again, _ = await call(http, noiz_fake, "POST", "/speech-to-text", data=other)
    assert first["data"]["transcript"] == again["data"]["transcript"] != said
    assert first["data"]["duration"] == 1.0


async def test_a_reference_sent_as_octet_stream_and_saved_as_a_voice(http, noiz_fake):
    """As Noiz's own script sends a reference: application/octet-stream with a file name."""
    fields = form(
        text="<Joy>Copy me!",
        file=("me.wav", sample_audio(1.0), "application/octet-stream"),
        save_voice="true",
    )
    status, body, _ = await call(http, noiz_fake, "POST", "/text-to-speech", data=fields)
    assert status == 200
    assert body[:4] == b"RIFF"
    (saved,) = noiz_fake.custom_voices()
    assert saved.display_name == "me"
    upload = form(file=("said.wav", body, "application/octet-stream"))
    status, said, _ = await call(http, noiz_fake, "POST", "/speech-to-text", data=upload)
    assert said["data"]["transcript"] == "Copy me!"  # the words, without the annotation
