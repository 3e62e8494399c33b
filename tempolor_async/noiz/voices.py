"""Noiz voices: list, get, clone and (soft) delete. Noiz API: /voices (https://noiz.ai)."""

from __future__ import annotations

import base64
import binascii
import math
import os
from collections.abc import Mapping
from typing import Any

from .. import _protocol, _validation
from .._errors import ResponseDecodeError, ValidationError
from .._files import FormUpload, Upload, UploadSource
from .._pagination import AsyncPager, numbered_pages
from .._protocol import ApiRequest, Kind
from ._base import NoizResource
from ._models import (
    DeletedVoice,
    DesignData,
    Voice,
    VoiceClone,
    VoiceDesign,
    VoicePage,
    VoicePreview,
    VoiceType,
)

# What the service accepts as a voice sample: WAV, MP3 or M4A.
AUDIO_TYPE_BY_EXTENSION = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".m4a": "audio/mp4"}
AUDIO_TYPES = frozenset(AUDIO_TYPE_BY_EXTENSION.values()) | {
    "audio/wave",
    "audio/x-wav",
    "audio/mp3",
    "audio/x-m4a",
}
PICTURE_TYPE_BY_EXTENSION = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
}
PICTURE_TYPES = frozenset(PICTURE_TYPE_BY_EXTENSION.values())
DESCRIPTION_LENGTH = (20, 1000)


def audio_upload(parameter: str, source: UploadSource, content_type: str | None) -> Upload:
    """A voice sample: WAV, MP3 or M4A, by the file's extension or ``content_type``."""
    return form_file(parameter, source, content_type, AUDIO_TYPE_BY_EXTENSION, AUDIO_TYPES)


def form_file(
    parameter: str,
    source: UploadSource,
    content_type: str | None,
    by_extension: Mapping[str, str],
    allowed: frozenset[str],
) -> Upload:
    """A file for a multipart part, checked before anything is sent. Its name travels in the
    part's header, which must be UTF-8: a path whose name is not (Python holds such bytes
    as lone surrogates) is refused here rather than failing inside aiohttp."""
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        try:
            name.encode() if isinstance(name, str) else name.decode()
        except UnicodeError:
            raise ValidationError(
                parameter,
                f"the file name {os.fsencode(name)!r} is not valid UTF-8: rename the file "
                "or pass its contents as bytes",
            ) from None
    return Upload.prepare(
        parameter, source, content_type, by_extension=by_extension, allowed=allowed
    )


def flag(name: str, value: bool) -> str | None:
    """A boolean form field as the service's own scripts send it: ``true``, or left out."""
    if not isinstance(value, bool):
        raise ValidationError(name, f"must be True or False (got {value!r})")
    return "true" if value else None


class Voices(NoizResource):
    def list(
        self,
        *,
        voice_type: VoiceType | str = VoiceType.CUSTOM,
        keyword: str | None = None,
        page_size: int = 10,
    ) -> AsyncPager[Voice]:
        """Your cloned voices (``custom``) or the service's catalogue (``built-in``),
        optionally those whose name, description or labels match ``keyword``, fetched
        ``page_size`` at a time as you iterate. Noiz API: GET /voices (https://noiz.ai)"""
        kind = _validation.choice("voice_type", voice_type, VoiceType)
        _validation.text("keyword", keyword)
        size = _validation.positive_int("page_size", page_size)
        assert size is not None

        fixed = _protocol.query(voice_type=kind, keyword=keyword, limit=size)

        async def fetch(number: int) -> tuple[list[Voice], int | None]:
            query = {**fixed, "skip": str(number)}
            page: VoicePage = await self._call(VoicePage, ApiRequest("GET", "/voices", query=query))
            return page.voices or [], page.total_count

        return numbered_pages(fetch, size)

    async def get(self, voice_id: str) -> Voice:
        """One voice by its id. Noiz API: GET /voices/{voice_id} (https://noiz.ai)"""
        voice_id = _validation.path_id("voice_id", voice_id)
        voice: Voice = await self._call(Voice, ApiRequest("GET", f"/voices/{voice_id}"))
        return voice

    async def clone(
        self,
        file: UploadSource | None = None,
        *,
        url: str | None = None,
        display_name: str | None = None,
        denoise: bool = False,
        language: str | None = None,
        content_type: str | None = None,
    ) -> VoiceClone:
        """Make a voice from a sample: ``file`` (bytes, a path streamed from disk, or a
        binary file object; WAV, MP3 or M4A) or ``url`` (an http(s) address the service
        fetches), exactly one; ``denoise`` asks for noise reduction first. Sent once: a
        clone may cost credits, so it is retried only when nothing reached the service.
        Noiz API: POST /voices (https://noiz.ai)"""
        if (file is None) == (url is None):
            raise ValidationError("file", "give exactly one of file and url")
        fields = {
            "voice_url": _validation.http_url("url", url),
            "display_name": _validation.text("display_name", display_name),
            "denoise": flag("denoise", denoise),
            "language": _validation.text("language", language),
        }
        upload = None if file is None else audio_upload("file", file, content_type)
        body = FormUpload(present(fields), upload)
        request = ApiRequest("POST", "/voices", kind=Kind.UPLOAD, upload=body)
        clone: VoiceClone = await self._call(VoiceClone, request)
        return clone

    async def design(
        self,
        description: str | None = None,
        *,
        picture: UploadSource | None = None,
        guidance_scale: float | None = None,
        loudness: float | None = None,
        picture_content_type: str | None = None,
    ) -> VoiceDesign:
        """Design voices from a ``description`` (20 to 1,000 characters) and/or a ``picture``
        of the speaker (PNG, JPEG or WebP: bytes, a path streamed from disk or a binary file
        object), at least one. ``guidance_scale`` (0 to 100) is how closely to follow them,
        ``loudness`` from -1 to 1. Returns preview voices, each with its id (usable as
        ``voice_id``) and a WAV of it speaking. Not retried once sent (it may cost credits).
        Noiz API: POST /voice-design (https://developers.noiz.ai)"""
        if description is None and picture is None:
            raise ValidationError("description", "give a description, a picture, or both")
        if description is not None:
            low, high = DESCRIPTION_LENGTH
            _validation.text("description", description, required=True)
            if not low <= len(description) <= high:
                raise ValidationError(
                    "description",
                    f"must be {low} to {high} characters (got {len(description)})",
                )
        fields = {
            "voice_description": description,
            "guidance_scale": _bounded("guidance_scale", guidance_scale, 0, 100),
            "loudness": _bounded("loudness", loudness, -1, 1),
        }
        upload = None
        if picture is not None:
            upload = form_file(
                "picture", picture, picture_content_type, PICTURE_TYPE_BY_EXTENSION, PICTURE_TYPES
            )
        body = FormUpload(present(fields), upload, file_field="picture")
        request = ApiRequest("POST", "/voice-design", kind=Kind.UPLOAD, upload=body)
        data: DesignData = await self._call(DesignData, request)
        previews = [_preview(index, item) for index, item in enumerate(data.previews or [])]
        return VoiceDesign(
            previews=previews,
            text=data.text,
            from_cache=data.from_cache,
            features=data.features,
            raw=data.raw,
        )

    async def delete(self, voice_id: str) -> DeletedVoice:
        """Soft-delete a voice: it disappears from lists and answers 404 afterwards.
        Noiz API: DELETE /voices/{voice_id} (https://noiz.ai)"""
        voice_id = _validation.path_id("voice_id", voice_id)
        request = ApiRequest("DELETE", f"/voices/{voice_id}")
        reply = await self._send(request)
        if reply.status == 204 and not reply.content:
            # A retry found it gone: an earlier attempt deleted it before its answer was lost.
            return DeletedVoice(voice_id=voice_id)
        deleted: DeletedVoice = self._client._service.decode_data(
            reply.content, DeletedVoice, "DELETE", request.path
        )
        return deleted


def _bounded(name: str, value: float | None, low: float, high: float) -> str | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise ValidationError(name, f"must be a number from {low:g} to {high:g} (got {value!r})")
    return str(value)


def _preview(index: int, item: Any) -> VoicePreview:
    """A preview from its JSON: the audio decoded from base64."""
    where = f"data.previews[{index}]"
    if type(item) is not dict:
        raise ResponseDecodeError(
            f"{where}: expected an object", method="POST", path="/voice-design"
        )
    voice_id, audio = item.get("voice_id"), item.get("audio")
    if not (voice_id is None or type(voice_id) is str) or type(audio) is not str:
        raise ResponseDecodeError(
            f"{where}: expected voice_id and base64 audio as text",
            method="POST",
            path="/voice-design",
        )
    try:
        decoded = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        raise ResponseDecodeError(
            f"{where}.audio: not base64", method="POST", path="/voice-design"
        ) from None
    return VoicePreview(voice_id=voice_id, audio=decoded)


def present(fields: dict[str, Any]) -> dict[str, str]:
    """The form fields that have a value."""
    return {name: value for name, value in fields.items() if value is not None}
