"""FakeNoiz: a local HTTP stand-in for Noiz AI's voice API (``/v1/voices``,
``/v1/text-to-speech``), on the simulators' shared server core.

Every answer is Noiz's envelope ``{"code", "message", "data"}``; an error carries its code in
the envelope as well as in the HTTP status. The key is accepted only bare in
``Authorization``: a ``Bearer`` prefix is refused with 401, as the service does.
"""

from __future__ import annotations

import io
import json
import math
import re
import wave
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from .. import _media
from .._server import (
    Call,
    FakeServer,
    FormPart,
    Reply,
    content_type_of,
    json_response,
    multipart_parts,
)
from .state import FakeVoice, built_in_catalogue, new_voice_id, wall_ms

if TYPE_CHECKING:
    from ...noiz import NoizClient

API_PATH = "/v1"
SAMPLE_TYPES = {"wav": "wav", "mp3": "mp3", "m4a": "m4a"}
SAMPLE_CONTENT_TYPES = {
    "audio/wav": "wav",
    "audio/wave": "wav",
    "audio/x-wav": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
}
SPEECH_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}
MAX_TEXT = 5000
MAX_DURATION = 36.0
SECONDS_PER_CHARACTER = 0.06


class FakeNoiz(FakeServer):
    """A local Noiz voice service on 127.0.0.1, for tests, demos and benchmarks.

    >>> async with FakeNoiz() as fake:
    ...     async with fake.client() as noiz:
    ...         voices = await noiz.voices.list(voice_type="built-in").to_list()
    """

    api_path = API_PATH
    service_name = "Noiz"

    def __init__(
        self,
        api_key: str = "fake-noiz-key",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_page_size: int = 100,
    ) -> None:
        super().__init__(host=host, port=port)
        self.api_key = api_key
        self.max_page_size = max_page_size
        self.voices: dict[str, FakeVoice] = {v.voice_id: v for v in built_in_catalogue()}
        self.speech_count = 0
        self._routes = [
            ("GET", re.compile(r"^/voices/?$"), self._list_voices),
            ("POST", re.compile(r"^/voices/?$"), self._clone_voice),
            ("GET", re.compile(r"^/voices/(?P<voice_id>[^/]+)/?$"), self._get_voice),
            ("DELETE", re.compile(r"^/voices/(?P<voice_id>[^/]+)/?$"), self._delete_voice),
            ("POST", re.compile(r"^/text-to-speech/?$"), self._text_to_speech),
        ]

    def client(self, **options: Any) -> NoizClient:
        """A :class:`~tempolor_async.noiz.NoizClient` pointed at this simulator, with its key;
        ``options`` are passed on (e.g. ``max_retries=0``)."""
        from ...noiz import NoizClient

        options.setdefault("api_key", self.api_key)
        options.setdefault("base_url", self.base_url)
        return NoizClient(**options)

    def custom_voices(self, *, deleted: bool = False) -> list[FakeVoice]:
        """The cloned voices, without (or with) the soft-deleted ones."""
        return [
            voice
            for voice in self.voices.values()
            if voice.voice_type == "custom" and (deleted or voice.delete_ms is None)
        ]

    # ------------------------------------------------------------ the service's own

    def _authorize(self, request: web.Request) -> None:
        given = request.headers.get("Authorization", "")
        if given.lower().startswith("bearer "):
            raise Reply(401, "Unauthorized: send the API key itself, without 'Bearer'")
        if given != self.api_key:
            raise Reply(401, "Unauthorized: invalid API key")

    def _error_response(self, reply: Reply) -> web.Response:
        return json_response(
            reply.status, {"code": reply.status, "message": reply.error, "data": None}
        )

    # ------------------------------------------------------------------ voices

    async def _list_voices(self, call: Call) -> web.Response:
        voice_type = call.query.get("voice_type", "custom")
        if voice_type not in ("custom", "built-in"):
            raise Reply(400, "voice_type must be 'custom' or 'built-in'")
        skip = _whole(call.query.get("skip", "0"), "skip", 0)
        limit = _whole(call.query.get("limit", "10"), "limit", 1)
        limit = min(limit, self.max_page_size)
        keyword = call.query.get("keyword", "").strip()
        found = [
            voice
            for voice in self.voices.values()
            if voice.voice_type == voice_type
            and voice.delete_ms is None
            and (not keyword or voice.matches(keyword))
        ]
        if voice_type == "custom":
            found.sort(key=lambda voice: -voice.create_ms)
        page = found[skip * limit : (skip + 1) * limit]
        data = {"voices": [voice.render(self.origin) for voice in page], "total_count": len(found)}
        return _success(data)

    async def _get_voice(self, call: Call) -> web.Response:
        return _success(self._voice(call.match["voice_id"]).render(self.origin))

    async def _delete_voice(self, call: Call) -> web.Response:
        voice = self._voice(call.match["voice_id"])
        if voice.voice_type != "custom":
            raise Reply(403, "Built-in voices cannot be deleted")
        voice.delete_ms = wall_ms()
        data = {
            "voice_id": voice.voice_id,
            "display_name": voice.display_name,
            "delete_time": voice.delete_ms,
        }
        return _success(data)

    async def _clone_voice(self, call: Call) -> web.Response:
        parts = _form(call)
        upload = parts.get("file")
        url = _field(parts, "voice_url")
        if (upload is None) == (url is None):
            raise Reply(400, "Provide either file or voice_url, exactly one")
        if url is not None:
            parsed = urlsplit(url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise Reply(400, "voice_url must be an http(s) URL")
            sample, kind, seconds = b"", _kind_of_name(parsed.path) or "mp3", 8.0
            default_name = parsed.path.rstrip("/").rpartition("/")[2] or "Cloned voice"
        else:
            assert upload is not None
            kind = _kind_of_upload(upload)
            if not upload.data:
                raise Reply(400, "The audio file is empty")
            sample, seconds = upload.data, _audio_seconds(upload.data, kind)
            default_name = upload.filename or "Cloned voice"
        denoise = _field(parts, "denoise")
        if denoise not in (None, "true", "false"):
            raise Reply(400, "denoise must be true or false")
        language = _field(parts, "language") or "en"
        voice = FakeVoice(
            voice_id=new_voice_id(),
            display_name=_field(parts, "display_name") or default_name.rsplit(".", 1)[0],
            voice_type="custom",
            labels=f"cloned, {language}, {kind}",
            description="A voice cloned from " + (url or "an uploaded sample"),
            language=language,
            create_ms=wall_ms(),
            sample_seconds=seconds,
            sample=sample,
            source_url=url,
        )
        self.voices[voice.voice_id] = voice
        selected = min(seconds, 10.0)
        text = "The quick brown fox jumps over the lazy dog."
        data = {
            "voice_id": voice.voice_id,
            "voice_display_name": voice.display_name,
            "duration": round(seconds, 3),
            "selected_text": text,
            "selected_start": 0.0,
            "selected_end": round(selected, 3),
            "text": text,
            "language": language,
        }
        return _success(data)

    # ----------------------------------------------------------- text to speech

    async def _text_to_speech(self, call: Call) -> web.Response:
        parts = _form(call)
        text = _field(parts, "text") or ""
        if not text.strip():
            raise Reply(400, "text is required")
        if len(text) > MAX_TEXT:
            raise Reply(400, f"text is too long (maximum {MAX_TEXT} characters)")
        voice_id = _field(parts, "voice_id")
        reference = parts.get("file")
        if voice_id is None and reference is None:
            raise Reply(400, "Provide voice_id or a reference audio file")
        if voice_id is not None:
            self._voice(voice_id)
        elif reference is not None:
            _kind_of_upload(reference)
        output_format = _field(parts, "output_format") or "wav"
        if output_format == "opus":
            raise Reply(400, "output_format opus is not produced by this simulator")
        if output_format not in SPEECH_TYPES:
            raise Reply(400, "output_format must be wav, mp3 or opus")
        speed = _number(_field(parts, "speed") or "1.0", "speed")
        if not 0 < speed <= 4:
            raise Reply(400, "speed must be more than 0 and at most 4")
        emo = _field(parts, "emo")
        if emo is not None:
            try:
                emotions = json.loads(emo)
            except ValueError:
                emotions = None
            if not isinstance(emotions, dict):
                raise Reply(400, "emo must be a JSON object")
        duration_field = _field(parts, "duration")
        if duration_field is not None:
            seconds = _number(duration_field, "duration")
            if not 0 < seconds <= MAX_DURATION:
                raise Reply(400, f"duration must be more than 0 and at most {MAX_DURATION:g}")
        else:
            seconds = max(0.5, len(text) * SECONDS_PER_CHARACTER / speed)
        seed = f"{voice_id or 'reference'}:{text}"
        audio = (
            _media.wav_bytes(seed, seconds)
            if output_format == "wav"
            else _media.mp3_bytes(text[:60], seconds)
        )
        self.speech_count += 1
        return web.Response(
            body=audio,
            content_type=SPEECH_TYPES[output_format],
            headers={"X-Audio-Duration": f"{seconds:.3f}"},
        )

    # ------------------------------------------------------------------ helpers

    def _voice(self, voice_id: str) -> FakeVoice:
        voice = self.voices.get(voice_id)
        if voice is None or voice.delete_ms is not None:
            raise Reply(404, f"Voice {voice_id} not found")
        return voice


def _success(data: Any) -> web.Response:
    return json_response(200, {"code": 0, "message": "success", "data": data})


def _form(call: Call) -> dict[str, FormPart]:
    if content_type_of(call.request) != "multipart/form-data":
        raise Reply(400, "The request must be multipart/form-data")
    return {
        part.name: part for part in multipart_parts(call.request.headers["Content-Type"], call.body)
    }


def _field(parts: dict[str, FormPart], name: str) -> str | None:
    part = parts.get(name)
    return None if part is None or part.filename is not None else part.text()


def _whole(text: str, name: str, low: int) -> int:
    if not text.strip().isdigit() or int(text) < low:
        raise Reply(400, f"{name} must be a whole number, at least {low}")
    return int(text)


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise Reply(400, f"{name} must be a number") from None
    if not math.isfinite(value):
        raise Reply(400, f"{name} must be a number")
    return value


def _kind_of_name(name: str | None) -> str | None:
    extension = (name or "").rpartition(".")[2].lower()
    return SAMPLE_TYPES.get(extension)


def _kind_of_upload(part: FormPart) -> str:
    kind = SAMPLE_CONTENT_TYPES.get(part.content_type) or _kind_of_name(part.filename)
    if kind is None:
        raise Reply(400, "Only WAV, MP3 and M4A audio is supported")
    return kind


def _audio_seconds(data: bytes, kind: str) -> float:
    """A WAV's own length; for other formats a plausible one."""
    if kind == "wav":
        try:
            with wave.open(io.BytesIO(data)) as reader:
                return float(reader.getnframes()) / float(reader.getframerate())
        except (wave.Error, EOFError, ZeroDivisionError):
            raise Reply(400, "The WAV file cannot be read") from None
    return 8.0
