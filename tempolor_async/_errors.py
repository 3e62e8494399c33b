"""Every exception the SDK raises, all under one root::

    TempolorError
    ├── ConfigurationError
    │   └── CoordinationError      Redis (coordination=) unreachable when the client opens
    ├── ValidationError            (also a ValueError) bad input caught before anything is sent
    ├── APIConnectionError         no HTTP response (DNS, refused, reset, TLS)
    │   └── APITimeoutError
    ├── APIStatusError             .status, .message, .body, .method, .path
    │   ├── BadRequestError        400
    │   ├── AuthenticationError    401
    │   ├── PaymentRequiredError   402
    │   ├── NotFoundError          404
    │   ├── RateLimitError         429; .running_jobs, .retry_after
    │   └── ServerError            5xx
    ├── ResponseDecodeError        a success status whose body is not the documented JSON
    ├── PaginationError
    ├── JobFailedError             .job
    └── JobTimeoutError            .job_id, .job_ids, .last

Messages name the method and path and carry the service's own ``error`` text. They never
contain the token: no header ever goes into a message, and since a server (or a proxy in
front of it) may echo the ``Authorization`` header back in an error text, a status line or a
body, every message has the tokens of the clients alive in the process replaced by
``[redacted]`` when the exception is made (:func:`redact`).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from ._models import MusicJob, RunningJob

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "CoordinationError",
    "JobFailedError",
    "JobTimeoutError",
    "NotFoundError",
    "PaginationError",
    "PaymentRequiredError",
    "RateLimitError",
    "ResponseDecodeError",
    "ServerError",
    "TempolorError",
    "ValidationError",
]


REDACTED = "[redacted]"
# Shorter secrets cannot be told apart from ordinary text, and none is that short.
MIN_SECRET_LENGTH = 8
# The secrets of each live owner (a client's HTTP session), in every form a server may
# echo them in: as sent, percent-encoded, JSON-escaped.
_secrets: weakref.WeakKeyDictionary[object, tuple[str, ...]] = weakref.WeakKeyDictionary()


def register_secret(owner: object, secret: str) -> None:
    """Keep ``secret`` out of every message while ``owner`` is alive."""
    if len(secret) < MIN_SECRET_LENGTH:
        return
    forms = {secret, quote(secret, safe=""), quote(secret, safe="/:@"), json.dumps(secret)[1:-1]}
    _secrets[owner] = tuple(sorted(forms, key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``[redacted]``."""
    for forms in list(_secrets.values()):
        for form in forms:
            if form in text:
                text = text.replace(form, REDACTED)
    return text


class TempolorError(Exception):
    """The root of every error this SDK raises. Its text never holds a registered secret."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(arg) if isinstance(arg, str) else arg for arg in args))


class ConfigurationError(TempolorError):
    """The client was configured wrongly (no token, an invalid option)."""


class CoordinationError(ConfigurationError):
    """The fleet's Redis (``coordination=``) could not be reached when the client opened;
    the message names its URL without the password."""


class ValidationError(TempolorError, ValueError):
    """A parameter broke a documented rule; nothing was sent."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


class APIConnectionError(TempolorError):
    """No HTTP response arrived: the connection failed, was refused or was cut."""

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.path = path


class APITimeoutError(APIConnectionError):
    """No complete response arrived in time."""


class APIStatusError(TempolorError):
    """The service answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str,
        path: str,
        body: Any = None,
    ) -> None:
        message = redact(message)
        super().__init__(f"{method} {path} -> {status}: {message}")
        self.status = status
        self.message = message
        self.body = body
        self.method = method
        self.path = path


class BadRequestError(APIStatusError):
    """400: the service rejected the request's parameters."""


class AuthenticationError(APIStatusError):
    """401: the token is missing or wrong."""


class PaymentRequiredError(APIStatusError):
    """402: the account needs a subscription."""


class NotFoundError(APIStatusError):
    """404: no such record, account or route."""


class RateLimitError(APIStatusError):
    """429: the account is busy (``running_jobs`` says with what) or TemPolor is."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str,
        path: str,
        body: Any = None,
        running_jobs: dict[str, list[RunningJob]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, method=method, path=path, body=body)
        self.running_jobs: dict[str, list[RunningJob]] = running_jobs or {}
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """5xx: the service failed."""


class ResponseDecodeError(TempolorError):
    """A success status arrived with a body that is not the documented JSON."""

    def __init__(
        self, message: str, *, method: str = "", path: str = "", body: bytes = b""
    ) -> None:
        where = f"{method} {path}: " if method else ""
        super().__init__(where + message)
        self.method = method
        self.path = path
        self.body = body


class PaginationError(TempolorError):
    """The service sent a cursor it had already sent: following it would loop forever."""


class JobFailedError(TempolorError):
    """The job ended FAILED; ``job`` holds its final record."""

    def __init__(self, job: MusicJob) -> None:
        reason = f": {job.error}" if job.error else ""
        super().__init__(f"job {job.job_id} failed{reason}")
        self.job = job


class JobTimeoutError(TempolorError):
    """The wait's deadline passed before the job(s) were final."""

    def __init__(
        self,
        job_ids: Sequence[str],
        timeout: float,
        *,
        last: MusicJob | None = None,
    ) -> None:
        self.job_ids = list(job_ids)
        self.job_id = self.job_ids[0] if self.job_ids else ""
        self.last = last
        if len(self.job_ids) == 1:
            status = f" (last status: {last.status_name})" if last and last.status_name else ""
            text = f"job {self.job_id} not final after {timeout:g} s{status}"
        else:
            text = f"{len(self.job_ids)} jobs not final after {timeout:g} s, first {self.job_id}"
        super().__init__(text)
