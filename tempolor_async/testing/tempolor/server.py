"""FakeTempolor: a local HTTP stand-in for the TemPolor API as served by useapi.net.

The server answers every documented endpoint under ``/v1/tempolor`` with the documented
checks, shapes and error texts, and serves the generated media itself under ``/cdn`` at URLs
that need no token, as a CDN would. Fault injection and a request log make it a test tool.

Documentation of each endpoint: https://useapi.net/docs/api-tempolor-v1
"""

from __future__ import annotations

import asyncio
import re
import secrets
from typing import TYPE_CHECKING, Any

import aiohttp

from .._server import Route
from .accounts import AccountRoutes
from .media import MediaRoutes
from .midi import MidiRoutes
from .music import MusicRoutes
from .scheduler import SchedulerRoutes
from .state import new_item_id
from .voices import VoiceRoutes

if TYPE_CHECKING:
    from ..._client import TempolorClient


class FakeTempolor(
    AccountRoutes, MusicRoutes, SchedulerRoutes, VoiceRoutes, MidiRoutes, MediaRoutes
):
    """A faithful local TemPolor service on 127.0.0.1, for tests, demos and benchmarks.

    >>> async with FakeTempolor(job_duration=0.5) as fake:
    ...     fake.base_url  # "http://127.0.0.1:<port>/v1/tempolor"

    ``download_lag``: for this many seconds after a job completes, ``GET music/download``
    answers 404, as the service does (a job reports COMPLETED a little before its file can
    be served).

    ``clock_offset``: the service's clock relative to this machine's, in seconds; every time
    it shows (``createTime``, ``updateTime``, ``started``, the ``Date`` header) follows it.
    """

    service_name = "TemPolor"

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
        download_lag: float = 0.0,
        clock_offset: float = 0.0,
    ) -> None:
        super().__init__(host=host, port=port, clock_offset=clock_offset)
        self.token = token
        self.job_duration = job_duration
        self.page_size = page_size
        self.fail_marker = fail_marker
        self.audio_seconds = audio_seconds
        self.max_gen_count_at_once = max_gen_count_at_once
        self.voice_clone_delay = voice_clone_delay
        self.voice_clone_pending = voice_clone_pending
        self.download_url_expiry = download_url_expiry
        self.download_lag = download_lag
        self.callback_errors = []
        self.submissions = []  # the job ids of each accepted generation
        self.accounts = {}
        self.jobs = {}
        self.cloned_voices = {}
        self.midi_files = {}
        self._splits = {}
        self._cdn_files = {}
        self._media_cache = {}
        self._remain_num = 3000
        self._cdn_secret = secrets.token_hex(16)
        self._callback_session = None
        self._callback_tasks = set()
        self._routes = self._route_table()
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

    def _route_table(self) -> list[Route]:
        return [
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

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start listening; ``async with`` does this for you."""
        if self._runner is not None:
            return
        await super().start()
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
        await super().close()

    def client(self, **options: Any) -> TempolorClient:
        """A :class:`~tempolor_async.TempolorClient` pointed at this simulator, with its token;
        ``options`` are passed on (e.g. ``max_retries=0``)."""
        from ..._client import TempolorClient

        options.setdefault("token", self.token)
        options.setdefault("base_url", self.base_url)
        return TempolorClient(**options)
