"""Real, small media files for the simulator's download links.

Everything here is generated with the standard library so that the simulator needs no
encoder: a PCM WAV with a sine tone or a melody, MPEG-1 Layer III frames (digital silence,
which every decoder plays), a standard MIDI file and a ZIP of stem WAVs.
"""

from __future__ import annotations

import array
import hashlib
import io
import math
import struct
import sys
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

# A major pentatonic scale over two octaves from A3, in semitones: every melody drawn from it
# sounds like a tune rather than noise.
_PENTATONIC = (0, 2, 4, 7, 9, 12, 14, 16, 19, 21, 24)
_NOTE_SECONDS = 0.25
_MELODY_NOTES = 16


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


def melody_wav_bytes(seed: str, seconds: float, *, volume: float = 0.3) -> bytes:
    """A mono 16-bit PCM WAV playing a melody of its own: sixteen notes of a pentatonic scale
    drawn from ``seed``, repeated for ``seconds``. Two seeds give two different tunes.

    Each note is whole periods of one sine cycle, so a long file costs list copies rather
    than a sine per sample."""
    frames = max(1, int(seconds * WAV_SAMPLE_RATE))
    digest = hashlib.sha256(seed.encode()).digest()
    notes = [_PENTATONIC[byte % len(_PENTATONIC)] for byte in digest[:_MELODY_NOTES]]
    note_frames = int(_NOTE_SECONDS * WAV_SAMPLE_RATE)
    fade = WAV_SAMPLE_RATE // 200  # 5 ms each side of a note: no clicks between notes
    amplitude = 32767 * volume
    rendered: dict[int, array.array[int]] = {}
    samples = array.array("h")
    index = 0
    while len(samples) < frames:
        semitone = notes[index % len(notes)]
        index += 1
        if semitone not in rendered:
            period = max(2, round(WAV_SAMPLE_RATE / (220.0 * 2 ** (semitone / 12))))
            cycle = array.array(
                "h", (int(amplitude * math.sin(2 * math.pi * i / period)) for i in range(period))
            )
            note = cycle * (note_frames // period + 1)
            del note[note_frames:]
            for i in range(fade):
                note[i] = int(note[i] * i / fade)
                note[-1 - i] = int(note[-1 - i] * i / fade)
            rendered[semitone] = note
        samples.extend(rendered[semitone])
    del samples[frames:]
    if sys.byteorder == "big":
        samples.byteswap()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(WAV_SAMPLE_RATE)
        writer.writeframes(samples.tobytes())
    return buffer.getvalue()


def mp3_bytes(title: str, seconds: float, *, seed: str = "") -> bytes:
    """An ID3v2.3 tag with the title, then MPEG audio frames of digital silence.

    ``seed`` fills each frame's ancillary data (the bytes after its empty main data, which
    decoders skip), so two tracks differ in their audio frames too, not only in the tag.
    The filler is ASCII: no 0xFF byte that a decoder could take for a frame sync."""
    side_information = bytes(17)
    room = MP3_FRAME_BYTES - len(MP3_FRAME_HEADER) - len(side_information)
    text = seed.encode("ascii", "replace") + b" " if seed else b"\x00"
    ancillary = (text * (room // len(text) + 1))[:room]
    frame = MP3_FRAME_HEADER + side_information + ancillary
    count = max(1, math.ceil(seconds / MP3_FRAME_SECONDS))
    return _id3_tag(title) + frame * count


def _id3_tag(title: str) -> bytes:
    text = b"\x01" + title.encode("utf-16")  # encoding 1: UTF-16 with BOM
    frame = b"TIT2" + struct.pack(">I", len(text)) + b"\x00\x00" + text
    size = len(frame)
    syncsafe = bytes((size >> 21 & 0x7F, size >> 14 & 0x7F, size >> 7 & 0x7F, size & 0x7F))
    return b"ID3\x03\x00\x00" + syncsafe + frame


def stems_zip_bytes(seed: str, seconds: float) -> bytes:
    """A ZIP archive with one WAV per stem, each with its own melody."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for stem in STEM_NAMES:
            data = melody_wav_bytes(f"{seed}/{stem}", seconds, volume=0.15)
            archive.writestr(f"{stem}.wav", data)
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
