"""Generation, jobs, download links and the stems splitter: https://useapi.net/docs/api-tempolor-v1"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from .. import _media
from .._server import (
    Call,
    Reply,
    content_type_of,
    json_object,
    json_response,
    multipart_fields,
    text_field,
)
from .base import (
    BUSY_TEMPOLOR,
    CDN_PATH,
    FILE_FORMATS,
    LIMITS,
    audio_extension,
    positive_int,
    whole_number,
)
from .callbacks import CallbackSender
from .state import (
    API_USER,
    ARTIST_VOICE_IDS,
    COMPLETED,
    DEFAULT_INSTRUMENTAL_MODEL,
    DEFAULT_SONG_MODEL,
    GENERATING,
    TONALITIES,
    FakeAccount,
    FakeJob,
    new_item_id,
)


class MusicRoutes(CallbackSender):
    """music/song, music/instrumental, music/{job_id}, music/download and the splitter."""

    def complete(self, job_id: str) -> None:
        """Finish a job now, successfully."""
        self._force(job_id, COMPLETED)

    def fail(self, job_id: str) -> None:
        """Finish a job now, as FAILED."""
        self._force(job_id, 10)

    def _force(self, job_id: str, status: int) -> None:
        job = self.jobs[job_id]
        job.forced_status = status
        job.forced_ms = self.wall_ms()
        job.forced_at = time.monotonic()

    async def _create_song(self, call: Call) -> web.Response:
        return await self._generate(call, "song")

    async def _create_instrumental(self, call: Call) -> web.Response:
        return await self._generate(call, "instrumental")

    async def _generate(self, call: Call, kind: str) -> web.Response:
        fields = await _generation_fields(call)
        prompt = text_field(fields, "prompt")
        if not prompt or not prompt.strip():
            raise Reply(400, "Parameter prompt is required")
        for name, limit in LIMITS.items():
            value = text_field(fields, name)
            if value is not None and len(value) > limit:
                raise Reply(400, f"Parameter {name} is too long (maximum {limit} characters)")
        reply_url = text_field(fields, "replyUrl")
        if reply_url and urlsplit(reply_url).scheme not in ("http", "https"):
            raise Reply(400, "Parameter replyUrl must be an http or https URL")
        options: dict[str, Any] = {"lyrics": None, "tonality": None, "bpm": None, "chords": None}
        voice_ids: dict[str, str | None] = {"artist": None, "cloned": None, "midi": None}
        if kind == "song":
            model = text_field(fields, "model_song") or DEFAULT_SONG_MODEL
            options["lyrics"] = text_field(fields, "lyrics")
            voice_ids = {
                "artist": text_field(fields, "artistVoiceItemId"),
                "cloned": text_field(fields, "clonedVoiceItemId"),
                "midi": text_field(fields, "midiItemId"),
            }
            if voice_ids["artist"] and voice_ids["cloned"]:
                raise Reply(400, "Only one of artistVoiceItemId or clonedVoiceItemId can be used")
            if voice_ids["midi"] and (voice_ids["artist"] or voice_ids["cloned"]):
                raise Reply(
                    400, "midiItemId cannot be used with artistVoiceItemId or clonedVoiceItemId"
                )
        else:
            model = text_field(fields, "model_instrumental") or DEFAULT_INSTRUMENTAL_MODEL
            tonality = text_field(fields, "tonality")
            if tonality is not None and tonality not in TONALITIES:
                keys = ", ".join(sorted(TONALITIES))
                raise Reply(400, f"Parameter tonality must be one of: {keys}")
            bpm = fields.get("bpm")
            if bpm is not None and bpm != "":
                options["bpm"] = _int_in_range(bpm, "bpm", 50, 190)
            options["tonality"] = tonality
            options["chords"] = text_field(fields, "chords")
        max_jobs_field = fields.get("maxJobs")
        request_max_jobs = (
            None if max_jobs_field in (None, "") else positive_int(max_jobs_field, "maxJobs")
        )
        account = self._pick_account(text_field(fields, "user_id"), request_max_jobs)
        if not account.subscribed:
            raise Reply(402, "Subscription required")
        self._check_sources(account, voice_ids)
        now = time.monotonic()
        generating = sum(
            1
            for job in self.jobs.values()
            if job.user_id == account.user_id and job.status(now) == GENERATING
        )
        if generating + 2 > self.max_gen_count_at_once:
            raise Reply(429, BUSY_TEMPOLOR)
        jobs = []
        for take in range(2):
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
                created_ms=self.wall_ms(),
                artist_voice_item_id=voice_ids["artist"],
                cloned_voice_item_id=voice_ids["cloned"],
                midi_item_id=voice_ids["midi"],
                reply_url=reply_url,
                reply_ref=text_field(fields, "replyRef"),
                take=take,
                **options,
            )
            self.jobs[job.job_id] = job
            jobs.append(job)
            if reply_url:
                self._start_callbacks(job)
        self.submissions.append([job.job_id for job in jobs])
        self._remain_num = max(0, self._remain_num - 2)
        return json_response(
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
            raise Reply(404, "No accounts configured")
        running = {account.user_id: self.running_jobs(account.user_id) for account in candidates}

        def free(account: FakeAccount) -> int:
            return (request_max_jobs or account.max_jobs) - len(running[account.user_id])

        best = max(candidates, key=free)
        if free(best) > 0:
            return best
        busy = {
            uid: [job.render_running(self.wall_ms(), numeric_started=True) for job in jobs]
            for uid, jobs in running.items()
        }
        count = sum(len(jobs) for jobs in running.values())
        raise Reply(429, f"Account is busy executing {count} jobs", runningJobs=busy)

    def _check_sources(self, account: FakeAccount, voice_ids: Mapping[str, str | None]) -> None:
        artist, cloned, midi = voice_ids["artist"], voice_ids["cloned"], voice_ids["midi"]
        missing = (
            (artist is not None and artist not in ARTIST_VOICE_IDS)
            or (cloned is not None and cloned not in self.cloned_voices)
            or (midi is not None and midi not in self.midi_files)
        )
        if missing:
            raise Reply(404, "The source material does not exist.")

    async def _get_job(self, call: Call) -> web.Response:
        job = self._job(call.match["job_id"])
        return json_response(200, job.render(time.monotonic(), self.media_url, self.audio_seconds))

    async def _delete_job(self, call: Call) -> web.Response:
        job = self._job(call.match["job_id"])
        del self.jobs[job.job_id]
        return json_response(200, {"result": True})

    async def _list_music(self, call: Call) -> web.Response:
        kind = call.query.get("type", "song")
        if kind not in ("song", "instrumental"):
            raise Reply(400, "Invalid type parameter. Must be 'song' or 'instrumental'")
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
        return json_response(
            200, self._page(records, [job.sequence for job in jobs], call.query.get("cursor"))
        )

    async def _download(self, call: Call) -> web.Response:
        job = self._job(call.match["job_id"])
        file_format = call.query.get("file_format", "mp3")
        if file_format not in FILE_FORMATS:
            raise Reply(400, "Invalid file_format parameter. Must be 'mp3', 'wav' or 'stems'")
        now = time.monotonic()
        status = job.status(now)
        if status != COMPLETED:
            raise Reply(400, f"Generation is not completed yet ({status})")
        since = job.final_since(now)
        if since is not None and since < self.download_lag:
            # As the service does: COMPLETED a few seconds before the file can be served.
            raise Reply(404, f"No record found for {job.job_id}")
        folder, extension = FILE_FORMATS[file_format]
        expires = math.ceil(self.wall_time()) + self.download_url_expiry
        path = f"{CDN_PATH}/ai_material/{folder}/{job.item_id}.{extension}"
        url = self.signed_media_url(path, expires)
        return json_response(200, {"url": url, "remainSeconds": self.download_url_expiry})

    async def _split_stems(self, call: Call) -> web.Response:
        extension = audio_extension(call.request)
        if not call.body:
            raise Reply(400, "Empty file received")
        self._resolve_account(call.query.get("user_id"))
        split_id = f"{zlib.crc32(call.body):08x}{new_item_id()[:7]}"
        self._splits[split_id] = call.body
        return json_response(
            200,
            {
                "state": 2,
                "title": f"audio_file.{extension}",
                "stemsZipUrl": f"{self.media_url}/stems-splitter/{split_id}.zip",
                "audioType": extension,
                "detail": list(_media.STEM_NAMES),
            },
        )


async def _generation_fields(call: Call) -> dict[str, Any]:
    """Generation parameters from a JSON body or, as documented too, from form fields."""
    content_type = content_type_of(call.request)
    if content_type == "multipart/form-data":
        return multipart_fields(call.request.headers.get("Content-Type", ""), call.body)
    if content_type == "application/x-www-form-urlencoded":
        form = await call.request.post()
        return {key: value for key, value in form.items() if isinstance(value, str)}
    return json_object(call.body)


def _int_in_range(value: Any, name: str, low: int, high: int) -> int:
    number = whole_number(value)
    if number is None or not low <= number <= high:
        raise Reply(400, f"Parameter {name} must be an integer from {low} to {high}")
    return number
