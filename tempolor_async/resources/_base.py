"""What every resource shares: the client's HTTP seam, its default account, decoding."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from .. import _protocol, _validation
from .._http import Reply
from .._pagination import AsyncPager, Page
from .._protocol import ApiRequest, Kind
from ._service import decode_page

if TYPE_CHECKING:
    from .._client import TempolorClient

T = TypeVar("T")


class Resource:
    def __init__(self, client: TempolorClient) -> None:
        self._client = client

    def _user(self, user_id: str | None) -> str | None:
        """The account to act for: the argument, else the client's default, else none."""
        chosen = user_id if user_id is not None else self._client.user_id
        return _validation.optional_id("user_id", chosen)

    async def _send(self, request: ApiRequest) -> Reply:
        return await self._client._http.send(request)

    async def _call(self, model: Any, method: str, path: str, **options: Any) -> Any:
        """Send and decode the success body as ``model``."""
        reply = await self._client._http.send(ApiRequest(method, path, **options))
        return _protocol.decode(reply.content, model, method, path)

    def _pager(self, item: type[T], path: str, cursor: str | None, **params: Any) -> AsyncPager[T]:
        """A lazy pager over a documented list endpoint (``records``/``hasNext``/``cursor``)."""
        cursor = _validation.cursor(cursor)

        async def fetch(page_cursor: str | None) -> Page[T]:
            request = ApiRequest("GET", path, query=_protocol.query(cursor=page_cursor, **params))
            reply = await self._client._http.send(request)
            return decode_page(reply.content, item, "GET", path)

        return AsyncPager(fetch, cursor)


__all__ = ["Kind", "Resource"]
