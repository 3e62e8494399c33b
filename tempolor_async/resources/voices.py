"""Artist and cloned voices: https://useapi.net/docs/api-tempolor-v1/post-tempolor-music-cloned-voices"""

from __future__ import annotations

import attrs

from .. import _protocol, _validation
from .._files import Upload, UploadSource
from .._models import ArtistVoice, ClonedVoice, VoiceClone
from .._pagination import AsyncPager
from .._protocol import ApiRequest, Kind
from ._base import Resource


class Voices(Resource):
    """Artist voices to sing your songs, and voices cloned from your samples
    (``client.voices``)."""

    def list_artist(
        self, *, cursor: str | None = None, user_id: str | None = None
    ) -> AsyncPager[ArtistVoice]:
        """The predefined artist voices, for ``create_song(artist_voice_item_id=...)``, as a
        lazy pager (no request until iterated). https://useapi.net/docs/api-tempolor-v1/get-tempolor-music-artist-voices"""
        return self._pager(
            ArtistVoice, "/music/artist-voices/", cursor, user_id=self._user(user_id)
        )

    def list_cloned(
        self, *, cursor: str | None = None, user_id: str | None = None
    ) -> AsyncPager[ClonedVoice]:
        """Your cloned voices, for ``create_song(cloned_voice_item_id=...)``, as a lazy pager.
        https://useapi.net/docs/api-tempolor-v1/get-tempolor-music-cloned-voices"""
        return self._pager(
            ClonedVoice, "/music/cloned-voices/", cursor, user_id=self._user(user_id)
        )

    async def clone(
        self,
        audio: UploadSource,
        *,
        name: str,
        content_type: str | None = None,
        user_id: str | None = None,
    ) -> VoiceClone:
        """Upload a voice sample to clone. ``ready`` is False when the service answered 202:
        cloning goes on, and the voice appears in :meth:`list_cloned` once it is done.
        ``audio`` is bytes, a path (streamed from disk) or a binary file object; its type
        comes from ``content_type=`` or the file's extension (.m4a, .mp3, .wav, .flac).
        https://useapi.net/docs/api-tempolor-v1/post-tempolor-music-cloned-voices"""
        _validation.text("name", name, required=True)
        upload = Upload.audio(audio, content_type)
        path = "/music/cloned-voices/"
        query = _protocol.query(name=name, user_id=self._user(user_id))
        request = ApiRequest("POST", path, kind=Kind.UPLOAD, query=query, upload=upload)
        reply = await self._send(request)
        clone: VoiceClone = _protocol.decode(reply.content, VoiceClone, "POST", path)
        return clone if reply.status != 202 else attrs.evolve(clone, ready=False)

    async def delete_cloned(self, cloned_voice_item_id: str) -> None:
        """Delete a cloned voice.
        https://useapi.net/docs/api-tempolor-v1/delete-tempolor-music-cloned-voices-clonedVoiceItemId"""
        voice_id = _validation.path_id("cloned_voice_item_id", cloned_voice_item_id)
        await self._send(ApiRequest("DELETE", f"/music/cloned-voices/{voice_id}"))
