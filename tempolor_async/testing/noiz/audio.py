"""The Noiz simulator's audio: speech as real WAV (or MP3) that is fast to make at any length,
produced piece by piece for streams, and remembered so that speech to text can give back the
words it was asked to say.

Each voice and text get their own tone (a whole number of hertz, so one second of samples
tiles without a click); one second is computed once and repeated, so an hour of speech costs
no more than copying bytes.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import struct
from collections import OrderedDict
from collections.abc import Iterator

from .. import _media

SAMPLE_RATE = _media.WAV_SAMPLE_RATE
BYTES_PER_SECOND = SAMPLE_RATE * 2  # mono, 16 bits
SECONDS_PER_CHARACTER = 0.06
# A stream sends each sentence as it is made, in pieces no larger than this.
STREAM_PIECE_BYTES = 64 * 1024
_ANNOTATION = re.compile(r"<[^<>\n]{1,40}>")
_SENTENCE = re.compile("[^.!?\u3002\uff01\uff1f\n]+[.!?\u3002\uff01\uff1f\n]*")


def natural_seconds(text: str, speed: float) -> float:
    """How long the simulator takes to say ``text`` at ``speed``."""
    return max(0.5, len(text) * SECONDS_PER_CHARACTER / speed)


@functools.lru_cache(maxsize=64)
def _one_second(frequency: int) -> bytes:
    pack = struct.Struct("<h").pack
    step = 2 * math.pi * frequency / SAMPLE_RATE
    return b"".join(pack(int(9000 * math.sin(step * index))) for index in range(SAMPLE_RATE))


def _frequency(seed: str) -> int:
    return 180 + int.from_bytes(hashlib.sha256(seed.encode()).digest()[:2], "big") % 240


def pcm(seed: str, start_byte: int, count: int) -> bytes:
    """``count`` bytes of the tone for ``seed``, from byte ``start_byte`` of the speech."""
    second = _one_second(_frequency(seed))
    offset = start_byte % BYTES_PER_SECOND
    repeats = (offset + count) // BYTES_PER_SECOND + 1
    return (second * repeats)[offset : offset + count]


def wav_header(data_bytes: int) -> bytes:
    """A PCM WAV header for ``data_bytes`` of mono 16-bit samples."""
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, SAMPLE_RATE, BYTES_PER_SECOND, 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def pcm_bytes(seconds: float) -> int:
    return max(2, int(seconds * SAMPLE_RATE) * 2)


def wav(seed: str, seconds: float) -> bytes:
    size = pcm_bytes(seconds)
    return wav_header(size) + pcm(seed, 0, size)


def mp3(title: str, seconds: float) -> bytes:
    return _media.mp3_bytes(title, seconds)


def wav_pieces(seed: str, text: str, seconds: float) -> Iterator[bytes]:
    """The WAV of :func:`wav`, in the pieces a stream sends: the header with the first
    sentence, then each sentence (cut to at most STREAM_PIECE_BYTES) as it is made."""
    total = pcm_bytes(seconds)
    sentences = _SENTENCE.findall(text) or [text]
    characters = sum(len(sentence) for sentence in sentences) or 1
    done = 0
    header = wav_header(total)
    for index, sentence in enumerate(sentences):
        end = total if index == len(sentences) - 1 else done + total * len(sentence) // characters
        end -= end % 2
        while done < end:
            size = min(STREAM_PIECE_BYTES - len(header), end - done)
            yield header + pcm(seed, done, size)
            header = b""
            done += size
    if header:
        yield header


class Transcripts:
    """What the simulator said, by the digest of the audio it sent: speech to text of its
    own audio gives back those words. Keeps the most recent ``size`` entries."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._texts: OrderedDict[bytes, str] = OrderedDict()

    def remember(self, digest: bytes, text: str) -> None:
        """What was said: the text without its emotion annotations (``<Joy>``)."""
        self._texts[digest] = _ANNOTATION.sub("", text)
        self._texts.move_to_end(digest)
        while len(self._texts) > self._size:
            self._texts.popitem(last=False)

    def recall(self, audio: bytes) -> str | None:
        return self._texts.get(hashlib.sha256(audio).digest())


def placeholder_transcript(audio: bytes) -> str:
    """A transcript for audio the simulator did not make: deterministic for the same bytes."""
    words = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")
    digest = hashlib.sha256(audio).digest()
    said = " ".join(words[byte % len(words)] for byte in digest[:6])
    return f"Simulated transcript: {said}."
