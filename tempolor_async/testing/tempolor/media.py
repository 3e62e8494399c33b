"""Media served without a token under /cdn, as a CDN would: real files, generated on first use."""

from __future__ import annotations

import json
import math
import struct
import time
import zlib
from urllib.parse import quote

from aiohttp import web

from .. import _media
from .base import CDN_PATH, FILE_FORMATS, TempolorBase
from .state import ARTIST_VOICE_IDS, COMPLETED


class MediaRoutes(TempolorBase):
    """Files under /cdn: job audio, covers, waveforms, stems, voices and MIDI."""

    async def _other(self, request: web.Request, path: str) -> web.StreamResponse:
        if path.startswith(CDN_PATH + "/"):
            return self._cdn(path[len(CDN_PATH) + 1 :])
        return await super()._other(request, path)

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
