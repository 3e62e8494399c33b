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
# holds 1152 samples (24 ms). When the 17 bytes of side information that follow the
# header are all zero (part2_3_length = 0), the frame decodes as silence.
MP3_FRAME_HEADER = bytes((0xFF, 0xFB, 0x94, 0xC4))
MP3_FRAME_BYTES = 384
MP3_FRAME_SECONDS = 1152 / 48_000

STEM_NAMES = ("vocals", "drums", "bass", "other")

# A major pentatonic scale over two octaves from A3, in semitones: every melody drawn from it
# sounds like a tune rather than noise.
_PENTATONIC = (0, 2, 4, 7, 9, 12, 14, 16, 19, 21, 24)
_NOTE_SECONDS = 0.25
_MIN_NOTES = 8  # a short track plays shorter notes: two tracks still differ in their tune
_MELODY_NOTES = 16


def _tone_frequency(seed: str) -> float:
    """A note between A3 and A5 that depends on the item, so files differ per job."""
    semitone = zlib.crc32(seed.encode()) % 25
    return 220.0 * 2 ** (semitone / 12)


def _note_seconds(seconds: float) -> float:
    return min(_NOTE_SECONDS, seconds / _MIN_NOTES)


def _melody_bytes(seed: str) -> bytes:
    """Sixteen bytes drawn from ``seed``: one per note of its melody."""
    return hashlib.sha256(seed.encode("utf-8", "surrogatepass")).digest()[:_MELODY_NOTES]


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
    drawn from ``seed``, repeated for ``seconds``. Notes last a quarter second, less in a
    track shorter than two seconds so that it still plays eight: two seeds give two tunes.

    Each note is whole periods of one sine cycle, so a long file costs list copies rather
    than a sine per sample."""
    frames = max(1, int(seconds * WAV_SAMPLE_RATE))
    notes = [_PENTATONIC[byte % len(_PENTATONIC)] for byte in _melody_bytes(seed)]
    note_frames = max(2, int(_note_seconds(seconds) * WAV_SAMPLE_RATE))
    # 5 ms each side of a note: no clicks between notes.
    fade = max(1, min(WAV_SAMPLE_RATE // 200, note_frames // 2))
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
    """An ID3v2.3 tag with the title, then MPEG audio frames: digital silence, or with a
    ``seed`` a melody of its own (see :func:`_mp3_tone_frame`) whose frames also carry the seed
    in their ancillary data, so two tracks differ in their audio, not only in the tag."""
    count = max(1, math.ceil(seconds / MP3_FRAME_SECONDS))
    if not seed:
        frame = MP3_FRAME_HEADER + bytes(MP3_FRAME_BYTES - len(MP3_FRAME_HEADER))
        return _id3_tag(title) + frame * count
    filler = seed.encode("ascii", "replace") + b" "
    lines = [_MP3_NOTE_LINES[byte % len(_MP3_NOTE_LINES)] for byte in _melody_bytes(seed)]
    per_note = max(1, round(_note_seconds(seconds) / MP3_FRAME_SECONDS))
    frames = {line: _mp3_tone_frame(line, filler) for line in set(lines)}
    audio = b"".join(frames[lines[index // per_note % len(lines)]] for index in range(count))
    return _id3_tag(title) + audio


# The pentatonic notes as MDCT lines of a long block: at 48 kHz line k sounds near
# k * 41.7 Hz (24,000 Hz over 576 lines), so A3 is line 5 and A5 line 21.
_MP3_NOTE_LINES = tuple(
    round(220.0 * 2 ** (semitone / 12) / (24_000 / 576)) for semitone in _PENTATONIC
)
_MP3_GLOBAL_GAIN = 200  # about -15 dBFS for one line of value 1


def _mp3_tone_frame(line: int, filler: bytes) -> bytes:
    """One mono Layer III frame whose two granules hold a single spectral line: a tone.

    Coded in the simplest way the format allows: no scale factors, no big-values region,
    only the count1 region with its fixed four-bit table B (codeword ``15 - vwxy``, then a
    sign bit per non-zero value), up to the quadruple holding the line. The rest of the frame
    is ancillary data (the ASCII ``filler``: no 0xFF byte a decoder could take for a sync)."""
    quadruples, position = divmod(line, 4)
    main_bits = (quadruples + 1) * 4 + 1  # part2_3_length of each granule
    side = _Bits()
    side.put(0, 9 + 5 + 4)  # main_data_begin, private bits, scfsi
    for _ in range(2):
        side.put(main_bits, 12)  # part2_3_length
        side.put(0, 9)  # big_values
        side.put(_MP3_GLOBAL_GAIN, 8)
        side.put(0, 4 + 1 + 15 + 4 + 3 + 1 + 1)  # scalefac_compress ... scalefac_scale
        side.put(1, 1)  # count1table_select: table B
    main = _Bits()
    for _ in range(2):
        for quadruple in range(quadruples + 1):
            value = 1 << (3 - position) if quadruple == quadruples else 0
            main.put(15 - value, 4)
        main.put(0, 1)  # the line's sign: positive
    payload = side.to_bytes(17) + main.to_bytes((main.count + 7) // 8)
    room = MP3_FRAME_BYTES - len(MP3_FRAME_HEADER) - len(payload)
    return MP3_FRAME_HEADER + payload + (filler * (room // len(filler) + 1))[:room]


class _Bits:
    """Bits written most significant first."""

    def __init__(self) -> None:
        self.value = 0
        self.count = 0

    def put(self, value: int, width: int) -> None:
        self.value = self.value << width | value
        self.count += width

    def to_bytes(self, size: int) -> bytes:
        return (self.value << (size * 8 - self.count)).to_bytes(size, "big")


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
