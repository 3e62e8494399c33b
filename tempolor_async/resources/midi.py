"""MIDI files to base songs on: https://useapi.net/docs/api-tempolor-v1/post-tempolor-music-midi"""

from __future__ import annotations

from .. import _protocol, _validation
from .._files import Upload, UploadSource
from .._models import MidiFile, MidiUpload
from .._pagination import AsyncPager
from .._protocol import ApiRequest, Kind
from ._base import Resource


class Midi(Resource):
    """MIDI files to base songs on (``client.midi``)."""

    def list(
        self, *, cursor: str | None = None, user_id: str | None = None
    ) -> AsyncPager[MidiFile]:
        """Your uploaded MIDI files, as a lazy pager (no request until iterated).
        https://useapi.net/docs/api-tempolor-v1/get-tempolor-music-midi"""
        return self._pager(MidiFile, "/music/midi/", cursor, user_id=self._user(user_id))

    async def upload(
        self,
        midi: UploadSource,
        *,
        name: str,
        content_type: str | None = None,
        user_id: str | None = None,
    ) -> MidiUpload:
        """Upload a MIDI file (bytes, a path or a binary file); use the returned
        ``midi.midi_item_id`` as ``create_song(midi_item_id=...)``.
        https://useapi.net/docs/api-tempolor-v1/post-tempolor-music-midi"""
        _validation.text("name", name, required=True)
        upload = Upload.midi(midi, content_type)
        query = _protocol.query(name=name, user_id=self._user(user_id))
        result: MidiUpload = await self._call(
            MidiUpload, "POST", "/music/midi/", kind=Kind.UPLOAD, query=query, upload=upload
        )
        return result

    async def delete(self, midi_item_id: str) -> None:
        """Delete an uploaded MIDI file.
        https://useapi.net/docs/api-tempolor-v1/delete-tempolor-music-midi-midiItemId"""
        midi_item_id = _validation.path_id("midi_item_id", midi_item_id)
        await self._send(ApiRequest("DELETE", f"/music/midi/{midi_item_id}"))
