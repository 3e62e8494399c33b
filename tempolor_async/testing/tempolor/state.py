"""The simulator's world: accounts, jobs, voices and MIDI files, and how they render as JSON.

Nothing here does I/O. Time enters as arguments (``now`` on the monotonic clock, ``wall_ms``
in epoch milliseconds) so that what a job looks like at a given moment is a pure function.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

GENERATING, FAILED, COMPLETED = 0, 10, 30
STATUS_NAMES = {GENERATING: "GENERATING", FAILED: "FAILED", COMPLETED: "COMPLETED"}

# The documented 24 keys, exactly as the service spells them.
TONALITIES = frozenset(
    f"{root}:{mode}"
    for root in ("A", "Ab", "B", "Bb", "C#", "C", "D", "E", "Eb", "F#", "F", "G")
    for mode in ("major", "minor")
)

# What the service calls its models internally; unknown names are accepted as given.
DEFAULT_SONG_MODEL = "v3.5"
DEFAULT_INSTRUMENTAL_MODEL = "i3.5 beta"
INTERNAL_MODEL_NAMES = {
    "v3": "v1-dit-obleck-stereo-zh-en-120-wf",
    "v3.5": "v1-dit-obleck-stereo-zh-en-270-wf",
    "i3": "v1-dit-obleck-stereo-inst-120-wf",
    "i3.5 beta": "v1-dit-obleck-stereo-inst-270-wf",
}

AUDIO_CONTENT_TYPES = {
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/wave": "wav",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
}
MIDI_CONTENT_TYPES = frozenset({"audio/midi", "audio/x-midi"})

# What tells the two takes of one generation apart in their titles, as the service's own
# titles differ between takes.
TAKE_NAMES = (
    "Sunrise",
    "Midnight",
    "Afterglow",
    "Echoes",
    "Horizon",
    "Embers",
    "Tides",
    "Reprise",
)

# The useapi.net user every id of this simulator belongs to ("user:<n>-tempolor:...").
API_USER = "12345"

_sequence = itertools.count(1)


def next_sequence() -> int:
    """A process-wide increasing number: orders records newest first and keys cursors."""
    return next(_sequence)


def new_item_id() -> str:
    return secrets.token_hex(8)[:15]


def wall_ms() -> int:
    return int(time.time() * 1000)


def iso_utc(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def elapsed_text(seconds: float) -> str:
    """Elapsed time as the scheduler shows it: MM:SS (minutes may exceed 59)."""
    whole = max(0, int(seconds))
    return f"{whole // 60:02d}:{whole % 60:02d}"


@dataclass
class FakeAccount:
    user_id: str
    max_jobs: int
    request_params: dict[str, Any]
    subscribed: bool = True
    updated_ms: int = field(default_factory=wall_ms)
    midi_uploaded: bool = False

    def render(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "updated": self.updated_ms,
            "updatedUTC": iso_utc(self.updated_ms),
            "maxJobs": self.max_jobs,
            "requestParams": self.request_params,
        }


@dataclass
class FakeJob:
    """One generated track. Its status and progress follow from the clock."""

    job_id: str
    item_id: str
    user_id: str
    kind: str  # "song" or "instrumental"
    prompt: str
    model: str
    started: float  # monotonic seconds
    duration: float
    will_fail: bool
    created_ms: int
    lyrics: str | None = None
    tonality: str | None = None
    bpm: int | None = None
    chords: str | None = None
    artist_voice_item_id: str | None = None
    cloned_voice_item_id: str | None = None
    midi_item_id: str | None = None
    reply_url: str | None = None
    reply_ref: str | None = None
    take: int = 0  # which job of its generation: 0 or 1
    tracked: bool = True  # still followed by the scheduler (DELETE scheduler/{id} clears it)
    forced_status: int | None = None  # set by FakeTempolor.complete()/fail()
    forced_ms: int | None = None
    forced_at: float | None = None  # monotonic, with forced_status
    sequence: int = field(default_factory=next_sequence)

    def fraction(self, now: float) -> float:
        if self.duration <= 0:
            return 1.0
        return (now - self.started) / self.duration

    def status(self, now: float) -> int:
        if self.forced_status is not None:
            return self.forced_status
        fraction = self.fraction(now)
        if self.will_fail and fraction >= 0.5:
            return FAILED
        return COMPLETED if fraction >= 1.0 else GENERATING

    def progress(self, now: float) -> int:
        """0, 10, ... 90 while generating, 100 once completed; a failure keeps its last value."""
        status = self.status(now)
        if status == COMPLETED:
            return 100
        fraction = self.fraction(now)
        if status == FAILED and self.forced_status is None:
            fraction = min(fraction, 0.49)
        return max(0, min(90, int(fraction * 10) * 10))

    def final_since(self, now: float) -> float | None:
        """Seconds since the job became final, or None while it runs."""
        if self.status(now) == GENERATING:
            return None
        if self.forced_at is not None:
            return now - self.forced_at
        end = self.duration * 0.5 if self.will_fail else self.duration
        return now - (self.started + end)

    def is_running(self, now: float) -> bool:
        """Counted by the scheduler and against maxJobs."""
        return self.tracked and self.status(now) == GENERATING

    def next_change(self, now: float) -> float | None:
        """Monotonic time of the next change of status or progress, or None once final."""
        if self.status(now) != GENERATING:
            return None
        step = self.duration / 10
        ticks = int((now - self.started) / step) + 1 if step > 0 else 1
        return self.started + ticks * step

    def title(self) -> str:
        """Words of the prompt and a name of its own: the takes of a generation differ."""
        words = [word.strip(",.;:!?") for word in re.split(r"[\s\[\]]+", self.prompt)]
        base = " ".join([word.capitalize() for word in words if word][:4]) or "Untitled"
        first = zlib.crc32(self.prompt.encode("utf-8", "surrogatepass"))
        name = TAKE_NAMES[(first + self.take) % len(TAKE_NAMES)]
        return f"{base} ({name})"

    def updated_ms(self, now: float) -> int:
        if self.forced_ms is not None:
            return self.forced_ms
        end = self.duration * 0.5 if self.will_fail else self.duration  # when it became final
        seconds = max(0.0, min(now - self.started, end))
        return self.created_ms + int(seconds * 1000)

    def render(self, now: float, media_base: str, audio_seconds: float) -> dict[str, Any]:
        """The job's GET record: the 58 documented fields, as the service spells them."""
        status = self.status(now)
        completed = status == COMPLETED
        seed = int(self.item_id, 16) % 4_294_967_296
        bpm = self.bpm if self.bpm is not None else 70 + seed % 70
        tonality = self.tonality or sorted(TONALITIES)[seed % len(TONALITIES)]
        record: dict[str, Any] = {
            "bizType": "ai_material_music",
            "childType": "lyric_to_material" if self.kind == "song" else "text_to_material",
            "matChildType": "lyric_to_material" if self.kind == "song" else "text_to_material",
            "sourceType": "sm_user_gen",
            "itemId": self.item_id,
            "job_id": self.job_id,
            "genItemId": self.item_id,
            "userId": self.user_id,
            "titleEn": self.title() if completed else "",
            "cover": f"{media_base}/covers/{self.item_id}.png" if completed else "",
            "mp3OssId": f"ai_material/ai_material/mp3/{self.item_id}.mp3" if completed else "",
            "wavOssId": f"ai_material/ai_material/wav/{self.item_id}.wav" if completed else "",
            "ossWatermarkMp3": "",
            "officialPlaylistSong": False,
            "status": status,
            "status_name": STATUS_NAMES[status],
            "status_final": status != GENERATING,
            "progress": self.progress(now),
            "downloadTotal": 0,
            "likeTotal": 0,
            "collectTotal": 0,
            "musicMaterial": {
                "style": self.kind.capitalize(),
                "chord": self.chords or "",
                "mood": "",
                "inst": "",
                "instInfo": "",
                "scene": "",
                "otherInfo": self.prompt,
                "otherInfoCn": "",
                "key": tonality,
                "bpm": bpm,
                "dur": round(audio_seconds) if completed else 0,
                "seed": seed,
                "waveformUrl": f"{media_base}/waveform/{self.item_id}.json" if completed else "",
            },
            "readStatus": False,
            "downloadStatus": False,
            "createTime": self.created_ms,
            "updateTime": self.updated_ms(now),
            "materialQualityScore": 0,
            "ltmMaterialExtendDto": {
                "lyricsPrompt": self.lyrics or "",
                "description": self.prompt,
                "ltmVocalModel": self.cloned_voice_item_id is not None,
                "ltmMidiModel": self.midi_item_id is not None,
                "genItemId": self.item_id,
                "prompt": self.prompt,
                "genMode": 0 if self.kind == "song" else 1,
                "model": INTERNAL_MODEL_NAMES.get(self.model, self.model),
                "modelShowName": self.model,
            },
            "editType": "gen",
            "operatorType": "gen",
            "rootItemId": self.item_id,
            "parentItemId": self.item_id,
            "canExtend": completed,
            "canEditLyrics": completed and self.kind == "song",
            "canFixVocals": completed and self.kind == "song",
            "canReplaced": False,
        }
        return record

    def render_running(self, now_ms: int, *, numeric_started: bool) -> dict[str, Any]:
        """The job as the scheduler lists it (ISO `started`) or as a 429 body does (ms)."""
        entry: dict[str, Any] = {"job_id": self.job_id}
        if numeric_started:
            entry = {"user_id": self.user_id, **entry, "started": self.created_ms}
        else:
            entry["started"] = iso_utc(self.created_ms)
            entry["elapsed"] = elapsed_text((now_ms - self.created_ms) / 1000)
        if self.reply_url is not None:
            entry["replyUrl"] = self.reply_url
        if self.reply_ref is not None:
            entry["replyRef"] = self.reply_ref
        return entry


@dataclass
class FakeClonedVoice:
    cloned_voice_item_id: str
    item_id: str
    user_id: str
    name: str
    audio: bytes
    extension: str
    ready_at: float  # monotonic
    created_ms: int = field(default_factory=wall_ms)
    sequence: int = field(default_factory=next_sequence)

    def render(self, now: float, media_base: str) -> dict[str, Any]:
        return {
            "isAddRel": False,
            "relSource": "",
            "ucid": self.user_id,
            "bizType": "user",
            "operatorType": "gen",
            "itemId": self.item_id,
            "rootItemId": self.item_id,
            "parentItemId": self.item_id,
            "name": self.name,
            "resourceUrl": f"voice_cloned/audio/{self.item_id}.{self.extension}",
            "coverUrl": "",
            "readStatus": 0,
            "status": COMPLETED if now >= self.ready_at else GENERATING,
            "vocalUrl": f"{media_base}/voices/{self.item_id}.{self.extension}",
            "createTime": self.created_ms,
            "updateTime": self.created_ms,
            "labels": [],
            "clonedVoiceItemId": self.cloned_voice_item_id,
        }


@dataclass
class FakeMidi:
    midi_item_id: str
    item_id: str
    user_id: str
    name: str
    data: bytes
    sequence: int = field(default_factory=next_sequence)

    def render(self, media_base: str) -> dict[str, Any]:
        return {
            "opType": "upload",
            "ucid": self.user_id,
            "midiItemId": self.midi_item_id,
            "name": self.name,
            "midiUrl": f"{media_base}/midi/file/{self.item_id}.mid",
        }


_ARTISTS = (
    ("Deep Male Voice", ["male", "deep", "dramatic"]),
    ("Soprano Female Voice", ["female", "soprano", "clear"]),
    ("Warm Baritone", ["male", "baritone", "warm"]),
    ("Airy Pop Female", ["female", "pop", "airy"]),
    ("Gritty Rock Male", ["male", "rock", "gritty"]),
    ("Soulful Alto", ["female", "alto", "soul"]),
    ("Bright Tenor", ["male", "tenor", "bright"]),
    ("Smoky Jazz Female", ["female", "jazz", "smoky"]),
    ("Country Storyteller", ["male", "country", "narrative"]),
    ("Folk Whisper", ["female", "folk", "soft"]),
    ("R&B Falsetto", ["male", "rnb", "falsetto"]),
    ("Power Ballad Female", ["female", "ballad", "powerful"]),
    ("Rap Flow Male", ["male", "rap", "rhythmic"]),
    ("Indie Dreamer", ["female", "indie", "dreamy"]),
    ("Gospel Choir Lead", ["female", "gospel", "uplifting"]),
    ("Metal Screamer", ["male", "metal", "aggressive"]),
    ("Lo-fi Murmur", ["neutral", "lofi", "calm"]),
    ("Anime Idol", ["female", "jpop", "cute"]),
    ("Mandopop Crooner", ["male", "cpop", "smooth"]),
    ("Latin Fire", ["female", "latin", "energetic"]),
    ("Reggae Sunshine", ["male", "reggae", "laidback"]),
    ("Electro Vocoder", ["neutral", "electronic", "robotic"]),
    ("Opera Grande", ["female", "opera", "classical"]),
    ("Blues Veteran", ["male", "blues", "raspy"]),
)


def artist_catalogue(media_base: str) -> list[dict[str, Any]]:
    """The fixed catalogue of artist voices, most weighted first."""
    records = []
    for index, (name, labels) in enumerate(_ARTISTS):
        item_id = f"voice_{10001 + index}"
        records.append(
            {
                "ucid": "9999999",
                "bizType": "ai_voice_cloned",
                "itemId": item_id,
                "name": name,
                "resourceUrl": f"{media_base}/artist-voices/{item_id}.wav",
                "coverUrl": f"{media_base}/covers/{item_id}.png",
                "vocalUrl": f"{media_base}/artist-voices/{item_id}.wav",
                "weight": 100 - index,
                "isAddRel": False,
                "relSource": "",
                "labels": labels,
            }
        )
    return records


ARTIST_VOICE_IDS = frozenset(f"voice_{10001 + index}" for index in range(len(_ARTISTS)))
