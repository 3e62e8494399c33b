"""NoizClient: configuration, the session it owns, and its two resources."""

from __future__ import annotations

import os

import aiohttp

from .._base_client import BaseClient, credential
from ._service import NoizService
from .speech import SpeechResource
from .text import TextResource
from .voices import Voices

DEFAULT_BASE_URL = "https://noiz.ai/v1"


class NoizClient(BaseClient):
    """An asyncio client for Noiz AI's voice API: list, clone, get, design and delete voices,
    speak text (to a file or as a stream), annotate text with emotions, and transcribe audio.

    Use it as ``async with NoizClient() as noiz:`` (or call :meth:`aclose`). The key comes
    from ``api_key=`` or the ``NOIZ_API_KEY`` environment variable and is sent as Noiz asks,
    bare in ``Authorization``. ``base_url`` defaults to ``NOIZ_BASE_URL``, else
    ``https://noiz.ai/v1``. ``timeout`` bounds each request, ``upload_timeout`` each clone
    and synthesis; reads and deletes are retried up to ``max_retries`` times, a clone or a
    synthesis only when nothing was sent. ``session`` is an aiohttp session to use, never
    closed by the client.

    Attributes: ``voices`` (:class:`~tempolor_async.noiz.voices.Voices`), ``speech``
    (:class:`~tempolor_async.noiz.speech.SpeechResource`) and ``text``
    (:class:`~tempolor_async.noiz.text.TextResource`).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 60.0,
        upload_timeout: float = 180.0,
        max_retries: int = 2,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._service = NoizService(
            credential(api_key, parameter="api_key", env="NOIZ_API_KEY", what="Noiz API key")
        )
        self._open(
            self._service,
            token=self._service.key,
            base_url=base_url or os.environ.get("NOIZ_BASE_URL") or DEFAULT_BASE_URL,
            timeout=timeout,
            upload_timeout=upload_timeout,
            max_retries=max_retries,
            busy_timeout=0.0,
            session=session,
        )
        self.voices = Voices(self)
        self.speech = SpeechResource(self)
        self.text = TextResource(self)

    def __repr__(self) -> str:
        state = " closed" if self._http.closed else ""
        return f"<NoizClient{state} base_url={self.base_url!r}>"
