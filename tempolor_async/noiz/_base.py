"""What both Noiz resources share: the client's HTTP seam and decoding of the envelope."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._http import Reply
from .._protocol import ApiRequest

if TYPE_CHECKING:
    from ._client import NoizClient


class NoizResource:
    def __init__(self, client: NoizClient) -> None:
        self._client = client

    async def _send(self, request: ApiRequest) -> Reply:
        return await self._client._http.send(request)

    async def _call(self, model: Any, request: ApiRequest) -> Any:
        """Send and decode the envelope's ``data`` as ``model``."""
        reply = await self._send(request)
        return self._client._service.decode_data(reply.content, model, request.method, request.path)
