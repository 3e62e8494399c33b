"""TemPolor's side of the shared protocol: a bearer token, errors as ``{"error": ...}`` with a
429's ``runningJobs``, and cursor pages (``records``, ``hasNext``, ``cursor``).

Documentation: https://useapi.net/docs/api-tempolor-v1
"""

from __future__ import annotations

from typing import Any, TypeVar

from .. import _convert
from .._errors import ResponseDecodeError
from .._models import RunningJob
from .._pagination import Page
from .._protocol import Service, parse_json

T = TypeVar("T")


class TempolorService(Service):
    """useapi.net's conventions for TemPolor."""

    def error_text(self, payload: Any) -> str | None:
        if isinstance(payload, dict) and isinstance(payload.get("error"), str):
            return payload["error"]  # type: ignore[no-any-return]
        return None

    def error_details(self, status: int, payload: Any) -> dict[str, Any]:
        return {"running_jobs": _running_jobs(payload)} if status == 429 else {}


TEMPOLOR = TempolorService()


def _running_jobs(payload: Any) -> dict[str, list[RunningJob]]:
    """A 429's ``runningJobs``, by account; a malformed one is left out, not raised."""
    if not isinstance(payload, dict):
        return {}
    try:
        jobs = _convert.decode(payload.get("runningJobs") or {}, dict[str, list[RunningJob]])
    except ResponseDecodeError:
        return {}
    return jobs  # type: ignore[no-any-return]


def decode_page(content: bytes, item: type[T], method: str, path: str) -> Page[T]:
    """A list page: ``records``, ``hasNext`` and ``cursor``; the cursor is None at the end."""
    data = parse_json(content, method, path)
    if type(data) is not dict:
        raise ResponseDecodeError("expected an object with records", method=method, path=path)
    has_next = data.get("hasNext")
    cursor = data.get("cursor")
    if has_next is not None and type(has_next) is not bool:
        raise ResponseDecodeError(
            f"hasNext must be a boolean, got {has_next!r}", method=method, path=path, body=content
        )
    if cursor is not None and type(cursor) is not str:
        raise ResponseDecodeError(
            f"cursor must be text, got {cursor!r}", method=method, path=path, body=content
        )
    has_next = bool(has_next)
    cursor = cursor or None
    try:
        records = data.get("records")
        items = _convert.decode([] if records is None else records, list[item])  # type: ignore[valid-type]
    except ResponseDecodeError as exc:
        raise ResponseDecodeError(f"records: {exc}", method=method, path=path) from None
    return Page(items=items, has_next=has_next, cursor=cursor if has_next else None)
