"""Typed records of the Noiz voice API.

As for TemPolor's models, every attribute is optional (None when absent), types are checked
strictly, and each record keeps the JSON object it came from as ``.raw``. Noiz's keys are
snake_case, like the attribute names. The fields come from the service's documentation and
its own public scripts.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

import attrs

from .._models import _field, _raw


class VoiceType(str, Enum):
    """Which voices ``voices.list`` shows: your own clones, or the service's catalogue."""

    CUSTOM = "custom"
    BUILT_IN = "built-in"


@attrs.frozen(slots=False)
class Voice:
    """A voice: GET /voices and GET /voices/{voice_id}."""

    __json_names__ = "snake_case"

    id: int | None = None
    voice_id: str | None = None
    display_name: str | None = None
    voice_type: str | None = None
    labels: str | None = None
    sample: str | None = None
    meta: dict[str, Any] | None = None
    url: str | None = None
    create_time: datetime | None = None
    raw: dict[str, Any] = _raw()


@attrs.frozen(slots=False)
class VoiceClone:
    """The answer to POST /voices: the new voice and the part of the sample it was made from."""

    __json_names__ = "snake_case"

    voice_id: str | None = None
    voice_display_name: str | None = None
    duration: float | None = None
    selected_text: str | None = None
    selected_start: float | None = None
    selected_end: float | None = None
    text: str | None = None
    language: str | None = None
    raw: dict[str, Any] = _raw()


@attrs.frozen(slots=False)
class DeletedVoice:
    """The answer to DELETE /voices/{voice_id}: a soft delete, stamped with its time."""

    __json_names__ = "snake_case"

    voice_id: str | None = None
    display_name: str | None = None
    delete_time: datetime | None = None
    raw: dict[str, Any] = _raw()


@attrs.frozen(slots=False)
class VoicePage:
    """The ``data`` of GET /voices: one page and the count of every match."""

    __json_names__ = "snake_case"

    voices: list[Voice] | None = None
    total_count: int | None = None
    raw: dict[str, Any] = _raw()


class OutputFormat(str, Enum):
    """The audio formats text-to-speech answers with."""

    WAV = "wav"
    MP3 = "mp3"


@attrs.frozen
class Speech:
    """Audio written by ``speech.synthesize``: where, how long it plays (the service's
    ``X-Audio-Duration`` header, in seconds) and ``generated_ms``, the number the service
    puts in ``X-Timestamp`` (documented as the generation time in milliseconds); either is
    None when the service sent none."""

    path: Path
    duration: float | None
    generated_ms: int | None = None


@attrs.frozen(slots=False)
class VoiceFeatures:
    """What voice design made of a description or a picture."""

    __json_names__ = "snake_case"

    gender: str | None = None
    age: str | None = None
    language: str | None = None
    voice_prompt: str | None = None
    display_name: str | None = None
    raw: dict[str, Any] = _raw()


@attrs.frozen
class VoicePreview:
    """One designed voice: its id (usable as ``voice_id``) and a WAV of it speaking."""

    voice_id: str | None
    audio: bytes = attrs.field(repr=lambda audio: f"<{len(audio)} bytes>")


@attrs.frozen(slots=False)
class VoiceDesign:
    """The answer to POST /voice-design: preview voices, the text they say, whether the
    service answered from its cache, and the features it read from the input."""

    __json_names__ = "snake_case"

    previews: list[VoicePreview] = attrs.field(factory=list)
    text: str | None = None
    from_cache: bool | None = None
    features: VoiceFeatures | None = None
    raw: dict[str, Any] = _raw()


@attrs.frozen(slots=False)
class DesignData:
    """The ``data`` of POST /voice-design as JSON; previews' audio is still base64 text."""

    __json_names__ = "snake_case"

    previews: list[dict[str, Any]] | None = None
    text: str | None = None
    from_cache: bool | None = None
    features: VoiceFeatures | None = None
    raw: dict[str, Any] = _raw()


@attrs.frozen(slots=False)
class TranscriptSegment:
    """A stretch of a transcript: its text, start and end in seconds, and who spoke."""

    __json_names__ = "snake_case"

    text: str | None = None
    start: float | None = None
    end: float | None = None
    speaker: int | None = _field("spk")
    raw: dict[str, Any] = _raw()


@attrs.frozen(slots=False)
class Transcript:
    """The answer to POST /speech-to-text."""

    __json_names__ = "snake_case"

    language: str | None = None
    transcript: str | None = None
    duration: float | None = None
    segments: list[TranscriptSegment] | None = None
    raw: dict[str, Any] = _raw()
