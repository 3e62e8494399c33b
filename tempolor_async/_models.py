"""Typed records of the TemPolor API and the constants its inputs take.

Every model is a frozen attrs class whose attributes are the snake_case of the JSON keys,
every one optional (None when absent), as the documentation says. Each keeps the JSON object
it was decoded from as ``.raw``, so keys the service adds later are still reachable. The one
converter that builds them lives in ``_convert.py``. The records are not slotted: the
converter fills an instance's ``__dict__`` in one step, several times faster than ``__init__``
of a frozen class, which sets each of a job's 40 attributes one by one.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum, IntEnum
from typing import Any

import attrs


def _field(json: str | None = None, *, repr: bool = True) -> Any:
    """An optional attribute; ``json`` names its key where it is not the camelCase of it."""
    metadata = {"json": json} if json is not None else {}
    return attrs.field(default=None, repr=repr, metadata=metadata)


def _raw() -> Any:
    return attrs.field(factory=dict, repr=False, eq=False, kw_only=True, metadata={"raw": True})


# ------------------------------------------------------------------ enums


class JobStatus(IntEnum):
    """The documented job states. Unknown numbers stay plain ints on ``MusicJob.status``."""

    GENERATING = 0
    FAILED = 10
    COMPLETED = 30


class Tonality(str, Enum):
    """The 24 documented keys of ``create_instrumental(tonality=...)``."""

    A_MAJOR = "A:major"
    A_MINOR = "A:minor"
    A_FLAT_MAJOR = "Ab:major"
    A_FLAT_MINOR = "Ab:minor"
    B_MAJOR = "B:major"
    B_MINOR = "B:minor"
    B_FLAT_MAJOR = "Bb:major"
    B_FLAT_MINOR = "Bb:minor"
    C_SHARP_MAJOR = "C#:major"
    C_SHARP_MINOR = "C#:minor"
    C_MAJOR = "C:major"
    C_MINOR = "C:minor"
    D_MAJOR = "D:major"
    D_MINOR = "D:minor"
    E_MAJOR = "E:major"
    E_MINOR = "E:minor"
    E_FLAT_MAJOR = "Eb:major"
    E_FLAT_MINOR = "Eb:minor"
    F_SHARP_MAJOR = "F#:major"
    F_SHARP_MINOR = "F#:minor"
    F_MAJOR = "F:major"
    F_MINOR = "F:minor"
    G_MAJOR = "G:major"
    G_MINOR = "G:minor"


class SongModel(str, Enum):
    """Documented song models; the service adds more, and any string is sent as given."""

    V3 = "v3"
    V3_5 = "v3.5"


class InstrumentalModel(str, Enum):
    """Documented instrumental models; any other string is sent as given."""

    I3 = "i3"
    I3_5_BETA = "i3.5 beta"


class FileFormat(str, Enum):
    """What ``download_url``/``download`` fetch: mp3, wav, or a ZIP of stems."""

    MP3 = "mp3"
    WAV = "wav"
    STEMS = "stems"

    @property
    def extension(self) -> str:
        return "zip" if self is FileFormat.STEMS else self.value


class MusicType(str, Enum):
    """The ``type`` filter of ``music.list``."""

    SONG = "song"
    INSTRUMENTAL = "instrumental"


# ---------------------------------------------------------------- accounts


@attrs.frozen(slots=False)
class Account:
    """A configured TemPolor account. ``request_params`` holds credentials: it is kept out
    of ``repr``/``str`` (and so out of logs and tracebacks)."""

    user_id: str | None = _field("user_id")
    updated: datetime | None = _field()
    updated_utc: datetime | None = _field("updatedUTC")
    max_jobs: int | None = _field()
    request_params: dict[str, Any] | None = _field(repr=False)
    raw: dict[str, Any] = _raw()


# ------------------------------------------------------------------- music


@attrs.frozen(slots=False)
class Submission:
    """What a generation request returns: two jobs to follow."""

    result: bool | None = _field()
    item_ids: list[str] | None = _field()
    jobs: list[str] | None = _field()
    remain_seconds: float | None = _field()
    max_gen_count_at_once: int | None = _field()
    unlimited: bool | None = _field()
    remain_num: int | None = _field()
    total_num: int | None = _field()
    raw: dict[str, Any] = _raw()


@attrs.frozen(slots=False)
class MusicMaterial:
    style: str | None = _field()
    chord: str | None = _field()
    mood: str | None = _field()
    inst: str | None = _field()
    inst_info: str | None = _field()
    scene: str | None = _field()
    other_info: str | None = _field()
    other_info_cn: str | None = _field()
    key: str | None = _field()
    bpm: float | None = _field()
    dur: float | None = _field()
    seed: int | None = _field()
    src: str | None = _field()
    oss_src: str | None = _field()
    waveform_oss_id: str | None = _field()
    waveform_url: str | None = _field()
    batch_id: str | None = _field()
    raw: dict[str, Any] = _raw()


@attrs.frozen(slots=False)
class LtmMaterialExtend:
    lyrics_prompt: str | None = _field()
    description: str | None = _field()
    ltm_vocal_model: bool | None = _field()
    ltm_midi_model: bool | None = _field()
    lrc_timestamp: str | None = _field()
    gen_item_id: str | None = _field()
    prompt: str | None = _field()
    gen_mode: int | None = _field()
    model: str | None = _field()
    model_show_name: str | None = _field()
    dynamic_model: str | None = _field()
    ori_cache_dir: str | None = _field()
    raw: dict[str, Any] = _raw()


@attrs.frozen(slots=False)
class MusicJob:
    """A generation job's record (GET music/{job_id})."""

    job_id: str | None = _field("job_id")
    status: JobStatus | int | None = _field()
    status_name: str | None = _field("status_name")
    status_final: bool | None = _field("status_final")
    progress: float | None = _field()
    item_id: str | None = _field()
    gen_item_id: str | None = _field(repr=False)
    user_id: str | None = _field("userId")
    title_en: str | None = _field()
    biz_type: str | None = _field(repr=False)
    child_type: str | None = _field(repr=False)
    mat_child_type: str | None = _field(repr=False)
    source_type: str | None = _field(repr=False)
    cover: str | None = _field(repr=False)
    mp3_oss_id: str | None = _field(repr=False)
    wav_oss_id: str | None = _field(repr=False)
    oss_watermark_mp3: str | None = _field(repr=False)
    official_playlist_song: bool | None = _field(repr=False)
    download_total: int | None = _field(repr=False)
    like_total: int | None = _field(repr=False)
    collect_total: int | None = _field(repr=False)
    music_material: MusicMaterial | None = _field(repr=False)
    read_status: bool | None = _field(repr=False)
    download_status: bool | None = _field(repr=False)
    create_time: datetime | None = _field(repr=False)
    update_time: datetime | None = _field(repr=False)
    material_quality_score: float | None = _field(repr=False)
    ltm_material_extend_dto: LtmMaterialExtend | None = _field(repr=False)
    edit_type: str | None = _field(repr=False)
    operator_type: str | None = _field(repr=False)
    root_item_id: str | None = _field(repr=False)
    parent_item_id: str | None = _field(repr=False)
    can_extend: bool | None = _field(repr=False)
    can_edit_lyrics: bool | None = _field(repr=False)
    can_fix_vocals: bool | None = _field(repr=False)
    can_replaced: bool | None = _field(repr=False)
    error: str | None = _field()
    code: int | None = _field(repr=False)
    raw: dict[str, Any] = _raw()

    @property
    def is_final(self) -> bool:
        """True once the job will not change: by status, else by ``status_final``."""
        if isinstance(self.status, JobStatus):
            return self.status is not JobStatus.GENERATING
        return bool(self.status_final)

    @property
    def is_completed(self) -> bool:
        return self.status == JobStatus.COMPLETED

    @property
    def is_failed(self) -> bool:
        return self.status == JobStatus.FAILED


@attrs.frozen(slots=False)
class DownloadLink:
    """A temporary URL to the file; it expires after ``remain_seconds``."""

    url: str | None = _field()
    remain_seconds: float | None = _field()
    raw: dict[str, Any] = _raw()


@attrs.frozen(slots=False)
class StemsSplit:
    """The result of the stems splitter: ``stems_zip_url`` is set once it is done."""

    state: int | None = _field()
    title: str | None = _field()
    stems_zip_url: str | None = _field()
    audio_type: str | None = _field()
    detail: list[str] | None = _field()
    raw: dict[str, Any] = _raw()


# ------------------------------------------------------------------ voices


@attrs.frozen(slots=False)
class ArtistVoice:
    item_id: str | None = _field()
    name: str | None = _field()
    labels: list[str] | None = _field()
    ucid: str | None = _field(repr=False)
    biz_type: str | None = _field(repr=False)
    resource_url: str | None = _field(repr=False)
    cover_url: str | None = _field(repr=False)
    vocal_url: str | None = _field(repr=False)
    weight: float | None = _field(repr=False)
    is_add_rel: bool | None = _field(repr=False)
    rel_source: str | None = _field(repr=False)
    raw: dict[str, Any] = _raw()


@attrs.frozen(slots=False)
class ClonedVoice:
    cloned_voice_item_id: str | None = _field()
    name: str | None = _field()
    status: int | None = _field()
    item_id: str | None = _field(repr=False)
    is_add_rel: bool | None = _field(repr=False)
    rel_source: str | None = _field(repr=False)
    ucid: str | None = _field(repr=False)
    biz_type: str | None = _field(repr=False)
    operator_type: str | None = _field(repr=False)
    root_item_id: str | None = _field(repr=False)
    parent_item_id: str | None = _field(repr=False)
    resource_url: str | None = _field(repr=False)
    cover_url: str | None = _field(repr=False)
    read_status: int | None = _field(repr=False)
    vocal_url: str | None = _field(repr=False)
    create_time: datetime | None = _field(repr=False)
    update_time: datetime | None = _field(repr=False)
    labels: list[str] | None = _field(repr=False)
    raw: dict[str, Any] = _raw()


@attrs.frozen(slots=False)
class VoiceClone:
    """The answer to a voice upload. ``ready`` is False for the documented 202: cloning
    goes on, and the voice shows in ``voices.list_cloned()`` once it is done."""

    result: bool | None = _field()
    item_id: str | None = _field()
    cloned_voice_item_id: str | None = _field()
    message: str | None = _field()
    ready: bool = attrs.field(default=True, metadata={"json": None})
    raw: dict[str, Any] = _raw()


# -------------------------------------------------------------------- MIDI


@attrs.frozen(slots=False)
class MidiFile:
    midi_item_id: str | None = _field()
    name: str | None = _field()
    midi_url: str | None = _field()
    op_type: str | None = _field(repr=False)
    ucid: str | None = _field(repr=False)
    midi_type: str | None = _field(repr=False)
    midi_value: str | None = _field(repr=False)
    raw: dict[str, Any] = _raw()


@attrs.frozen(slots=False)
class MidiUpload:
    """The answer to a MIDI upload; ``midi`` holds the JSON ``midiRenderVO``."""

    is_first: bool | None = _field()
    midi: MidiFile | None = _field("midiRenderVO")
    raw: dict[str, Any] = _raw()


# --------------------------------------------------------------- scheduler


@attrs.frozen(slots=False)
class RunningJob:
    """A job the scheduler is tracking (GET scheduler/, or a 429's ``runningJobs``)."""

    job_id: str | None = _field("job_id")
    user_id: str | None = _field("user_id")
    started: datetime | None = _field()
    elapsed: str | None = _field()
    reply_url: str | None = _field()
    reply_ref: str | None = _field()
    raw: dict[str, Any] = _raw()


@attrs.frozen(slots=False)
class AccountCapacity:
    user_id: str | None = _field("user_id")
    max_jobs: int | None = _field()
    executing: int | None = _field()
    available: int | None = _field()
    raw: dict[str, Any] = _raw()


@attrs.frozen(slots=False)
class Capacity:
    """GET scheduler/available: running jobs, and free slots per account."""

    executing: list[RunningJob] | None = _field()
    available: list[AccountCapacity] | None = _field()
    raw: dict[str, Any] = _raw()
