"""Artist and cloned voices: https://useapi.net/docs/api-tempolor-v1/post-tempolor-music-cloned-voices"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from .._server import Call, Reply, json_response
from .base import VOICE_ID_PATTERN, TempolorBase, audio_extension
from .state import API_USER, FakeClonedVoice, artist_catalogue, new_item_id


class VoiceRoutes(TempolorBase):
    """Artist voices and cloned voices."""

    async def _list_artist_voices(self, call: Call) -> web.Response:
        self._resolve_account(call.query.get("user_id"))
        records = artist_catalogue(self.media_url)
        sequences = [len(records) - index for index in range(len(records))]
        page = self._page(records, sequences, call.query.get("cursor"))
        return json_response(200, {**page, "sysTime": self.wall_ms()})

    async def _list_cloned_voices(self, call: Call) -> web.Response:
        account = self._resolve_account(call.query.get("user_id"))
        now = time.monotonic()
        voices = sorted(
            (voice for voice in self.cloned_voices.values() if voice.user_id == account.user_id),
            key=lambda voice: -voice.sequence,
        )
        records = [voice.render(now, self.media_url) for voice in voices]
        return json_response(
            200, self._page(records, [voice.sequence for voice in voices], call.query.get("cursor"))
        )

    async def _clone_voice(self, call: Call) -> web.Response:
        extension = audio_extension(call.request)
        name = call.query.get("name", "")
        if not name.strip():
            raise Reply(400, "Parameter name is required")
        if not call.body:
            raise Reply(400, "Empty file received")
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
            created_ms=self.wall_ms(),
        )
        self.cloned_voices[voice.cloned_voice_item_id] = voice
        ids = {"itemId": item_id, "clonedVoiceItemId": voice.cloned_voice_item_id}
        if pending:
            message = (
                "Voice cloning is still processing after 120 seconds. Please check back later."
            )
            return json_response(202, {**ids, "message": message})
        return json_response(200, {"result": True, **ids})

    async def _delete_voice(self, call: Call) -> web.Response:
        voice_id = call.match["id"]
        if not VOICE_ID_PATTERN.match(voice_id):
            raise Reply(400, "clonedVoiceItemId has incorrect format")
        if self.cloned_voices.pop(voice_id, None) is None:
            raise Reply(404, f"No record found for {voice_id}")
        return json_response(200, {"result": True})
