"""What every TemPolor route shares: the simulator's state, ids, paging and request checks.

The resource modules beside this one each add the routes of one part of the API, the way the
SDK's ``resources/`` are split; ``server.py`` puts them together as ``FakeTempolor``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import time
from typing import Any

import aiohttp
from aiohttp import web

from .._server import FakeServer, Reply, content_type_of, reason
from .state import AUDIO_CONTENT_TYPES, FakeAccount, FakeClonedVoice, FakeJob, FakeMidi

API_PATH = "/v1/tempolor"
CDN_PATH = "/cdn"
JOB_ID_PATTERN = re.compile(
    r"^user:\d+-tempolor:(?P<user_id>[^/]+?)-job:(?P<item_id>[A-Za-z0-9_]+)$"
)
VOICE_ID_PATTERN = re.compile(r"^user:\d+-tempolor:(?P<user_id>[^/]+?)-voice:[A-Za-z0-9_]+$")
MIDI_ID_PATTERN = re.compile(r"^user:\d+-tempolor:(?P<user_id>[^/]+?)-midi:[A-Za-z0-9_]+$")
BUSY_TEMPOLOR = "please wait for current Generations to finish or upgrade your plan"
FILE_FORMATS = {"mp3": ("mp3", "mp3"), "wav": ("wav", "wav"), "stems": ("stems", "zip")}
LIMITS = {"prompt": 2000, "lyrics": 3000, "chords": 200, "replyUrl": 1024, "replyRef": 1024}


class TempolorBase(FakeServer):
    """The simulator's world and the checks every TemPolor route makes."""

    api_path = API_PATH
    token: str
    job_duration: float
    page_size: int
    fail_marker: str
    audio_seconds: float
    max_gen_count_at_once: int
    voice_clone_delay: float
    voice_clone_pending: bool
    download_url_expiry: int
    download_lag: float
    callback_errors: list[str]
    submissions: list[list[str]]
    accounts: dict[str, FakeAccount]
    jobs: dict[str, FakeJob]
    cloned_voices: dict[str, FakeClonedVoice]
    midi_files: dict[str, FakeMidi]
    _splits: dict[str, bytes]
    _cdn_files: dict[str, tuple[bytes, str]]
    _media_cache: dict[tuple[str, str], bytes]
    _remain_num: int
    _cdn_secret: str
    _callback_session: aiohttp.ClientSession | None
    _callback_tasks: set[asyncio.Task[None]]

    @property
    def media_url(self) -> str:
        return self.origin + CDN_PATH

    def signed_media_url(self, path: str, expires: int) -> str:
        """The URL of the media at ``path`` (under the origin) with an ``auth_key`` valid
        until the epoch second ``expires``."""
        return f"{self.origin}{path}?auth_key={expires}-0-0-{self._auth_hash(path, expires)}"

    def _auth_hash(self, path: str, expires: int) -> str:
        text = f"{path}-{expires}-0-0-{self._cdn_secret}"
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    def _authorize(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            raise Reply(401, "Unauthorized")

    def _fault_error(self, status: int) -> Reply:
        return Reply(status, BUSY_TEMPOLOR if status == 429 else reason(status))

    def _resolve_account(self, user_id: str | None) -> FakeAccount:
        """The account a request names, or the only one there is."""
        if user_id:
            account = self.accounts.get(user_id)
            if account is None:
                raise Reply(404, f"Account {user_id} not found")
            return account
        if not self.accounts:
            raise Reply(404, "No accounts configured")
        if len(self.accounts) > 1:
            raise Reply(400, "Parameter user_id is required when multiple accounts are configured")
        return next(iter(self.accounts.values()))

    def _job(self, job_id: str) -> FakeJob:
        if not JOB_ID_PATTERN.match(job_id):
            raise Reply(400, "job_id has incorrect format")
        job = self.jobs.get(job_id)
        if job is None:
            raise Reply(404, f"No record found for {job_id}")
        return job

    def _page(
        self, records: list[dict[str, Any]], sequences: list[int], cursor: str | None
    ) -> dict[str, Any]:
        """Newest-first keyset pagination: the cursor names the last record already sent."""
        start = 0
        if cursor:
            after = _decode_cursor(cursor)
            start = next((i for i, seq in enumerate(sequences) if seq < after), len(sequences))
        chunk = records[start : start + self.page_size]
        has_next = start + self.page_size < len(records)
        next_cursor = _encode_cursor(sequences[start + len(chunk) - 1]) if has_next else ""
        return {"records": chunk, "hasNext": has_next, "cursor": next_cursor}

    def running_jobs(self, user_id: str | None = None) -> list[FakeJob]:
        now = time.monotonic()
        return [
            job
            for job in self.jobs.values()
            if job.is_running(now) and (user_id is None or job.user_id == user_id)
        ]


def _encode_cursor(sequence: int) -> str:
    return base64.urlsafe_b64encode(f"after:{sequence}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "after":
            raise ValueError(cursor)
        return int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Reply(400, "Parameter cursor is invalid") from None


def audio_extension(request: web.Request) -> str:
    content_type = content_type_of(request)
    if content_type not in AUDIO_CONTENT_TYPES:
        supported = ", ".join(AUDIO_CONTENT_TYPES)
        raise Reply(400, f"Content-Type must be one of {supported}")
    return AUDIO_CONTENT_TYPES[content_type]


def whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def positive_int(value: Any, name: str) -> int:
    number = whole_number(value)
    if number is None or number < 1:
        raise Reply(400, f"Parameter {name} must be a positive integer")
    return number
