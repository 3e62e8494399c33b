"""What a batch is made of: one request per track, checked when built.

``SongRequest`` and ``InstrumentalRequest`` take the keywords of ``create_song`` and
``create_instrumental`` and apply the same documented limits (``_validation``), so a bad
item is refused when the list is built, not halfway through a paid run. ``key`` names the
item in the journal, the file names and the manifest; by default it is a digest of the
parameters, so the same request always lands on the same journal row.
"""

from __future__ import annotations

import hashlib
import json
from enum import Enum
from typing import Any, ClassVar

import attrs

from .. import _validation
from .._errors import ValidationError
from .._models import Tonality

# Longest key accepted: it is also the stem of the file names (see _files.safe_name).
MAX_KEY_LENGTH = 200


def _text(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    _validation.text(attribute.name, value)


def _model(value: Enum | str | None) -> str | None:
    return _validation.model(value)


def _tonality(value: Tonality | str | None) -> str | None:
    return _validation.tonality(value)


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: int | None) -> None:
    _validation.positive_int(attribute.name, value)


def _user_id(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    _validation.optional_id("user_id", value)


def _reply_url(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    _validation.reply_url(value)


def _key(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("key", "must be a non-blank string, or None for a digest")
    if len(value) > MAX_KEY_LENGTH or any(ord(char) < 32 for char in value):
        raise ValidationError(
            "key", f"must be at most {MAX_KEY_LENGTH} characters, with no control characters"
        )


class _Request:
    """What both request kinds share: the wire-independent parameters, their digest, and
    the key the item goes by."""

    __slots__ = ()
    type: ClassVar[str]

    def parameters(self) -> dict[str, Any]:
        """The keywords for the ``create_*`` call, None values left out (key excluded)."""
        values = attrs.asdict(self, recurse=False)  # type: ignore[arg-type]
        values.pop("key")
        return {name: value for name, value in values.items() if value is not None}

    @property
    def digest(self) -> str:
        """SHA-256 of the type and parameters: what the journal compares on resume."""
        canonical = json.dumps(
            {"type": self.type, **self.parameters()},
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def item_key(self) -> str:
        """``key``, or the first 16 hex digits of the digest when no key was given."""
        key: str | None = getattr(self, "key", None)
        return key if key is not None else self.digest[:16]


@attrs.frozen
class SongRequest(_Request):
    """One song of a batch: :meth:`Music.create_song`'s parameters, checked when built.

    https://useapi.net/docs/api-tempolor-v1/post-tempolor-music-song
    """

    type: ClassVar[str] = "song"

    prompt: str = attrs.field()
    key: str | None = attrs.field(default=None, kw_only=True, validator=_key)
    lyrics: str | None = attrs.field(default=None, kw_only=True, validator=_text)
    model: str | None = attrs.field(default=None, kw_only=True, converter=_model)
    artist_voice_item_id: str | None = attrs.field(default=None, kw_only=True, validator=_text)
    cloned_voice_item_id: str | None = attrs.field(default=None, kw_only=True, validator=_text)
    midi_item_id: str | None = attrs.field(default=None, kw_only=True, validator=_text)
    reply_url: str | None = attrs.field(default=None, kw_only=True, validator=_reply_url)
    reply_ref: str | None = attrs.field(default=None, kw_only=True, validator=_text)
    max_jobs: int | None = attrs.field(default=None, kw_only=True, validator=_positive)
    user_id: str | None = attrs.field(default=None, kw_only=True, validator=_user_id)

    @prompt.validator
    def _prompt(self, attribute: attrs.Attribute[str], value: str) -> None:
        _validation.text("prompt", value, required=True)

    def __attrs_post_init__(self) -> None:
        _validation.voice_sources(
            self.artist_voice_item_id, self.cloned_voice_item_id, self.midi_item_id
        )


@attrs.frozen
class InstrumentalRequest(_Request):
    """One instrumental of a batch: :meth:`Music.create_instrumental`'s parameters,
    checked when built.

    https://useapi.net/docs/api-tempolor-v1/post-tempolor-music-instrumental
    """

    type: ClassVar[str] = "instrumental"

    prompt: str = attrs.field()
    key: str | None = attrs.field(default=None, kw_only=True, validator=_key)
    model: str | None = attrs.field(default=None, kw_only=True, converter=_model)
    tonality: str | None = attrs.field(default=None, kw_only=True, converter=_tonality)
    bpm: int | None = attrs.field(default=None, kw_only=True)
    chords: str | None = attrs.field(default=None, kw_only=True, validator=_text)
    reply_url: str | None = attrs.field(default=None, kw_only=True, validator=_reply_url)
    reply_ref: str | None = attrs.field(default=None, kw_only=True, validator=_text)
    max_jobs: int | None = attrs.field(default=None, kw_only=True, validator=_positive)
    user_id: str | None = attrs.field(default=None, kw_only=True, validator=_user_id)

    @prompt.validator
    def _prompt(self, attribute: attrs.Attribute[str], value: str) -> None:
        _validation.text("prompt", value, required=True)

    @bpm.validator
    def _bpm(self, attribute: attrs.Attribute[int | None], value: int | None) -> None:
        _validation.bpm(value)


BatchRequest = SongRequest | InstrumentalRequest

# Field names per type, for readers of JSON Lines and CSV files.
FIELDS: dict[str, tuple[str, ...]] = {
    kind.type: tuple(field.name for field in attrs.fields(kind))
    for kind in (SongRequest, InstrumentalRequest)
}
REQUEST_TYPES: dict[str, type[SongRequest] | type[InstrumentalRequest]] = {
    "song": SongRequest,
    "instrumental": InstrumentalRequest,
}
