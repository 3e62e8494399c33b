"""Noiz's side of the shared protocol: the key sent bare in ``Authorization`` (no
``Bearer``), every answer wrapped as ``{"code": 0, "message": "success", "data": ...}``, and
an error told by a ``code`` other than 0 even under HTTP 200.

Documentation: https://developers.noiz.ai (voices, text to speech, emotion enhancement, voice
design, speech to text).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import _convert
from .._errors import APIStatusError, ResponseDecodeError
from .._protocol import Service, loads, parse_json

REDACTED = "[redacted]"
# How a success envelope starts when the service writes ``code`` first, as it does.
_SUCCESS_PREFIXES = (b'{"code":0,', b'{"code": 0,')


class NoizService(Service):
    """Noiz's conventions, for one key (which it keeps out of every error text)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._key = key.encode()

    def authorization(self, token: str) -> str:
        return token

    def status_of(self, status: int, content: bytes) -> int:
        """A 2xx whose envelope has a ``code`` other than 0 stands for that code when it is an
        HTTP error status (401, 402, 404, 429, 5xx...), else for 400: the service refused."""
        if not 200 <= status < 300 or content.startswith(_SUCCESS_PREFIXES):
            return status  # the common case, told without parsing the body twice
        if content.lstrip()[:1] != b"{":
            return status
        code = _envelope_code(content)
        if code is None or code == 0:
            return status
        return code if 400 <= code < 600 else 400

    def error_text(self, payload: Any) -> str | None:
        if isinstance(payload, dict) and isinstance(payload.get("message"), str):
            return payload["message"]  # type: ignore[no-any-return]
        return None

    def error_for(
        self, status: int, headers: Mapping[str, str], content: bytes, method: str, path: str
    ) -> APIStatusError:
        """As every service's, from a body with the key taken out: a server (or a proxy)
        may echo the Authorization header back in its error text."""
        return super().error_for(status, headers, self.redact(content), method, path)

    def redact(self, content: bytes) -> bytes:
        return content.replace(self._key, REDACTED.encode()) if self._key in content else content

    def decode_data(self, content: bytes, cls: Any, method: str, path: str) -> Any:
        """The envelope's ``data`` as ``cls``; ResponseDecodeError if it is not there or not
        the documented shape."""
        try:
            envelope = parse_json(content, method, path)
        except ResponseDecodeError as exc:
            text = str(exc).removeprefix(f"{method} {path}: ")
            redacted = text.replace(self.key, REDACTED)
            raise ResponseDecodeError(redacted, method=method, path=path) from None
        if type(envelope) is not dict or envelope.get("data") is None:
            raise ResponseDecodeError(
                "expected the {code, message, data} envelope with data", method=method, path=path
            )
        try:
            return _convert.decode(envelope["data"], cls)
        except ResponseDecodeError as exc:
            raise ResponseDecodeError(f"data: {exc}", method=method, path=path) from None


def _envelope_code(content: bytes) -> int | None:
    try:
        payload = loads(content)
    except (ValueError, RecursionError):
        return None  # the decoding step says what is wrong with it
    code = payload.get("code") if type(payload) is dict else None
    return code if type(code) is int else None
