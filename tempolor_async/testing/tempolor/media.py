"""Media served without a token under /cdn, as a CDN would: real files, generated on first use.

Like the service's CDN, it answers byte ranges (206, or 416 for a range past the end) and
serves a generated track only with a signed ``auth_key`` that expires after
``download_url_expiry`` seconds (then 403). The key has the shape of the documented example,
``expires-rand-uid-md5hash``: an epoch second and an MD5 over the path, the expiry and a
secret of the simulator, so a key opens only its own file.
"""

from __future__ import annotations

import math
import re
import struct
import time
import zlib
from urllib.parse import quote

from aiohttp import web

from .. import _media
from .._server import compact_json
from .base import CDN_PATH, FILE_FORMATS, TempolorBase
from .state import ARTIST_VOICE_IDS, COMPLETED


class MediaRoutes(TempolorBase):
    """Files under /cdn: job audio, covers, waveforms, stems, voices and MIDI."""

    async def _other(self, request: web.Request, path: str) -> web.StreamResponse:
        if path.startswith(CDN_PATH + "/"):
            name = path[len(CDN_PATH) + 1 :]
            if name.startswith("ai_material/") and not self._signed(
                path, request.query.get("auth_key", "")
            ):
                return web.Response(status=403, text=FORBIDDEN, content_type="text/html")
            return self._cdn(name, request.headers.get("Range"))
        return await super()._other(request, path)

    def _signed(self, path: str, auth_key: str) -> bool:
        """A valid, unexpired ``auth_key`` for ``path``."""
        match = AUTH_KEY.fullmatch(auth_key)
        if match is None:
            return False
        expires = int(match["expires"])
        return self.wall_time() < expires and match["hash"] == self._auth_hash(path, expires)

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

    def _cdn(self, name: str, byte_range: str | None = None) -> web.Response:
        """Media by path, generated on first use and then cached. No token needed."""
        found = self._media(name)
        if found is None:
            return web.Response(status=404, text="Not Found", content_type="text/plain")
        data, content_type = found
        headers = {"Accept-Ranges": "bytes"}
        if byte_range is None:
            return web.Response(body=data, content_type=content_type, headers=headers)
        span = _byte_span(byte_range, len(data))
        if span is None:  # not a single byte range: the whole file, as HTTP allows
            return web.Response(body=data, content_type=content_type, headers=headers)
        start, end = span
        if start >= len(data):
            headers["Content-Range"] = f"bytes */{len(data)}"
            return web.Response(status=416, headers=headers)
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return web.Response(
            status=206, body=data[start : end + 1], content_type=content_type, headers=headers
        )

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
            return _media.mp3_bytes(job.title(), seconds, seed=stem)
        if folder in ("ai_material/wav", "artist-voices"):
            return _media.melody_wav_bytes(stem, seconds)
        if folder in ("ai_material/stems", "stems-splitter"):
            return _media.stems_zip_bytes(stem, seconds)
        if folder == "waveform":
            peaks = [round(abs(math.sin(index / 7)), 3) for index in range(100)]
            return compact_json({"peaks": peaks})
        if folder == "midi/file":
            return next(midi.data for midi in self.midi_files.values() if midi.item_id == stem)
        return _png_pixel(zlib.crc32(stem.encode()))


FORBIDDEN = (
    "<html><head><title>403 Forbidden</title></head><body><h1>403 Forbidden</h1></body></html>"
)
AUTH_KEY = re.compile(r"(?P<expires>\d{1,12})-0-0-(?P<hash>[0-9a-f]{32})")
_RANGE = re.compile(r"\s*bytes\s*=\s*(?P<start>\d*)\s*-\s*(?P<end>\d*)\s*")


def _byte_span(header: str, size: int) -> tuple[int, int] | None:
    """The first and last byte a ``Range`` header asks for, clipped to ``size``; a start at
    or past ``size`` means unsatisfiable. None for anything but one byte range (ignored)."""
    match = _RANGE.fullmatch(header)
    if match is None or not (match["start"] or match["end"]):
        return None
    if not match["start"]:  # the last N bytes
        suffix = int(match["end"])
        return (size, size) if suffix == 0 else (max(0, size - suffix), size - 1)
    start = int(match["start"])
    end = int(match["end"]) if match["end"] else size - 1
    if start >= size:
        return start, start
    if end < start:
        return None
    return start, min(end, size - 1)


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
