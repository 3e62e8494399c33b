"""Noiz text tools: emotion annotations for text to speech.
Noiz API: POST /emotion-enhance (https://developers.noiz.ai)."""

from __future__ import annotations

import attrs

from .. import _validation
from .._errors import ResponseDecodeError
from .._protocol import ApiRequest, Kind
from ._base import NoizResource

MAX_TEXT = 5000


@attrs.frozen(slots=False)
class EmotionEnhanced:
    """The ``data`` of POST /emotion-enhance."""

    __json_names__ = "snake_case"

    emotion_enhance: str | None = None


class TextResource(NoizResource):
    async def enhance_emotions(self, text: str) -> str:
        """``text`` (at most 5,000 characters) with emotion annotations added by the service,
        ready to pass to ``speech.synthesize``. Not retried once sent (it may cost credits).
        Noiz API: POST /emotion-enhance (https://developers.noiz.ai)"""
        _validation.text("text", text, required=True, limit=MAX_TEXT)
        request = ApiRequest("POST", "/emotion-enhance", kind=Kind.UPLOAD, json={"text": text})
        answer: EmotionEnhanced = await self._call(EmotionEnhanced, request)
        if answer.emotion_enhance is None:
            raise ResponseDecodeError(
                "data.emotion_enhance is missing", method="POST", path=request.path
            )
        return answer.emotion_enhance
