"""Real, small media files for the simulator's download links.

Everything here is generated with the standard library so that the simulator needs no
encoder: a PCM WAV with a sine tone, MPEG-1 Layer III frames (digital silence, which every
decoder plays), a standard MIDI file and a ZIP of stem WAVs.
"""

from __future__ import annotations

import io
import math
import struct
import wave
import zipfile
import zlib

WAV_SAMPLE_RATE = 22_050

# MPEG-1 Layer III, 128 kbit/s, 48 kHz, mono, no CRC, "original" bit set.
# At 48 kHz a 128 kbit/s frame is exactly 144 * 128000 / 48000 = 384 bytes and
# holds 1152 samples (24 ms). The 17 bytes of side information that follow the
# header are all zero (part2_3_length = 0), which decodes as silence.
MP3_FRAME_HEADER = bytes((0xFF, 0xFB, 0x94, 0xC4))
MP3_FRAME_BYTES = 384
MP3_FRAME_SECONDS = 1152 / 48_000

STEM_NAMES = ("vocals", "drums", "bass", "other")


def _tone_frequency(seed: str) -> float:
    """A note between A3 and A5 that depends on the item, so files differ per job."""
    semitone = zlib.crc32(seed.encode()) % 25
    return 220.0 * 2 ** (semitone / 12)


def wav_bytes(seed: str, seconds: float, *, volume: float = 0.3) -> bytes:
    """A mono 16-bit PCM WAV holding a sine tone that fades in and out."""
    frames = max(1, int(seconds * WAV_SAMPLE_RATE))
    frequency = _tone_frequency(seed)
    period = WAV_SAMPLE_RATE / frequency
    fade = max(1, min(frames // 10, WAV_SAMPLE_RATE // 20))
    amplitude = 32767 * volume
    samples = bytearray()
    pack = struct.Struct("<h").pack
    for index in range(frames):
        envelope = min(1.0, index / fade, (frames - 1 - index) / fade)
        samples += pack(int(amplitude * envelope * math.sin(2 * math.pi * index / period)))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(WAV_SAMPLE_RATE)
        writer.writeframes(bytes(samples))
    return buffer.getvalue()


def mp3_bytes(title: str, seconds: float) -> bytes:
    """An ID3v2.3 tag with the title, then MPEG audio frames of digital silence."""
    frame = MP3_FRAME_HEADER + bytes(MP3_FRAME_BYTES - len(MP3_FRAME_HEADER))
    count = max(1, math.ceil(seconds / MP3_FRAME_SECONDS))
    return _id3_tag(title) + frame * count


def _id3_tag(title: str) -> bytes:
    text = b"\x01" + title.encode("utf-16")  # encoding 1: UTF-16 with BOM
    frame = b"TIT2" + struct.pack(">I", len(text)) + b"\x00\x00" + text
    size = len(frame)
    syncsafe = bytes((size >> 21 & 0x7F, size >> 14 & 0x7F, size >> 7 & 0x7F, size & 0x7F))
    return b"ID3\x03\x00\x00" + syncsafe + frame


def stems_zip_bytes(seed: str, seconds: float) -> bytes:
    """A ZIP archive with one WAV per stem."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for stem in STEM_NAMES:
            archive.writestr(f"{stem}.wav", wav_bytes(f"{seed}/{stem}", seconds, volume=0.15))
    return buffer.getvalue()


def midi_bytes(notes: tuple[int, ...] = (60, 64, 67, 72)) -> bytes:
    """A format-0 standard MIDI file playing the given notes one after another."""
    events = bytearray()
    for note in notes:
        events += bytes((0x00, 0x90, note, 0x60))  # note on, at once
        events += bytes((0x83, 0x60, 0x80, note, 0x40))  # note off after 480 ticks
    events += bytes((0x00, 0xFF, 0x2F, 0x00))  # end of track
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480)
    return header + b"MTrk" + struct.pack(">I", len(events)) + bytes(events)
