"""What every service's client shares: its options checked one way, the HttpSession it
sends through, and closing it (``async with`` or ``aclose``)."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp

from ._errors import ConfigurationError
from ._http import HttpSession
from ._protocol import Service

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self


def credential(value: str | None, *, parameter: str, env: str, what: str) -> str:
    """The key or token given, else the environment's; ConfigurationError if neither."""
    value = value if value is not None else os.environ.get(env)
    if not value or not value.strip():
        raise ConfigurationError(
            f"no {what}: pass {parameter}= or set the {env} environment variable"
        )
    return value


def seconds(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
        raise ConfigurationError(f"{name} must be a positive number of seconds")
    return float(value)


class BaseClient:
    """The session handling of every client: one HttpSession, closed once."""

    _http: HttpSession

    def _open(
        self,
        service: Service,
        *,
        token: str,
        base_url: str,
        timeout: float,
        upload_timeout: float,
        max_retries: int,
        busy_timeout: float,
        session: aiohttp.ClientSession | None,
    ) -> None:
        """Check the options every client takes and create its HttpSession."""
        if urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).netloc:
            raise ConfigurationError(f"base_url must be an absolute http(s) URL, not {base_url!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError("max_retries must be a whole number, zero or more")
        self.base_url = base_url.rstrip("/")
        self._http = HttpSession(
            service=service,
            token=token,
            base_url=self.base_url,
            timeout=seconds("timeout", timeout),
            upload_timeout=seconds("upload_timeout", upload_timeout),
            max_retries=max_retries,
            busy_timeout=busy_timeout,
            session=session,
        )

    @property
    def closed(self) -> bool:
        return self._http.closed

    async def aclose(self) -> None:
        """Close the session the client created (never one passed in). Idempotent."""
        if not self._http.closed:
            await self._before_close()
        await self._http.aclose()

    async def _before_close(self) -> None:
        """What a client ends before its session closes (its waits, for one)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
