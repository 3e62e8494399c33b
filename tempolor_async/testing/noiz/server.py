"""FakeNoiz: a local HTTP stand-in for Noiz AI's voice API as published (voices, text to
speech, emotion enhancement, voice design, speech to text), on the simulators' shared server
core.

Every JSON answer is Noiz's envelope ``{"code", "message", "data"}``; an error carries its
code in the envelope as well as in the HTTP status. The key is accepted only bare in
``Authorization``: a ``Bearer`` prefix is refused with 401, as the service does. Request
bodies may be ``multipart/form-data`` or, without a file, ``application/x-www-form-urlencoded``
(as Noiz's own scripts send them); times are epoch seconds.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import hashlib
import io
import json
import math
import re
import wave
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from .._server import (
    Call,
    FakeServer,
    FormPart,
    Reply,
    content_type_of,
    json_object,
    json_response,
    multipart_parts,
)
from . import audio
from .state import DEFAULT_VOICE_ID, FakeVoice, built_in_catalogue, new_voice_id, wall_ms

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
TRANSCRIBE_TYPES = ("mp3", "wav", "m4a", "ogg", "flac", "aac", "webm")
MAX_TEXT = 5000
MAX_STREAM_TEXT = 50_000
MAX_TRANSCRIBE_BYTES = 50 * 1024 * 1024
DESCRIPTION_LENGTH = (20, 1000)
DESIGN_TEXT = "Hello! This is how I sound. I hope you like my voice."


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
        credits: int | None = None,
    ) -> None:
        super().__init__(host=host, port=port)
        self.api_key = api_key
        self.max_page_size = max_page_size
        #: Characters of text it will still synthesize (None: unlimited); then 402.
        self.credits = credits
        self.voices: dict[str, FakeVoice] = {v.voice_id: v for v in built_in_catalogue()}
        self.speech_count = 0
        self.transcripts = audio.Transcripts()
        self._designs: set[str] = set()
        self._stream_cuts: dict[int, int] = {}
        self._routes = [
            ("GET", re.compile(r"^/voices/?$"), self._list_voices),
            ("POST", re.compile(r"^/voices/?$"), self._clone_voice),
            ("GET", re.compile(r"^/voices/(?P<voice_id>[^/]+)/?$"), self._get_voice),
            ("DELETE", re.compile(r"^/voices/(?P<voice_id>[^/]+)/?$"), self._delete_voice),
            ("POST", re.compile(r"^/text-to-speech/?$"), self._text_to_speech),
            ("POST", re.compile(r"^/emotion-enhance/?$"), self._emotion_enhance),
            ("POST", re.compile(r"^/voice-design/?$"), self._voice_design),
            ("POST", re.compile(r"^/speech-to-text/?$"), self._speech_to_text),
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
            "delete_time": voice.delete_ms // 1000,
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

    async def _text_to_speech(self, call: Call) -> web.StreamResponse:
        parts = _form(call)
        stream = _flag(parts, "stream")
        text = _field(parts, "text") or ""
        if not text.strip():
            raise Reply(400, "text is required")
        limit = MAX_STREAM_TEXT if stream else MAX_TEXT
        if len(text) > limit:
            raise Reply(400, f"text is too long (maximum {limit} characters)")
        voice_id = _field(parts, "voice_id") or None
        reference = parts.get("file")
        if voice_id is not None and reference is not None:
            raise Reply(400, "Provide voice_id or a reference audio file, not both")
        if reference is not None:
            if not reference.data:
                raise Reply(400, "The audio file is empty")
            _kind_of_upload(reference)
        else:
            self._voice(voice_id or DEFAULT_VOICE_ID)
        output_format = _field(parts, "output_format") or "wav"
        if output_format not in SPEECH_TYPES:
            raise Reply(400, "output_format must be wav or mp3")
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
        seconds = _number(_field(parts, "duration") or "0", "duration")
        if seconds < 0:
            raise Reply(400, "duration must be 0 (natural) or a number of seconds")
        quality = _field(parts, "quality_preset")
        if quality is not None:
            _whole(quality, "quality_preset", 0)
        for name in ("similarity_enh", "trim_silence", "save_voice"):
            _flag(parts, name)
        if stream and output_format != "wav":
            raise Reply(400, "stream=true produces wav only")
        if self.credits is not None:
            if len(text) > self.credits:
                raise Reply(402, "Insufficient credits")
            self.credits -= len(text)
        seconds = seconds or audio.natural_seconds(text, speed)
        if reference is not None and _flag(parts, "save_voice"):
            self._save_reference(reference, _field(parts, "target_lang") or "en")
        seed = f"{voice_id or 'reference'}:{text}"
        self.speech_count += 1
        headers = {
            "X-Audio-Duration": f"{seconds:.3f}",
            "X-Timestamp": str(wall_ms()),
        }
        if stream:
            return await self._stream_speech(call.request, seed, text, seconds, headers)
        wav = output_format == "wav"
        body = audio.wav(seed, seconds) if wav else audio.mp3(text[:60], seconds)
        self.transcripts.remember(hashlib.sha256(body).digest(), text)
        return web.Response(body=body, content_type=SPEECH_TYPES[output_format], headers=headers)

    async def _stream_speech(
        self, request: web.Request, seed: str, text: str, seconds: float, headers: dict[str, str]
    ) -> web.StreamResponse:
        """A chunked WAV: each sentence is sent as soon as it is made."""
        pieces = list(audio.wav_pieces(seed, text, seconds)) if self._cut(request) else None
        response = web.StreamResponse(headers=headers)
        response.content_type = "audio/wav"
        response.enable_chunked_encoding()
        await response.prepare(request)
        digest = hashlib.sha256()
        try:
            if pieces is not None:  # an injected truncation: half the stream, then cut
                for piece in pieces[: max(1, len(pieces) // 2)]:
                    await response.write(piece)
                if request.transport is not None:
                    request.transport.close()
                return response
            for piece in audio.wav_pieces(seed, text, seconds):
                digest.update(piece)
                await response.write(piece)
                await asyncio.sleep(0)
            await response.write_eof()
        except ConnectionError:
            return response  # the client went away mid-stream
        self.transcripts.remember(digest.digest(), text)
        return response

    def _cut(self, request: web.Request) -> bool:
        """Whether an injected ``truncate`` fault struck this stream. The shared core cuts a
        whole answer after it is made; a stream must be cut while it is sent."""
        path = request.path[len(self.api_path) :]
        for fault in self.faults:
            if fault.truncate and fault.method in ("*", "POST") and fault.hits:
                if not fnmatch.fnmatchcase(path, fault.path):
                    continue
                if fault.hits > self._stream_cuts.get(id(fault), 0):
                    self._stream_cuts[id(fault)] = fault.hits
                    return True
        return False

    def _save_reference(self, reference: FormPart, language: str) -> None:
        kind = _kind_of_upload(reference)
        voice = FakeVoice(
            voice_id=new_voice_id(),
            display_name=(reference.filename or "Saved voice").rsplit(".", 1)[0],
            voice_type="custom",
            labels=f"saved, {language}, {kind}",
            description="A voice saved from a text-to-speech reference",
            language=language,
            create_ms=wall_ms(),
            sample_seconds=_audio_seconds(reference.data, kind),
            sample=reference.data,
        )
        self.voices[voice.voice_id] = voice

    # ------------------------------------------- emotion, design, transcription

    async def _emotion_enhance(self, call: Call) -> web.Response:
        if content_type_of(call.request) == "application/json":
            text = json_object(call.body).get("text")
        else:
            text = _field(_form(call), "text")
        if not isinstance(text, str) or not text.strip():
            raise Reply(400, "text is required")
        if len(text) > MAX_TEXT:
            raise Reply(400, f"text is too long (maximum {MAX_TEXT} characters)")
        return _success({"emotion_enhance": _annotate(text)})

    async def _voice_design(self, call: Call) -> web.Response:
        parts = _form(call)
        description = _field(parts, "voice_description")
        picture = parts.get("picture")
        if description is None and picture is None:
            raise Reply(400, "Provide voice_description or picture")
        if description is not None:
            low, high = DESCRIPTION_LENGTH
            if not low <= len(description.strip()) <= high:
                raise Reply(400, f"voice_description must be {low} to {high} characters")
        if picture is not None and not picture.data:
            raise Reply(400, "The picture is empty")
        guidance = _field(parts, "guidance_scale")
        if guidance is not None and not 0 <= _number(guidance, "guidance_scale") <= 100:
            raise Reply(400, "guidance_scale must be from 0 to 100")
        loudness = _field(parts, "loudness")
        if loudness is not None and not -1 <= _number(loudness, "loudness") <= 1:
            raise Reply(400, "loudness must be from -1 to 1")
        key = hashlib.sha256(
            (description or "").encode() + (picture.data if picture else b"")
        ).hexdigest()
        from_cache = key in self._designs
        self._designs.add(key)
        prompt = description or "A voice that suits the person in the picture"
        features = _features(prompt)
        previews = []
        for index in range(2):
            voice_id = new_voice_id()
            sound = audio.wav(f"{key}:{index}", 2.0)
            self.transcripts.remember(hashlib.sha256(sound).digest(), DESIGN_TEXT)
            self.voices[voice_id] = FakeVoice(
                voice_id=voice_id,
                display_name=f"{features['display_name']} {index + 1}",
                voice_type="preview",
                labels="designed",
                description=prompt,
                language="en",
                create_ms=wall_ms(),
                sample_seconds=2.0,
                sample=sound,
            )
            previews.append({"voice_id": voice_id, "audio": base64.b64encode(sound).decode()})
        data = {
            "previews": previews,
            "text": DESIGN_TEXT,
            "from_cache": from_cache,
            "features": features,
        }
        return _success(data)

    async def _speech_to_text(self, call: Call) -> web.Response:
        parts = _form(call)
        upload = parts.get("file")
        if upload is None or upload.filename is None:
            raise Reply(400, "file is required")
        if not upload.data:
            raise Reply(400, "The audio file is empty")
        if len(upload.data) > MAX_TRANSCRIBE_BYTES:
            raise Reply(400, "The audio file is larger than 50 MB")
        kind = _kind_of_name(upload.filename, TRANSCRIBE_TYPES) or _sniff(upload.data)
        if kind is None:
            raise Reply(400, "Supported audio: " + ", ".join(TRANSCRIBE_TYPES))
        said = self.transcripts.recall(upload.data)
        text = said if said is not None else audio.placeholder_transcript(upload.data)
        seconds = _wav_seconds(upload.data) or audio.natural_seconds(text, 1.0)
        return _success(
            {
                "language": _field(parts, "language") or "en",
                "transcript": text,
                "duration": round(seconds, 3),
                "segments": _segments(text, seconds),
            }
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
    """The fields of a multipart or urlencoded body (the service takes both; a file needs
    multipart)."""
    kind = content_type_of(call.request)
    if kind == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(call.body.decode(), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise Reply(400, "The form body is not UTF-8") from None
        return {name: FormPart(name, None, "text/plain", value.encode()) for name, value in pairs}
    if kind != "multipart/form-data":
        raise Reply(400, "The request must be multipart/form-data or urlencoded")
    return {
        part.name: part for part in multipart_parts(call.request.headers["Content-Type"], call.body)
    }


def _flag(parts: dict[str, FormPart], name: str) -> bool:
    value = (_field(parts, name) or "false").strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise Reply(400, f"{name} must be true or false")
    return value in ("true", "1")


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


def _kind_of_name(name: str | None, allowed: tuple[str, ...] = tuple(SAMPLE_TYPES)) -> str | None:
    extension = (name or "").rpartition(".")[2].lower()
    return extension if extension in allowed else None


def _sniff(data: bytes) -> str | None:
    """The audio type by its first bytes, for a file sent as application/octet-stream."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:3] == b"ID3" or data[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "mp3"
    if data[4:8] == b"ftyp":
        return "m4a"
    return None


def _kind_of_upload(part: FormPart) -> str:
    kind = (
        SAMPLE_CONTENT_TYPES.get(part.content_type)
        or _kind_of_name(part.filename)
        or _sniff(part.data)
    )
    if kind is None:
        raise Reply(400, "Only WAV, MP3 and M4A audio is supported")
    return kind


def _wav_seconds(data: bytes) -> float | None:
    try:
        with wave.open(io.BytesIO(data)) as reader:
            return float(reader.getnframes()) / float(reader.getframerate())
    except (wave.Error, EOFError, ZeroDivisionError):
        return None


def _segments(text: str, seconds: float) -> list[dict[str, Any]]:
    """The transcript by sentence, each given its share of the time by its length."""
    sentences = [s.strip() for s in re.findall(r"[^.!?]+[.!?]*", text) if s.strip()] or [text]
    total = sum(len(sentence) for sentence in sentences) or 1
    segments, start = [], 0.0
    for sentence in sentences:
        end = start + seconds * len(sentence) / total
        segments.append(
            {"text": sentence, "start": round(start, 3), "end": round(end, 3), "spk": 0}
        )
        start = end
    return segments


def _annotate(text: str) -> str:
    """Emotion tags before each sentence, chosen by its punctuation."""
    tagged = []
    for sentence in re.findall(r"[^.!?]+[.!?]*\s*", text) or [text]:
        end = sentence.rstrip()[-1:]
        emotion = {"!": "Joy", "?": "Surprise"}.get(end, "Neutral")
        tagged.append(f"<{emotion}>{sentence}")
    return "".join(tagged)


def _features(prompt: str) -> dict[str, Any]:
    words = set(re.findall(r"[a-z]+", prompt.lower()))
    if words & {"woman", "female", "girl", "she", "her", "lady"}:
        gender = "female"
    elif words & {"man", "male", "boy", "he", "his", "guy"}:
        gender = "male"
    else:
        gender = "neutral"
    age = (
        "young"
        if words & {"young", "child", "kid", "teen"}
        else ("old" if words & {"old", "elderly", "aged"} else "adult")
    )
    return {
        "gender": gender,
        "age": age,
        "language": "en",
        "voice_prompt": prompt,
        "display_name": f"Designed {gender} voice",
    }


def _audio_seconds(data: bytes, kind: str) -> float:
    """A WAV's own length; for other formats a plausible one."""
    if kind == "wav":
        try:
            with wave.open(io.BytesIO(data)) as reader:
                return float(reader.getnframes()) / float(reader.getframerate())
        except (wave.Error, EOFError, ZeroDivisionError):
            raise Reply(400, "The WAV file cannot be read") from None
    return 8.0
