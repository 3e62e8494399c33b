"""Noiz speech: text to speech (the answer is the audio itself, written to disk or streamed
as it is made) and speech to text.
Noiz API: POST /text-to-speech, POST /speech-to-text (https://developers.noiz.ai)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import anyio
import anyio.lowlevel

from .. import _files, _validation
from .._errors import ResponseDecodeError, ValidationError
from .._files import CHUNK_BYTES, AtomicFile, FormUpload, UploadSource
from .._protocol import ApiRequest, Kind
from ._base import NoizResource
from ._models import OutputFormat, Speech, Transcript
from .voices import audio_upload, form_file, present

MAX_TEXT = 5000
MAX_STREAM_TEXT = 50_000
MAX_ENVELOPE_BYTES = 1024 * 1024
MAX_TRANSCRIBE_BYTES = 50 * 1024 * 1024
PATH = "/text-to-speech"
# What speech to text accepts: mp3, wav, m4a, ogg, flac, aac, webm.
TRANSCRIBE_TYPE_BY_EXTENSION = {
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".m4a": "audio/mp4",
    ".ogg": "audio/ogg",
    ".flac": "audio/flac",
    ".aac": "audio/aac",
    ".webm": "audio/webm",
}
TRANSCRIBE_TYPES = frozenset(TRANSCRIBE_TYPE_BY_EXTENSION.values()) | {
    "audio/wave",
    "audio/x-wav",
    "audio/mp3",
    "audio/x-m4a",
    "audio/x-flac",
}
# Chunks a stream may hold between the service and a slow reader: memory stays bounded.
STREAM_BUFFER_CHUNKS = 4

Sink = Callable[[aiohttp.ClientResponse], Awaitable[bytes]]


class SpeechResource(NoizResource):
    async def synthesize(
        self,
        text: str,
        dest: str | os.PathLike[str],
        *,
        voice_id: str | None = None,
        reference_audio: UploadSource | None = None,
        output_format: OutputFormat | str = OutputFormat.WAV,
        speed: float | None = None,
        emotion: Mapping[str, float] | str | None = None,
        target_language: str | None = None,
        similarity_enhance: bool | None = None,
        duration: float | None = None,
        quality_preset: int | None = None,
        trim_silence: bool | None = None,
        save_voice: bool | None = None,
        content_type: str | None = None,
        stream: bool = False,
    ) -> Speech:
        """Speak ``text`` and write the audio to ``dest`` (a file, or a folder for
        ``speech.<format>``) atomically: nothing is left there unless it is complete.

        The voice is ``voice_id``, or a sample to imitate (``reference_audio``: bytes, a
        path streamed from disk or a binary file object, WAV/MP3/M4A), or neither for the
        service's default voice. ``output_format`` is ``wav`` or ``mp3``; ``speed`` a
        positive factor; ``emotion`` maps emotions to weights (``{"Joy": 0.5}``, or that
        JSON as text); ``target_language`` such as ``"zh+en"``; ``duration`` a target length
        in seconds (> 0); ``quality_preset`` the service's preset number; the flags
        ``similarity_enhance``, ``trim_silence``, ``save_voice``. An option left None is not
        sent (the service's default); False is sent as ``false``.

        ``text`` is at most 5,000 characters, or 50,000 with ``stream=True``, which asks for
        the service's chunked stream (WAV) and writes it as it arrives. Sent once: a
        synthesis costs credits, so it is retried only when nothing reached the service.
        Noiz API: POST /text-to-speech (https://developers.noiz.ai)"""
        body = _speech_form(
            text,
            stream=stream,
            voice_id=voice_id,
            reference_audio=reference_audio,
            output_format=output_format,
            speed=speed,
            emotion=emotion,
            target_language=target_language,
            similarity_enhance=similarity_enhance,
            duration=duration,
            quality_preset=quality_preset,
            trim_silence=trim_silence,
            save_voice=save_voice,
            content_type=content_type,
        )
        target = _files.check_destination(dest, f"speech.{body.fields['output_format']}")

        async def write_audio(response: aiohttp.ClientResponse) -> bytes:
            """Stream the audio into place; an answer in JSON is handed back to be read as
            the envelope (an error under 200)."""
            if response.content_type == "application/json":
                return await _read_envelope(response)
            partial = AtomicFile(target)
            try:
                async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                    partial.write(chunk)
                    await anyio.lowlevel.checkpoint_if_cancelled()
                partial.commit()
            except BaseException:
                partial.discard()
                raise
            return b""

        headers = await self._speak(body, write_audio)
        return _speech(target, headers)

    @asynccontextmanager
    async def stream(
        self,
        text: str,
        *,
        voice_id: str | None = None,
        reference_audio: UploadSource | None = None,
        output_format: OutputFormat | str = OutputFormat.WAV,
        speed: float | None = None,
        emotion: Mapping[str, float] | str | None = None,
        target_language: str | None = None,
        similarity_enhance: bool | None = None,
        duration: float | None = None,
        quality_preset: int | None = None,
        trim_silence: bool | None = None,
        save_voice: bool | None = None,
        content_type: str | None = None,
    ) -> AsyncIterator[SpeechStream]:
        """Speak ``text`` (at most 50,000 characters) as a stream, for playback before
        synthesis ends: ``async with noiz.speech.stream(text) as audio: async for chunk in
        audio: ...``. The chunks are the service's WAV as it sends them; ``audio.duration``
        and ``audio.generated_ms`` come from its headers. Options as for :meth:`synthesize`.

        Entering waits for the service's answer (an error is raised there); leaving early
        closes the connection. Billing starts when the connection opens, so a stream is
        never sent twice. Noiz API: POST /text-to-speech with stream=true
        (https://developers.noiz.ai)"""
        body = _speech_form(
            text,
            stream=True,
            voice_id=voice_id,
            reference_audio=reference_audio,
            output_format=output_format,
            speed=speed,
            emotion=emotion,
            target_language=target_language,
            similarity_enhance=similarity_enhance,
            duration=duration,
            quality_preset=quality_preset,
            trim_silence=trim_silence,
            save_voice=save_voice,
            content_type=content_type,
        )
        send_chunks, receive_chunks = anyio.create_memory_object_stream[bytes](STREAM_BUFFER_CHUNKS)
        opened = anyio.Event()
        audio = SpeechStream(receive_chunks)

        async def forward(response: aiohttp.ClientResponse) -> bytes:
            if response.content_type == "application/json":
                return await _read_envelope(response)
            audio._headers = response.headers
            opened.set()
            async for chunk in response.content.iter_any():
                await send_chunks.send(chunk)
            return b""

        async def run() -> None:
            with send_chunks:
                try:
                    await self._speak(body, forward)
                except Exception as exc:  # handed to the reader, never to the task group
                    audio._failure = exc
                finally:
                    opened.set()

        caller_error: BaseException | None = None
        with receive_chunks:
            async with anyio.create_task_group() as group:
                group.start_soon(run)
                try:
                    await opened.wait()
                    if audio._failure is None:
                        try:
                            yield audio
                        except BaseException as exc:  # the caller's own, re-raised below
                            caller_error = exc
                finally:
                    group.cancel_scope.cancel()
        # Raised out here, never from inside the task group (which would wrap it).
        if caller_error is not None:
            raise caller_error
        if audio._failure is not None and not audio._failure_seen:
            raise audio._failure

    async def transcribe(
        self,
        file: UploadSource,
        *,
        language: str | None = None,
        content_type: str | None = None,
    ) -> Transcript:
        """The words spoken in ``file`` (bytes, a path streamed from disk, or a binary file
        object: mp3, wav, m4a, ogg, flac, aac or webm, at most 50 MiB, checked before
        sending), with their times. ``language`` (e.g. ``"en"``) skips detection.
        Noiz API: POST /speech-to-text (https://developers.noiz.ai)"""
        upload = form_file(
            "file", file, content_type, TRANSCRIBE_TYPE_BY_EXTENSION, TRANSCRIBE_TYPES
        )
        if upload.size is not None and upload.size > MAX_TRANSCRIBE_BYTES:
            raise ValidationError(
                "file", f"must be at most 50 MiB (got {upload.size / 1024 / 1024:.1f} MiB)"
            )
        fields = present({"language": _validation.text("language", language)})
        request = ApiRequest(
            "POST", "/speech-to-text", kind=Kind.UPLOAD, upload=FormUpload(fields, upload)
        )
        transcript: Transcript = await self._call(Transcript, request)
        return transcript

    async def _speak(self, body: FormUpload, sink: Sink) -> Mapping[str, str]:
        """Send a text-to-speech form whose audio ``sink`` consumes; the answer's headers."""
        request = ApiRequest("POST", PATH, kind=Kind.UPLOAD, upload=body, sink=sink)
        reply = await self._send(request)
        if reply.content:
            raise ResponseDecodeError(
                "expected audio, got JSON with no error code", method="POST", path=PATH
            )
        return reply.headers


class SpeechStream:
    """The audio of :meth:`SpeechResource.stream`: an async iterator of chunks as the service
    sends them, with the service's ``duration`` and ``generated_ms`` once it has answered."""

    def __init__(self, chunks: anyio.abc.ObjectReceiveStream[bytes]) -> None:
        self._chunks = chunks
        self._headers: Mapping[str, str] = {}
        self._failure: Exception | None = None
        self._failure_seen = False

    @property
    def duration(self) -> float | None:
        """Seconds of audio, from ``X-Audio-Duration`` (None if the service sent none)."""
        return _seconds(self._headers.get("X-Audio-Duration"))

    @property
    def generated_ms(self) -> int | None:
        """The service's ``X-Timestamp`` (None if it sent none)."""
        return _whole(self._headers.get("X-Timestamp"))

    def __aiter__(self) -> SpeechStream:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._chunks.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            if self._failure is not None:
                self._failure_seen = True
                raise self._failure from None
            raise StopAsyncIteration from None


def _speech_form(
    text: str,
    *,
    stream: bool,
    voice_id: str | None,
    reference_audio: UploadSource | None,
    output_format: OutputFormat | str,
    speed: float | None,
    emotion: Mapping[str, float] | str | None,
    target_language: str | None,
    similarity_enhance: bool | None,
    duration: float | None,
    quality_preset: int | None,
    trim_silence: bool | None,
    save_voice: bool | None,
    content_type: str | None,
) -> FormUpload:
    """The text-to-speech form, every argument checked before anything is sent."""
    if not isinstance(stream, bool):
        raise ValidationError("stream", f"must be True or False (got {stream!r})")
    _validation.text("text", text, required=True, limit=MAX_STREAM_TEXT if stream else MAX_TEXT)
    if voice_id is not None and reference_audio is not None:
        raise ValidationError("voice_id", "give at most one of voice_id and reference_audio")
    fmt = _validation.choice("output_format", output_format, OutputFormat)
    if stream and fmt != OutputFormat.WAV.value:
        raise ValidationError("output_format", "a stream is WAV: use output_format='wav'")
    fields = {
        "text": text,
        "voice_id": _validation.optional_id("voice_id", voice_id),
        "output_format": fmt,
        "speed": None if speed is None else str(_positive("speed", speed)),
        "emo": _emotion(emotion),
        "target_lang": _language(target_language),
        "similarity_enh": _flag("similarity_enhance", similarity_enhance),
        "duration": None if duration is None else str(_positive("duration", duration)),
        "quality_preset": _preset(quality_preset),
        "trim_silence": _flag("trim_silence", trim_silence),
        "save_voice": _flag("save_voice", save_voice),
        "stream": "true" if stream else None,
    }
    upload = None
    if reference_audio is not None:
        upload = audio_upload("reference_audio", reference_audio, content_type)
    # The answer is audio (or, for an error, the JSON envelope).
    return FormUpload(present(fields), upload, accept="audio/*, application/json")


def _speech(target: Path, headers: Mapping[str, str]) -> Speech:
    return Speech(
        path=target,
        duration=_seconds(headers.get("X-Audio-Duration")),
        generated_ms=_whole(headers.get("X-Timestamp")),
    )


async def _read_envelope(response: aiohttp.ClientResponse) -> bytes:
    """A JSON answer where audio was expected, read up to MAX_ENVELOPE_BYTES."""
    body = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
        body += chunk
        if len(body) > MAX_ENVELOPE_BYTES:
            raise ResponseDecodeError(
                f"a JSON answer over {MAX_ENVELOPE_BYTES} bytes where audio was expected",
                method="POST",
                path=PATH,
            )
    return bytes(body)


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(name, f"must be a number (got {value!r})")
    if not (value > 0 and math.isfinite(value)):
        raise ValidationError(name, f"must be a positive number (got {value!r})")
    return float(value)


def _flag(name: str, value: bool | None) -> str | None:
    """A boolean form field: ``true``/``false``, or left out for None."""
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ValidationError(name, f"must be True, False or None (got {value!r})")
    return "true" if value else "false"


def _preset(value: int | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError("quality_preset", f"must be a whole number, 0 or more ({value!r})")
    return str(value)


def _language(value: str | None) -> str | None:
    return _validation.text("target_language", value, required=value is not None)


def _emotion(value: Mapping[str, float] | str | None) -> str | None:
    """The ``emo`` field: a JSON object of emotion weights, given as a mapping or as text."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValidationError("emotion", 'must be a JSON object, e.g. {"Joy": 0.5}') from None
    if not isinstance(value, Mapping) or not all(
        isinstance(name, str)
        and isinstance(weight, (int, float))
        and not isinstance(weight, bool)
        and math.isfinite(weight)
        for name, weight in value.items()
    ):
        raise ValidationError("emotion", 'must map emotion names to numbers, e.g. {"Joy": 0.5}')
    return json.dumps(dict(value))


def _seconds(header: str | None) -> float | None:
    try:
        value = float(header) if header else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _whole(header: str | None) -> int | None:
    try:
        return int(header.strip()) if header else None
    except ValueError:
        return None
