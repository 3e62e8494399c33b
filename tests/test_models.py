"""The models, their one converter, the input enums and the public names.

Every documented example response (copied from the endpoint pages in the service's
documentation) must decode into its model with snake_case attributes, nested models and
aware UTC datetimes; wrong JSON types must raise, never be coerced."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

import tempolor_async
from tempolor_async import (
    Account,
    AccountCapacity,
    ArtistVoice,
    Capacity,
    ClonedVoice,
    DownloadLink,
    FileFormat,
    InstrumentalModel,
    JobStatus,
    LtmMaterialExtend,
    MidiFile,
    MidiUpload,
    MusicJob,
    MusicMaterial,
    MusicType,
    Page,
    ResponseDecodeError,
    RunningJob,
    SongModel,
    StemsSplit,
    Submission,
    Tonality,
    VoiceClone,
    _convert,
    _protocol,
)
from tempolor_async.resources import _service as tempolor_service

UTC = timezone.utc

# ----------------------------------------------------- the documented example responses

ACCOUNT = """{ "user_id": "user_id1", "updated": 1715791234567, "updatedUTC": "2025-05-15T14:30:34.567Z", "maxJobs": 10, "requestParams": {} }"""  # noqa: E501
ACCOUNTS = """{ "user_id1": { "user_id": "user_id1", "updated": 1715791234567, "updatedUTC": "2025-05-15T14:30:34.567Z", "maxJobs": 10, "requestParams": {} }, "user_id2": { "user_id": "user_id2", "updated": 1715791234567, "updatedUTC": "2025-05-15T14:30:34.567Z", "maxJobs": 20, "requestParams": {} } }"""  # noqa: E501
# The page shows a comma after the last job id (invalid JSON); it is left out here.
SUBMISSION = """{ "result": true, "itemIds": [ "abcdef123456789", "fedcba987654321" ], "jobs": [ "user:12345-tempolor:user_id-job:abcdef123456789", "user:12345-tempolor:user_id-job:fedcba987654321" ], "remainSeconds": 21533, "maxGenCountAtOnce": 10, "unlimited": false, "remainNum": 1534, "totalNum": 3000 }"""  # noqa: E501
MUSIC_JOB = """{ "bizType": "ai_material_music", "childType": "lyric_to_material", "matChildType": "lyric_to_material", "sourceType": "sm_user_gen", "itemId": "abcdef123456789", "job_id": "user:12345-tempolor:user_id-job:abcdef123456789", "genItemId": "abcdef123456789", "userId": "user_id", "titleEn": "Epic Orchestral", "cover": "https://example.com/cover.png", "mp3OssId": "ai_material/ai_material/mp3/abcdef123456789.mp3", "wavOssId": "ai_material/ai_material/wav/abcdef123456789.wav", "ossWatermarkMp3": "", "officialPlaylistSong": false, "status": 30, "status_name": "COMPLETED", "status_final": true, "progress": 100, "downloadTotal": 0, "likeTotal": 0, "collectTotal": 0, "musicMaterial": { "style": "Orchestral", "chord": "", "mood": "", "inst": "", "instInfo": "", "scene": "", "otherInfo": "A cinematic orchestral piece with dramatic string sections", "otherInfoCn": "", "key": "F:minor", "bpm": 130, "dur": 180, "seed": 1234567890, "waveformUrl": "https://example.com/waveform.json" }, "readStatus": false, "downloadStatus": false, "createTime": 1716565425000, "updateTime": 1716565700000, "materialQualityScore": 0, "ltmMaterialExtendDto": { "lyricsPrompt": "Sample lyrics here", "description": "A cinematic orchestral piece with dramatic string sections", "ltmVocalModel": false, "ltmMidiModel": false, "genItemId": "abcdef123456789", "prompt": "A cinematic orchestral piece with dramatic string sections", "genMode": 0, "model": "v1-dit-obleck-stereo-zh-en-270-wf", "modelShowName": "v3.5" }, "editType": "gen", "operatorType": "gen", "rootItemId": "abcdef123456789", "parentItemId": "abcdef123456789", "canExtend": true, "canEditLyrics": true, "canFixVocals": true, "canReplaced": false }"""  # noqa: E501
MUSIC_PAGE = (
    '{ "records": [ ' + MUSIC_JOB + ' ], "hasNext": true, "cursor": "next_page_cursor_token" }'
)
DOWNLOAD_LINK = """{ "url": "https://ugc-cdn.api.instabeat.ai/ai_material/ai_material/mp3/abcdef123456789.mp3?auth_key=1747536678-0-0-9c67b3d5f8a2c41e0d7f6eab3f82fb45", "remainSeconds": 0 }"""  # noqa: E501
STEMS_SPLIT = """{ "state": 2, "title": "audio_file.mp3", "stemsZipUrl": "https://example.com/path/to/stems.zip" }"""  # noqa: E501
ARTIST_VOICES = """{ "records": [ { "ucid": "9999999", "bizType": "ai_voice_cloned", "itemId": "voice_12345", "name": "Deep Male Voice", "resourceUrl": "https://example.com/vocals/deep-male-sample.mp3", "coverUrl": "https://example.com/voice-covers/deep-male.jpg", "vocalUrl": "https://example.com/vocals/deep-male-sample.mp3", "weight": 100, "isAddRel": false, "relSource": "", "labels": ["male", "deep", "dramatic"] }, { "ucid": "9999999", "bizType": "ai_voice_cloned", "itemId": "voice_67890", "name": "Soprano Female Voice", "resourceUrl": "https://example.com/vocals/soprano-female-sample.mp3", "coverUrl": "https://example.com/voice-covers/soprano-female.jpg", "vocalUrl": "https://example.com/vocals/soprano-female-sample.mp3", "weight": 90, "isAddRel": false, "relSource": "", "labels": ["female", "soprano", "clear"] } ], "hasNext": false, "cursor": "", "sysTime": 1716565425000 }"""  # noqa: E501
CLONED_VOICES = """{ "records": [ { "isAddRel": false, "relSource": "", "ucid": "user_id", "bizType": "user", "operatorType": "gen", "itemId": "abcdef123456789", "rootItemId": "abcdef123456789", "parentItemId": "abcdef123456789", "name": "My Custom Voice", "resourceUrl": "voice_cloned/audio/abcdef123456789.mp3", "coverUrl": "", "readStatus": 0, "status": 30, "vocalUrl": "https://example.com/cloned-voice/abcdef123456789.mp3", "createTime": 1716565425000, "updateTime": 1716565700000, "labels": [], "clonedVoiceItemId": "user:12345-tempolor:user_id-voice:abcdef123456789" }, { "isAddRel": false, "relSource": "", "ucid": "user_id", "bizType": "user", "operatorType": "gen", "itemId": "fedcba987654321", "rootItemId": "fedcba987654321", "parentItemId": "fedcba987654321", "name": "Second Voice Sample", "resourceUrl": "voice_cloned/audio/fedcba987654321.mp3", "coverUrl": "", "readStatus": 0, "status": 30, "vocalUrl": "https://example.com/cloned-voice/fedcba987654321.mp3", "createTime": 1716475425000, "updateTime": 1716475700000, "labels": [], "clonedVoiceItemId": "user:12345-tempolor:user_id-voice:fedcba987654321" } ], "hasNext": false, "cursor": "" }"""  # noqa: E501
VOICE_CLONE = """{ "result": true, "itemId": "abcdef123456789", "clonedVoiceItemId": "user:12345-tempolor:user_id-voice:abcdef123456789" }"""  # noqa: E501
VOICE_CLONE_PENDING = """{ "itemId": "abcdef123456789", "clonedVoiceItemId": "user:12345-tempolor:user_id-voice:abcdef123456789", "message": "Voice cloning is still processing after 120 seconds. Please check back later." }"""  # noqa: E501
MIDI_FILES = """{ "records": [ { "opType": "upload", "ucid": "user_id", "midiItemId": "user:12345-tempolor:user_id-midi:abcdef123456789", "name": "Piano Composition", "midiUrl": "https://ugc-cdn.api.instabeat.ai/midi/file/abcdef123456789.mid" }, { "opType": "upload", "ucid": "user_id", "midiItemId": "user:12345-tempolor:user_id-midi:fedcba987654321", "name": "Guitar Progression", "midiUrl": "https://ugc-cdn.api.instabeat.ai/midi/file/fedcba987654321.mid" } ], "hasNext": false, "cursor": "" }"""  # noqa: E501
MIDI_UPLOAD = """{ "isFirst": false, "midiRenderVO": { "opType": "upload", "ucid": "100198329", "midiItemId": "user:12345-tempolor:user_id-midi:abcdef123456789", "name": "my background music", "midiUrl": "https://..." } }"""  # noqa: E501
SCHEDULER = """[ { "job_id": "user:12345-tempolor:user_id-job:abcdef123456789", "started": "2025-05-15T12:34:56.789Z", "elapsed": "01:23", "replyUrl": "https://example.com/callback", "replyRef": "my-reference" } ]"""  # noqa: E501
CAPACITY = """{ "executing": [ { "job_id": "user:12345-tempolor:12345-job:abcdef123456789", "started": "2025-05-15T12:34:56.789Z", "elapsed": "01:23", "replyUrl": "https://example.com/callback", "replyRef": "my-reference" } ], "available": [ { "user_id": "12345", "maxJobs": 10, "executing": 1, "available": 9 }, { "user_id": "67890", "maxJobs": 5, "executing": 0, "available": 5 } ] }"""  # noqa: E501
# setup-tempolor.md: what a user pastes into POST accounts; the values are credentials.
REQUEST_PARAMS = json.loads(
    """{ "sv": "alpha/beta/release", "ver_code": 20000, "lang": "french", "la": "fr-FR", "di": "e23c9f7db8ced478b8574923817c2b6a", "pf": "100", "mi": "Windows", "biz": 378, "utdid": "e23c9f7db8ced478b8574923817c2b6a", "ts": 1849982225671, "service_ticket": "hUUCp7MeIAXpXKo9AOP5zPlJLqVZh81C2MWlZdTuqoGbNqzlgQNjBwtxdYnJPRA52Wn=", "ucid": "100349856", "user_id": "100349856", "member_level": 0, "is_visitor": 0, "vip_type": 20, "app_id": "material", "app": "web", "ve": "2.0.0", "entry": "web_main", "fr": "web", "ip": "88.222.199.44", "business_type": "material", "la_multi": "fr", "b_ts": "1849512371543", "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.39 (KHTML, like Gecko) Chrome/122.1.0.0 Safari/537.39 OPR/123.0.0.0", "web_terminal": "web_pc" }"""  # noqa: E501
)

EVERY_MODEL = [
    Account,
    Submission,
    MusicJob,
    MusicMaterial,
    LtmMaterialExtend,
    DownloadLink,
    StemsSplit,
    ArtistVoice,
    ClonedVoice,
    VoiceClone,
    MidiFile,
    MidiUpload,
    RunningJob,
    AccountCapacity,
    Capacity,
]


def ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def decode(text: str | bytes, cls: Any) -> Any:
    content = text.encode() if isinstance(text, str) else text
    return _protocol.decode(content, cls, "GET", "/example")


def decode_page(text: str, cls: Any) -> Page[Any]:
    return tempolor_service.decode_page(text.encode(), cls, "GET", "/example")


def resolve(obj: Any, path: str) -> Any:
    """``obj`` followed along ``a.b[0].c``."""
    for part in re.findall(r"\w+|\[\d+\]", path):
        obj = obj[int(part[1:-1])] if part.startswith("[") else getattr(obj, part)
    return obj


EXAMPLES = [
    pytest.param(ACCOUNT, Account, {
        "user_id": "user_id1",
        "updated": datetime(2024, 5, 15, 16, 40, 34, 567000, tzinfo=UTC),
        "updated_utc": datetime(2025, 5, 15, 14, 30, 34, 567000, tzinfo=UTC),
        "max_jobs": 10,
        "request_params": {},
    }, id="account"),
    pytest.param(SUBMISSION, Submission, {
        "result": True,
        "item_ids": ["abcdef123456789", "fedcba987654321"],
        "jobs": [
            "user:12345-tempolor:user_id-job:abcdef123456789",
            "user:12345-tempolor:user_id-job:fedcba987654321",
        ],
        "remain_seconds": 21533,
        "max_gen_count_at_once": 10,
        "unlimited": False,
        "remain_num": 1534,
        "total_num": 3000,
    }, id="submission"),
    pytest.param(MUSIC_JOB, MusicJob, {
        "biz_type": "ai_material_music",
        "child_type": "lyric_to_material",
        "mat_child_type": "lyric_to_material",
        "source_type": "sm_user_gen",
        "item_id": "abcdef123456789",
        "job_id": "user:12345-tempolor:user_id-job:abcdef123456789",
        "gen_item_id": "abcdef123456789",
        "user_id": "user_id",
        "title_en": "Epic Orchestral",
        "cover": "https://example.com/cover.png",
        "mp3_oss_id": "ai_material/ai_material/mp3/abcdef123456789.mp3",
        "wav_oss_id": "ai_material/ai_material/wav/abcdef123456789.wav",
        "oss_watermark_mp3": "",
        "official_playlist_song": False,
        "status": JobStatus.COMPLETED,
        "status_name": "COMPLETED",
        "status_final": True,
        "progress": 100,
        "download_total": 0,
        "like_total": 0,
        "collect_total": 0,
        "read_status": False,
        "download_status": False,
        "create_time": datetime(2024, 5, 24, 15, 43, 45, tzinfo=UTC),
        "update_time": ms(1716565700000),
        "material_quality_score": 0,
        "edit_type": "gen",
        "operator_type": "gen",
        "root_item_id": "abcdef123456789",
        "parent_item_id": "abcdef123456789",
        "can_extend": True,
        "can_edit_lyrics": True,
        "can_fix_vocals": True,
        "can_replaced": False,
        "error": None,
        "code": None,
        "music_material.style": "Orchestral",
        "music_material.chord": "",
        "music_material.inst_info": "",
        "music_material.other_info": "A cinematic orchestral piece with dramatic string sections",
        "music_material.other_info_cn": "",
        "music_material.key": "F:minor",
        "music_material.bpm": 130,
        "music_material.dur": 180,
        "music_material.seed": 1234567890,
        "music_material.waveform_url": "https://example.com/waveform.json",
        "ltm_material_extend_dto.lyrics_prompt": "Sample lyrics here",
        "ltm_material_extend_dto.ltm_vocal_model": False,
        "ltm_material_extend_dto.ltm_midi_model": False,
        "ltm_material_extend_dto.gen_item_id": "abcdef123456789",
        "ltm_material_extend_dto.gen_mode": 0,
        "ltm_material_extend_dto.model": "v1-dit-obleck-stereo-zh-en-270-wf",
        "ltm_material_extend_dto.model_show_name": "v3.5",
        "is_final": True,
        "is_completed": True,
        "is_failed": False,
    }, id="music-job"),
    pytest.param(DOWNLOAD_LINK, DownloadLink, {
        "url": "https://ugc-cdn.api.instabeat.ai/ai_material/ai_material/mp3/abcdef123456789.mp3"
               "?auth_key=1747536678-0-0-9c67b3d5f8a2c41e0d7f6eab3f82fb45",
        "remain_seconds": 0,
    }, id="download-link"),
    pytest.param(STEMS_SPLIT, StemsSplit, {
        "state": 2,
        "title": "audio_file.mp3",
        "stems_zip_url": "https://example.com/path/to/stems.zip",
        "audio_type": None,
        "detail": None,
    }, id="stems-split"),
    pytest.param(VOICE_CLONE, VoiceClone, {
        "result": True,
        "item_id": "abcdef123456789",
        "cloned_voice_item_id": "user:12345-tempolor:user_id-voice:abcdef123456789",
        "message": None,
    }, id="voice-clone"),
    pytest.param(VOICE_CLONE_PENDING, VoiceClone, {
        "result": None,
        "item_id": "abcdef123456789",
        "cloned_voice_item_id": "user:12345-tempolor:user_id-voice:abcdef123456789",
        "message": "Voice cloning is still processing after 120 seconds. Please check back later.",
    }, id="voice-clone-202"),
    pytest.param(MIDI_UPLOAD, MidiUpload, {
        "is_first": False,
        "midi.op_type": "upload",
        "midi.ucid": "100198329",
        "midi.midi_item_id": "user:12345-tempolor:user_id-midi:abcdef123456789",
        "midi.name": "my background music",
        "midi.midi_url": "https://...",
    }, id="midi-upload"),
    pytest.param(SCHEDULER, list[RunningJob], {
        "[0].job_id": "user:12345-tempolor:user_id-job:abcdef123456789",
        "[0].user_id": None,
        "[0].started": datetime(2025, 5, 15, 12, 34, 56, 789000, tzinfo=UTC),
        "[0].elapsed": "01:23",
        "[0].reply_url": "https://example.com/callback",
        "[0].reply_ref": "my-reference",
    }, id="scheduler"),
    pytest.param(CAPACITY, Capacity, {
        "executing[0].job_id": "user:12345-tempolor:12345-job:abcdef123456789",
        "executing[0].started": datetime(2025, 5, 15, 12, 34, 56, 789000, tzinfo=UTC),
        "executing[0].elapsed": "01:23",
        "executing[0].reply_url": "https://example.com/callback",
        "executing[0].reply_ref": "my-reference",
        "available[0].user_id": "12345",
        "available[0].max_jobs": 10,
        "available[0].executing": 1,
        "available[0].available": 9,
        "available[1].user_id": "67890",
        "available[1].max_jobs": 5,
        "available[1].executing": 0,
        "available[1].available": 5,
    }, id="capacity"),
]  # fmt: skip

PAGE_EXAMPLES = [
    pytest.param(MUSIC_PAGE, MusicJob, True, "next_page_cursor_token", {
        "[0].job_id": "user:12345-tempolor:user_id-job:abcdef123456789",
        "[0].music_material.key": "F:minor",
        "[0].ltm_material_extend_dto.model_show_name": "v3.5",
        "[0].status": JobStatus.COMPLETED,
    }, id="music"),
    pytest.param(ARTIST_VOICES, ArtistVoice, False, None, {
        "[0].ucid": "9999999",
        "[0].biz_type": "ai_voice_cloned",
        "[0].item_id": "voice_12345",
        "[0].name": "Deep Male Voice",
        "[0].resource_url": "https://example.com/vocals/deep-male-sample.mp3",
        "[0].cover_url": "https://example.com/voice-covers/deep-male.jpg",
        "[0].vocal_url": "https://example.com/vocals/deep-male-sample.mp3",
        "[0].weight": 100,
        "[0].is_add_rel": False,
        "[0].rel_source": "",
        "[0].labels": ["male", "deep", "dramatic"],
        "[1].item_id": "voice_67890",
        "[1].labels": ["female", "soprano", "clear"],
    }, id="artist-voices"),
    pytest.param(CLONED_VOICES, ClonedVoice, False, None, {
        "[0].cloned_voice_item_id": "user:12345-tempolor:user_id-voice:abcdef123456789",
        "[0].name": "My Custom Voice",
        "[0].status": 30,
        "[0].item_id": "abcdef123456789",
        "[0].is_add_rel": False,
        "[0].ucid": "user_id",
        "[0].biz_type": "user",
        "[0].operator_type": "gen",
        "[0].root_item_id": "abcdef123456789",
        "[0].resource_url": "voice_cloned/audio/abcdef123456789.mp3",
        "[0].cover_url": "",
        "[0].read_status": 0,
        "[0].vocal_url": "https://example.com/cloned-voice/abcdef123456789.mp3",
        "[0].create_time": ms(1716565425000),
        "[0].update_time": ms(1716565700000),
        "[0].labels": [],
        "[1].create_time": ms(1716475425000),
    }, id="cloned-voices"),
    pytest.param(MIDI_FILES, MidiFile, False, None, {
        "[0].op_type": "upload",
        "[0].ucid": "user_id",
        "[0].midi_item_id": "user:12345-tempolor:user_id-midi:abcdef123456789",
        "[0].name": "Piano Composition",
        "[0].midi_url": "https://ugc-cdn.api.instabeat.ai/midi/file/abcdef123456789.mid",
        "[1].name": "Guitar Progression",
    }, id="midi-files"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "cls", "expected"), EXAMPLES)
def test_documented_example_decodes(text, cls, expected):
    decoded = decode(text, cls)
    for path, value in expected.items():
        assert resolve(decoded, path) == value, path
        if isinstance(value, datetime):
            assert resolve(decoded, path).utcoffset() == timedelta(0), path


@pytest.mark.parametrize(("text", "item", "has_next", "cursor", "expected"), PAGE_EXAMPLES)
def test_documented_list_example_decodes(text, item, has_next, cursor, expected):
    page = decode_page(text, item)
    assert isinstance(page, Page)
    assert (page.has_next, page.cursor) == (has_next, cursor)
    assert all(type(record) is item for record in page.items)
    for path, value in expected.items():
        assert resolve(page.items, path) == value, path


def test_accounts_example_is_a_dict_of_accounts():
    accounts = decode(ACCOUNTS, dict[str, Account])
    assert list(accounts) == ["user_id1", "user_id2"]
    assert all(type(account) is Account for account in accounts.values())
    assert [account.max_jobs for account in accounts.values()] == [10, 20]
    assert accounts["user_id2"].user_id == "user_id2"
    assert accounts["user_id1"].updated == ms(1715791234567)


def test_music_job_nested_models_keep_their_own_raw():
    job = decode(MUSIC_JOB, MusicJob)
    assert type(job.music_material) is MusicMaterial
    assert type(job.ltm_material_extend_dto) is LtmMaterialExtend
    assert job.raw == json.loads(MUSIC_JOB)
    assert job.music_material.raw == json.loads(MUSIC_JOB)["musicMaterial"]
    assert job.ltm_material_extend_dto.raw["modelShowName"] == "v3.5"


def test_midi_upload_midi_holds_midi_render_vo():
    upload = decode(MIDI_UPLOAD, MidiUpload)
    assert type(upload.midi) is MidiFile
    assert upload.midi.raw == json.loads(MIDI_UPLOAD)["midiRenderVO"]


def test_capacity_holds_nested_models():
    capacity = decode(CAPACITY, Capacity)
    assert [type(job) for job in capacity.executing] == [RunningJob]
    assert [type(slot) for slot in capacity.available] == [AccountCapacity, AccountCapacity]


def test_voice_clone_is_ready_unless_the_service_said_202():
    assert decode(VOICE_CLONE, VoiceClone).ready is True


# --------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1716565425000, datetime(2024, 5, 24, 15, 43, 45, tzinfo=UTC)),
        (1715791234567, datetime(2024, 5, 15, 16, 40, 34, 567000, tzinfo=UTC)),
        (1716565425000.0, datetime(2024, 5, 24, 15, 43, 45, tzinfo=UTC)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        ("2025-05-15T12:34:56.789Z", datetime(2025, 5, 15, 12, 34, 56, 789000, tzinfo=UTC)),
        ("2025-05-15T12:34:56Z", datetime(2025, 5, 15, 12, 34, 56, tzinfo=UTC)),
        ("2025-05-15T14:34:56.789+02:00", datetime(2025, 5, 15, 12, 34, 56, 789000, tzinfo=UTC)),
        ("2025-05-15T12:34:56.789", datetime(2025, 5, 15, 12, 34, 56, 789000, tzinfo=UTC)),
    ],
)
@pytest.mark.parametrize(
    ("cls", "key", "attribute"),
    [
        (RunningJob, "started", "started"),
        (MusicJob, "createTime", "create_time"),
        (MusicJob, "updateTime", "update_time"),
        (Account, "updated", "updated"),
        (Account, "updatedUTC", "updated_utc"),
        (ClonedVoice, "createTime", "create_time"),
    ],
)
def test_timestamps_become_aware_utc_datetimes(cls, key, attribute, value, expected):
    moment = getattr(decode(json.dumps({key: value}), cls), attribute)
    assert moment == expected
    assert moment.tzinfo is not None
    assert moment.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1738664823, datetime(2025, 2, 4, 10, 27, 3, tzinfo=UTC)),  # Noiz: seconds
        (1738664823.5, datetime(2025, 2, 4, 10, 27, 3, 500000, tzinfo=UTC)),
        (1738664823000, datetime(2025, 2, 4, 10, 27, 3, tzinfo=UTC)),  # TemPolor: ms
        (99_999_999_999, datetime(5138, 11, 16, 9, 46, 39, tzinfo=UTC)),  # last in seconds
        (100_000_000_000, datetime(1973, 3, 3, 9, 46, 40, tzinfo=UTC)),  # first in ms
    ],
)
def test_epoch_numbers_are_read_by_magnitude_in_both_services(value, expected):
    from tempolor_async.noiz import DeletedVoice, Voice

    for cls, key, attribute in [
        (MusicJob, "createTime", "create_time"),
        (Account, "updated", "updated"),
        (Voice, "create_time", "create_time"),
        (DeletedVoice, "delete_time", "delete_time"),
    ]:
        assert getattr(decode(json.dumps({key: value}), cls), attribute) == expected, cls


@pytest.mark.parametrize("value", ["yesterday", "", True, [1715791234567], {"ms": 1}, 10**20])
@pytest.mark.parametrize(("cls", "key"), [(RunningJob, "started"), (MusicJob, "createTime")])
def test_bad_timestamps_raise(cls, key, value):
    with pytest.raises(ResponseDecodeError, match=key):
        decode(json.dumps({key: value}), cls)


# ------------------------------------------------------------- optional and unknown keys


def _data_fields(cls: type) -> list[str]:
    return [field.name for field in attrs.fields(cls) if field.name not in ("raw", "ready")]


@pytest.mark.parametrize("cls", EVERY_MODEL)
def test_every_field_is_none_when_absent(cls):
    decoded = decode("{}", cls)
    assert type(decoded) is cls
    assert {name: getattr(decoded, name) for name in _data_fields(cls)} == dict.fromkeys(
        _data_fields(cls)
    )
    assert decoded.raw == {}


@pytest.mark.parametrize("cls", EVERY_MODEL)
def test_unknown_keys_are_ignored_but_kept_in_raw(cls):
    data = {"someFutureKey": {"nested": [1, 2]}, "another_new_one": "x"}
    decoded = decode(json.dumps(data), cls)
    assert decoded.raw == data
    assert not hasattr(decoded, "some_future_key")
    assert all(getattr(decoded, name) is None for name in _data_fields(cls))


def test_unknown_keys_beside_known_ones():
    data = json.loads(MUSIC_JOB)
    data["brandNewField"] = 7
    data["musicMaterial"]["newInner"] = "y"
    job = decode(json.dumps(data), MusicJob)
    assert job.raw["brandNewField"] == 7
    assert job.music_material.raw["newInner"] == "y"
    assert job.title_en == "Epic Orchestral"


def test_explicit_nulls_are_none():
    job = decode(
        '{"status": null, "musicMaterial": null, "createTime": null, "titleEn": null}', MusicJob
    )
    assert (job.status, job.music_material, job.create_time, job.title_en) == (None,) * 4
    assert job.raw["status"] is None


def test_models_are_frozen():
    job = decode(MUSIC_JOB, MusicJob)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        job.status = JobStatus.FAILED


# ---------------------------------------------------------------------------- JobStatus


@pytest.mark.parametrize(
    ("record", "status", "is_final", "is_completed", "is_failed"),
    [
        ({"status": 0, "status_final": False}, JobStatus.GENERATING, False, False, False),
        ({"status": 10, "status_final": True}, JobStatus.FAILED, True, False, True),
        ({"status": 30, "status_final": True}, JobStatus.COMPLETED, True, True, False),
        ({"status": 30.0, "status_final": True}, JobStatus.COMPLETED, True, True, False),
        ({"status": 20, "status_final": True}, 20, True, False, False),
        ({"status": 20, "status_final": False}, 20, False, False, False),
        ({"status": 20}, 20, False, False, False),
        ({"status": 99, "status_final": True, "status_name": "ARCHIVED"}, 99, True, False, False),
        ({"status_final": True}, None, True, False, False),
        ({}, None, False, False, False),
    ],
)
def test_job_status(record, status, is_final, is_completed, is_failed):
    job = decode(json.dumps(record), MusicJob)
    assert job.status == status
    assert type(job.status) is type(status)
    assert (job.is_final, job.is_completed, job.is_failed) == (is_final, is_completed, is_failed)


def test_unknown_status_keeps_its_name():
    job = decode('{"status": 20, "status_name": "QUEUED", "status_final": false}', MusicJob)
    assert not isinstance(job.status, JobStatus)
    assert job.status_name == "QUEUED"


def test_job_status_enum():
    assert issubclass(JobStatus, int)
    assert {member.name: member.value for member in JobStatus} == {
        "GENERATING": 0,
        "FAILED": 10,
        "COMPLETED": 30,
    }


# ------------------------------------------------------------------------- strictness


@pytest.mark.parametrize(
    ("cls", "data", "key_path"),
    [
        (MusicJob, {"progress": "50"}, "progress"),
        (Submission, {"remainSeconds": "21533"}, "remainSeconds"),
        (MusicJob, {"titleEn": 5}, "titleEn"),
        (MusicJob, {"titleEn": ["Epic"]}, "titleEn"),
        (ArtistVoice, {"labels": "abc"}, "labels"),
        (Submission, {"jobs": "abc"}, "jobs"),
        (Submission, {"itemIds": ["a", 2]}, "itemIds[1]"),
        (StemsSplit, {"detail": "vocals"}, "detail"),
        (MusicJob, {"downloadTotal": 3.9}, "downloadTotal"),
        (Account, {"maxJobs": 3.9}, "maxJobs"),
        (MusicJob, {"status": 30.5}, "status"),
        (MusicJob, {"status": "30"}, "status"),
        (MusicJob, {"downloadTotal": True}, "downloadTotal"),
        (MusicJob, {"canExtend": "false"}, "canExtend"),
        (MusicJob, {"status_final": "true"}, "status_final"),
        (MusicJob, {"status_final": 1}, "status_final"),
        (Submission, {"unlimited": 0}, "unlimited"),
        (MusicJob, {"musicMaterial": []}, "musicMaterial"),
        (MusicJob, {"musicMaterial": "Orchestral"}, "musicMaterial"),
        (MusicJob, {"ltmMaterialExtendDto": [{"model": "v3"}]}, "ltmMaterialExtendDto"),
        (MidiUpload, {"midiRenderVO": [{}]}, "midiRenderVO"),
        (Account, {"requestParams": []}, "requestParams"),
        (DownloadLink, {"url": {"href": "x"}}, "url"),
        (Capacity, {"executing": {"job_id": "a"}}, "executing"),
        (MusicJob, {"musicMaterial": {"bpm": "fast"}}, "musicMaterial.bpm"),
        (MusicJob, {"musicMaterial": {"seed": 1.5}}, "musicMaterial.seed"),
        (MusicJob, {"ltmMaterialExtendDto": {"ltmVocalModel": "no"}}, "ltmMaterialExtendDto"),
        (Capacity, {"available": [{}, {"maxJobs": "10"}]}, "available[1].maxJobs"),
        (Capacity, {"executing": [{"started": []}]}, "executing[0].started"),
        (MidiUpload, {"midiRenderVO": {"name": 5}}, "midiRenderVO.name"),
    ],
)
def test_wrong_json_types_raise_naming_the_key_path(cls, data, key_path):
    with pytest.raises(ResponseDecodeError) as info:
        decode(json.dumps(data), cls)
    assert key_path in str(info.value)


@pytest.mark.parametrize(("cls", "content"), [(MusicJob, "[]"), (Capacity, '[{"x": 1}]')])
def test_a_list_where_an_object_belongs_raises(cls, content):
    with pytest.raises(ResponseDecodeError):
        decode(content, cls)


@pytest.mark.parametrize(
    ("cls", "data", "attribute", "value"),
    [
        (MusicJob, {"downloadTotal": 3.0}, "download_total", 3),
        (Account, {"maxJobs": 10.0}, "max_jobs", 10),
        (MusicJob, {"progress": 42}, "progress", 42),
        (MusicJob, {"progress": 42.5}, "progress", 42.5),
        (Submission, {"remainSeconds": 21533.5}, "remain_seconds", 21533.5),
    ],
)
def test_whole_floats_for_ints_and_ints_for_floats_are_accepted(cls, data, attribute, value):
    decoded = getattr(decode(json.dumps(data), cls), attribute)
    assert decoded == value
    if isinstance(value, int):
        assert type(decoded) is int


# ------------------------------------------------------------------ secrets in Account


def test_account_repr_and_str_hide_request_params():
    account = decode(
        json.dumps({"user_id": "100349856", "maxJobs": 3, "requestParams": REQUEST_PARAMS}),
        Account,
    )
    assert account.request_params == REQUEST_PARAMS
    assert account.request_params["service_ticket"].startswith("hUUCp7MeIAX")
    secrets = [
        value
        for key, value in REQUEST_PARAMS.items()
        if isinstance(value, str) and len(value) >= 8 and key not in ("user_id", "ucid")
    ]
    assert "hUUCp7MeIAXpXKo9AOP5zPlJLqVZh81C2MWlZdTuqoGbNqzlgQNjBwtxdYnJPRA52Wn=" in secrets
    for text in (repr(account), str(account), f"{account}", f"{account!r}"):
        assert "100349856" in text  # the account is still recognisable
        for secret in secrets:
            assert secret not in text
        assert "service_ticket" not in text


def test_account_repr_inside_a_container_hides_request_params():
    accounts = {"1": Account(user_id="1", request_params={"service_ticket": "s3cr3t-t1cket"})}
    assert "s3cr3t-t1cket" not in repr(accounts)
    assert "s3cr3t-t1cket" not in str(list(accounts.values()))


# ----------------------------------------------------------------------------- the enums

# The tonality values listed in post-tempolor-music-instrumental.md.
DOCUMENTED_NOTES = ("A", "Ab", "B", "Bb", "C#", "C", "D", "E", "Eb", "F#", "F", "G")
DOCUMENTED_KEYS = [f"{note}:{mode}" for note in DOCUMENTED_NOTES for mode in ("major", "minor")]


def test_tonality_has_exactly_the_24_documented_keys():
    assert len(Tonality) == 24
    assert sorted(member.value for member in Tonality) == sorted(DOCUMENTED_KEYS)


@pytest.mark.parametrize("value", DOCUMENTED_KEYS)
def test_tonality_member_names(value):
    note, mode = value.split(":")
    accidental = {"#": "_SHARP", "b": "_FLAT"}.get(note[1:], "")
    name = f"{note[0]}{accidental}_{mode.upper()}"
    assert Tonality[name].value == value
    assert Tonality(value) is Tonality[name]
    assert Tonality[name] == value  # a str enum compares equal to its text
    assert isinstance(Tonality[name], str)


@pytest.mark.parametrize(
    ("member", "name", "value"),
    [
        (Tonality.C_SHARP_MINOR, "C_SHARP_MINOR", "C#:minor"),
        (Tonality.A_FLAT_MAJOR, "A_FLAT_MAJOR", "Ab:major"),
        (Tonality.C_MAJOR, "C_MAJOR", "C:major"),
    ],
)
def test_tonality_spec_examples(member, name, value):
    assert (member.name, member.value) == (name, value)


@pytest.mark.parametrize(
    ("enum", "members"),
    [
        (SongModel, {"V3": "v3", "V3_5": "v3.5"}),
        (InstrumentalModel, {"I3": "i3", "I3_5_BETA": "i3.5 beta"}),
        (FileFormat, {"MP3": "mp3", "WAV": "wav", "STEMS": "stems"}),
        (MusicType, {"SONG": "song", "INSTRUMENTAL": "instrumental"}),
    ],
)
def test_input_enums(enum, members):
    assert {member.name: member.value for member in enum} == members
    assert all(isinstance(member, str) and member == member.value for member in enum)


# ------------------------------------------------------------------ model field names


@pytest.mark.parametrize(
    ("cls", "names"),
    [
        (Submission, "result item_ids jobs remain_seconds max_gen_count_at_once unlimited "
                     "remain_num total_num"),
        (DownloadLink, "url remain_seconds"),
        (StemsSplit, "state title stems_zip_url audio_type detail"),
        (VoiceClone, "result item_id cloned_voice_item_id message ready"),
        (MidiUpload, "is_first midi"),
        (RunningJob, "job_id user_id started elapsed reply_url reply_ref"),
        (Capacity, "executing available"),
        (AccountCapacity, "user_id max_jobs executing available"),
        (Page, "items has_next cursor"),
        (Account, "user_id updated updated_utc max_jobs request_params"),
        (MusicJob, "job_id status status_name status_final progress music_material "
                   "ltm_material_extend_dto title_en create_time update_time"),
    ],
)  # fmt: skip
def test_documented_attribute_names(cls, names):
    assert set(names.split()) <= {field.name for field in attrs.fields(cls)}


# ------------------------------------------------------------------------ public names

SPEC_NAMES = [
    "TempolorClient", "AsyncPager", "Page", "Account", "Submission", "MusicJob", "MusicMaterial",
    "LtmMaterialExtend", "DownloadLink", "StemsSplit", "ArtistVoice", "ClonedVoice", "VoiceClone",
    "MidiFile", "MidiUpload", "RunningJob", "Capacity", "AccountCapacity", "JobStatus", "Tonality",
    "SongModel", "InstrumentalModel", "FileFormat", "MusicType", "TempolorError",
    "ConfigurationError", "ValidationError", "APIConnectionError", "APITimeoutError",
    "APIStatusError", "BadRequestError", "AuthenticationError", "PaymentRequiredError",
    "NotFoundError", "RateLimitError", "ServerError", "ResponseDecodeError", "PaginationError",
    "JobFailedError", "JobTimeoutError",
]  # fmt: skip


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_spec_names_are_importable_from_the_package(name):
    assert name in tempolor_async.__all__
    assert getattr(tempolor_async, name).__name__ == name


def test_all_is_sorted_and_complete():
    names = tempolor_async.__all__
    assert names == sorted(names)
    assert len(names) == len(set(names))
    assert all(hasattr(tempolor_async, name) for name in names)


@pytest.mark.parametrize(("text", "cls"), [(MUSIC_JOB, MusicJob), (VOICE_CLONE, VoiceClone)])
def test_a_decoded_record_is_the_same_as_one_built_by_its_init(text: str, cls: Any) -> None:
    """The converter fills instances without calling __init__ (for speed); nothing about
    the result may differ from a normally built instance."""
    decoded = decode(text, cls)
    values = {field.name: getattr(decoded, field.name) for field in attrs.fields(cls)}
    built = cls(**values)
    assert decoded == built
    assert repr(decoded) == repr(built)
    assert attrs.asdict(decoded) == attrs.asdict(built)
    assert attrs.evolve(decoded, raw={}) == decoded  # raw takes no part in equality
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        decoded.job_id = "changed"


# ------------------------------------------------- key layouts and the generic path


def _layouts(record: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """``count`` different key layouts of one record: keys left out, reordered, and an
    unknown key added, each layout a different dict shape."""
    keys = list(record)
    layouts = []
    for number in range(count):
        chosen = [key for index, key in enumerate(keys) if (index + number) % 5]
        chosen = chosen[number % len(chosen) :] + chosen[: number % len(chosen)]
        layout = {key: record[key] for key in chosen}
        layout[f"addedLater{number}"] = number
        layouts.append(layout)
    return layouts


def test_every_key_layout_decodes_as_init_would_build_it() -> None:
    """Code is generated per key layout, up to a limit, then a generic path takes over:
    both must give what ``__init__`` gives for the same values."""
    record = json.loads(MUSIC_JOB)
    layouts = _layouts(record, _convert._MAX_SHAPES + 10)
    for layout in layouts:
        decoded = decode(json.dumps(layout), MusicJob)
        values = {field.name: getattr(decoded, field.name) for field in attrs.fields(MusicJob)}
        assert decoded == MusicJob(**values)
        assert decoded.raw == layout
        for field in attrs.fields(MusicJob):
            key = field.metadata.get("json", _convert.camel_case(field.name))
            if field.name != "raw" and key not in layout:
                assert getattr(decoded, field.name) is None
        assert decoded.job_id == layout.get("job_id")
        assert decoded.title_en == layout.get("titleEn")


@pytest.mark.parametrize("wrong", [("titleEn", 5), ("downloadTotal", 2.5), ("canExtend", 0)])
def test_wrong_types_raise_on_every_key_layout(wrong: tuple[str, Any]) -> None:
    key, value = wrong
    record = json.loads(MUSIC_JOB)
    for layout in _layouts(record, _convert._MAX_SHAPES + 10):
        layout[key] = value
        with pytest.raises(ResponseDecodeError, match=key):
            decode(json.dumps(layout), MusicJob)


def test_a_record_with_very_many_unknown_keys_is_decoded_all_the_same() -> None:
    """Such a layout gets no code of its own (that would let a server make the client
    compile without bound); the generic path checks it just as strictly."""
    record = {**json.loads(MUSIC_JOB), **{f"extra{index}": index for index in range(500)}}
    decoded = decode(json.dumps(record), MusicJob)
    assert decoded.title_en == "Epic Orchestral"
    assert decoded.raw == record
    record["titleEn"] = 5
    with pytest.raises(ResponseDecodeError, match="titleEn"):
        decode(json.dumps(record), MusicJob)
