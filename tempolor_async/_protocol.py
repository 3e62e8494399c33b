"""The protocol every service shares, with no I/O: requests as data, responses into models or
exceptions, and the retry decisions. Everything here can be tested with plain bytes.

What differs between services is a :class:`Service`: how the key is sent, where an error's
text is in a body, and whether a 2xx answer can still carry an error (an envelope's code).
TemPolor's is in ``resources/_service.py``, Noiz's in ``noiz/_service.py``.
"""

from __future__ import annotations

import enum
import json
import math
import random
import re
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

import orjson
from yarl import URL

from . import _convert
from ._errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
)

T = TypeVar("T")

# Retry timing: about 0.5 s doubling to an 8 s cap, with jitter; Retry-After honoured up to
# RETRY_AFTER_CAP. A 429 "busy" on a generation waits at least BUSY_RETRY_SECONDS, the
# documented rule ("wait in a loop for at least 30 seconds and retry").
RETRY_BASE_SECONDS = 0.5
RETRY_CAP_SECONDS = 8.0
RETRY_AFTER_CAP = 60.0
BUSY_RETRY_SECONDS = 30.0
BUSY_JITTER = 0.1
# The adaptive poll schedule of await_job: starts near 2 s, grows to 15 s.
POLL_FIRST_SECONDS = 2.0
POLL_GROWTH = 1.5
POLL_CAP_SECONDS = 15.0
# A job just submitted may not be visible yet; a download link may lag its job's completion.
NOT_FOUND_GRACE_SECONDS = 30.0
DOWNLOAD_LINK_GRACE_SECONDS = 10.0


class Kind(enum.Enum):
    """How a request may be retried."""

    IDEMPOTENT = "idempotent"  # GET, DELETE, POST accounts: retried on transient failures
    GENERATION = "generation"  # may create a paid job: never re-sent once it may have arrived
    UPLOAD = "upload"  # a body that may be large: re-sent only if it was never sent


_NO_QUERY: Mapping[str, str] = MappingProxyType({})


class ApiRequest(NamedTuple):
    """One API call, as data: what the seam to aiohttp sends. A named tuple: immutable, and
    the cheapest record to build, once per call."""

    method: str
    path: str  # under the base URL, e.g. "/music/song"
    kind: Kind = Kind.IDEMPOTENT
    query: Mapping[str, str] = _NO_QUERY
    json: Any = None
    upload: Any = None  # an _files.Upload (raw body) or _files.FormUpload (multipart)
    sink: Any = None  # async callable(response) -> bytes that consumes a 2xx body itself


def query(**params: Any) -> dict[str, str]:
    """Query parameters with None dropped and enums as their values (yarl would use names)."""
    return {key: _wire(value) for key, value in params.items() if value is not None}


def body(**fields: Any) -> dict[str, Any]:
    """A JSON body with None dropped, as the API wants parameters left out rather than null."""
    return {key: _wire(value) for key, value in fields.items() if value is not None}


def _wire(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int:
        return value  # the common case, told by one lookup
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bool):
        return value
    return value if isinstance(value, (int, float, dict, list)) else str(value)


# ------------------------------------------------------------------ decoding


def loads(content: bytes) -> Any:
    """Parse JSON with orjson (several times faster than the standard library), falling back
    to the standard library for what orjson refuses but JSON readers commonly accept
    (UTF-16/32 text, NaN and Infinity). Raises ValueError or RecursionError."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return json.loads(content)


def parse_json(content: bytes, method: str, path: str) -> Any:
    try:
        return loads(content)
    except (ValueError, RecursionError):
        raise ResponseDecodeError(
            f"response is not JSON{_glimpse(content)}", method=method, path=path, body=content
        ) from None


def decode(content: bytes, cls: Any, method: str, path: str) -> Any:
    """A success body as ``cls``; ResponseDecodeError if it is not the documented JSON."""
    try:
        data = orjson.loads(content)  # the common case, with no call in between
    except orjson.JSONDecodeError:
        data = parse_json(content, method, path)
    try:
        return _convert.decode(data, cls)
    except ResponseDecodeError as exc:
        raise ResponseDecodeError(str(exc), method=method, path=path, body=content) from None


def _glimpse(content: bytes) -> str:
    """The start of a broken body, for the error message; none for broken JSON, which may be
    a record cut short, credentials and all."""
    text = content[:80].decode("utf-8", "replace").strip()
    if not text or text[0] in "{[":
        return ""
    return f": {text!r}"


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    404: NotFoundError,
    429: RateLimitError,
}


class Service:
    """What one service decides for itself; the HTTP seam and its retry loop ask it.

    The defaults are plain HTTP: a bearer token, errors told by the status alone. A service
    overrides what differs.
    """

    def authorization(self, token: str) -> str:
        """The ``Authorization`` header's value for ``token``."""
        return f"Bearer {token}"

    def status_of(self, status: int, content: bytes) -> int:
        """The status an answer stands for: the HTTP status, unless a 2xx body says it
        failed (an envelope's error code), so that it is retried and raised as that."""
        return status

    def error_text(self, payload: Any) -> str | None:
        """The service's own error text in a parsed error body, or None if it has none."""
        return None

    def error_details(self, status: int, payload: Any) -> dict[str, Any]:
        """Extra attributes for the exception of ``status`` (e.g. a 429's running jobs)."""
        return {}

    def error_for(
        self, status: int, headers: Mapping[str, str], content: bytes, method: str, path: str
    ) -> APIStatusError:
        """The exception for an error status, carrying the service's own error text."""
        try:
            payload: Any = loads(content) if content else None
        except (ValueError, RecursionError):
            payload = None
        text = self.error_text(payload)
        if text is not None:
            message = text or f"HTTP {status}"
        elif payload is not None:
            message = f"HTTP {status}"
        else:
            message = f"HTTP {status}" + (f" (non-JSON body{_glimpse(content)})" if content else "")
        if 300 <= status < 400:
            message += " (an unexpected redirect)"
        body = payload if payload is not None else content
        cls = _STATUS_ERRORS.get(status) or (ServerError if status >= 500 else APIStatusError)
        if cls is RateLimitError:
            return RateLimitError(
                message,
                status=status,
                method=method,
                path=path,
                body=body,
                retry_after=retry_after(headers),
                **self.error_details(status, payload),
            )
        return cls(message, status=status, method=method, path=path, body=body)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date), or None."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())


# ------------------------------------------------------------------ retrying


def should_retry_status(kind: Kind, status: int) -> bool:
    """Only idempotent requests are repeated after an answer: on 429 and 5xx."""
    return kind is Kind.IDEMPOTENT and (status == 429 or status >= 500)


def should_retry_failure(kind: Kind, request_sent: bool) -> bool:
    """After no answer, a request that may have reached the server is repeated only if
    repeating it is harmless."""
    return kind is Kind.IDEMPOTENT or not request_sent


def retry_delay(retry: int, after: float | None = None, rng: random.Random | None = None) -> float:
    """Seconds before retry number ``retry`` (1-based): exponential with jitter, or the
    server's Retry-After where it asks for longer (up to a cap)."""
    base = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2.0 ** (retry - 1))
    delay = base * (0.5 + float((rng or random).random()) / 2)
    if after is not None:
        delay = max(delay, min(after, RETRY_AFTER_CAP))
    return delay


def busy_delay(
    after: float | None = None,
    *,
    floor: float = BUSY_RETRY_SECONDS,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after a 429 "busy" on a generation: the floor (the documented 30 s)
    plus up to 10 % jitter so that many clients do not retry in step, or a longer
    Retry-After."""
    delay = floor * (1 + BUSY_JITTER * float((rng or random).random()))
    return max(delay, min(after or 0.0, RETRY_AFTER_CAP * 5))


def poll_delays(fixed: float | None = None) -> Iterator[float]:
    """The pause before each poll of await_job: fixed, or adaptive (2 s growing to 15 s)."""
    delay = POLL_FIRST_SECONDS if fixed is None else fixed
    while True:
        yield delay
        if fixed is None:
            delay = min(POLL_CAP_SECONDS, delay * POLL_GROWTH)


def transient(error: BaseException) -> bool:
    """Errors a wait rides out: no answer, a timeout, 429 and 5xx."""
    if isinstance(error, APIConnectionError):
        return True
    return isinstance(error, APIStatusError) and (error.status == 429 or error.status >= 500)


_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f]")


def media_url_problem(url: object) -> str | None:
    """Why ``url`` cannot be downloaded from (an absolute http(s) URL with a valid host and
    port, and no control characters or spaces), or None when it can."""
    if not isinstance(url, str):
        return f"must be text, not {type(url).__name__}"
    if _CONTROL_OR_SPACE.search(url):
        return "must not contain control characters or spaces"
    try:
        url.encode("utf-8")
        parsed = URL(url, encoded=url.isascii())
        host, port = parsed.raw_host, parsed.port
        if host and ":" not in host:  # a name (not an IPv6 address) must be IDNA-encodable
            host.encode("idna")
    except (ValueError, UnicodeError):
        return "is not a valid URL (its host or port cannot be read)"
    if parsed.scheme not in ("http", "https") or not host:
        return "must be an absolute http:// or https:// URL"
    if port is not None and not 0 < port < 65536:
        return "has a port outside 1-65535"
    return None


def item_id_of(job_id: str) -> str:
    """The itemId at the end of a job id (``...-job:<itemId>``), or the whole id."""
    return job_id.rpartition("-job:")[2] or job_id
