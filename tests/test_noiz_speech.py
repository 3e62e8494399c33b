"""NoizClient's published calls beyond the seed's four, against FakeNoiz over loopback: every
text-to-speech field, the default voice, streams, emotion enhancement, voice design and
speech to text, with bad input refused before anything is sent."""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tempolor_async import (
    APIConnectionError,
    PaymentRequiredError,
    ServerError,
    ValidationError,
)
from tempolor_async.noiz import (
    NoizClient,
    Speech,
    SpeechStream,
    Transcript,
    TranscriptSegment,
    VoiceDesign,
    VoiceFeatures,
    VoicePreview,
)
from tempolor_async.testing import FakeNoiz, sample_audio
from tempolor_async.testing._server import multipart_parts

pytestmark = pytest.mark.anyio


@pytest.fixture
async def noiz_fake() -> AsyncIterator[FakeNoiz]:
    async with FakeNoiz() as server:
        yield server


@pytest.fixture
async def noiz(noiz_fake: FakeNoiz) -> AsyncIterator[NoizClient]:
    async with noiz_fake.client(max_retries=2) as client:
        yield client


def sent_fields(fake: FakeNoiz, path: str) -> dict[str, Any]:
    (request,) = fake.requests_to("POST", path)
    parts = multipart_parts(request.headers["Content-Type"], request.body)
    return {p.name: p.text() if p.filename is None else (p.filename, p.data) for p in parts}


def wav_frames(data: bytes) -> int:
    with wave.open(io.BytesIO(data)) as reader:
        return reader.getnframes()


# ------------------------------------------------------------------------ text to speech


async def test_no_voice_means_the_default_voice_and_headers_are_read(noiz_fake, noiz, tmp_path):
    speech = await noiz.speech.synthesize("Hello there", tmp_path / "hi.wav")
    assert isinstance(speech, Speech)
    assert wav_frames(speech.path.read_bytes()) > 0
    (request,) = noiz_fake.requests_to("POST", "/text-to-speech")
    assert isinstance(speech.generated_ms, int)
    assert speech.generated_ms > 10**12
    assert speech.duration == pytest.approx(11 * 0.06)
    fields = sent_fields(noiz_fake, "/text-to-speech")
    assert fields == {"text": "Hello there", "output_format": "wav"}  # None is not sent
    assert "Authorization" in request.headers


async def test_every_published_field_goes_by_its_wire_name(noiz_fake, noiz, tmp_path):
    await noiz.speech.synthesize(
        "Hello there",
        tmp_path / "hi.mp3",
        voice_id="3b9f1e27",
        output_format="mp3",
        speed=1.25,
        emotion='{"Joy": 0.5}',
        target_language="zh+en",
        similarity_enhance=False,
        duration=40,
        quality_preset=3,
        trim_silence=True,
        save_voice=False,
    )
    assert sent_fields(noiz_fake, "/text-to-speech") == {
        "text": "Hello there",
        "voice_id": "3b9f1e27",
        "output_format": "mp3",
        "speed": "1.25",
        "emo": '{"Joy": 0.5}',
        "target_lang": "zh+en",
        "similarity_enh": "false",
        "duration": "40.0",
        "quality_preset": "3",
        "trim_silence": "true",
        "save_voice": "false",
    }
    assert (tmp_path / "hi.mp3").read_bytes()[:3] == b"ID3"


async def test_a_stream_yields_chunks_as_they_come(noiz_fake, noiz):
    text = "A sentence to say. " * 2600  # 49,400 characters: over 5,000 is fine when streaming
    chunks = []
    async with noiz.speech.stream(text, voice_id="95814add") as audio:
        assert isinstance(audio, SpeechStream)
        assert audio.duration == pytest.approx(len(text) * 0.06, abs=0.01)
        assert audio.generated_ms is not None
        async for chunk in audio:
            chunks.append(chunk)
    assert len(chunks) > 10
    data = b"".join(chunks)
    assert data[:4] == b"RIFF"
    assert wav_frames(data) == (len(data) - 44) // 2
    fields = sent_fields(noiz_fake, "/text-to-speech")
    assert fields["stream"] == "true"
    assert len(fields["text"]) == len(text)


async def test_leaving_a_stream_early_closes_it_quietly(noiz_fake, noiz):
    async with noiz.speech.stream("Say this. " * 3000) as audio:
        async for _chunk in audio:
            break
    # The client is still usable, and the stream was sent once.
    await noiz.voices.get("95814add")
    assert len(noiz_fake.requests_to("POST", "/text-to-speech")) == 1


async def test_a_callers_error_leaves_a_stream_as_itself(noiz):
    async def listen() -> None:
        async with noiz.speech.stream("Say this. " * 100) as audio:
            async for _chunk in audio:
                raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        await listen()


async def test_a_refused_stream_raises_on_entering_and_is_never_sent_twice(noiz_fake, noiz):
    noiz_fake.credits = 10
    with pytest.raises(PaymentRequiredError, match="Insufficient credits"):
        async with noiz.speech.stream("x" * 11):
            pytest.fail("the body must not run")
    noiz_fake.inject("POST", "/text-to-speech", status=500)
    with pytest.raises(ServerError):
        async with noiz.speech.stream("x"):
            pass
    noiz_fake.inject("POST", "/text-to-speech", drop=True)
    with pytest.raises(APIConnectionError):
        async with noiz.speech.stream("x"):
            pass
    assert len(noiz_fake.requests_to("POST", "/text-to-speech")) == 3


async def test_a_stream_cut_short_raises_from_the_iteration(noiz_fake, noiz):
    noiz_fake.inject("POST", "/text-to-speech", truncate=True)

    async def listen() -> None:
        async with noiz.speech.stream("Hello there. " * 2000) as audio:
            async for _chunk in audio:
                pass

    with pytest.raises(APIConnectionError):
        await listen()


async def test_synthesize_with_stream_writes_the_whole_stream_atomically(noiz_fake, noiz, tmp_path):
    text = "Streamed into a file. " * 400  # 8,800 characters
    speech = await noiz.speech.synthesize(text, tmp_path / "long.wav", stream=True)
    assert wav_frames(speech.path.read_bytes()) == int(len(text) * 0.06 * 22050)
    assert sent_fields(noiz_fake, "/text-to-speech")["stream"] == "true"
    noiz_fake.inject("POST", "/text-to-speech", truncate=True)
    with pytest.raises(APIConnectionError):
        await noiz.speech.synthesize(text, tmp_path / "cut.wav", stream=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.wav"]


# ------------------------------------------------------------ emotion, design, transcripts


async def test_enhance_emotions_sends_json_and_returns_the_annotated_text(noiz_fake, noiz):
    assert await noiz.text.enhance_emotions("We won! Did we?") == "<Joy>We won! <Surprise>Did we?"
    (request,) = noiz_fake.requests_to("POST", "/emotion-enhance")
    assert request.json() == {"text": "We won! Did we?"}
    for bad in ("", " ", "x" * 5001, None):
        with pytest.raises(ValidationError) as info:
            await noiz.text.enhance_emotions(bad)  # type: ignore[arg-type]
        assert info.value.parameter == "text"
    assert len(noiz_fake.requests) == 1


async def test_design_gives_playable_previews(noiz_fake, noiz, tmp_path):
    picture = tmp_path / "face.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    design = await noiz.voices.design(
        "A cheerful young woman who reads the news",
        picture=picture,
        guidance_scale=100,
        loudness=-1,
    )
    assert isinstance(design, VoiceDesign)
    assert isinstance(design.features, VoiceFeatures)
    assert design.features.gender == "female"
    assert design.from_cache is False
    assert design.previews
    assert all(isinstance(p, VoicePreview) for p in design.previews)
    assert wav_frames(design.previews[0].audio) > 0
    fields = sent_fields(noiz_fake, "/voice-design")
    assert fields["voice_description"] == "A cheerful young woman who reads the news"
    assert fields["picture"] == ("face.png", picture.read_bytes())
    assert (fields["guidance_scale"], fields["loudness"]) == ("100", "-1")
    # A preview's voice speaks.
    speech = await noiz.speech.synthesize(
        "Hi", tmp_path / "p.wav", voice_id=design.previews[0].voice_id
    )
    assert speech.path.exists()


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        ({}, "description"),
        ({"description": "too short"}, "description"),
        ({"description": "x" * 1001}, "description"),
        ({"description": "A voice for a long story", "guidance_scale": 100.5}, "guidance_scale"),
        ({"description": "A voice for a long story", "loudness": -1.01}, "loudness"),
        ({"description": "A voice for a long story", "loudness": True}, "loudness"),
        ({"picture": b""}, "picture"),
        ({"picture": "missing.png"}, "picture"),
        ({"picture": b"GIF89a", "picture_content_type": "image/gif"}, "content_type"),
    ],
)
async def test_bad_design_input_is_refused_before_sending(noiz_fake, noiz, arguments, parameter):
    with pytest.raises(ValidationError) as info:
        await noiz.voices.design(**arguments)
    assert info.value.parameter == parameter
    assert noiz_fake.requests == []


async def test_transcribe_own_speech_gives_back_its_words(noiz_fake, noiz, tmp_path):
    said = "Good morning. The weather is fine today!"
    speech = await noiz.speech.synthesize(said, tmp_path / "said.wav")
    transcript = await noiz.speech.transcribe(speech.path, language="en")
    assert isinstance(transcript, Transcript)
    assert transcript.transcript == said
    assert transcript.language == "en"
    assert transcript.duration == pytest.approx(len(said) * 0.06, abs=0.01)
    assert transcript.segments is not None
    assert all(isinstance(s, TranscriptSegment) for s in transcript.segments)
    assert [s.text for s in transcript.segments] == ["Good morning.", "The weather is fine today!"]
    assert transcript.segments[0].speaker == 0
    assert sent_fields(noiz_fake, "/speech-to-text")["language"] == "en"
    other = await noiz.speech.transcribe(sample_audio(1.0), content_type="audio/wav")
    assert other.transcript
    assert other.transcript != said


async def test_transcribe_refuses_a_file_over_50_mib_before_sending(noiz_fake, noiz, tmp_path):
    big = tmp_path / "big.wav"
    with big.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024 + 1)  # sparse: no disk used
    with pytest.raises(ValidationError, match="50 MiB") as info:
        await noiz.speech.transcribe(big)
    assert info.value.parameter == "file"
    with pytest.raises(ValidationError) as info:
        await noiz.speech.transcribe(tmp_path / "notes.txt")
    assert info.value.parameter == "file"
    assert noiz_fake.requests == []


async def test_the_key_is_in_no_message(noiz_fake, tmp_path):
    key = noiz_fake.api_key
    noiz_fake.inject("POST", "/text-to-speech", status=402, body={"code": 402, "message": key})
    async with noiz_fake.client() as noiz:
        with pytest.raises(PaymentRequiredError) as info:
            async with noiz.speech.stream("Hello"):
                pass
    assert key not in str(info.value)
    assert key not in repr(info.value.body)


def test_published_names_are_exported_sorted():
    import tempolor_async.noiz as noiz

    assert noiz.__all__ == sorted(noiz.__all__)
    for name in ("SpeechStream", "Transcript", "VoiceDesign", "VoicePreview", "VoiceFeatures"):
        assert name in noiz.__all__


async def test_a_path_whose_name_is_not_utf8_is_refused_before_sending(noiz_fake, noiz, tmp_path):
    import os

    raw = os.fsencode(tmp_path) + b"/m\xffe.wav"
    with open(raw, "wb") as handle:
        handle.write(sample_audio(1.0))
    name = os.fsdecode(raw)  # what Python makes of such a name: a lone surrogate
    calls = [
        ("file", noiz.voices.clone(name)),
        ("reference_audio", noiz.speech.synthesize("Hi", tmp_path / "x.wav", reference_audio=name)),
        ("file", noiz.speech.transcribe(name)),
    ]
    for parameter, call in calls:
        with pytest.raises(ValidationError, match="not valid UTF-8") as info:
            await call
        assert info.value.parameter == parameter
    assert noiz_fake.requests == []


async def test_a_stream_cancelled_from_outside_stops_and_leaves_nothing_behind(noiz_fake, noiz):
    import anyio

    received = 0
    with anyio.move_on_after(0.5) as scope:
        async with noiz.speech.stream("A slow listener. " * 2000) as audio:
            async for chunk in audio:
                received += len(chunk)
                await anyio.sleep(10)
    assert scope.cancelled_caught
    assert received > 0
    assert await noiz.text.enhance_emotions("Still here!") == "<Joy>Still here!"
