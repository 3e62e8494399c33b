"""Generation, jobs and downloads: https://useapi.net/docs/api-tempolor-v1/post-tempolor-music-song"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import anyio

from .. import _files, _protocol, _validation
from .._errors import BadRequestError, NotFoundError, ResponseDecodeError
from .._files import ProgressCallback, Upload, UploadSource
from .._models import (
    DownloadLink,
    FileFormat,
    InstrumentalModel,
    MusicJob,
    MusicType,
    SongModel,
    StemsSplit,
    Submission,
    Tonality,
)
from .._pagination import AsyncPager
from .._protocol import ApiRequest, Kind
from ._base import Resource

logger = logging.getLogger("tempolor_async")


class Music(Resource):
    """Songs and instrumentals: generate, read, list, delete, download, split into stems
    (``client.music``)."""

    async def create_song(
        self,
        prompt: str,
        *,
        lyrics: str | None = None,
        model: SongModel | str | None = None,
        artist_voice_item_id: str | None = None,
        cloned_voice_item_id: str | None = None,
        midi_item_id: str | None = None,
        reply_url: str | None = None,
        reply_ref: str | None = None,
        max_jobs: int | None = None,
        user_id: str | None = None,
    ) -> Submission:
        """Generate a song with vocals; the submission names two jobs to await.

        Sent only when the account has a free slot (the client's capacity gate: it waits,
        first come first served, up to ``busy_timeout``, then raises RateLimitError with
        nothing sent). Never retried once it may have reached the service (a retry could pay
        twice); a 429 "busy" that still arrives is waited out, at least 30 s at a time,
        within ``busy_timeout``. At most one of ``artist_voice_item_id``,
        ``cloned_voice_item_id`` and ``midi_item_id``.
        https://useapi.net/docs/api-tempolor-v1/post-tempolor-music-song
        """
        _validation.voice_sources(artist_voice_item_id, cloned_voice_item_id, midi_item_id)
        body = _protocol.body(
            prompt=_validation.text("prompt", prompt, required=True),
            lyrics=_validation.text("lyrics", lyrics),
            model_song=_validation.model(model),
            artistVoiceItemId=_validation.item_id("artist_voice_item_id", artist_voice_item_id),
            clonedVoiceItemId=_validation.item_id("cloned_voice_item_id", cloned_voice_item_id),
            midiItemId=_validation.item_id("midi_item_id", midi_item_id),
            **self._common(reply_url, reply_ref, max_jobs, user_id),
        )
        return await self._generate("/music/song", body)

    async def create_instrumental(
        self,
        prompt: str,
        *,
        model: InstrumentalModel | str | None = None,
        tonality: Tonality | str | None = None,
        bpm: int | None = None,
        chords: str | None = None,
        reply_url: str | None = None,
        reply_ref: str | None = None,
        max_jobs: int | None = None,
        user_id: str | None = None,
    ) -> Submission:
        """Generate an instrumental; same retry rules as :meth:`create_song`. ``bpm`` is 50
        to 190, ``tonality`` one of :class:`Tonality` (e.g. ``"A:minor"``).
        https://useapi.net/docs/api-tempolor-v1/post-tempolor-music-instrumental"""
        body = _protocol.body(
            prompt=_validation.text("prompt", prompt, required=True),
            model_instrumental=_validation.model(model),
            tonality=_validation.tonality(tonality),
            bpm=_validation.bpm(bpm),
            chords=_validation.text("chords", chords),
            **self._common(reply_url, reply_ref, max_jobs, user_id),
        )
        return await self._generate("/music/instrumental", body)

    def _common(
        self,
        reply_url: str | None,
        reply_ref: str | None,
        max_jobs: int | None,
        user_id: str | None,
    ) -> dict[str, object]:
        return {
            "replyUrl": _validation.reply_url(reply_url),
            "replyRef": _validation.text("reply_ref", reply_ref),
            "maxJobs": _validation.positive_int("max_jobs", max_jobs),
            "user_id": self._user(user_id),
        }

    async def _generate(self, path: str, body: dict[str, Any]) -> Submission:
        """Send through the client's capacity gate: a free slot first, then one POST that
        is never repeated once it may have arrived."""
        receiver = self._client.callbacks
        if receiver is not None and "replyUrl" not in body:
            body["replyUrl"] = _validation.reply_url(receiver.reply_url())
        return await self._client._engine.generate(path, body)

    async def get(self, job_id: str) -> MusicJob:
        """A job's current record: status, progress, and once COMPLETED its title and
        material. To wait for it, use :meth:`TempolorClient.await_job`.
        https://useapi.net/docs/api-tempolor-v1/get-tempolor-music-job_id"""
        path = f"/music/{_validation.path_id('job_id', job_id)}"
        # What ``_call`` does, written out: this is the call every poll makes.
        reply = await self._client._http.send(ApiRequest("GET", path))
        job: MusicJob = _protocol.decode(reply.content, MusicJob, "GET", path)
        return job

    def list(
        self,
        *,
        type: MusicType | str = MusicType.SONG,
        cursor: str | None = None,
        user_id: str | None = None,
    ) -> AsyncPager[MusicJob]:
        """Past generations of one ``type`` (``"song"`` by default, or ``"instrumental"``),
        newest first, fetched page by page as iterated; ``cursor`` resumes from a saved
        :attr:`Page.cursor`. https://useapi.net/docs/api-tempolor-v1/get-tempolor-music"""
        kind = _validation.music_type(type)
        return self._pager(MusicJob, "/music/", cursor, type=kind, user_id=self._user(user_id))

    async def delete(self, job_id: str) -> None:
        """Delete a generated job from the account's library.
        https://useapi.net/docs/api-tempolor-v1/delete-tempolor-music-job_id"""
        job_id = _validation.path_id("job_id", job_id)
        await self._send(ApiRequest("DELETE", f"/music/{job_id}"))

    async def download_url(
        self, job_id: str, *, file_format: FileFormat | str = FileFormat.MP3
    ) -> DownloadLink:
        """A temporary link to the finished file. Right after completion the service may
        still say "not completed yet" or 404 for a moment: that is retried for up to 10 s.
        https://useapi.net/docs/api-tempolor-v1/get-tempolor-music-download-job_id"""
        job_id = _validation.path_id("job_id", job_id)
        fmt = _validation.file_format(file_format)
        return await self._download_link(job_id, fmt)

    async def _download_link(self, job_id: str, fmt: FileFormat) -> DownloadLink:
        request = ApiRequest(
            "GET", f"/music/download/{job_id}", query=_protocol.query(file_format=fmt)
        )
        deadline = time.monotonic() + _protocol.DOWNLOAD_LINK_GRACE_SECONDS
        delay = 0.5
        while True:
            try:
                reply = await self._send(request)
            except (BadRequestError, NotFoundError) as exc:
                if not _not_ready_yet(exc) or time.monotonic() + delay > deadline:
                    raise
                logger.warning("download link for %s not ready (%s); retrying", job_id, exc.message)
                await anyio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            link: DownloadLink = _protocol.decode(reply.content, DownloadLink, "GET", request.path)
            return link

    async def download(
        self,
        job_id: str,
        dest: str | os.PathLike[str],
        *,
        file_format: FileFormat | str = FileFormat.MP3,
        on_progress: ProgressCallback | None = None,
    ) -> Path:
        """Download a finished job into ``dest`` and return the path written.

        ``dest`` is a file path, or a folder: an existing one, or a path ending with a
        separator (created if missing); in a folder the file is ``<itemId>.mp3|.wav|.zip``.
        The file is written atomically. Asks for the link with :meth:`download_url`
        (https://useapi.net/docs/api-tempolor-v1/get-tempolor-music-download-job_id).
        """
        job_id = _validation.path_id("job_id", job_id)
        fmt = _validation.file_format(file_format)
        name = f"{_files.safe_name(_protocol.item_id_of(job_id))}.{fmt.extension}"
        target = _files.check_destination(dest, name)
        link = await self._download_link(job_id, fmt)
        problem = _protocol.media_url_problem(link.url) if link.url else "is missing"
        if problem is not None:
            raise ResponseDecodeError(
                f"the download link's url {problem}",
                method="GET",
                path=f"/music/download/{job_id}",
            )
        assert link.url is not None
        return await _files.download(self._client._http, link.url, target, name, on_progress)

    async def split_stems(
        self,
        audio: UploadSource,
        *,
        content_type: str | None = None,
        user_id: str | None = None,
    ) -> StemsSplit:
        """Split your own audio file into stems; download ``stems_zip_url`` with
        :meth:`TempolorClient.download_file`. ``audio`` is bytes, a path (streamed from
        disk) or a binary file object; its type comes from ``content_type=`` or the file's
        extension. https://useapi.net/docs/api-tempolor-v1/post-tempolor-music-stems-splitter"""
        upload = Upload.audio(audio, content_type)
        query = _protocol.query(user_id=self._user(user_id))
        result: StemsSplit = await self._call(
            StemsSplit,
            "POST",
            "/music/stems-splitter/",
            kind=Kind.UPLOAD,
            query=query,
            upload=upload,
        )
        return result


def _not_ready_yet(error: BadRequestError | NotFoundError) -> bool:
    """A link asked for too early: 404, or 400 "not completed yet" while not FAILED (10)."""
    if isinstance(error, NotFoundError):
        return True
    return (
        error.message.startswith("Generation is not completed yet") and "(10)" not in error.message
    )
