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

import hmac
import logging
import math
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

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
JobHandler = Callable[[MusicJob], Awaitable[None] | None]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
_SECRET_CHARACTERS = re.compile(r"^[A-Za-z0-9_-]{16,256}$")


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class CallbackReceiver:
    """Receives the service's ``replyUrl`` callbacks and wakes the attached clients' waits.

    ``public_url``: the absolute http(s) URL at which the mount point is reachable from the
    service (None: :meth:`serve` sets it to the URL it serves at). ``secret``: the last path
    segment callbacks must carry (None: ``secrets.token_urlsafe(32)``; pass one to share it
    between processes or restarts). ``on_job``: a sync or async callable given the record of
    every accepted callback, waited on or not, e.g. to push progress to browsers; it is the
    callback's record as sent, not yet confirmed. ``callback_poll_interval``: the slowest
    safety-net poll of an attached client's waits.

    Pass it to ``TempolorClient(callbacks=receiver)``: that client's generations then carry
    ``replyUrl = f"{public_url}/{secret}"`` unless given their own.
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
        self._random_secret = secret is None  # a fleet's receivers cannot share it
        if secret is None:
            secret = secrets.token_urlsafe(32)
        if not isinstance(secret, str) or not _SECRET_CHARACTERS.match(secret):
            raise ConfigurationError(
                "secret must be 16 to 256 URL-safe characters (letters, digits, '-', '_')"
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

    def _check(self, method: str, secret: str, length: int | None) -> None:
        """Refuse a request before its body is read."""
        given = secret.encode("utf-8", "surrogateescape")
        # Compared in constant time, and before the method: nothing is told to a stranger.
        if not hmac.compare_digest(given, self._secret_bytes):
            raise _Refused(404)
        if method != "POST":
            raise _Refused(405)
        if length is not None and length > MAX_BODY_BYTES:
            raise _Refused(413)

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
            self._check(request.method, secret, request.content_length)
            body = await _read_limited(request)
            job = self._decode(body)
        except _Refused as refused:
            logger.debug("callback refused with %d", refused.status)
            return _plain_response(refused.status)
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
            self._check(str(scope.get("method", "")), segments[1], _asgi_length(scope))
            body = await _asgi_body(receive)
            job = self._decode(body)
        except _Refused as refused:
            logger.debug("callback refused with %d", refused.status)
            await _asgi_answer(send, refused.status)
            return
        await _asgi_answer(send, 204)
        await self._deliver(job)

    # ----------------------------------------------------------- standalone

    @asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve callbacks at ``http://host:port/<secret>`` for the duration of the block;
        yields the reply URL base (the secret excluded). With no ``public_url`` given, the
        served URL becomes it while the server runs."""
        from aiohttp import web

        app = web.Application()
        app.router.add_route("*", "/{secret}", self.aiohttp_handler)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.25)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound = runner.addresses[0][1]
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
            await runner.cleanup()


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


async def _read_limited(request: web.Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _Refused(413)
        chunks.append(chunk)
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
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Refused(400)
        chunk = bytes(message.get("body", b""))
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _Refused(413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _asgi_answer(send: Send, status: int) -> None:
    headers = [(b"content-length", b"0")]
    if status == 405:
        headers.append((b"allow", b"POST"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


__all__ = ["CallbackReceiver"]
