"""Pagination, for every service: a lazy async iterator over every item of every page.

:class:`AsyncPager` follows cursors (TemPolor's ``hasNext``/``cursor``); :func:`numbered_pages`
adapts page-number paging (Noiz's ``skip``/``limit``/``total_count``) to the same pager.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Generic, TypeVar

import attrs

from ._errors import PaginationError

T = TypeVar("T")


@attrs.frozen
class Page(Generic[T]):
    """One page of a list. ``cursor`` is what to pass to resume after this page, and is
    None when there is no next page."""

    items: list[T]
    has_next: bool
    cursor: str | None


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


FetchNumbered = Callable[[int], Awaitable[tuple[list[T], int | None]]]


def numbered_pages(fetch: FetchNumbered[T], page_size: int) -> AsyncPager[T]:
    """A pager over page-number paging: ``fetch(n)`` returns page ``n`` (from 0) and the total
    count if the service gives one. The walk ends at a short or empty page or once the total
    is reached, and raises :class:`PaginationError` when a page repeats the one before it
    (a service that ignores the page number would otherwise be walked forever)."""
    pages_seen: dict[int, list[T]] = {}

    async def fetch_page(cursor: str | None) -> Page[T]:
        number = int(cursor or 0)
        items, total = await fetch(number)
        if items and pages_seen.get(number - 1) == items:
            raise PaginationError(f"the service returned page {number - 1} again as page {number}")
        pages_seen.clear()  # only the page before the next one is compared
        pages_seen[number] = items
        more = len(items) >= page_size and (total is None or (number + 1) * page_size < total)
        return Page(items=items, has_next=more, cursor=str(number + 1) if more else None)

    return AsyncPager(fetch_page)
