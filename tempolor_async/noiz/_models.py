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

from .._models import _raw


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
    OPUS = "opus"


@attrs.frozen
class Speech:
    """Audio written by ``speech.synthesize``: where, and how long it plays (the service's
    ``X-Audio-Duration`` header, in seconds; None if it sent none)."""

    path: Path
    duration: float | None
