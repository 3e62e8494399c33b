"""The one place that talks to aiohttp: send a request, map aiohttp's exceptions, retry.

Every service goes through here. Retry decisions come from ``_protocol``, and what differs
between services (how the key is sent, how an error reads) from the ``Service`` each client
passes in; this module only carries them out, sleeping with anyio so that cancellation stops
a wait at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import aiohttp
import anyio
from aiohttp import hdrs
from multidict import CIMultiDictProxy
from yarl import URL

from . import _protocol
from ._errors import (
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    RateLimitError,
    ResponseDecodeError,
    TempolorError,
    redact,
    register_secret,
)
from ._protocol import ApiRequest, Kind, Service

logger = logging.getLogger("tempolor_async")
_debug_enabled = logger.isEnabledFor  # cached by logging, and cleared when levels change

# API responses are read up to this size, decompressed; a larger one is refused as soon as
# the limit is passed, so memory stays bounded whatever a server sends (a gzip bomb, an
# endless chunked body). The largest documented answer is a few hundred kilobytes.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
_CONTENT_LENGTH = hdrs.CONTENT_LENGTH  # case-insensitive keys, ready for lookups
_CONTENT_ENCODING = hdrs.CONTENT_ENCODING


class Reply(NamedTuple):
    """A success response, read whole (a named tuple: the cheapest immutable record)."""

    status: int
    headers: Mapping[str, str]
    content: bytes


class _NoResponse(Exception):
    """No response arrived; ``sent`` tells whether the request may have reached the server."""

    def __init__(self, error: APIConnectionError, sent: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.sent = sent


def _no_response(exc: BaseException, method: str, path: str) -> _NoResponse:
    """Map an aiohttp failure to our exception, noting whether the request may have arrived.
    The text never quotes a URL (its query may hold a signed key) nor a server's bytes."""
    where = f"{method} {path}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return _NoResponse(
            APITimeoutError(f"{where}: connect timed out", method=method, path=path), False
        )
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return _NoResponse(APITimeoutError(f"{where}: timed out", method=method, path=path), True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        text = f"{where}: cannot connect: {exc.os_error.strerror or exc.os_error}"
        return _NoResponse(APIConnectionError(text, method=method, path=path), False)
    if isinstance(exc, aiohttp.TooManyRedirects):
        text = f"{where}: redirected too many times"
    elif isinstance(
        exc, (aiohttp.InvalidUrlRedirectClientError, aiohttp.NonHttpUrlRedirectClientError)
    ):
        text = f"{where}: redirected to an unusable URL"
    elif isinstance(exc, aiohttp.InvalidURL):
        text = f"{where}: unusable URL"
    elif isinstance(exc, aiohttp.ClientResponseError):  # a response aiohttp could not parse
        summary = str(exc.message).split("\n", 1)[0].rstrip(": ")
        text = f"{where}: invalid HTTP response ({summary or type(exc).__name__})"
    else:
        reason = type(exc).__name__
        text = f"{where}: connection failed ({reason}: {exc})" if str(exc) else f"{where}: {reason}"
    return _NoResponse(APIConnectionError(text, method=method, path=path), True)


def _fits(headers: CIMultiDictProxy[str]) -> bool:
    """Whether a body can be read whole at once: its declared size is within the limit and
    is the size read (no compression); aiohttp then stops reading at Content-Length."""
    declared = headers.get(_CONTENT_LENGTH)
    return (
        declared is not None
        and int(declared) <= MAX_RESPONSE_BYTES  # aiohttp's parser checked it is a number
        and _CONTENT_ENCODING not in headers
    )


async def _read_body(response: aiohttp.ClientResponse, method: str, path: str) -> bytes:
    """The whole body, up to MAX_RESPONSE_BYTES decompressed; ResponseDecodeError beyond."""
    if _fits(response.headers):
        return await response.read()
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            response.close()
            raise ResponseDecodeError(
                f"response body larger than {MAX_RESPONSE_BYTES // 2**20} MiB; not read further",
                method=method,
                path=path,
            )
    return bytes(body)


_MAX_URLS = 1024  # API paths whose parsed URL is kept
# What one attempt ended with: an answer (status, headers, body) or none.
_Outcome = tuple[int, CIMultiDictProxy[str], bytes] | _NoResponse


@functools.lru_cache(maxsize=8)
def _total_timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds)


def _own_session(
    headers: Mapping[str, str] | None = None, timeout: float | None = None
) -> aiohttp.ClientSession:
    """A session for the client's own use. aiohttp silently re-sends an idempotent request
    once after a dropped connection; our retry policy does that openly (with backoff and a
    log line), so the hidden resend is switched off, as aiohttp's own test client does."""
    if timeout is None:
        session = aiohttp.ClientSession(headers=headers)
    else:
        session = aiohttp.ClientSession(headers=headers, timeout=_total_timeout(timeout))
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False
    return session


class HttpSession:
    """Sends API requests with the token, and fetches media URLs without it."""

    def __init__(
        self,
        *,
        service: Service,
        token: str,
        base_url: str,
        timeout: float,
        upload_timeout: float,
        max_retries: int,
        busy_timeout: float,
        session: aiohttp.ClientSession | None,
    ) -> None:
        self.service = service
        # Asked only if the service says something of its own about a status.
        self._status_of = (
            None if type(service).status_of is Service.status_of else service.status_of
        )
        # The API's headers, set once: on the client's own session as its defaults (so no
        # request builds or merges a dict of them), or passed with each request on a
        # caller's session, which is never changed.
        self._api_headers = {
            "Authorization": service.authorization(token),
            "Accept": "application/json",
        }
        self._request_headers: dict[str, str] | None = (
            None if session is None else self._api_headers
        )
        register_secret(self, token)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.upload_timeout = upload_timeout
        self.max_retries = max_retries
        self.busy_timeout = busy_timeout
        self.busy_retry_seconds = _protocol.BUSY_RETRY_SECONDS
        self._session = session
        self._owns_session = session is None
        self._media_session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}
        self.closed = False

    # ----------------------------------------------------------- sessions

    def _api_session(self) -> aiohttp.ClientSession:
        if self.closed:
            raise TempolorError("the client is closed")
        if self._session is None:
            # Created on first use, inside the running loop, so an unused client owns nothing.
            self._session = _own_session(self._api_headers, self.timeout)
        elif self._session.closed:
            raise ConfigurationError("the aiohttp session given as session= is closed")
        return self._session

    def _plain_session(self) -> aiohttp.ClientSession:
        """A session that adds no Authorization header: the client's own API session and a
        caller's session may carry one by default, and media URLs point at a CDN, not at
        the API."""
        session = self._api_session()
        if "Authorization" not in session.headers:
            return session
        if self._media_session is None:
            self._media_session = _own_session()
        return self._media_session

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._media_session is not None:
            await self._media_session.close()
        if self._owns_session and self._session is not None:
            await self._session.close()

    # ----------------------------------------------------------- requests

    def _url(self, path: str) -> URL:
        """The URL of an API path, parsed once: a poll asks for the same path again and
        again, and a lookup costs a tenth of parsing a new one. The cache holds the latest
        paths only (it starts again when full), so many distinct ids cannot grow it."""
        if len(self._urls) >= _MAX_URLS:
            self._urls.clear()
        url = self._urls[path] = URL(self.base_url + path)
        return url

    async def send(self, request: ApiRequest, *, busy_timeout: float | None = None) -> Reply:
        """Send with the retry policy of the request's kind; return a 2xx reply or raise.

        ``busy_timeout`` replaces the client's for this request (0: a 429 raises at once).
        A first attempt that succeeds, the common case, returns at once; anything else goes
        on to :meth:`_retry`, which decides what happens next."""
        started = time.monotonic()
        try:
            status, headers, content = await self._exchange(request, 1, started)
        except _NoResponse as failure:
            # Handled outside this except block: an error raised within it would carry
            # aiohttp's exception, and with it the request's headers, as its context.
            outcome: _Outcome = failure
        else:
            if self._status_of is not None:
                status = self._status_of(status, content)
            if 200 <= status < 300:
                return Reply(status, headers, content)
            outcome = (status, headers, content)
        busy_limit = self.busy_timeout if busy_timeout is None else busy_timeout
        return await self._retry(request, outcome, started, busy_limit)

    async def _retry(
        self, request: ApiRequest, outcome: _Outcome, started: float, busy_limit: float
    ) -> Reply:
        """The rest of :meth:`send`: what to do after an attempt that did not succeed (its
        ``outcome``, begun at ``started``), and the attempts after it."""
        retries = 0
        busy_since: float | None = None
        while True:
            if isinstance(outcome, _NoResponse):
                upload_ok = request.upload is None or request.upload.rewindable
                if not (
                    retries < self.max_retries
                    and upload_ok
                    and _protocol.should_retry_failure(request.kind, outcome.sent)
                ):
                    # Raised outside any except block, with no cause: aiohttp's exceptions
                    # can carry the request's headers, and with them the token.
                    raise outcome.error
                retries += 1
                await self._pause(request, str(outcome.error), _protocol.retry_delay(retries))
            else:
                status, headers, content = outcome
                if 200 <= status < 300:
                    return Reply(status, headers, content)
                if status == 404 and request.method == "DELETE" and retries:
                    # An earlier attempt may have deleted it before its answer was lost.
                    return Reply(204, headers, b"")
                error = self.service.error_for(
                    status, headers, content, request.method, request.path
                )
                if isinstance(error, RateLimitError) and request.kind is Kind.GENERATION:
                    busy_since = busy_since or started
                    delay = _protocol.busy_delay(error.retry_after, floor=self.busy_retry_seconds)
                    if time.monotonic() - busy_since + delay > busy_limit:
                        raise error
                elif retries < self.max_retries and _protocol.should_retry_status(
                    request.kind, status
                ):
                    retries += 1
                    after = error.retry_after if isinstance(error, RateLimitError) else None
                    if after is None:
                        after = _protocol.retry_after(headers)
                    delay = _protocol.retry_delay(retries, after)
                else:
                    raise error
                await self._pause(request, f"{status} {error.message}", delay)
            started = time.monotonic()
            try:
                status, headers, content = await self._exchange(request, retries + 1, started)
            except _NoResponse as failure:
                outcome = failure
            else:
                if self._status_of is not None:
                    status = self._status_of(status, content)
                outcome = (status, headers, content)

    async def _pause(self, request: ApiRequest, reason: str, delay: float) -> None:
        logger.warning(
            "%s %s failed (%s); retrying in %.1f s", request.method, request.path, reason, delay
        )
        await anyio.sleep(delay)

    async def _exchange(
        self, request: ApiRequest, attempt: int, started: float
    ) -> tuple[int, CIMultiDictProxy[str], bytes]:
        """One attempt (begun at ``started``, by the monotonic clock): send, read the whole
        response, log one line (when DEBUG is on)."""
        session = self._session
        if session is None or self.closed or (not self._owns_session and session.closed):
            session = self._api_session()  # creates the own session, or raises
        url = self._urls.get(request.path)  # (not ``or``: a URL's truth is a Python call)
        if url is None:
            url = self._url(request.path)
        headers = self._request_headers
        if (
            request.upload is None
            and request.json is None
            and not request.query
            and headers is None  # the own session: its defaults are the API's
        ):
            # The common case with nothing but what differs from the own session's
            # defaults (its headers and its timeout are the API's): each keyword aiohttp
            # is given costs it work on every request.
            context = session.request(request.method, url, allow_redirects=False)
        else:
            data: Any = None
            timeout = self.timeout
            if request.upload is not None:
                data, upload_headers = request.upload.body()
                headers = {**(headers or {}), **upload_headers}
                timeout = self.upload_timeout
            context = session.request(
                request.method,
                url,
                params=request.query or None,
                json=request.json,
                data=data,
                headers=headers,
                timeout=_total_timeout(timeout),
                raise_for_status=False,
                allow_redirects=False,
            )
        try:
            async with context as response:
                status = response.status
                response_headers = response.headers
                if request.sink is not None and 200 <= status < 300:
                    content = await request.sink(response)
                elif _fits(response_headers):  # the common case, with no call in between
                    content = await response.read()
                else:
                    content = await _read_body(response, request.method, request.path)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            failure = _no_response(exc, request.method, request.path)
            self._log(request.method, request.path, "no response", started, attempt)
            raise failure from exc
        except ResponseDecodeError:
            self._log(request.method, request.path, "body too large", started, attempt)
            raise
        finally:
            if request.upload is not None:
                request.upload.release()
        if _debug_enabled(logging.DEBUG):
            self._log(request.method, request.path, status, started, attempt)
        return status, response_headers, content

    @staticmethod
    def _log(method: str, path: str, outcome: object, started: float, attempt: int) -> None:
        if _debug_enabled(logging.DEBUG):
            elapsed = (time.monotonic() - started) * 1000
            logger.debug(
                "%s %s -> %s in %.1f ms (attempt %d)", method, path, outcome, elapsed, attempt
            )

    # ------------------------------------------------------------- media

    @asynccontextmanager
    async def stream(self, url: str) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET a media URL without the token; yields a 2xx response to read in chunks.

        ``timeout`` bounds the silence between reads, not the whole transfer.
        """
        session = self._plain_session()
        problem = _protocol.media_url_problem(url)
        if problem is not None:
            raise ResponseDecodeError(f"the download URL {problem}")
        target = URL(url, encoded=url.isascii())
        path = redact(target.raw_path)  # never the query: it may hold a signed key
        started = time.monotonic()
        failure: TempolorError | None = None
        try:
            async with session.get(
                target,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.timeout, sock_read=self.timeout
                ),
                raise_for_status=False,
            ) as response:
                self._log("GET", path, response.status, started, 1)
                if response.status >= 300:
                    content = await _read_body(response, "GET", path)
                    raise self.service.error_for(
                        response.status, response.headers, content, "GET", path
                    )
                yield response
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self._log("GET", path, "connection lost", started, 1)
            failure = _no_response(exc, "GET", path).error
        if failure is not None:
            raise failure
