"""Test against TemPolor with no network: a faithful local simulator of the service.

``FakeTempolor`` is an ``aiohttp.web`` server on 127.0.0.1 that implements every endpoint
with the documented checks, response shapes and error bodies, moves jobs through their
lifecycle, enforces ``maxJobs``, serves real media files, and lets tests inject faults and
read every request it received. Run it standalone with ``python -m tempolor_async.testing``.

``FakeNoiz`` does the same for Noiz AI's voice API (``--noiz`` standalone). Both stand on
``_server.py``, what every simulator shares: the server's lifecycle, the request log, fault
injection and routing.
"""

from ._media import midi_bytes as sample_midi
from ._media import wav_bytes
from ._server import Fault, RecordedRequest
from .noiz import FakeNoiz
from .tempolor import FakeTempolor


def sample_audio(seconds: float = 1.0) -> bytes:
    """A short real WAV file, e.g. to upload as a voice sample or for the stems splitter."""
    return wav_bytes("sample", seconds)


__all__ = ["FakeNoiz", "FakeTempolor", "Fault", "RecordedRequest", "sample_audio", "sample_midi"]
