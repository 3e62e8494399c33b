"""What every simulator shares: a loopback ``aiohttp.web`` server, its request log, fault
injection (answer, drop, truncate, delay) and routing to a table of handlers.

A service's simulator subclasses :class:`FakeServer` and says only what is its own: the API
path, how a request is authorised, its routes, and how an error looks in its bodies.
"""

from __future__ import annotations

import asyncio
import email.policy
import email.utils
import fnmatch
import json
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self


@dataclass(frozen=True)
class Call:
    """What a route handler gets: the request, its path match and its body."""

    request: web.Request
    match: re.Match[str]
    body: bytes

    @property
    def query(self) -> Mapping[str, str]:
        return self.request.query


Handler = Callable[[Call], Awaitable[web.StreamResponse]]
Route = tuple[str, "re.Pattern[str]", Handler]


class Reply(Exception):
    """Raised by request checks to answer at once with the service's error body."""

    def __init__(self, status: int, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.extra = extra
        self.body = {"error": error, **extra, "code": status}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the simulator received it. ``path`` is under the base URL
    (``/music/song``); requests for media start with ``/cdn/``."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: CIMultiDictProxy[str]
    body: bytes
    time: float = field(default_factory=time.monotonic, compare=False)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Fault:
    """A fault to inject: see :meth:`FakeServer.inject`."""

    method: str
    path: str
    status: int | None = None
    body: Any = None
    headers: Mapping[str, str] | None = None
    drop: bool = False
    truncate: bool = False
    delay: float = 0.0
    handled: bool = False
    times: int | None = 1
    probability: float = 1.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method not in ("*", method):
            return False
        if not fnmatch.fnmatchcase(path, self.path):
            return False
        return self.probability >= 1.0 or self.rng.random() < self.probability


class FakeServer:
    """A simulated service on a loopback port: lifecycle, request log, faults, routing.

    Subclasses set ``api_path`` and ``_routes`` and override :meth:`_authorize`,
    :meth:`_error_response` and, for paths outside the API, :meth:`_other`.
    """

    api_path = ""
    service_name = "the service"

    def __init__(self, *, host: str, port: int, clock_offset: float = 0.0) -> None:
        self.host = host
        self.port = port
        self.clock_offset = clock_offset
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self._routes: list[Route] = []
        self._runner: web.AppRunner | None = None
        self._origin: str | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start listening; ``async with`` does this for you."""
        if self._runner is not None:
            return
        app = web.Application(client_max_size=1024**3)
        app.on_response_prepare.append(self._stamp_date)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.25)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        sockets = runner.addresses
        port = sockets[0][1]
        self._origin = f"http://{self.host}:{port}"

    async def close(self) -> None:
        """Stop the server and its open connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        # Requests whose client hung up (e.g. during an injected delay) are no longer tracked
        # by aiohttp's server, so their handlers would outlive it: end them here.
        handlers = list(self._handlers)
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def origin(self) -> str:
        if self._origin is None:
            name = type(self).__name__
            raise RuntimeError(f"{name} is not started: use 'async with' or await start()")
        return self._origin

    @property
    def base_url(self) -> str:
        """The API root to point a client at, e.g. ``http://127.0.0.1:8765/v1/tempolor``."""
        return self.origin + self.api_path

    # ------------------------------------------------------------------- clock

    def wall_time(self) -> float:
        """The service's clock (epoch seconds): this machine's plus ``clock_offset``."""
        return time.time() + self.clock_offset

    def wall_ms(self) -> int:
        """The service's clock in epoch milliseconds, as records show it."""
        return int(self.wall_time() * 1000)

    async def _stamp_date(self, request: web.Request, response: web.StreamResponse) -> None:
        """Every answer's ``Date`` header follows the service's clock."""
        response.headers["Date"] = email.utils.formatdate(self.wall_time(), usegmt=True)

    # ----------------------------------------------------------- test controls

    def inject(
        self,
        method: str,
        path: str,
        *,
        status: int | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        drop: bool = False,
        truncate: bool = False,
        delay: float = 0.0,
        handled: bool = False,
        times: int | None = 1,
        probability: float = 1.0,
        seed: int | None = None,
    ) -> Fault:
        """Make the next ``times`` requests matching ``method`` and the glob ``path`` misbehave.

        ``path`` is matched under the base URL (``"/music/*"``), or ``"/cdn/*"`` for media.
        ``method`` may be ``"*"``. ``times=None`` keeps the fault for good; ``probability``
        makes it strike at random (``seed`` makes that repeatable).

        - ``status`` (with an optional ``body``: bytes, text, or anything JSON-encodable):
          answer with it instead of handling the request; without ``body`` the answer is
          the service's usual error body for that status. ``body`` alone answers 200.
        - ``drop``: close the connection without answering; nothing is handled.
        - ``truncate``: handle the request, then close the connection halfway through the
          response body (the server acted; the client cannot know).
        - ``handled`` (with ``status`` and an optional ``body``): handle the request first
          (the service acts: a generation is accepted and paid), then answer with that
          status instead of the real answer.
        - ``delay``: wait this long first, then go on as above (or answer normally). With
          ``handled`` (or alone), the request is handled after the delay even if the client
          gave up meanwhile: a service that accepts a generation after the client's timeout.
        """
        if status is None and body is None and not (drop or truncate or delay):
            raise ValueError("inject() needs status, body, drop, truncate or delay")
        if handled and status is None:
            raise ValueError("inject(handled=True) needs the status to answer with")
        if handled and (drop or truncate):
            raise ValueError("inject(handled=True) answers with a status; not with drop/truncate")
        fault = Fault(
            method.upper(),
            path,
            status=status,
            body=body,
            headers=headers,
            drop=drop,
            truncate=truncate,
            delay=delay,
            handled=handled,
            times=times,
            probability=probability,
            rng=random.Random(seed),
        )
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """The recorded requests matching ``method`` (or ``"*"``) and the glob ``path``."""
        method = method.upper()
        return [
            request
            for request in self.requests
            if method in ("*", request.method) and fnmatch.fnmatchcase(request.path, path)
        ]

    # ------------------------------------------------------------ HTTP plumbing

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            return await self._handle(request)
        finally:
            self._handlers.discard(task)  # type: ignore[arg-type,unused-ignore]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.path
        is_api = path.startswith(self.api_path + "/")
        relative = path[len(self.api_path) :] if is_api else path
        self.requests.append(
            RecordedRequest(
                request.method,
                relative,
                dict(request.query),
                CIMultiDictProxy(CIMultiDict(request.headers)),
                body,
            )
        )
        fault = next((f for f in self.faults if f.matches(request.method, relative)), None)
        if fault is not None:
            fault.hits += 1
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.drop:
                return self._drop(request)
            if fault.handled:
                await self._handle_quietly(request, is_api, relative, path, body)
                return self._fault_response(fault)
            if fault.status is not None or fault.body is not None:
                injected = self._fault_response(fault)
                return await self._truncate(request, injected) if fault.truncate else injected
        response: web.StreamResponse
        try:
            if is_api:
                response = await self._api(request, relative, body)
            else:
                response = await self._other(request, path)
        except Reply as reply:
            response = self._error_response(reply)
        except Exception as exc:  # a simulator bug must still answer as the service would
            response = self._error_response(Reply(500, f"Internal error: {exc!r}"))
        if fault is not None and fault.truncate:
            return await self._truncate(request, response)
        return response

    async def _handle_quietly(
        self, request: web.Request, is_api: bool, relative: str, path: str, body: bytes
    ) -> None:
        """Handle a request for its effects only (``handled`` faults): its answer is dropped."""
        try:
            if is_api:
                await self._api(request, relative, body)
            else:
                await self._other(request, path)
        except Exception:  # refused or broken: the service did not act, the fault answers anyway
            return

    async def _api(self, request: web.Request, relative: str, body: bytes) -> web.StreamResponse:
        self._authorize(request)
        allowed = []
        for method, pattern, handler in self._routes:
            match = pattern.match(relative)
            if match is None:
                continue
            if method == request.method:
                return await handler(Call(request, match, body))
            allowed.append(method)
        if allowed:
            raise Reply(405, f"Method {request.method} not allowed for {relative}")
        raise Reply(404, f"Route {request.method} {relative} not found")

    def _authorize(self, request: web.Request) -> None:
        """Raise :class:`Reply` (401) unless the request carries the right credentials."""

    async def _other(self, request: web.Request, path: str) -> web.StreamResponse:
        """A request outside the API path: 404 unless the service serves more (e.g. media)."""
        raise Reply(404, f"Route {request.method} {path} not found")

    def _error_response(self, reply: Reply) -> web.Response:
        """The service's error body for ``reply``."""
        return json_response(reply.status, reply.body)

    def _fault_error(self, status: int) -> Reply:
        """The error an injected ``status`` without a body answers with."""
        return Reply(status, reason(status))

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        if request.transport is not None:
            request.transport.close()
        return web.Response()

    @staticmethod
    async def _truncate(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        """Send the status, headers and half of the body, then cut the connection."""
        body = response.body if isinstance(response, web.Response) else b""
        payload = body if isinstance(body, bytes) else b""
        partial = web.StreamResponse(status=response.status, headers=response.headers)
        partial.content_length = len(payload)
        await partial.prepare(request)
        await partial.write(payload[: len(payload) // 2])
        if request.transport is not None:
            request.transport.close()
        return partial

    def _fault_response(self, fault: Fault) -> web.Response:
        status = fault.status or 200
        body = fault.body
        if body is None:
            response = self._error_response(self._fault_error(status))
        else:
            if isinstance(body, str):
                body = body.encode()
            if isinstance(body, bytes):
                kind = "text/html" if body.lstrip()[:1] == b"<" else "application/json"
                response = web.Response(status=status, body=body, content_type=kind)
            else:
                response = json_response(status, body)
        for name, value in (fault.headers or {}).items():
            response.headers[name] = value
        return response


# ----------------------------------------------------------------- pure helpers


def compact_json(payload: Any) -> bytes:
    """JSON as the services send it: no spaces (``{"result":true}``)."""
    return json.dumps(payload, separators=(",", ":")).encode()


def json_response(status: int, payload: Any) -> web.Response:
    return web.Response(status=status, body=compact_json(payload), content_type="application/json")


def reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def content_type_of(request: web.Request) -> str:
    return request.headers.get("Content-Type", "").split(";")[0].strip().lower()


def json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body) if body.strip() else {}
    except ValueError:
        raise Reply(400, "Request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise Reply(400, "Request body must be a JSON object")
    return payload


@dataclass(frozen=True)
class FormPart:
    """One part of a multipart/form-data body."""

    name: str
    filename: str | None
    content_type: str
    data: bytes

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def multipart_parts(content_type: str, body: bytes) -> list[FormPart]:
    """The parts of a multipart/form-data body. Parsed from the bytes already read:
    ``request.post()`` would read the request stream again, and it is consumed by then."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise Reply(400, "Request body is not valid multipart/form-data")
    parts: list[FormPart] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        charset = part.get_content_charset() or "utf-8"
        filename = part.get_filename()
        if filename is None:
            payload = payload.decode(charset, "replace").encode()
        parts.append(FormPart(name, filename, part.get_content_type(), payload))
    return parts


def multipart_fields(content_type: str, body: bytes) -> dict[str, Any]:
    """The text fields of a multipart/form-data body (file parts left out)."""
    return {
        part.name: part.text()
        for part in multipart_parts(content_type, body)
        if part.filename is None
    }


def text_field(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Reply(400, f"Parameter {name} must be a string")
    return value
