"""The Noiz simulator's world: the built-in catalogue and cloned voices, as data.

Times are kept in epoch milliseconds and shown in epoch seconds, as the service shows them
(``"delete_time": 1738664823``).
"""

from __future__ import annotations

import itertools
import secrets
import time
import zlib
from dataclasses import dataclass
from typing import Any

_ids = itertools.count(1001)


def wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class FakeVoice:
    """A voice. A custom one is soft-deleted by setting ``delete_ms``."""

    voice_id: str
    display_name: str
    voice_type: str  # "custom" or "built-in"
    labels: str
    description: str
    language: str
    create_ms: int
    sample_seconds: float = 8.0
    sample: bytes = b""
    source_url: str | None = None
    delete_ms: int | None = None
    id: int = 0

    def __post_init__(self) -> None:
        self.id = self.id or next(_ids)

    def matches(self, keyword: str) -> bool:
        """The service searches a voice's name, description and labels."""
        needle = keyword.casefold()
        return any(
            needle in text.casefold() for text in (self.display_name, self.description, self.labels)
        )

    def render(self, origin: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "voice_id": self.voice_id,
            "display_name": self.display_name,
            "voice_type": self.voice_type,
            "labels": self.labels,
            "description": self.description,
            "sample": f"{origin}/samples/{self.voice_id}.wav",
            "meta": {"text": f"A sample of {self.display_name} speaking."},
            "url": self.source_url or f"{origin}/samples/{self.voice_id}.wav",
            "create_time": self.create_ms // 1000,
        }


def new_voice_id() -> str:
    """A voice id as the service writes them: 8 hexadecimal characters."""
    return secrets.token_hex(4)


# The published ids of the service's default voices, by display name here.
PUBLISHED_IDS = {
    "Aria": "95814add",  # the English default
    "Bruno": "dde1b9b5",
    "Chen Jing": "3b9f1e27",  # the Chinese default
    "Hiro": "063a4491",  # the Japanese default
}
DEFAULT_VOICE_ID = PUBLISHED_IDS["Aria"]


def _catalogue_id(name: str) -> str:
    return PUBLISHED_IDS.get(name) or f"{zlib.crc32(name.encode()):08x}"


# (name, labels, description, language)
_CATALOGUE = (
    ("Aria", "female, warm, narration", "A calm storyteller for audiobooks", "en"),
    ("Bruno", "male, deep, trailer", "A booming voice for film trailers", "en"),
    ("Chen Jing", "female, bright, news", "A clear newsreader", "zh"),
    ("Dmitri", "male, gravelly, character", "A weathered sea captain", "en"),
    ("Elodie", "female, soft, asmr", "A whispering, close-up voice", "fr"),
    ("Farid", "male, friendly, podcast", "An upbeat podcast host", "en"),
    ("Greta", "female, crisp, assistant", "A precise voice assistant", "de"),
    ("Hiro", "male, youthful, anime", "An energetic young hero", "ja"),
    ("Isabel", "female, warm, teacher", "A patient language teacher", "es"),
    ("Jonas", "male, calm, meditation", "A slow, soothing guide", "en"),
    ("Kavya", "female, cheerful, commercial", "A bright voice for adverts", "en"),
    ("Lars", "male, neutral, documentary", "A steady documentary narrator", "en"),
)


def built_in_catalogue() -> list[FakeVoice]:
    created = 1_735_689_600_000  # 2025-01-01 UTC
    return [
        FakeVoice(
            voice_id=_catalogue_id(name),
            display_name=name,
            voice_type="built-in",
            labels=labels,
            description=description,
            language=language,
            create_ms=created + index * 86_400_000,
            id=index + 1,
        )
        for index, (name, labels, description, language) in enumerate(_CATALOGUE)
    ]
