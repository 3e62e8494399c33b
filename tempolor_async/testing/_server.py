"""FakeTempolor: a local HTTP stand-in for the TemPolor API as served by useapi.net.

The server answers every documented endpoint under ``/v1/tempolor`` with the documented
checks, shapes and error texts, and serves the generated media itself under ``/cdn`` at URLs
that need no token, as a CDN would. Fault injection and a request log make it a test tool.

Documentation of each endpoint: https://useapi.net/docs/api-tempolor-v1
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.policy
import fnmatch
import json
import math
import random
import re
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from . import _media
from ._state import (
    API_USER,
    ARTIST_VOICE_IDS,
    AUDIO_CONTENT_TYPES,
    COMPLETED,
    DEFAULT_INSTRUMENTAL_MODEL,
    DEFAULT_SONG_MODEL,
    GENERATING,
    MIDI_CONTENT_TYPES,
    TONALITIES,
    FakeAccount,
    FakeClonedVoice,
    FakeJob,
    FakeMidi,
    artist_catalogue,
    new_item_id,
    wall_ms,
)

if TYPE_CHECKING:
    from types import TracebackType

    from .._client import TempolorClient

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


@dataclass(frozen=True)
class _Call:
    """What a route handler gets: the request, its path match and its body."""

    request: web.Request
    match: re.Match[str]
    body: bytes

    @property
    def query(self) -> Mapping[str, str]:
        return self.request.query


Handler = Callable[[_Call], Awaitable[web.StreamResponse]]


class _Reply(Exception):
    """Raised by request checks to answer at once with the documented error body."""

    def __init__(self, status: int, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status = status
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
    """A fault to inject: see :meth:`FakeTempolor.inject`."""

    method: str
    path: str
    status: int | None = None
    body: Any = None
    headers: Mapping[str, str] | None = None
    drop: bool = False
    truncate: bool = False
    delay: float = 0.0
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


class FakeTempolor:
    """A faithful local TemPolor service on 127.0.0.1, for tests, demos and benchmarks.

    >>> async with FakeTempolor(job_duration=0.5) as fake:
    ...     fake.base_url  # "http://127.0.0.1:<port>/v1/tempolor"
    """

    def __init__(
        self,
        token: str = "fake-token",
        *,
        job_duration: float = 0.5,
        max_jobs: int = 10,
        page_size: int = 20,
        fail_marker: str = "[fail]",
        user_id: str = "100349856",
        host: str = "127.0.0.1",
        port: int = 0,
        audio_seconds: float = 2.0,
        max_gen_count_at_once: int = 10,
        voice_clone_delay: float = 0.0,
        voice_clone_pending: bool = False,
        download_url_expiry: int = 3600,
    ) -> None:
        self.token = token
        self.job_duration = job_duration
        self.page_size = page_size
        self.fail_marker = fail_marker
        self.host = host
        self.port = port
        self.audio_seconds = audio_seconds
        self.max_gen_count_at_once = max_gen_count_at_once
        self.voice_clone_delay = voice_clone_delay
        self.voice_clone_pending = voice_clone_pending
        self.download_url_expiry = download_url_expiry
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.callback_errors: list[str] = []
        self.submissions: list[list[str]] = []  # the job ids of each accepted generation
        self.accounts: dict[str, FakeAccount] = {}
        self.jobs: dict[str, FakeJob] = {}
        self.cloned_voices: dict[str, FakeClonedVoice] = {}
        self.midi_files: dict[str, FakeMidi] = {}
        self._splits: dict[str, bytes] = {}
        self._cdn_files: dict[str, tuple[bytes, str]] = {}
        self._media_cache: dict[tuple[str, str], bytes] = {}
        self._remain_num = 3000
        self._runner: web.AppRunner | None = None
        self._origin: str | None = None
        self._callback_session: aiohttp.ClientSession | None = None
        self._callback_tasks: set[asyncio.Task[None]] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"^/accounts/?$"), self._list_accounts),
            ("POST", re.compile(r"^/accounts/?$"), self._create_account),
            ("GET", re.compile(r"^/accounts/(?P<user_id>[^/]+)/?$"), self._get_account),
            ("DELETE", re.compile(r"^/accounts/(?P<user_id>[^/]+)/?$"), self._delete_account),
            ("POST", re.compile(r"^/music/song/?$"), self._create_song),
            ("POST", re.compile(r"^/music/instrumental/?$"), self._create_instrumental),
            ("POST", re.compile(r"^/music/stems-splitter/?$"), self._split_stems),
            ("GET", re.compile(r"^/music/?$"), self._list_music),
            ("GET", re.compile(r"^/music/download/(?P<job_id>[^/]+)/?$"), self._download),
            ("GET", re.compile(r"^/music/artist-voices/?$"), self._list_artist_voices),
            ("GET", re.compile(r"^/music/cloned-voices/?$"), self._list_cloned_voices),
            ("POST", re.compile(r"^/music/cloned-voices/?$"), self._clone_voice),
            ("DELETE", re.compile(r"^/music/cloned-voices/(?P<id>[^/]+)/?$"), self._delete_voice),
            ("GET", re.compile(r"^/music/midi/?$"), self._list_midi),
            ("POST", re.compile(r"^/music/midi/?$"), self._upload_midi),
            ("DELETE", re.compile(r"^/music/midi/(?P<id>[^/]+)/?$"), self._delete_midi),
            ("GET", re.compile(r"^/music/(?P<job_id>[^/]+)/?$"), self._get_job),
            ("DELETE", re.compile(r"^/music/(?P<job_id>[^/]+)/?$"), self._delete_job),
            ("GET", re.compile(r"^/scheduler/?$"), self._list_running),
            ("GET", re.compile(r"^/scheduler/available/?$"), self._available),
            ("DELETE", re.compile(r"^/scheduler/(?P<job_id>[^/]+)/?$"), self._cancel_tracking),
        ]
        self.add_account(
            user_id,
            max_jobs=max_jobs,
            request_params={
                "user_id": user_id,
                "ucid": user_id,
                "service_ticket": "fake-ticket-" + new_item_id(),
                "vip_type": 20,
            },
        )

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start listening; ``async with`` does this for you."""
        if self._runner is not None:
            return
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.25)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        sockets = runner.addresses
        port = sockets[0][1]
        self._origin = f"http://{self.host}:{port}"
        self._callback_session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def close(self) -> None:
        """Stop the server, its callbacks and its open connections."""
        tasks = list(self._callback_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._callback_session is not None:
            await self._callback_session.close()
            self._callback_session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        # Requests whose client hung up (e.g. during an injected delay) are no longer tracked
        # by aiohttp's server, so their handlers would outlive it: end them here.
        handlers = list(self._handlers)
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def __aenter__(self) -> FakeTempolor:
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
            raise RuntimeError("FakeTempolor is not started: use 'async with' or await start()")
        return self._origin

    @property
    def base_url(self) -> str:
        """The API root to point a client at, e.g. ``http://127.0.0.1:8765/v1/tempolor``."""
        return self.origin + API_PATH

    @property
    def media_url(self) -> str:
        return self.origin + CDN_PATH

    def client(self, **options: Any) -> TempolorClient:
        """A :class:`~tempolor_async.TempolorClient` pointed at this simulator, with its token;
        ``options`` are passed on (e.g. ``max_retries=0``)."""
        from .._client import TempolorClient

        options.setdefault("token", self.token)
        options.setdefault("base_url", self.base_url)
        return TempolorClient(**options)

    # ----------------------------------------------------------- test controls

    def add_account(
        self,
        user_id: str,
        *,
        max_jobs: int = 10,
        request_params: dict[str, Any] | None = None,
        subscribed: bool = True,
    ) -> FakeAccount:
        """Configure an account directly, as POST accounts would."""
        params = request_params if request_params is not None else {"user_id": user_id}
        account = FakeAccount(user_id, max_jobs, params, subscribed=subscribed)
        self.accounts[user_id] = account
        return account

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
          the service's usual ``{"error": ..., "code": status}``. ``body`` alone answers 200.
        - ``drop``: close the connection without answering; nothing is handled.
        - ``truncate``: handle the request, then close the connection halfway through the
          response body (the server acted; the client cannot know).
        - ``delay``: wait this long first, then go on as above (or answer normally).
        """
        if status is None and body is None and not (drop or truncate or delay):
            raise ValueError("inject() needs status, body, drop, truncate or delay")
        fault = Fault(
            method.upper(),
            path,
            status=status,
            body=body,
            headers=headers,
            drop=drop,
            truncate=truncate,
            delay=delay,
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

    def complete(self, job_id: str) -> None:
        """Finish a job now, successfully."""
        self._force(job_id, COMPLETED)

    def fail(self, job_id: str) -> None:
        """Finish a job now, as FAILED."""
        self._force(job_id, 10)

    def _force(self, job_id: str, status: int) -> None:
        job = self.jobs[job_id]
        job.forced_status = status
        job.forced_ms = wall_ms()

    def add_media(
        self, name: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> str:
        """Serve ``data`` at a token-free media URL (returned), e.g. for large downloads."""
        name = name.lstrip("/")
        self._cdn_files[name] = (data, content_type)
        return f"{self.media_url}/files/{quote(name)}"

    def media_bytes(self, job_id: str, file_format: str = "mp3") -> bytes:
        """The exact bytes a completed job's download link serves, for comparing downloads."""
        folder, extension = FILE_FORMATS[file_format]
        found = self._media(f"ai_material/{folder}/{self.jobs[job_id].item_id}.{extension}")
        if found is None:
            raise KeyError(f"{job_id} has no {file_format} file (is it completed?)")
        return found[0]

    def running_jobs(self, user_id: str | None = None) -> list[FakeJob]:
        now = time.monotonic()
        return [
            job
            for job in self.jobs.values()
            if job.is_running(now) and (user_id is None or job.user_id == user_id)
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
        is_api = path.startswith(API_PATH + "/")
        relative = path[len(API_PATH) :] if is_api else path
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
            if fault.status is not None or fault.body is not None:
                injected = self._fault_response(fault)
                return await self._truncate(request, injected) if fault.truncate else injected
        response: web.StreamResponse
        try:
            if is_api:
                response = await self._api(request, relative, body)
            elif path.startswith(CDN_PATH + "/"):
                response = self._cdn(path[len(CDN_PATH) + 1 :])
            else:
                raise _Reply(404, f"Route {request.method} {path} not found")
        except _Reply as reply:
            response = _json(reply.status, reply.body)
        except Exception as exc:  # a simulator bug must still answer as the service would
            response = _json(500, {"error": f"Internal error: {exc!r}", "code": 500})
        if fault is not None and fault.truncate:
            return await self._truncate(request, response)
        return response

    async def _api(self, request: web.Request, relative: str, body: bytes) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            raise _Reply(401, "Unauthorized")
        allowed = []
        for method, pattern, handler in self._routes:
            match = pattern.match(relative)
            if match is None:
                continue
            if method == request.method:
                return await handler(_Call(request, match, body))
            allowed.append(method)
        if allowed:
            raise _Reply(405, f"Method {request.method} not allowed for {relative}")
        raise _Reply(404, f"Route {request.method} {relative} not found")

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

    @staticmethod
    def _fault_response(fault: Fault) -> web.Response:
        status = fault.status or 200
        body = fault.body
        if body is None:
            error = BUSY_TEMPOLOR if status == 429 else _reason(status)
            body = {"error": error, "code": status}
        if isinstance(body, str):
            body = body.encode()
        if isinstance(body, bytes):
            kind = "text/html" if body.lstrip()[:1] == b"<" else "application/json"
            response = web.Response(status=status, body=body, content_type=kind)
        else:
            response = _json(status, body)
        for name, value in (fault.headers or {}).items():
            response.headers[name] = value
        return response

    # ------------------------------------------------------------------ helpers

    def _resolve_account(self, user_id: str | None) -> FakeAccount:
        """The account a request names, or the only one there is."""
        if user_id:
            account = self.accounts.get(user_id)
            if account is None:
                raise _Reply(404, f"Account {user_id} not found")
            return account
        if not self.accounts:
            raise _Reply(404, "No accounts configured")
        if len(self.accounts) > 1:
            raise _Reply(400, "Parameter user_id is required when multiple accounts are configured")
        return next(iter(self.accounts.values()))

    def _job(self, job_id: str) -> FakeJob:
        if not JOB_ID_PATTERN.match(job_id):
            raise _Reply(400, "job_id has incorrect format")
        job = self.jobs.get(job_id)
        if job is None:
            raise _Reply(404, f"No record found for {job_id}")
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

    # ----------------------------------------------------------------- accounts

    async def _list_accounts(self, call: _Call) -> web.Response:
        if not self.accounts:
            raise _Reply(404, "No accounts configured")
        return _json(200, {uid: account.render() for uid, account in self.accounts.items()})

    async def _get_account(self, call: _Call) -> web.Response:
        account = self.accounts.get(call.match["user_id"])
        if account is None:
            raise _Reply(404, f"Configuration not found for user_id {call.match['user_id']}")
        return _json(200, account.render())

    async def _create_account(self, call: _Call) -> web.Response:
        payload = _json_object(call.body)
        params = payload.get("requestParams")
        if params is None or params == {} or params == "":
            raise _Reply(400, "Parameter requestParams is required")
        if not isinstance(params, dict):
            raise _Reply(400, "Parameter requestParams must be an object")
        user_id = params.get("user_id")
        if not isinstance(user_id, (str, int)) or isinstance(user_id, bool) or not str(user_id):
            raise _Reply(400, "Parameter requestParams.user_id is required")
        max_jobs = _positive_int(payload.get("maxJobs", 10), "maxJobs")
        if params.get("vip_type") == 0:
            raise _Reply(402, "Subscription required")
        account = self.add_account(str(user_id), max_jobs=max_jobs, request_params=params)
        return _json(200, account.render())

    async def _delete_account(self, call: _Call) -> web.Response:
        if self.accounts.pop(call.match["user_id"], None) is None:
            raise _Reply(404, f"Configuration not found for user_id {call.match['user_id']}")
        return web.Response(status=204)

    # --------------------------------------------------------------- generation

    async def _create_song(self, call: _Call) -> web.Response:
        return await self._generate(call, "song")

    async def _create_instrumental(self, call: _Call) -> web.Response:
        return await self._generate(call, "instrumental")

    async def _generate(self, call: _Call, kind: str) -> web.Response:
        fields = await _generation_fields(call)
        prompt = _text(fields, "prompt")
        if not prompt or not prompt.strip():
            raise _Reply(400, "Parameter prompt is required")
        for name, limit in LIMITS.items():
            value = _text(fields, name)
            if value is not None and len(value) > limit:
                raise _Reply(400, f"Parameter {name} is too long (maximum {limit} characters)")
        reply_url = _text(fields, "replyUrl")
        if reply_url and urlsplit(reply_url).scheme not in ("http", "https"):
            raise _Reply(400, "Parameter replyUrl must be an http or https URL")
        options: dict[str, Any] = {"lyrics": None, "tonality": None, "bpm": None, "chords": None}
        voice_ids: dict[str, str | None] = {"artist": None, "cloned": None, "midi": None}
        if kind == "song":
            model = _text(fields, "model_song") or DEFAULT_SONG_MODEL
            options["lyrics"] = _text(fields, "lyrics")
            voice_ids = {
                "artist": _text(fields, "artistVoiceItemId"),
                "cloned": _text(fields, "clonedVoiceItemId"),
                "midi": _text(fields, "midiItemId"),
            }
            if voice_ids["artist"] and voice_ids["cloned"]:
                raise _Reply(400, "Only one of artistVoiceItemId or clonedVoiceItemId can be used")
            if voice_ids["midi"] and (voice_ids["artist"] or voice_ids["cloned"]):
                raise _Reply(
                    400, "midiItemId cannot be used with artistVoiceItemId or clonedVoiceItemId"
                )
        else:
            model = _text(fields, "model_instrumental") or DEFAULT_INSTRUMENTAL_MODEL
            tonality = _text(fields, "tonality")
            if tonality is not None and tonality not in TONALITIES:
                keys = ", ".join(sorted(TONALITIES))
                raise _Reply(400, f"Parameter tonality must be one of: {keys}")
            bpm = fields.get("bpm")
            if bpm is not None and bpm != "":
                options["bpm"] = _int_in_range(bpm, "bpm", 50, 190)
            options["tonality"] = tonality
            options["chords"] = _text(fields, "chords")
        max_jobs_field = fields.get("maxJobs")
        request_max_jobs = (
            None if max_jobs_field in (None, "") else _positive_int(max_jobs_field, "maxJobs")
        )
        account = self._pick_account(_text(fields, "user_id"), request_max_jobs)
        if not account.subscribed:
            raise _Reply(402, "Subscription required")
        self._check_sources(account, voice_ids)
        now = time.monotonic()
        generating = sum(
            1
            for job in self.jobs.values()
            if job.user_id == account.user_id and job.status(now) == GENERATING
        )
        if generating + 2 > self.max_gen_count_at_once:
            raise _Reply(429, BUSY_TEMPOLOR)
        jobs = []
        for _ in range(2):
            item_id = new_item_id()
            job = FakeJob(
                job_id=f"user:{API_USER}-tempolor:{account.user_id}-job:{item_id}",
                item_id=item_id,
                user_id=account.user_id,
                kind=kind,
                prompt=prompt,
                model=model,
                started=now,
                duration=self.job_duration,
                will_fail=bool(self.fail_marker) and self.fail_marker in prompt,
                created_ms=wall_ms(),
                artist_voice_item_id=voice_ids["artist"],
                cloned_voice_item_id=voice_ids["cloned"],
                midi_item_id=voice_ids["midi"],
                reply_url=reply_url,
                reply_ref=_text(fields, "replyRef"),
                **options,
            )
            self.jobs[job.job_id] = job
            jobs.append(job)
            if reply_url:
                self._start_callbacks(job)
        self.submissions.append([job.job_id for job in jobs])
        self._remain_num = max(0, self._remain_num - 2)
        return _json(
            200,
            {
                "result": True,
                "itemIds": [job.item_id for job in jobs],
                "jobs": [job.job_id for job in jobs],
                "remainSeconds": 21533,
                "maxGenCountAtOnce": self.max_gen_count_at_once,
                "unlimited": False,
                "remainNum": self._remain_num,
                "totalNum": 3000,
            },
        )

    def _pick_account(self, user_id: str | None, request_max_jobs: int | None) -> FakeAccount:
        """The named account, or the one with the most free slots; 429 when it is full."""
        if user_id:
            candidates = [self._resolve_account(user_id)]
        elif self.accounts:
            candidates = list(self.accounts.values())
        else:
            raise _Reply(404, "No accounts configured")
        running = {account.user_id: self.running_jobs(account.user_id) for account in candidates}

        def free(account: FakeAccount) -> int:
            return (request_max_jobs or account.max_jobs) - len(running[account.user_id])

        best = max(candidates, key=free)
        if free(best) > 0:
            return best
        busy = {
            uid: [job.render_running(numeric_started=True) for job in jobs]
            for uid, jobs in running.items()
        }
        count = sum(len(jobs) for jobs in running.values())
        raise _Reply(429, f"Account is busy executing {count} jobs", runningJobs=busy)

    def _check_sources(self, account: FakeAccount, voice_ids: Mapping[str, str | None]) -> None:
        artist, cloned, midi = voice_ids["artist"], voice_ids["cloned"], voice_ids["midi"]
        missing = (
            (artist is not None and artist not in ARTIST_VOICE_IDS)
            or (cloned is not None and cloned not in self.cloned_voices)
            or (midi is not None and midi not in self.midi_files)
        )
        if missing:
            raise _Reply(404, "The source material does not exist.")

    # -------------------------------------------------------------------- jobs

    async def _get_job(self, call: _Call) -> web.Response:
        job = self._job(call.match["job_id"])
        return _json(200, job.render(time.monotonic(), self.media_url, self.audio_seconds))

    async def _delete_job(self, call: _Call) -> web.Response:
        job = self._job(call.match["job_id"])
        del self.jobs[job.job_id]
        return _json(200, {"result": True})

    async def _list_music(self, call: _Call) -> web.Response:
        kind = call.query.get("type", "song")
        if kind not in ("song", "instrumental"):
            raise _Reply(400, "Invalid type parameter. Must be 'song' or 'instrumental'")
        account = self._resolve_account(call.query.get("user_id"))
        now = time.monotonic()
        jobs = sorted(
            (
                job
                for job in self.jobs.values()
                if job.user_id == account.user_id and job.kind == kind
            ),
            key=lambda job: -job.sequence,
        )
        records = [job.render(now, self.media_url, self.audio_seconds) for job in jobs]
        return _json(
            200, self._page(records, [job.sequence for job in jobs], call.query.get("cursor"))
        )

    async def _download(self, call: _Call) -> web.Response:
        job = self._job(call.match["job_id"])
        file_format = call.query.get("file_format", "mp3")
        if file_format not in FILE_FORMATS:
            raise _Reply(400, "Invalid file_format parameter. Must be 'mp3', 'wav' or 'stems'")
        status = job.status(time.monotonic())
        if status != COMPLETED:
            raise _Reply(400, f"Generation is not completed yet ({status})")
        folder, extension = FILE_FORMATS[file_format]
        expires = int(time.time()) + self.download_url_expiry
        key = f"{expires}-0-0-{zlib.crc32(job.job_id.encode()):08x}"
        url = f"{self.media_url}/ai_material/{folder}/{job.item_id}.{extension}?auth_key={key}"
        return _json(200, {"url": url, "remainSeconds": self.download_url_expiry})

    # ----------------------------------------------------------------- scheduler

    async def _list_running(self, call: _Call) -> web.Response:
        return _json(
            200, [job.render_running(numeric_started=False) for job in self.running_jobs()]
        )

    async def _available(self, call: _Call) -> web.Response:
        running = self.running_jobs()
        capacity: list[dict[str, Any]] = []
        for account in self.accounts.values():
            executing = sum(1 for job in running if job.user_id == account.user_id)
            capacity.append(
                {
                    "user_id": account.user_id,
                    "maxJobs": account.max_jobs,
                    "executing": executing,
                    "available": max(0, account.max_jobs - executing),
                }
            )
        capacity.sort(key=lambda entry: -entry["available"])
        executing_jobs = [job.render_running(numeric_started=False) for job in running]
        return _json(200, {"executing": executing_jobs, "available": capacity})

    async def _cancel_tracking(self, call: _Call) -> web.Response:
        job_id = call.match["job_id"]
        if not JOB_ID_PATTERN.match(job_id):
            raise _Reply(400, "job_id has incorrect format")
        job = self.jobs.get(job_id)
        if job is None or not job.is_running(time.monotonic()):
            raise _Reply(404, "Unable to locate running job_id")
        job.tracked = False
        return web.Response(status=204)

    # ------------------------------------------------------------------ voices

    async def _list_artist_voices(self, call: _Call) -> web.Response:
        self._resolve_account(call.query.get("user_id"))
        records = artist_catalogue(self.media_url)
        sequences = [len(records) - index for index in range(len(records))]
        page = self._page(records, sequences, call.query.get("cursor"))
        return _json(200, {**page, "sysTime": wall_ms()})

    async def _list_cloned_voices(self, call: _Call) -> web.Response:
        account = self._resolve_account(call.query.get("user_id"))
        now = time.monotonic()
        voices = sorted(
            (voice for voice in self.cloned_voices.values() if voice.user_id == account.user_id),
            key=lambda voice: -voice.sequence,
        )
        records = [voice.render(now, self.media_url) for voice in voices]
        return _json(
            200, self._page(records, [voice.sequence for voice in voices], call.query.get("cursor"))
        )

    async def _clone_voice(self, call: _Call) -> web.Response:
        extension = _audio_extension(call.request)
        name = call.query.get("name", "")
        if not name.strip():
            raise _Reply(400, "Parameter name is required")
        if not call.body:
            raise _Reply(400, "Empty file received")
        account = self._resolve_account(call.query.get("user_id"))
        if self.voice_clone_delay:
            await asyncio.sleep(self.voice_clone_delay)
        item_id = new_item_id()
        pending = self.voice_clone_pending
        voice = FakeClonedVoice(
            cloned_voice_item_id=f"user:{API_USER}-tempolor:{account.user_id}-voice:{item_id}",
            item_id=item_id,
            user_id=account.user_id,
            name=name,
            audio=call.body,
            extension=extension,
            ready_at=time.monotonic() + (self.job_duration if pending else 0.0),
        )
        self.cloned_voices[voice.cloned_voice_item_id] = voice
        ids = {"itemId": item_id, "clonedVoiceItemId": voice.cloned_voice_item_id}
        if pending:
            message = (
                "Voice cloning is still processing after 120 seconds. Please check back later."
            )
            return _json(202, {**ids, "message": message})
        return _json(200, {"result": True, **ids})

    async def _delete_voice(self, call: _Call) -> web.Response:
        voice_id = call.match["id"]
        if not VOICE_ID_PATTERN.match(voice_id):
            raise _Reply(400, "clonedVoiceItemId has incorrect format")
        if self.cloned_voices.pop(voice_id, None) is None:
            raise _Reply(404, f"No record found for {voice_id}")
        return _json(200, {"result": True})

    # -------------------------------------------------------------------- MIDI

    async def _list_midi(self, call: _Call) -> web.Response:
        account = self._resolve_account(call.query.get("user_id"))
        files = sorted(
            (midi for midi in self.midi_files.values() if midi.user_id == account.user_id),
            key=lambda midi: -midi.sequence,
        )
        records = [midi.render(self.media_url) for midi in files]
        return _json(
            200, self._page(records, [midi.sequence for midi in files], call.query.get("cursor"))
        )

    async def _upload_midi(self, call: _Call) -> web.Response:
        if _content_type(call.request) not in MIDI_CONTENT_TYPES:
            raise _Reply(400, "Content-Type must be audio/midi or audio/x-midi")
        name = call.query.get("name", "")
        if not name.strip():
            raise _Reply(400, "Parameter name is required")
        if not call.body:
            raise _Reply(400, "Empty file received")
        if not call.body.startswith(b"MThd"):
            raise _Reply(400, "Invalid MIDI file")
        account = self._resolve_account(call.query.get("user_id"))
        item_id = new_item_id()
        midi = FakeMidi(
            midi_item_id=f"user:{API_USER}-tempolor:{account.user_id}-midi:{item_id}",
            item_id=item_id,
            user_id=account.user_id,
            name=name,
            data=call.body,
        )
        self.midi_files[midi.midi_item_id] = midi
        is_first = not account.midi_uploaded
        account.midi_uploaded = True
        return _json(200, {"isFirst": is_first, "midiRenderVO": midi.render(self.media_url)})

    async def _delete_midi(self, call: _Call) -> web.Response:
        midi_id = call.match["id"]
        if not MIDI_ID_PATTERN.match(midi_id):
            raise _Reply(400, "midiItemId has incorrect format")
        if self.midi_files.pop(midi_id, None) is None:
            raise _Reply(404, f"No record found for {midi_id}")
        return _json(200, {"result": True})

    # ----------------------------------------------------------- stems splitter

    async def _split_stems(self, call: _Call) -> web.Response:
        extension = _audio_extension(call.request)
        if not call.body:
            raise _Reply(400, "Empty file received")
        self._resolve_account(call.query.get("user_id"))
        split_id = f"{zlib.crc32(call.body):08x}{new_item_id()[:7]}"
        self._splits[split_id] = call.body
        return _json(
            200,
            {
                "state": 2,
                "title": f"audio_file.{extension}",
                "stemsZipUrl": f"{self.media_url}/stems-splitter/{split_id}.zip",
                "audioType": extension,
                "detail": list(_media.STEM_NAMES),
            },
        )

    # ------------------------------------------------------------------- media

    def _cdn(self, name: str) -> web.Response:
        """Media by path, generated on first use and then cached. No token needed."""
        found = self._media(name)
        if found is None:
            return web.Response(status=404, text="Not Found", content_type="text/plain")
        data, content_type = found
        return web.Response(body=data, content_type=content_type)

    def _media(self, name: str) -> tuple[bytes, str] | None:
        if name.startswith("files/"):
            return self._cdn_files.get(name[len("files/") :])
        folder, _, filename = name.rpartition("/")
        stem, _, extension = filename.rpartition(".")
        kinds = {
            ("ai_material/mp3", "mp3"): "audio/mpeg",
            ("ai_material/wav", "wav"): "audio/wav",
            ("ai_material/stems", "zip"): "application/zip",
            ("stems-splitter", "zip"): "application/zip",
            ("waveform", "json"): "application/json",
            ("covers", "png"): "image/png",
            ("artist-voices", "wav"): "audio/wav",
            ("midi/file", "mid"): "audio/midi",
        }
        content_type = kinds.get((folder, extension))
        if folder == "voices":
            voice = next((v for v in self.cloned_voices.values() if v.item_id == stem), None)
            return None if voice is None else (voice.audio, "application/octet-stream")
        if content_type is None or not self._media_exists(folder, stem):
            return None
        key = (folder, stem)
        if key not in self._media_cache:
            self._media_cache[key] = self._render_media(folder, stem)
        return self._media_cache[key], content_type

    def _media_exists(self, folder: str, stem: str) -> bool:
        if folder.startswith("ai_material/") or folder == "waveform":
            return any(
                job.item_id == stem and job.status(time.monotonic()) == COMPLETED
                for job in self.jobs.values()
            )
        if folder == "stems-splitter":
            return stem in self._splits
        if folder == "midi/file":
            return any(midi.item_id == stem for midi in self.midi_files.values())
        if folder == "artist-voices":
            return stem in ARTIST_VOICE_IDS
        return folder == "covers"

    def _render_media(self, folder: str, stem: str) -> bytes:
        seconds = self.audio_seconds
        if folder == "ai_material/mp3":
            job = next(job for job in self.jobs.values() if job.item_id == stem)
            return _media.mp3_bytes(job.title(), seconds)
        if folder in ("ai_material/wav", "artist-voices"):
            return _media.wav_bytes(stem, seconds)
        if folder in ("ai_material/stems", "stems-splitter"):
            return _media.stems_zip_bytes(stem, seconds)
        if folder == "waveform":
            peaks = [round(abs(math.sin(index / 7)), 3) for index in range(100)]
            return json.dumps({"peaks": peaks}).encode()
        if folder == "midi/file":
            return next(midi.data for midi in self.midi_files.values() if midi.item_id == stem)
        return _png_pixel(zlib.crc32(stem.encode()))

    # ---------------------------------------------------------------- callbacks

    def _start_callbacks(self, job: FakeJob) -> None:
        task = asyncio.get_running_loop().create_task(self._send_callbacks(job))
        self._callback_tasks.add(task)
        task.add_done_callback(self._callback_tasks.discard)

    async def _send_callbacks(self, job: FakeJob) -> None:
        """POST the job record to replyUrl on every change, until final. Not retried, not
        signed, like the service's callbacks; failures are noted in ``callback_errors``."""
        last: tuple[int, int] | None = None
        while job.tracked and job.job_id in self.jobs and job.reply_url:
            now = time.monotonic()
            state = (job.status(now), job.progress(now))
            if state != last:
                last = state
                record = job.render(now, self.media_url, self.audio_seconds)
                record["replyRef"] = job.reply_ref
                await self._post_callback(job.reply_url, record)
                continue  # look again: complete()/fail() may have run during the POST
            next_change = job.next_change(now)
            if next_change is None:
                return
            await asyncio.sleep(max(0.0, next_change - time.monotonic()) + 0.001)

    async def _post_callback(self, url: str, record: dict[str, Any]) -> None:
        assert self._callback_session is not None
        try:
            async with self._callback_session.post(url, json=record) as response:
                await response.read()
                if response.status >= 400:
                    self.callback_errors.append(f"{url}: HTTP {response.status}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.callback_errors.append(f"{url}: {exc!r}")


# ----------------------------------------------------------------- pure helpers


def _json(status: int, payload: Any) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(payload).encode(), content_type="application/json"
    )


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


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
        raise _Reply(400, "Parameter cursor is invalid") from None


def _content_type(request: web.Request) -> str:
    return request.headers.get("Content-Type", "").split(";")[0].strip().lower()


def _audio_extension(request: web.Request) -> str:
    content_type = _content_type(request)
    if content_type not in AUDIO_CONTENT_TYPES:
        supported = ", ".join(AUDIO_CONTENT_TYPES)
        raise _Reply(400, f"Content-Type must be one of {supported}")
    return AUDIO_CONTENT_TYPES[content_type]


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body) if body.strip() else {}
    except ValueError:
        raise _Reply(400, "Request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise _Reply(400, "Request body must be a JSON object")
    return payload


async def _generation_fields(call: _Call) -> dict[str, Any]:
    """Generation parameters from a JSON body or, as documented too, from form fields."""
    content_type = _content_type(call.request)
    if content_type == "multipart/form-data":
        return _multipart_fields(call.request.headers.get("Content-Type", ""), call.body)
    if content_type == "application/x-www-form-urlencoded":
        form = await call.request.post()
        return {key: value for key, value in form.items() if isinstance(value, str)}
    return _json_object(call.body)


def _multipart_fields(content_type: str, body: bytes) -> dict[str, Any]:
    """The text fields of a multipart/form-data body. Parsed from the bytes already read:
    ``request.post()`` would read the request stream again, and it is consumed by then."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise _Reply(400, "Request body is not valid multipart/form-data")
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.get_filename() is not None:
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            fields[name] = payload.decode(part.get_content_charset() or "utf-8", "replace")
    return fields


def _text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Reply(400, f"Parameter {name} must be a string")
    return value


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _positive_int(value: Any, name: str) -> int:
    number = _whole_number(value)
    if number is None or number < 1:
        raise _Reply(400, f"Parameter {name} must be a positive integer")
    return number


def _int_in_range(value: Any, name: str, low: int, high: int) -> int:
    number = _whole_number(value)
    if number is None or not low <= number <= high:
        raise _Reply(400, f"Parameter {name} must be an integer from {low} to {high}")
    return number


def _png_pixel(color: int) -> bytes:
    """A valid 1x1 RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixel = b"\x00" + color.to_bytes(4, "big")[1:]
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixel))
        + chunk(b"IEND", b"")
    )
