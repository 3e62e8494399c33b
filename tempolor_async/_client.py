"""TempolorClient: configuration, the session it owns, its resources, and waiting."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Iterable, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import aiohttp

from . import _files, _polling, _validation
from ._base_client import BaseClient, credential, seconds
from ._errors import ConfigurationError, JobFailedError, ValidationError
from ._files import ProgressCallback
from ._models import MusicJob
from ._polling import JobCallback
from .resources import Accounts, Midi, Music, Scheduler, Voices
from .resources._service import TEMPOLOR

if TYPE_CHECKING:
    from .batch import BatchReport
    from .batch._runner import BatchItems, EventCallback

DEFAULT_BASE_URL = "https://api.useapi.net/v1/tempolor"


class TempolorClient(BaseClient):
    """An asyncio client for the TemPolor API (https://useapi.net/docs/api-tempolor-v1).

    Use it as ``async with TempolorClient() as client:`` (or call :meth:`aclose`). The token
    comes from ``token=`` or the ``USEAPI_TOKEN`` environment variable. ``user_id`` is the
    default account for every call; each method also takes ``user_id=``.
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
    ) -> None:
        token = credential(token, parameter="token", env="USEAPI_TOKEN", what="API token")
        base_url = base_url or os.environ.get("TEMPOLOR_BASE_URL") or DEFAULT_BASE_URL
        self.max_poll_rate = seconds("max_poll_rate", max_poll_rate)
        if not isinstance(busy_timeout, (int, float)) or busy_timeout < 0:
            raise ConfigurationError("busy_timeout must be zero or a positive number of seconds")
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
        self._poll_limiter = _polling.RateLimiter(self.max_poll_rate)
        self.accounts = Accounts(self)
        self.music = Music(self)
        self.voices = Voices(self)
        self.midi = Midi(self)
        self.scheduler = Scheduler(self)

    def __repr__(self) -> str:
        state = " closed" if self._http.closed else ""
        return f"<TempolorClient{state} base_url={self.base_url!r} user_id={self.user_id!r}>"

    async def await_job(
        self,
        job_id: str,
        *,
        timeout: float | None = 1800.0,
        poll_interval: float | None = None,
        on_progress: JobCallback | None = None,
        raise_on_failure: bool = True,
    ) -> MusicJob:
        """Poll a job until it is final and return its record.

        ``poll_interval=None`` polls adaptively (about 2 s, growing to 15 s). Transient
        failures are ridden out; a 404 is tolerated for the first 30 s. Raises
        :class:`JobFailedError` for a FAILED job unless ``raise_on_failure=False``, and
        :class:`JobTimeoutError` when ``timeout`` seconds pass first.
        """
        job_id = _validation.path_id("job_id", job_id)
        _check_wait_options(timeout, poll_interval)
        return await _polling.await_job(
            self.music.get,
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
        them) and fetches a job's record only once it has left that list, or every round
        when ``on_progress`` wants progress; ``max_poll_rate`` bounds the requests per
        second. ``timeout`` (None: no limit, as large batches may take hours) raises
        :class:`JobTimeoutError` naming every unfinished job. Leaving the loop early, or
        cancelling it, stops all polling at once.
        """
        if isinstance(job_ids, str):
            raise ValidationError("job_ids", "must be a collection of job ids, not one string")
        ids = list(dict.fromkeys(_validation.path_id("job_ids", job_id) for job_id in job_ids))
        _check_wait_options(timeout, poll_interval)
        return _polling.as_completed(
            self.music.get,
            self.scheduler.list,
            ids,
            timeout=timeout,
            poll_interval=poll_interval,
            on_progress=on_progress,
            limiter=self._poll_limiter,
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
        :class:`JobFailedError` (and the wait stops)."""
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
        """Download any result URL (e.g. ``StemsSplit.stems_zip_url``) into ``dest``, a file
        path or a folder (then named after the URL's last path segment). No token is sent."""
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValidationError("url", "must be an absolute http(s) URL")
        _files.check_destination(dest)
        name = unquote(parts.path.rstrip("/").rpartition("/")[2])
        return await _files.download(self._http, url, dest, name, on_progress)

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
    ) -> BatchReport:
        """Generate many tracks over every account's slots, with a journal that survives a
        crash without paying twice, and leave the files and ``manifest.jsonl`` in ``out_dir``.

        ``items`` are :class:`SongRequest`/:class:`InstrumentalRequest` (an iterable or async
        iterable); running again with the same ``journal`` resumes. ``max_generations`` caps
        the generations over the journal's whole life; ``min_remaining`` stops submitting
        once a submission's ``remainNum`` falls below it; ``on_event`` (sync or async) sees
        every change of an item's state; ``retry_failed=True`` sends failed items again (a
        retry pays again). See the README's "Batches" section.
        https://useapi.net/docs/api-tempolor-v1/post-tempolor-music-song
        """
        from .batch import run_batch

        return await run_batch(
            self,
            items,
            journal=journal,
            out_dir=out_dir,
            formats=formats,
            max_generations=max_generations,
            min_remaining=min_remaining,
            on_event=on_event,
            retry_failed=retry_failed,
        )


def _check_wait_options(timeout: float | None, poll_interval: float | None) -> None:
    if timeout is not None and not timeout > 0:
        raise ValidationError("timeout", "must be positive seconds, or None")
    if poll_interval is not None and not poll_interval > 0:
        raise ValidationError("poll_interval", "must be positive seconds, or None")
