"""The documented input limits, checked before anything is sent.

Each check raises ValidationError naming the parameter and the rule. Lengths are counted as
Python counts them (``len(str)``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ._errors import ValidationError
from ._models import FileFormat, MusicType, Tonality

E = TypeVar("E", bound=Enum)

# Maximum lengths, in characters, from the generation endpoints' documentation.
MAX_LENGTH = {"prompt": 2000, "lyrics": 3000, "chords": 200, "reply_url": 1024, "reply_ref": 1024}
BPM_RANGE = (50, 190)

# Upload content types by extension, as documented, and every type the service accepts.
AUDIO_TYPE_BY_EXTENSION = {".m4a": "audio/mp4", ".mp3": "audio/mpeg", ".wav": "audio/wav"}
AUDIO_TYPE_BY_EXTENSION[".flac"] = "audio/flac"
AUDIO_TYPES = frozenset(AUDIO_TYPE_BY_EXTENSION.values()) | {
    "audio/x-m4a",
    "audio/wave",
    "audio/x-flac",
}
MIDI_TYPE_BY_EXTENSION = {".mid": "audio/midi", ".midi": "audio/midi"}
MIDI_TYPES = frozenset({"audio/midi", "audio/x-midi"})

_UNSAFE_ID = re.compile(r"[/?#%\s\x00-\x1f\x7f-\x9f]")


def _looks_safe(value: str) -> bool:
    """A quick accept for ids ``_UNSAFE_ID`` cannot match: every character it matches is
    either unprintable (control characters and whitespace other than the space) or one of
    these five. About four times cheaper than the search; anything else takes the regex."""
    return (
        value.isprintable()
        and "/" not in value
        and " " not in value
        and "%" not in value
        and "?" not in value
        and "#" not in value
    )


def text(
    name: str, value: str | None, *, required: bool = False, limit: int | None = None
) -> str | None:
    """A string parameter: present and non-blank if required, within its documented length
    (``limit``, else the table above)."""
    if value is None:
        if required:
            raise ValidationError(name, "is required")
        return None
    if not isinstance(value, str):
        raise ValidationError(name, f"must be a string, not {type(value).__name__}")
    if required and not value.strip():
        raise ValidationError(name, "must not be blank")
    unicode_text(name, value)
    limit = limit or MAX_LENGTH.get(name)
    if limit is not None and len(value) > limit:
        raise ValidationError(name, f"must be at most {limit} characters (got {len(value)})")
    return value


def reply_url(value: str | None) -> str | None:
    return http_url("reply_url", value)


def http_url(name: str, value: str | None) -> str | None:
    if text(name, value) is None:
        return None
    assert value is not None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError(name, "must be an absolute http:// or https:// URL")
    return value


def bpm(value: int | None) -> int | None:
    if value is None:
        return None
    low, high = BPM_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError("bpm", f"must be an integer from {low} to {high} (got {value!r})")
    return value


def positive_int(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(name, f"must be a positive integer (got {value!r})")
    return value


def choice(name: str, value: E | str, allowed: type[E]) -> str:
    """An enum member or its string value, returned as the string the API expects."""
    if isinstance(value, allowed):
        return str(value.value)
    values = [str(member.value) for member in allowed]
    if isinstance(value, str) and value in values:
        return value
    raise ValidationError(name, f"must be one of {', '.join(values)} (got {value!r})")


def tonality(value: Tonality | str | None) -> str | None:
    return None if value is None else choice("tonality", value, Tonality)


def music_type(value: MusicType | str) -> str:
    return choice("type", value, MusicType)


def file_format(value: FileFormat | str) -> FileFormat:
    return FileFormat(choice("file_format", value, FileFormat))


def model(value: Enum | str | None) -> str | None:
    """Model names are open: any non-blank string is sent as given."""
    if value is None:
        return None
    name = str(value.value) if isinstance(value, Enum) else value
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("model", "must be a non-blank model name")
    return unicode_text("model", name)


# Ids that passed ``path_id`` lately: a poll checks the same id again and again, and a set
# lookup costs a tenth of the scan. Starts again when full, so it cannot grow without bound.
_CHECKED_IDS: set[str] = set()
_MAX_CHECKED_IDS = 4096


def path_id(name: str, value: str | None) -> str:
    """An id that goes into a URL path as it is: no separators, escapes or whitespace, and
    nothing a URL library would drop or change on the way (a lone surrogate, ``.``/``..``).
    The message names only the rule that was broken."""
    if type(value) is str:
        if value in _CHECKED_IDS:
            return value
        if value and _looks_safe(value) and value not in (".", ".."):
            # the common case: one scan of a valid id (no surrogate is printable)
            if len(_CHECKED_IDS) >= _MAX_CHECKED_IDS:
                _CHECKED_IDS.clear()
            _CHECKED_IDS.add(value)
            return value
    if value is None:
        raise ValidationError(name, "is required")
    if not isinstance(value, str):
        raise ValidationError(name, f"must be a string, not {type(value).__name__}")
    if not value.strip():
        raise ValidationError(name, "must not be blank")
    unicode_text(name, value)
    if value in (".", ".."):
        raise ValidationError(name, f"must not be {value!r}")
    unsafe = _UNSAFE_ID.search(value)
    if unsafe is not None:
        char = unsafe.group()
        if char in "/?#%":
            rule = f"must not contain {char!r}"
        elif char.isspace():
            rule = "must not contain whitespace"
        else:
            rule = "must not contain control characters"
        raise ValidationError(name, rule)
    return value


def unicode_text(name: str, value: str) -> str:
    """Text that can be sent as UTF-8: a lone surrogate (what ``surrogateescape`` makes of
    bytes that are not UTF-8, e.g. in a shell argument) would be dropped or mangled on the
    way, and the service would receive something else."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start : exc.end]
        raise ValidationError(
            name, f"must be valid Unicode text (found the lone surrogate {bad!r})"
        ) from None
    return value


def item_id(name: str, value: str | None) -> str | None:
    """An optional id sent in a body (a voice, a MIDI file): when given, not blank."""
    if value is not None and text(name, value) is not None and not value.strip():
        raise ValidationError(name, "must not be blank")
    return value


def cursor(value: str | None) -> str | None:
    """A saved cursor travels in the query string: the rules of path ids hold for it too."""
    return None if value is None else path_id("cursor", value)


def optional_id(name: str, value: str | None) -> str | None:
    return None if value is None else path_id(name, value)


def voice_sources(artist: str | None, cloned: str | None, midi: str | None) -> None:
    if artist is not None and cloned is not None:
        raise ValidationError(
            "cloned_voice_item_id", "cannot be combined with artist_voice_item_id: use one"
        )
    if midi is not None and (artist is not None or cloned is not None):
        raise ValidationError(
            "midi_item_id", "cannot be combined with artist_voice_item_id or cloned_voice_item_id"
        )


def request_params(value: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not value:
        raise ValidationError("request_params", "is required: the non-empty requestParams object")
    return dict(value)


def content_type(
    parameter: str,
    given: str | None,
    filename: str | None,
    *,
    by_extension: Mapping[str, str],
    allowed: frozenset[str],
    default: str | None = None,
) -> str:
    """The upload's Content-Type: given, else from the file name's extension, else default."""
    supported = ", ".join(sorted(allowed))
    if given is not None:
        kind = given.split(";")[0].strip().lower()
        if kind not in allowed:
            raise ValidationError("content_type", f"must be one of {supported} (got {given!r})")
        return kind
    if filename:
        extension = os.path.splitext(filename)[1].lower()
        if extension in by_extension:
            return by_extension[extension]
        if default is None or extension:
            known = ", ".join(sorted(by_extension))
            raise ValidationError(
                "content_type",
                f"cannot tell the type of {parameter} from "
                f"{extension or 'a name with no extension'}; use a file ending in {known}, "
                f"or pass content_type= (one of {supported})",
            )
    if default is not None:
        return default
    raise ValidationError(
        "content_type",
        f"is required for {parameter} given without a file name (one of {supported})",
    )
