"""NoizClient against FakeNoiz over loopback: the five calls, paging, the envelope's errors,
retries, and bad input refused before anything is sent."""

from __future__ import annotations

import io
import json
import logging
import wave
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tempolor_async import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    NotFoundError,
    PaginationError,
    PaymentRequiredError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from tempolor_async.noiz import DeletedVoice, NoizClient, Speech, Voice, VoiceClone
from tempolor_async.testing import FakeNoiz, sample_audio

pytestmark = pytest.mark.anyio


@pytest.fixture
async def noiz_fake() -> AsyncIterator[FakeNoiz]:
    async with FakeNoiz() as server:
        yield server


@pytest.fixture
async def noiz(noiz_fake: FakeNoiz) -> AsyncIterator[NoizClient]:
    async with noiz_fake.client() as client:
        yield client


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "me.wav"
    path.write_bytes(sample_audio(2.0))
    return path


def form_fields(body: bytes, content_type: str) -> dict[str, Any]:
    """The parts of a recorded multipart body: text as str, files as (filename, bytes)."""
    from tempolor_async.testing._server import multipart_parts

    return {
        part.name: part.text() if part.filename is None else (part.filename, part.data)
        for part in multipart_parts(content_type, body)
    }


# -------------------------------------------------------------------------- configuration


def test_the_key_comes_from_the_argument_or_the_environment(monkeypatch):
    monkeypatch.delenv("NOIZ_API_KEY", raising=False)
    monkeypatch.delenv("NOIZ_BASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="NOIZ_API_KEY"):
        NoizClient()
    monkeypatch.setenv("NOIZ_API_KEY", "from-env")
    monkeypatch.setenv("NOIZ_BASE_URL", "http://127.0.0.1:9/v1")
    client = NoizClient()
    assert client.base_url == "http://127.0.0.1:9/v1"
    assert "from-env" not in repr(client)
    monkeypatch.delenv("NOIZ_BASE_URL")
    assert NoizClient("k").base_url == "https://noiz.ai/v1"


@pytest.mark.parametrize(
    "options",
    [{"timeout": 0}, {"upload_timeout": -1}, {"max_retries": -1}, {"base_url": "noiz.ai/v1"}],
)
def test_bad_options_are_configuration_errors(options):
    with pytest.raises(ConfigurationError):
        NoizClient("key", **options)


async def test_the_key_is_sent_bare_and_a_closed_client_refuses(noiz_fake, noiz):
    await noiz.voices.get("95814add")
    assert noiz_fake.requests[-1].headers["Authorization"] == noiz_fake.api_key
    await noiz.aclose()
    assert noiz.closed
    with pytest.raises(Exception, match="closed"):
        await noiz.voices.get("95814add")


async def test_a_bearer_prefixed_or_wrong_key_is_refused_with_401(noiz_fake):
    for key in (f"Bearer {noiz_fake.api_key}", "wrong-key"):
        async with noiz_fake.client(api_key=key) as client:
            with pytest.raises(AuthenticationError) as info:
                await client.voices.get("95814add")
        assert info.value.status == 401
        assert info.value.body["code"] == 401


# ---------------------------------------------------------------------------------- voices


async def test_list_pages_through_the_catalogue_by_page_number(noiz_fake, noiz):
    voices = await noiz.voices.list(voice_type="built-in", page_size=5).to_list()
    assert [voice.voice_id for voice in voices] == list(noiz_fake.voices)
    assert all(isinstance(voice, Voice) for voice in voices)
    pages = [(r.query["skip"], r.query["limit"]) for r in noiz_fake.requests_to("GET", "/voices")]
    # 12 voices, 5 a page: pages 0, 1 and 2, and no request after total_count is reached.
    assert pages == [("0", "5"), ("1", "5"), ("2", "5")]
    first = voices[0]
    assert first.display_name == "Aria"
    assert first.create_time == datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert first.raw["description"] == "A calm storyteller for audiobooks"


async def test_a_full_last_page_ends_the_walk_at_total_count(noiz_fake, noiz):
    await noiz.voices.list(voice_type="built-in", page_size=4).to_list()
    assert len(noiz_fake.requests_to("GET", "/voices")) == 3  # 4 + 4 + 4 = 12 = total_count


async def test_keyword_searches_name_description_and_labels(noiz):
    async def names(keyword: str) -> list[str | None]:
        pager = noiz.voices.list(voice_type="built-in", keyword=keyword)
        return [voice.display_name async for voice in pager]

    assert await names("bruno") == ["Bruno"]  # name
    assert await names("sea captain") == ["Dmitri"]  # description
    assert await names("podcast") == ["Farid"]  # labels
    assert await names("no such voice") == []


async def test_clone_from_a_file_streams_a_multipart_upload(noiz_fake, noiz, sample):
    clone = await noiz.voices.clone(file=sample, display_name="Me", denoise=True, language="en")
    assert isinstance(clone, VoiceClone)
    assert (clone.voice_display_name, clone.language, clone.duration) == ("Me", "en", 2.0)
    (request,) = noiz_fake.requests_to("POST", "/voices")
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    fields = form_fields(request.body, request.headers["Content-Type"])
    assert fields["file"] == ("me.wav", sample.read_bytes())
    assert (fields["display_name"], fields["denoise"], fields["language"]) == ("Me", "true", "en")
    assert "voice_url" not in fields
    listed = await noiz.voices.list().to_list()
    assert [voice.voice_id for voice in listed] == [clone.voice_id]
    fetched = await noiz.voices.get(clone.voice_id)
    assert (fetched.voice_type, fetched.display_name) == ("custom", "Me")


async def test_clone_from_bytes_and_from_a_file_object(noiz_fake, noiz, sample):
    with pytest.raises(ValidationError, match="content_type"):
        await noiz.voices.clone(file=sample.read_bytes())
    by_bytes = await noiz.voices.clone(file=sample.read_bytes(), content_type="audio/wav")
    with sample.open("rb") as handle:
        by_object = await noiz.voices.clone(file=handle)
        assert not handle.closed  # the caller's file stays the caller's
    assert by_bytes.voice_id != by_object.voice_id
    uploads = [
        form_fields(r.body, r.headers["Content-Type"])["file"][1]
        for r in noiz_fake.requests_to("POST", "/voices")
    ]
    assert uploads == [sample.read_bytes(), sample.read_bytes()]


async def test_clone_from_a_url_sends_voice_url_and_no_file(noiz_fake, noiz):
    clone = await noiz.voices.clone(url="https://example.com/voices/me.mp3")
    (request,) = noiz_fake.requests_to("POST", "/voices")
    fields = form_fields(request.body, request.headers["Content-Type"])
    assert fields == {"voice_url": "https://example.com/voices/me.mp3"}
    assert clone.voice_display_name == "me"


async def test_delete_is_soft_then_404_and_gone_from_lists(noiz_fake, noiz, sample):
    clone = await noiz.voices.clone(file=sample, display_name="Temp")
    assert clone.voice_id is not None
    deleted = await noiz.voices.delete(clone.voice_id)
    assert isinstance(deleted, DeletedVoice)
    assert (deleted.voice_id, deleted.display_name) == (clone.voice_id, "Temp")
    assert deleted.delete_time is not None
    assert noiz_fake.voices[clone.voice_id].delete_ms is not None  # kept, marked deleted
    with pytest.raises(NotFoundError) as info:
        await noiz.voices.get(clone.voice_id)
    assert info.value.message == f"Voice {clone.voice_id} not found"
    assert await noiz.voices.list().to_list() == []
    with pytest.raises(NotFoundError):
        await noiz.voices.delete(clone.voice_id)


async def test_a_delete_whose_answer_was_lost_returns_normally(noiz_fake, noiz, sample):
    clone = await noiz.voices.clone(file=sample)
    assert clone.voice_id is not None
    noiz_fake.inject("DELETE", "/voices/*", truncate=True)
    deleted = await noiz.voices.delete(clone.voice_id)
    assert deleted.voice_id == clone.voice_id
    assert len(noiz_fake.requests_to("DELETE", "/voices/*")) == 2


# ------------------------------------------------------------------------------- speech


async def test_synthesize_streams_wav_to_disk_with_its_duration(noiz_fake, noiz, tmp_path):
    dest = tmp_path / "hello.wav"
    speech = await noiz.speech.synthesize(
        "Hello there", dest, voice_id="95814add", speed=1.5, emotion={"Joy": 0.5}
    )
    assert isinstance(speech, Speech)
    assert speech.path == dest
    with wave.open(io.BytesIO(dest.read_bytes())) as reader:
        seconds = reader.getnframes() / reader.getframerate()
    assert speech.duration == pytest.approx(seconds, abs=0.01)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hello.wav"]  # no temporary left
    (request,) = noiz_fake.requests_to("POST", "/text-to-speech")
    fields = form_fields(request.body, request.headers["Content-Type"])
    assert fields["voice_id"] == "95814add"
    assert (fields["speed"], fields["output_format"]) == ("1.5", "wav")
    assert request.headers["Accept"] == "audio/*, application/json"
    assert json.loads(fields["emo"]) == {"Joy": 0.5}


async def test_synthesize_mp3_into_a_folder_with_a_reference_sample(
    noiz_fake, noiz, sample, tmp_path
):
    out = tmp_path / "out"
    out.mkdir()
    speech = await noiz.speech.synthesize(
        "Read this", out, reference_audio=sample, output_format="mp3", duration=3
    )
    assert speech.path == out / "speech.mp3"
    data = speech.path.read_bytes()
    assert data.startswith(b"ID3")
    assert b"\xff\xfb" in data
    assert speech.duration == 3.0
    (request,) = noiz_fake.requests_to("POST", "/text-to-speech")
    fields = form_fields(request.body, request.headers["Content-Type"])
    assert fields["file"] == ("me.wav", sample.read_bytes())
    assert fields["duration"] == "3.0"
    assert "voice_id" not in fields


async def test_a_folder_where_the_speech_file_would_go_is_refused_before_sending(
    noiz_fake, noiz, tmp_path
):
    (tmp_path / "speech.wav").mkdir()
    with pytest.raises(ValidationError, match="dest"):
        await noiz.speech.synthesize("Hello", tmp_path, voice_id="95814add")
    assert noiz_fake.requests == []


async def test_a_failed_synthesis_leaves_no_file_and_is_not_resent(noiz_fake, noiz, tmp_path):
    dest = tmp_path / "cut.wav"
    noiz_fake.inject("POST", "/text-to-speech", truncate=True)
    with pytest.raises(APIConnectionError):
        await noiz.speech.synthesize("Hello " * 200, dest, voice_id="95814add")
    assert list(tmp_path.iterdir()) == []
    assert len(noiz_fake.requests_to("POST", "/text-to-speech")) == 1


# --------------------------------------------------------------------- errors and retries


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (401, AuthenticationError),
        (402, PaymentRequiredError),
        (404, NotFoundError),
        (429, RateLimitError),
        (500, ServerError),
        (1001, BadRequestError),
    ],
)
async def test_an_envelope_code_under_200_raises_from_the_tree(noiz_fake, code, cls):
    envelope = {"code": code, "message": f"refused with {code}", "data": None}
    noiz_fake.inject("POST", "/voices", body=envelope)
    async with noiz_fake.client(max_retries=0) as client:
        with pytest.raises(cls) as info:
            await client.voices.clone(url="https://example.com/me.wav")
    assert info.value.message == f"refused with {code}"
    assert info.value.body["code"] == code


async def test_reads_are_retried_on_5xx_and_dropped_connections(noiz_fake, caplog):
    caplog.set_level(logging.WARNING, logger="tempolor_async")
    noiz_fake.inject("GET", "/voices/*", status=503)
    noiz_fake.inject("GET", "/voices/*", drop=True)
    async with noiz_fake.client(max_retries=2) as client:
        voice = await client.voices.get("dde1b9b5")
    assert voice.display_name == "Bruno"
    assert len(noiz_fake.requests_to("GET", "/voices/*")) == 3
    assert sum("retrying" in record.getMessage() for record in caplog.records) == 2


async def test_an_envelope_error_under_200_on_a_read_is_retried_as_its_code(noiz_fake):
    noiz_fake.inject("GET", "/voices", body={"code": 500, "message": "busy", "data": None})
    async with noiz_fake.client(max_retries=1) as client:
        voices = await client.voices.list(voice_type="built-in", page_size=20).to_list()
    assert len(voices) == 12
    assert len(noiz_fake.requests_to("GET", "/voices")) == 2


async def test_a_clone_is_not_resent_after_a_5xx_or_a_drop(noiz_fake, sample):
    noiz_fake.inject("POST", "/voices", status=503)
    async with noiz_fake.client(max_retries=3) as client:
        with pytest.raises(ServerError):
            await client.voices.clone(file=sample)
        noiz_fake.inject("POST", "/voices", drop=True)
        with pytest.raises(APIConnectionError):
            await client.voices.clone(file=sample)
    assert len(noiz_fake.requests_to("POST", "/voices")) == 2
    assert noiz_fake.custom_voices() == []


async def test_a_page_that_repeats_the_previous_one_stops_the_walk(noiz_fake, noiz):
    page = (await noiz.voices.list(voice_type="built-in", page_size=2).first_page()).items
    envelope = {
        "code": 0,
        "message": "success",
        "data": {"voices": [voice.raw for voice in page], "total_count": 100},
    }
    noiz_fake.inject("GET", "/voices", body=envelope, times=None)
    with pytest.raises(PaginationError, match="page 0 again"):
        await noiz.voices.list(voice_type="built-in", page_size=2).to_list()


async def test_a_wrongly_typed_field_is_a_decode_error(noiz_fake, noiz):
    from tempolor_async import ResponseDecodeError

    envelope = {"code": 0, "message": "success", "data": {"voice_id": 5}}
    noiz_fake.inject("GET", "/voices/x", body=envelope)
    with pytest.raises(ResponseDecodeError, match=r"data: expected text at voice_id"):
        await noiz.voices.get("x")


# ------------------------------------------------------------------------------ bad input

BAD_SYNTHESIS = [
    ({"text": ""}, "text"),
    ({"text": "   "}, "text"),
    ({"text": "x" * 5001}, "text"),
    ({"text": "x" * 5001, "stream": True, "output_format": "mp3"}, "output_format"),
    ({"text": "x" * 50_001, "stream": True}, "text"),
    ({"reference_audio": b"RIFF"}, "voice_id"),  # both
    ({"duration": 0}, "duration"),
    ({"duration": float("nan")}, "duration"),
    ({"duration": -1}, "duration"),
    ({"output_format": "flac"}, "output_format"),
    ({"speed": 0}, "speed"),
    ({"emotion": {"Joy": "lots"}}, "emotion"),
    ({"similarity_enhance": "yes"}, "similarity_enhance"),
    ({"voice_id": "a/b"}, "voice_id"),
    ({"quality_preset": 2.5}, "quality_preset"),
    ({"quality_preset": True}, "quality_preset"),
    ({"trim_silence": 1}, "trim_silence"),
    ({"save_voice": "false"}, "save_voice"),
    ({"target_language": " "}, "target_language"),
    ({"emotion": "not json"}, "emotion"),
    ({"emotion": '["Joy"]'}, "emotion"),
    ({"stream": "yes"}, "stream"),
]


@pytest.mark.parametrize(("change", "parameter"), BAD_SYNTHESIS)
async def test_bad_synthesis_input_is_refused_before_sending(
    noiz_fake, noiz, tmp_path, change, parameter
):
    arguments: dict[str, Any] = {"text": "Hello", "voice_id": "95814add", **change}
    text = arguments.pop("text")
    with pytest.raises(ValidationError) as info:
        await noiz.speech.synthesize(text, tmp_path / "x.wav", **arguments)
    assert info.value.parameter == parameter
    assert noiz_fake.requests == []
    assert list(tmp_path.iterdir()) == []


async def test_exactly_5000_characters_are_accepted(noiz, tmp_path):
    speech = await noiz.speech.synthesize("x" * 5000, tmp_path / "long.wav", voice_id="95814add")
    assert speech.path.stat().st_size > 44


async def test_a_reference_of_an_unsupported_type_is_refused(noiz_fake, noiz, tmp_path):
    flac = tmp_path / "me.flac"
    flac.write_bytes(b"fLaC" + bytes(100))
    with pytest.raises(ValidationError) as info:
        await noiz.speech.synthesize("Hi", tmp_path / "x.wav", reference_audio=flac)
    assert info.value.parameter == "content_type"
    assert noiz_fake.requests == []


BAD_CLONES = [
    ({}, "file"),
    ({"file": b"RIFF", "url": "https://example.com/a.wav"}, "file"),
    ({"url": "ftp://example.com/a.wav"}, "url"),
    ({"url": "/relative.wav"}, "url"),
    ({"file": "missing.wav"}, "file"),
    ({"file": b"", "content_type": "audio/wav"}, "file"),
    ({"file": b"RIFF", "content_type": "audio/flac"}, "content_type"),
    ({"file": b"RIFF", "content_type": "audio/wav", "denoise": "yes"}, "denoise"),
]


@pytest.mark.parametrize(("arguments", "parameter"), BAD_CLONES)
async def test_bad_clone_input_is_refused_before_sending(noiz_fake, noiz, arguments, parameter):
    with pytest.raises(ValidationError) as info:
        await noiz.voices.clone(**arguments)
    assert info.value.parameter == parameter
    assert noiz_fake.requests == []


async def test_a_clone_of_an_unsupported_file_type_is_refused(noiz_fake, noiz, tmp_path):
    ogg = tmp_path / "me.ogg"
    ogg.write_bytes(b"OggS" + bytes(100))
    with pytest.raises(ValidationError, match="cannot tell the type"):
        await noiz.voices.clone(file=ogg)
    assert noiz_fake.requests == []


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        ({"voice_type": "mine"}, "voice_type"),
        ({"page_size": 0}, "page_size"),
        ({"keyword": 3}, "keyword"),
    ],
)
async def test_bad_list_input_is_refused_before_sending(noiz_fake, noiz, arguments, parameter):
    with pytest.raises(ValidationError) as info:
        noiz.voices.list(**arguments)
    assert info.value.parameter == parameter
    assert noiz_fake.requests == []


# ------------------------------------------------------------------ the shared pieces


async def test_numbered_pages_stop_at_a_short_page_an_empty_page_or_the_total():
    from tempolor_async._pagination import numbered_pages

    asked: list[int] = []

    def pager(sizes: list[int], total: int | None):
        async def fetch(number: int) -> tuple[list[str], int | None]:
            asked.append(number)
            return [f"{number}-{i}" for i in range(sizes[number])], total

        return numbered_pages(fetch, 3)

    assert len(await pager([3, 3, 1], None).to_list()) == 7  # short page
    assert asked == [0, 1, 2]
    asked.clear()
    assert len(await pager([3, 3, 0], None).to_list()) == 6  # empty page
    assert asked == [0, 1, 2]
    asked.clear()
    assert len(await pager([3, 3, 3], 6).to_list()) == 6  # total reached: no third request
    assert asked == [0, 1]


def test_a_path_is_handed_to_aiohttp_as_an_open_file_not_a_copy(sample):
    from tempolor_async._files import FormUpload
    from tempolor_async.noiz.voices import audio_upload

    upload = FormUpload({"display_name": "Me"}, audio_upload("file", sample, None))
    form, headers = upload.body()
    assert headers == {}
    [(_, _, value)] = [field for field in form._fields if field[0].get("name") == "file"]
    assert isinstance(value, io.BufferedReader)
    assert value.name == str(sample)
    upload.release()
    assert value.closed
