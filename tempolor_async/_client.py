"""TempolorClient: configuration, the session it owns, its resources, and waiting."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import AsyncGenerator, Iterable, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import aiohttp

from . import _files, _polling, _protocol, _validation
from ._base_client import BaseClient, credential, seconds
from ._callbacks import CallbackReceiver
from ._coordination import Alone, coordination_from
from ._engine import Engine
from ._errors import ConfigurationError, JobFailedError, ValidationError
from ._files import ProgressCallback
from ._fleet import RedisCoordination
from ._models import AccountCapacity, MusicJob
from ._polling import JobCallback
from .resources import Accounts, Midi, Music, Scheduler, Voices
from .resources._service import TEMPOLOR

if TYPE_CHECKING:
    from typing_extensions import Self

    from .batch import BatchReport
    from .batch._runner import BatchItems, EventCallback

DEFAULT_BASE_URL = "https://api.useapi.net/v1/tempolor"


class TempolorClient(BaseClient):
    """An asyncio client for the TemPolor API (https://useapi.net/docs/api-tempolor-v1).

    Use it as ``async with TempolorClient() as client:`` (or call :meth:`aclose`).

    Options (all but ``token`` keyword-only):

    - ``token``: your useapi.net API token; default: the ``USEAPI_TOKEN`` environment
      variable. Neither raises :class:`ConfigurationError`. It never appears in a message,
      a log line or a repr.
    - ``user_id``: the default account for every call (each method also takes
      ``user_id=``); default None: a generation goes to the account with the most free
      slots (see ``capacity_aware``), and other calls leave the choice to the API.
    - ``base_url``: default: the ``TEMPOLOR_BASE_URL`` environment variable, else
      ``https://api.useapi.net/v1/tempolor`` (point it at ``FakeTempolor`` for tests).
    - ``timeout``: seconds per HTTP request (60); for downloads, the longest silence
      between reads.
    - ``upload_timeout``: seconds per upload (180): cloning a voice answers only after
      about two minutes of processing.
    - ``max_retries``: retries of a request that may safely be repeated (2): reads and
      deletes after a connection error, a timeout, 429 or 5xx. A generation is never sent
      again once it may have reached the service.
    - ``busy_timeout``: seconds a generation may keep waiting out 429 "busy" (300; each
      wait is at least the documented 30 s; 0 raises :class:`RateLimitError` at once).
    - ``max_poll_rate``: poll requests per second the client's one shared wait loop (every
      :meth:`await_job`, :meth:`as_completed`, :meth:`await_jobs` together) may make (20).
    - ``session``: an ``aiohttp.ClientSession`` to send through; the client never closes
      a session it did not create.
    - ``capacity_aware``: send a generation only when its account has a free slot (True):
      it waits first come first served, sending nothing, up to ``busy_timeout``; with
      several accounts and no ``user_id`` the freest one is picked. False: send at once and
      wait out 429s. :meth:`capacity` shows the client's view of the slots.
    - ``account_cooldown``: seconds an account that refused a generation (401, 402, 403)
      is set aside from picking (300).
    - ``callbacks``: a :class:`CallbackReceiver`: generations get its ``replyUrl``, and
      the service's callbacks wake the waits (confirmed by a GET), so that polling drops to
      a safety net.
    - ``coordination``: None (default: the ``TEMPOLOR_COORDINATION`` environment variable,
      else this process alone), a ``redis://``, ``rediss://`` or ``unix://`` URL, or a
      :class:`RedisCoordination`: every client with the same Redis and fleet (base URL and
      token) shares slot leases and callbacks, in any number of processes. Needs
      ``pip install "tempolor-async[redis]"``; Redis unreachable when the client opens
      raises :class:`CoordinationError`.

    Resources, one attribute per group of endpoints:

    - ``accounts``: :class:`~tempolor_async.resources.Accounts`, the TemPolor accounts
      behind the token.
    - ``music``: :class:`~tempolor_async.resources.Music`, songs and instrumentals:
      generate, read, list, delete, download, split into stems.
    - ``voices``: :class:`~tempolor_async.resources.Voices`, artist voices and cloned ones.
    - ``midi``: :class:`~tempolor_async.resources.Midi`, MIDI files to base songs on.
    - ``scheduler``: :class:`~tempolor_async.resources.Scheduler`, the jobs being tracked
      and the free slots per account.

    Waiting: :meth:`await_job`, :meth:`as_completed`, :meth:`await_jobs`; any result URL:
    :meth:`download_file`. Errors are all :class:`TempolorError` (see the README's
    "Errors" section for what to catch and what is safe to retry).
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        user_id: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        upload_timeout: float = 180.0,
        max_retries: int = 2,
        busy_timeout: float = 300.0,
        max_poll_rate: float = 20.0,
        session: aiohttp.ClientSession | None = None,
        capacity_aware: bool = True,
        account_cooldown: float = 300.0,
        callbacks: CallbackReceiver | None = None,
        coordination: str | RedisCoordination | None = None,
    ) -> None:
        token = credential(token, parameter="token", env="USEAPI_TOKEN", what="API token")
        base_url = base_url or os.environ.get("TEMPOLOR_BASE_URL") or DEFAULT_BASE_URL
        self.max_poll_rate = seconds("max_poll_rate", max_poll_rate)
        if not isinstance(busy_timeout, (int, float)) or busy_timeout < 0:
            raise ConfigurationError("busy_timeout must be zero or a positive number of seconds")
        if not isinstance(account_cooldown, (int, float)) or account_cooldown < 0:
            raise ConfigurationError("account_cooldown must be zero or positive seconds")
        if callbacks is not None and not isinstance(callbacks, CallbackReceiver):
            raise ConfigurationError("callbacks must be a CallbackReceiver")
        try:
            self.user_id = _validation.optional_id("user_id", user_id)
        except ValidationError as exc:
            raise ConfigurationError(str(exc)) from None
        self._open(
            TEMPOLOR,
            token=token,
            base_url=base_url,
            timeout=timeout,
            upload_timeout=upload_timeout,
            max_retries=max_retries,
            busy_timeout=float(busy_timeout),
            session=session,
        )
        self.callbacks = callbacks
        self.accounts = Accounts(self)
        self.music = Music(self)
        self.voices = Voices(self)
        self.midi = Midi(self)
        self.scheduler = Scheduler(self)
        fleet = coordination_from(coordination, RedisCoordination)
        if not isinstance(fleet, (Alone, RedisCoordination)):
            raise ConfigurationError(
                "coordination must be None, a redis://, rediss:// or unix:// URL, "
                "or a RedisCoordination"
            )
        if isinstance(fleet, RedisCoordination):
            fleet.claim()
        digest = hashlib.sha256(f"{self.base_url}\0{token}".encode()).hexdigest()[:16]
        self._engine = Engine(
            self,
            capacity_aware=bool(capacity_aware),
            cooldown=float(account_cooldown),
            coordination=fleet,
            fleet=digest,
        )
        if callbacks is not None:
            callbacks._attach(self._engine)

    def __repr__(self) -> str:
        state = " closed" if self._http.closed else ""
        return f"<TempolorClient{state} base_url={self.base_url!r} user_id={self.user_id!r}>"

    async def __aenter__(self) -> Self:
        """Join the fleet when ``coordination`` names one (CoordinationError if its Redis
        cannot be reached); nothing is sent before."""
        try:
            await self._engine.open()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def _before_close(self) -> None:
        """Every wait and queued generation ends (with TempolorError) and the shared loop
        stops before the session closes."""
        if self.callbacks is not None:
            self.callbacks._detach(self._engine)
        await self._engine.aclose()

    async def capacity(self) -> dict[str, AccountCapacity]:
        """The client's view of each account's slots (``max_jobs``, ``executing``,
        ``available``), by ``user_id`` in the order of ``GET accounts``.

        The view is what the capacity gate of generations uses: read from
        ``GET scheduler/available`` only when the client has none yet, then kept fresh by
        its own submissions, the shared wait loop and callbacks.
        https://useapi.net/docs/api-tempolor-v1/get-tempolor-scheduler-available
        """
        self._http._api_session()  # a closed client refuses
        return await self._engine.capacity()

    async def await_job(
        self,
        job_id: str,
        *,
        timeout: float | None = 1800.0,
        poll_interval: float | None = None,
        on_progress: JobCallback | None = None,
        raise_on_failure: bool = True,
    ) -> MusicJob:
        """Wait until a job is final and return its record.

        Served by the client's one shared poll loop, with every other wait of the client in
        any task: the job's record is fetched when the scheduler stops listing it (or, with
        ``on_progress``, at each poll), and a :class:`CallbackReceiver` wakes it at once.
        ``poll_interval=None`` polls adaptively (about 2 s, growing to 15 s; with callbacks,
        every ``callback_poll_interval``). Transient failures are ridden out; a 404 is
        tolerated for the first 30 s. Raises :class:`JobFailedError` for a FAILED job unless
        ``raise_on_failure=False``, and :class:`JobTimeoutError` when ``timeout`` seconds
        pass first. https://useapi.net/docs/api-tempolor-v1/get-tempolor-music-job_id
        """
        job_id = _validation.path_id("job_id", job_id)
        _check_wait_options(timeout, poll_interval)
        return await _polling.await_job(
            self._engine,
            job_id,
            timeout=timeout,
            poll_interval=poll_interval,
            on_progress=on_progress,
            raise_on_failure=raise_on_failure,
        )

    def as_completed(
        self,
        job_ids: Iterable[str],
        *,
        timeout: float | None = None,
        poll_interval: float | None = None,
        on_progress: JobCallback | None = None,
    ) -> AsyncGenerator[MusicJob, None]:
        """Yield each job's final record (completed or failed: failures are yielded, not
        raised) as soon as it is seen, from one poll loop shared by all the jobs.

        Each round asks ``GET scheduler/`` which jobs still run (one request for all of
        them, and for every other wait of the client) and fetches a job's record only once
        it has left that list, or every round when ``on_progress`` wants progress;
        ``max_poll_rate`` bounds the client's poll requests per second. ``timeout`` (None:
        no limit, as large batches may take hours) raises :class:`JobTimeoutError` naming
        every unfinished job. Leaving the loop early, or cancelling it, ends this wait at
        once and disturbs no other.
        https://useapi.net/docs/api-tempolor-v1/get-tempolor-scheduler
        """
        if isinstance(job_ids, str):
            raise ValidationError("job_ids", "must be a collection of job ids, not one string")
        ids = list(dict.fromkeys(_validation.path_id("job_ids", job_id) for job_id in job_ids))
        _check_wait_options(timeout, poll_interval)
        return _polling.as_completed(
            self._engine,
            ids,
            timeout=timeout,
            poll_interval=poll_interval,
            on_progress=on_progress,
        )

    async def await_jobs(
        self,
        job_ids: Iterable[str],
        *,
        timeout: float | None = None,
        poll_interval: float | None = None,
        raise_on_failure: bool = False,
    ) -> list[MusicJob]:
        """Wait for every job with :meth:`as_completed` and return the final records in the
        order given. With ``raise_on_failure=True`` the first FAILED job raises
        :class:`JobFailedError` (and the wait stops).
        https://useapi.net/docs/api-tempolor-v1/get-tempolor-music-job_id"""
        ids = [job_ids] if isinstance(job_ids, str) else list(job_ids)
        finished: dict[str, MusicJob] = {}
        jobs = self.as_completed(ids, timeout=timeout, poll_interval=poll_interval)
        async with aclosing(jobs):
            async for job in jobs:
                if job.is_failed and raise_on_failure:
                    raise JobFailedError(job)
                finished[job.job_id or ""] = job
        return [finished[job_id] for job_id in ids]

    async def download_file(
        self,
        url: str,
        dest: str | os.PathLike[str],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> Path:
        """Download any result URL (e.g. ``StemsSplit.stems_zip_url``) into ``dest`` and
        return the path written. No token is sent.

        ``dest`` is a file path, or a folder: an existing one, or a path ending with a
        separator (created if missing); in a folder the file is named after the URL's last
        path segment. Links come from e.g.
        https://useapi.net/docs/api-tempolor-v1/post-tempolor-music-stems-splitter
        """
        problem = _protocol.media_url_problem(url)
        if problem is not None:
            raise ValidationError("url", problem)
        name = unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2])
        target = _files.check_destination(dest, name)
        return await _files.download(self._http, url, target, name, on_progress)

    async def run_batch(
        self,
        items: BatchItems,
        *,
        journal: str | os.PathLike[str],
        out_dir: str | os.PathLike[str] | None = None,
        formats: Sequence[str] = ("mp3",),
        max_generations: int | None = None,
        min_remaining: int | None = None,
        on_event: EventCallback | None = None,
        retry_failed: bool = False,
        confirm_window: float = 120.0,
    ) -> BatchReport:
        """Generate many tracks over every account's slots, with a journal that survives a
        crash without paying twice, and leave the files and ``manifest.jsonl`` in ``out_dir``.

        ``items`` are :class:`SongRequest`/:class:`InstrumentalRequest` (an iterable or async
        iterable); running again with the same ``journal`` resumes. ``max_generations`` caps
        the generations over the journal's whole life; ``min_remaining`` stops submitting
        once a submission's ``remainNum`` falls below it; ``on_event`` (sync or async) sees
        every change of an item's state; ``retry_failed=True`` sends failed items again (a
        retry pays again); ``confirm_window`` is how long (seconds) an item whose answer was
        lost and that the service does not show waits before it is sent again (sooner risks
        paying twice for a generation the service accepts late). See the README's
        "Batches" section.
        https://useapi.net/docs/api-tempolor-v1/post-tempolor-music-song
        """
        from .batch import BatchRun

        run = BatchRun(
            self,
            items,
            journal=journal,
            out_dir=out_dir,
            formats=formats,
            max_generations=max_generations,
            min_remaining=min_remaining,
            on_event=on_event,
            retry_failed=retry_failed,
            confirm_window=confirm_window,
        )
        return await run.run()


def _check_wait_options(timeout: float | None, poll_interval: float | None) -> None:
    if timeout is not None and not timeout > 0:
        raise ValidationError("timeout", "must be positive seconds, or None")
    if poll_interval is not None and not 0 < poll_interval < math.inf:
        raise ValidationError("poll_interval", "must be a positive, finite number of seconds")
