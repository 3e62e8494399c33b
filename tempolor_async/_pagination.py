"""Cursor pagination: a lazy async iterator over every item of every page."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Generic, TypeVar

from ._errors import PaginationError
from ._models import Page

T = TypeVar("T")

FetchPage = Callable[[str | None], Awaitable[Page[T]]]


class AsyncPager(Generic[T]):
    """The pages of a list call, fetched only as they are needed.

    ``async for item in pager`` walks every item; :meth:`pages` yields whole pages;
    :meth:`first_page` and :meth:`to_list` are shortcuts. Nothing is requested until one of
    them is used. It follows ``hasNext``/``cursor`` as documented, and raises
    :class:`PaginationError` if the service repeats a cursor rather than loop forever.
    """

    def __init__(self, fetch: FetchPage[T], cursor: str | None = None) -> None:
        self._fetch = fetch
        self._cursor = cursor

    def __aiter__(self) -> AsyncIterator[T]:
        return self._items()

    async def _items(self) -> AsyncGenerator[T, None]:
        async with aclosing(self.pages()) as pages:
            async for page in pages:
                for item in page.items:
                    yield item

    async def pages(self) -> AsyncGenerator[Page[T], None]:
        """Every page in order; an empty page that says ``hasNext`` does not end the walk."""
        cursor = self._cursor
        seen = {cursor} if cursor else set()
        while True:
            page = await self._fetch(cursor)
            yield page
            if page.cursor is None:
                return
            if page.cursor in seen:
                raise PaginationError(
                    f"the service returned cursor {page.cursor!r} a second time; stopping"
                )
            seen.add(page.cursor)
            cursor = page.cursor

    async def first_page(self) -> Page[T]:
        return await self._fetch(self._cursor)

    async def to_list(self, limit: int | None = None) -> list[T]:
        """The items of every page, or the first ``limit`` of them."""
        items: list[T] = []
        if limit is not None and limit <= 0:
            return items
        async with aclosing(self.pages()) as pages:
            async for page in pages:
                items.extend(page.items)
                if limit is not None and len(items) >= limit:
                    return items[:limit]
        return items
