"""Noiz text-to-speech: the answer is the audio itself, streamed to disk.
Noiz API: POST /text-to-speech (https://noiz.ai)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping

import aiohttp
import anyio.lowlevel

from .. import _files, _validation
from .._errors import ResponseDecodeError, ValidationError
from .._files import CHUNK_BYTES, AtomicFile, FormUpload, UploadSource
from .._protocol import ApiRequest, Kind
from ._base import NoizResource
from ._models import OutputFormat, Speech
from .voices import audio_upload, flag, present

MAX_TEXT = 5000
MAX_DURATION_SECONDS = 36.0
MAX_ENVELOPE_BYTES = 1024 * 1024
PATH = "/text-to-speech"


class SpeechResource(NoizResource):
    async def synthesize(
        self,
        text: str,
        dest: str | os.PathLike[str],
        *,
        voice_id: str | None = None,
        reference_audio: UploadSource | None = None,
        output_format: OutputFormat | str = OutputFormat.WAV,
        speed: float = 1.0,
        emotion: Mapping[str, float] | None = None,
        target_language: str | None = None,
        similarity_enhance: bool = False,
        duration: float | None = None,
        content_type: str | None = None,
    ) -> Speech:
        """Speak ``text`` (at most 5,000 characters) with a voice (``voice_id``) or a sample
        to imitate (``reference_audio``: bytes, a path or a binary file object), exactly
        one, and write the audio to ``dest`` (a file, or a folder for ``speech.<format>``)
        atomically. ``emotion`` maps emotions to weights (``{"Joy": 0.5}``); ``duration``
        asks for that many seconds, more than 0 and at most 36. Sent once: a synthesis may
        cost credits, so it is retried only when nothing reached the service.
        Noiz API: POST /text-to-speech (https://noiz.ai)"""
        _validation.text("text", text, required=True, limit=MAX_TEXT)
        if (voice_id is None) == (reference_audio is None):
            raise ValidationError("voice_id", "give exactly one of voice_id and reference_audio")
        fmt = _validation.choice("output_format", output_format, OutputFormat)
        fields = {
            "text": text,
            "voice_id": _validation.optional_id("voice_id", voice_id),
            "output_format": fmt,
            "speed": str(_positive("speed", speed)),
            "emo": _emotion(emotion),
            "target_lang": _validation.text("target_language", target_language),
            "similarity_enh": flag("similarity_enhance", similarity_enhance),
            "duration": None if duration is None else str(_duration(duration)),
        }
        upload = None
        if reference_audio is not None:
            upload = audio_upload("reference_audio", reference_audio, content_type)
        target = _files.check_destination(dest, f"speech.{fmt}")
        # The answer is audio (or, for an error, the JSON envelope).
        body = FormUpload(present(fields), upload, accept="audio/*, application/json")

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

        request = ApiRequest("POST", PATH, kind=Kind.UPLOAD, upload=body, sink=write_audio)
        reply = await self._send(request)
        if reply.content:
            raise ResponseDecodeError(
                "expected audio, got JSON with no error code", method="POST", path=request.path
            )
        return Speech(path=target, duration=_seconds(reply.headers.get("X-Audio-Duration")))


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


def _duration(value: float) -> float:
    seconds = _positive("duration", value)
    if seconds > MAX_DURATION_SECONDS:
        raise ValidationError(
            "duration", f"must be more than 0 and at most 36 seconds (got {value!r})"
        )
    return seconds


def _emotion(value: Mapping[str, float] | None) -> str | None:
    """The ``emo`` field: a JSON object of emotion weights."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(name, str) and isinstance(weight, (int, float)) and not isinstance(weight, bool)
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
