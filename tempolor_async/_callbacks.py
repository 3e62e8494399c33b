"""CallbackReceiver: the service's ``replyUrl`` callbacks as wake-ups for waiting clients.

The service POSTs a job's record to a generation's ``replyUrl`` when its status or progress
changes; the callbacks are neither signed nor retried. The receiver answers them at an
unguessable path (``<mount point>/<secret>``), and treats what they say as a hint: every
client it is attached to confirms the job with its own authenticated ``GET music/{job_id}``
before any waiter returns it, and keeps polling slowly as a safety net because a lost
callback is never sent again.

Three ways to mount it: :attr:`CallbackReceiver.aiohttp_handler` in an ``aiohttp.web`` app,
:meth:`CallbackReceiver.asgi` in any ASGI 3 server or framework (it speaks the raw ASGI
callable, so it needs none), and :meth:`CallbackReceiver.serve`, a standalone server.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import os
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio

from . import _convert, _protocol, _validation
from ._errors import ConfigurationError, ResponseDecodeError, ValidationError
from ._models import MusicJob
from ._polling import notify

# aiohttp.web (a server) is imported where it is used, not with the package: an application
# that never receives callbacks, or receives them through ASGI, does not pay for loading it.
if TYPE_CHECKING:
    from aiohttp import web

    from ._engine import Engine

logger = logging.getLogger("tempolor_async")

MAX_BODY_BYTES = 1024 * 1024
# The limits that keep hostile senders from holding a receiver (SPEC 14): a body must arrive
# within BODY_TIMEOUT seconds, at most MAX_READING bodies are read at once, and serve()'s own
# server keeps at most MAX_CONNECTIONS connections open and closes one that has not sent a
# whole request head within BODY_TIMEOUT.
BODY_TIMEOUT = 10.0
MAX_READING = 64
MAX_CONNECTIONS = 256
SECRET_VARIABLE = "TEMPOLOR_CALLBACK_SECRET"
JobHandler = Callable[[MusicJob], Awaitable[None] | None]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
_SECRET_CHARACTERS = re.compile(r"^[A-Za-z0-9_-]{16,256}$")


# Answers after which the rest of a request is not read: its connection is closed.
_CLOSING = frozenset({408, 413, 503})


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Disconnected(Exception):
    """The sender went away before its whole body arrived."""


class CallbackReceiver:
    """Receives the service's ``replyUrl`` callbacks and wakes the attached clients' waits.

    ``public_url``: the absolute http(s) URL at which the mount point is reachable from the
    service (None: :meth:`serve` sets it to the URL it serves at). ``secret``: the last path
    segment callbacks must carry (None: the ``TEMPOLOR_CALLBACK_SECRET`` environment variable
    when set, else ``secrets.token_urlsafe(32)``; pass one, or set the variable, to share it
    between the worker processes of a web backend or across restarts). ``on_job``: a sync or
    async callable given the record of every accepted callback, waited on or not, e.g. to
    push progress to browsers; it is the callback's record as sent, not yet confirmed.
    ``callback_poll_interval``: the slowest safety-net poll of an attached client's waits.

    Pass it to ``TempolorClient(callbacks=receiver)``: that client's generations then carry
    ``replyUrl = f"{public_url}/{secret}"`` unless given their own.

    Hostile senders hold nothing for long, on every mount point: the secret is checked before
    anything else of a request (a wrong one gets 404 whatever the headers, even while the
    receiver is full), a body must arrive within 10 seconds (else 408 and the connection is
    closed), at most 64 bodies are read at once (more get 503 unread), and a sender that
    disconnects mid-body is logged at DEBUG only.

    https://useapi.net/docs/api-tempolor-v1/post-tempolor-music-song
    """

    def __init__(
        self,
        public_url: str | None = None,
        secret: str | None = None,
        on_job: JobHandler | None = None,
        callback_poll_interval: float = 60.0,
    ) -> None:
        self.public_url = None if public_url is None else _check_public_url(public_url)
        origin = "secret"
        if secret is None and os.environ.get(SECRET_VARIABLE):
            secret, origin = os.environ[SECRET_VARIABLE], SECRET_VARIABLE
        # A secret of this process alone: callbacks that reach another worker are refused.
        self._random_secret = secret is None
        if secret is None:
            secret = secrets.token_urlsafe(32)
        if not isinstance(secret, str) or not _SECRET_CHARACTERS.match(secret):
            raise ConfigurationError(
                f"{origin} must be 16 to 256 URL-safe characters (letters, digits, '-', '_')"
            )
        if not isinstance(callback_poll_interval, (int, float)) or not (
            0 < callback_poll_interval < math.inf
        ):
            raise ConfigurationError("callback_poll_interval must be a positive number of seconds")
        self.secret = secret
        self.on_job = on_job
        self.callback_poll_interval = float(callback_poll_interval)
        self._secret_bytes = secret.encode()
        self._engines: set[Engine] = set()
        self._reading = 0  # bodies being read now, on every mount point

    def __repr__(self) -> str:
        return f"<CallbackReceiver public_url={self.public_url!r}>"

    def reply_url(self) -> str:
        """The ``replyUrl`` generations carry: ``f"{public_url}/{secret}"``."""
        if self.public_url is None:
            raise ConfigurationError(
                "the CallbackReceiver has no public_url: pass one, or start receiver.serve()"
            )
        return f"{self.public_url}/{self.secret}"

    # ------------------------------------------------------------ the clients

    def _attach(self, engine: Engine) -> None:
        self._engines.add(engine)

    def _detach(self, engine: Engine) -> None:
        self._engines.discard(engine)

    # ---------------------------------------------------------- the protocol

    def _check_secret(self, secret: str) -> None:
        """404 for a wrong secret: compared in constant time, before anything else of the
        request is looked at, so nothing is told to a stranger."""
        given = secret.encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, self._secret_bytes):
            raise _Refused(404)

    @staticmethod
    def _check_request(method: str, length: int | None) -> None:
        """Refuse a request with the right secret before its body is read."""
        if method != "POST":
            raise _Refused(405)
        if length is not None and length > MAX_BODY_BYTES:
            raise _Refused(413)

    @contextmanager
    def _read_slot(self) -> Iterator[None]:
        """One of the MAX_READING bodies read at once, or 503 (the body left unread)."""
        if self._reading >= MAX_READING:
            raise _Refused(503)
        self._reading += 1
        try:
            yield
        finally:
            self._reading -= 1

    @staticmethod
    def _decode(body: bytes) -> MusicJob:
        """The job record a callback carries, or 400."""
        try:
            data = _protocol.loads(body)
        except (ValueError, RecursionError):
            raise _Refused(400) from None
        if type(data) is not dict or not isinstance(data.get("job_id"), str):
            raise _Refused(400)
        try:
            _validation.path_id("job_id", data["job_id"])
            job: MusicJob = _convert.decode(data, MusicJob)
        except (ValidationError, ResponseDecodeError):
            raise _Refused(400) from None
        return job

    async def _deliver(self, job: MusicJob) -> None:
        """Wake the waiters of this job (they confirm it), then tell ``on_job``."""
        for engine in list(self._engines):
            engine.hint(job)
        if self.on_job is not None:
            try:
                await notify(self.on_job, job)
            except Exception:
                logger.exception("on_job failed for a callback about %s", job.job_id)

    # ------------------------------------------------------------- aiohttp

    async def aiohttp_handler(self, request: web.Request) -> web.StreamResponse:
        """An ``aiohttp.web`` handler: ``app.router.add_post("/tempolor/{secret}",
        receiver.aiohttp_handler)``. The secret is the route's ``{secret}``, else the last
        path segment."""
        secret = request.match_info.get("secret")
        if secret is None:
            secret = request.path.rpartition("/")[2]
        try:
            self._check_secret(secret)  # first: the headers are looked at only after it
            self._check_request(request.method, _aiohttp_length(request))
            with self._read_slot():
                body = await _read_limited(request)
            job = self._decode(body)
        except _Refused as refused:
            logger.debug("callback refused with %d", refused.status)
            return await _aiohttp_answer(request, refused.status)
        except _Disconnected:
            logger.debug("a callback's sender disconnected before its body arrived")
            return _plain_response(400)
        from aiohttp import web

        response = web.Response(status=204)
        await response.prepare(request)
        await response.write_eof()
        await self._deliver(job)
        return response

    # ---------------------------------------------------------------- ASGI

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An ASGI 3 application: ``app.mount("/tempolor", receiver.asgi)`` in FastAPI or
        Starlette, or served alone by any ASGI server. Callbacks go to ``/<secret>`` under
        the mount point."""
        kind = scope.get("type")
        if kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if kind != "http":
            return
        path = str(scope.get("path", ""))
        root = str(scope.get("root_path", ""))
        if root and path.startswith(root):
            path = path[len(root) :]
        try:
            segments = path.split("/")
            if len(segments) != 2 or segments[0] != "":
                raise _Refused(404)
            self._check_secret(segments[1])  # first: the headers are looked at only after it
            self._check_request(str(scope.get("method", "")), _asgi_length(scope))
            with self._read_slot():
                body = await _asgi_body(receive)
            job = self._decode(body)
        except _Refused as refused:
            logger.debug("callback refused with %d", refused.status)
            await _asgi_answer(send, refused.status)
            return
        except _Disconnected:  # nobody is left to answer
            logger.debug("a callback's sender disconnected before its body arrived")
            return
        await _asgi_answer(send, 204)
        await self._deliver(job)

    # ----------------------------------------------------------- standalone

    @asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve callbacks at ``http://host:port/<secret>`` for the duration of the block;
        yields the reply URL base (the secret excluded). With no ``public_url`` given, the
        served URL becomes it while the server runs.

        Besides the receiver's own limits, the server keeps at most 256 connections open
        (more are closed unanswered) and closes a connection that has not sent a whole request
        head within 10 seconds, or stays idle that long between requests."""
        from aiohttp import web

        app = web.Application()
        app.router.add_route("*", "/{secret}", self.aiohttp_handler)
        runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=0.25, keepalive_timeout=BODY_TIMEOUT
        )
        await runner.setup()
        listening: asyncio.Server | None = None
        try:
            handlers = runner.server
            assert handlers is not None
            listening = await asyncio.get_running_loop().create_server(
                lambda: _CappedConnection(handlers), host, port
            )
            bound = listening.sockets[0].getsockname()[1]
            shown = f"[{host}]" if ":" in host else host
            url = f"http://{shown}:{bound}"
            ours = self.public_url is None
            if ours:
                self.public_url = url
            try:
                yield self.public_url or url
            finally:
                if ours:
                    self.public_url = None
        finally:
            if listening is not None:
                listening.close()
            await runner.cleanup()
            if listening is not None:
                await listening.wait_closed()


class _CappedConnection(asyncio.Protocol):
    """A connection to :meth:`CallbackReceiver.serve`'s server: closed unanswered when
    MAX_CONNECTIONS are already open, else handed over to aiohttp's request handler."""

    def __init__(self, handlers: web.Server) -> None:
        self._handlers = handlers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if len(self._handlers.connections) >= MAX_CONNECTIONS:
            logger.debug("callback server full: a connection closed unanswered")
            transport.close()
            return
        handler = self._handlers()
        transport.set_protocol(handler)
        handler.connection_made(transport)


def _check_public_url(url: str) -> str:
    parts = urlsplit(url) if isinstance(url, str) else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.query
        or parts.fragment
    ):
        raise ConfigurationError("public_url must be an absolute http(s) URL with no query")
    return url.rstrip("/")


def _plain_response(status: int) -> web.Response:
    from aiohttp import web

    headers = {"Allow": "POST"} if status == 405 else None
    return web.Response(status=status, headers=headers)


async def _aiohttp_answer(request: web.Request, status: int) -> web.StreamResponse:
    response = _plain_response(status)
    if status in _CLOSING:
        # The rest of the body stays unread: the connection is closed once the answer is
        # written, where aiohttp would otherwise linger reading it for up to 10 seconds more.
        await response.prepare(request)
        await response.write_eof()
        request.protocol.force_close()
    return response


def _aiohttp_length(request: web.Request) -> int | None:
    try:
        return request.content_length
    except ValueError:  # aiohttp's parser refuses these first; a lenient one might not
        raise _Refused(400) from None


async def _read_limited(request: web.Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(BODY_TIMEOUT):
            async for chunk in request.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise _Refused(413)
                chunks.append(chunk)
    except TimeoutError:
        raise _Refused(408) from None
    except ConnectionError:
        raise _Disconnected from None
    return b"".join(chunks)


def _asgi_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if bytes(name).lower() == b"content-length":
            try:
                return int(bytes(value))
            except ValueError:
                raise _Refused(400) from None
    return None


async def _asgi_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(BODY_TIMEOUT):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Disconnected
                chunk = bytes(message.get("body", b""))
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise _Refused(413)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        raise _Refused(408) from None


async def _asgi_answer(send: Send, status: int) -> None:
    headers = [(b"content-length", b"0")]
    if status == 405:
        headers.append((b"allow", b"POST"))
    if status in _CLOSING:  # the rest of the body is not read: the server closes
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


__all__ = ["CallbackReceiver"]
