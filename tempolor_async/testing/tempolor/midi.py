"""MIDI files: https://useapi.net/docs/api-tempolor-v1/post-tempolor-music-midi"""

from __future__ import annotations

from aiohttp import web

from .._server import Call, Reply, content_type_of, json_response
from .base import MIDI_ID_PATTERN, TempolorBase
from .state import API_USER, MIDI_CONTENT_TYPES, FakeMidi, new_item_id


class MidiRoutes(TempolorBase):
    """music/midi."""

    async def _list_midi(self, call: Call) -> web.Response:
        account = self._resolve_account(call.query.get("user_id"))
        files = sorted(
            (midi for midi in self.midi_files.values() if midi.user_id == account.user_id),
            key=lambda midi: -midi.sequence,
        )
        records = [midi.render(self.media_url) for midi in files]
        return json_response(
            200, self._page(records, [midi.sequence for midi in files], call.query.get("cursor"))
        )

    async def _upload_midi(self, call: Call) -> web.Response:
        if content_type_of(call.request) not in MIDI_CONTENT_TYPES:
            raise Reply(400, "Content-Type must be audio/midi or audio/x-midi")
        name = call.query.get("name", "")
        if not name.strip():
            raise Reply(400, "Parameter name is required")
        if not call.body:
            raise Reply(400, "Empty file received")
        if not call.body.startswith(b"MThd"):
            raise Reply(400, "Invalid MIDI file")
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
        return json_response(
            200, {"isFirst": is_first, "midiRenderVO": midi.render(self.media_url)}
        )

    async def _delete_midi(self, call: Call) -> web.Response:
        midi_id = call.match["id"]
        if not MIDI_ID_PATTERN.match(midi_id):
            raise Reply(400, "midiItemId has incorrect format")
        if self.midi_files.pop(midi_id, None) is None:
            raise Reply(404, f"No record found for {midi_id}")
        return json_response(200, {"result": True})
