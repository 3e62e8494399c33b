"""SPEC section 9, through the public client methods against the simulator: every rule is
refused with a ValidationError (also a ValueError) that names the parameter and states the
rule, before any request is sent; the values just inside each rule are sent as given."""

from __future__ import annotations

import contextlib
import gc
import inspect
import io
import os
import re
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import DEFAULT_USER

from tempolor_async import (
    APIStatusError,
    FileFormat,
    InstrumentalModel,
    MusicType,
    NotFoundError,
    SongModel,
    Submission,
    Tonality,
    ValidationError,
)
from tempolor_async.testing import sample_audio, sample_midi

pytestmark = pytest.mark.anyio

PROMPT = "a calm piano piece"
JOB_ID = "user:12345-tempolor:user_id-job:abc"
AUDIO = sample_audio(0.05)
MIDI = sample_midi()
UNKNOWN_USER = "999"  # no such account: the fake answers 404 and starts no job
LOCAL_HOOK = "http://127.0.0.1:9/hook"  # refused at once if the fake ever calls it
REMOTE_HOOK = "https://example.com/hook?id=1"  # only ever sent for an unknown account
DOWNLOAD_LINK = b'{"url": "https://cdn.example.com/a.mp3", "remainSeconds": 3600}'
AUDIO_TYPES = r"(?=.*audio/mpeg)(?=.*audio/x-flac)(?=.*audio/x-m4a)"
MIDI_TYPES = r"(?=.*audio/midi)(?=.*audio/x-midi)"


async def run(call: Callable[[], Any]) -> Any:
    """Call a client method, awaiting it if it is async (``list`` methods are not)."""
    with anyio.fail_after(5):
        result = call()
        if inspect.isawaitable(result):
            return await result
        return result


async def refused(fake, call, parameter: str | set[str], rule: str) -> ValidationError:
    """``call`` raises ValidationError naming ``parameter`` with a message matching ``rule``,
    and nothing reached the simulator."""
    with pytest.raises(ValidationError) as info:
        await run(call)
    exc = info.value
    assert isinstance(exc, ValueError)
    assert exc.parameter in ({parameter} if isinstance(parameter, str) else parameter)
    assert re.search(rule, str(exc), re.IGNORECASE | re.DOTALL), str(exc)
    assert fake.requests == []
    return exc


def generate(client, kind: str, **options: Any):
    return getattr(client.music, f"create_{kind}")(**{"prompt": PROMPT, **options})


def last_body(fake) -> dict[str, Any]:
    body: dict[str, Any] = fake.requests[-1].json()
    return body


# --------------------------------------------------------------------- generation rules

LONG_URL = "http://127.0.0.1:9/" + "u" * 1006  # 1025 characters
GENERATION_REFUSED = [
    ("song", {"prompt": None}, "prompt", "required"),
    ("song", {"prompt": ""}, "prompt", "blank|required|empty"),
    ("instrumental", {"prompt": "   \n\t"}, "prompt", "blank|required|empty"),
    ("song", {"prompt": "x" * 2001}, "prompt", "2000"),
    ("instrumental", {"prompt": "é" * 2001}, "prompt", "2000"),
    ("song", {"prompt": 123}, "prompt", "str"),
    ("song", {"lyrics": "l" * 3001}, "lyrics", "3000"),
    ("instrumental", {"chords": "C" * 201}, "chords", "200"),
    ("song", {"reply_url": LONG_URL}, "reply_url", "1024"),
    ("instrumental", {"reply_url": LONG_URL}, "reply_url", "1024"),
    ("song", {"reply_ref": "r" * 1025}, "reply_ref", "1024"),
    ("instrumental", {"reply_ref": "r" * 1025}, "reply_ref", "1024"),
    ("song", {"reply_url": "ftp://example.com/hook"}, "reply_url", "http"),
    ("song", {"reply_url": "/hook"}, "reply_url", "http"),
    ("song", {"reply_url": "example.com/hook"}, "reply_url", "http"),
    ("song", {"reply_url": "http://"}, "reply_url", "http"),
    ("instrumental", {"reply_url": "https:///hook"}, "reply_url", "http"),
    ("instrumental", {"reply_url": "javascript:alert(1)"}, "reply_url", "http"),
    ("instrumental", {"reply_url": ""}, "reply_url", "http"),
    ("instrumental", {"bpm": 49}, "bpm", "50.*190"),
    ("instrumental", {"bpm": 191}, "bpm", "50.*190"),
    ("instrumental", {"bpm": 0}, "bpm", "50.*190"),
    ("instrumental", {"bpm": 120.5}, "bpm", "integer"),
    ("instrumental", {"bpm": 120.0}, "bpm", "integer"),
    ("instrumental", {"bpm": "120"}, "bpm", "integer"),
    ("instrumental", {"bpm": True}, "bpm", "integer"),
    ("instrumental", {"tonality": "H:major"}, "tonality", "C#:minor"),
    ("instrumental", {"tonality": "c:major"}, "tonality", "C#:minor"),
    ("instrumental", {"tonality": "C major"}, "tonality", "C#:minor"),
    ("instrumental", {"tonality": "C:Major"}, "tonality", "C#:minor"),
    ("instrumental", {"tonality": "C_MAJOR"}, "tonality", "C#:minor"),
    ("instrumental", {"tonality": "Db:major"}, "tonality", "C#:minor"),
    ("instrumental", {"tonality": ""}, "tonality", "C#:minor"),
    ("instrumental", {"tonality": FileFormat.MP3}, "tonality", "C#:minor"),
    ("song", {"max_jobs": 0}, "max_jobs", "positive"),
    ("instrumental", {"max_jobs": -1}, "max_jobs", "positive"),
    ("song", {"max_jobs": 2.5}, "max_jobs", "positive"),
    ("instrumental", {"max_jobs": "3"}, "max_jobs", "positive"),
    ("song", {"max_jobs": True}, "max_jobs", "positive"),
    (
        "song",
        {"artist_voice_item_id": "voice_12345", "cloned_voice_item_id": "v"},
        {"artist_voice_item_id", "cloned_voice_item_id"},
        "(?=.*artist_voice_item_id)(?=.*cloned_voice_item_id)",
    ),
    ("song", {"midi_item_id": "m", "artist_voice_item_id": "a"}, "midi_item_id", "artist"),
    ("song", {"midi_item_id": "m", "cloned_voice_item_id": "c"}, "midi_item_id", "cloned"),
]


@pytest.mark.parametrize(("kind", "options", "parameter", "rule"), GENERATION_REFUSED)
async def test_generation_rules(client, fake, kind, options, parameter, rule):
    await refused(fake, lambda: generate(client, kind, **options), parameter, rule)


GENERATION_ACCEPTED = [
    ("song", {"prompt": "x" * 2000}, "prompt", "x" * 2000),
    ("instrumental", {"prompt": "é" * 2000}, "prompt", "é" * 2000),
    ("song", {"prompt": "\U0001f3b5" * 2000}, "prompt", "\U0001f3b5" * 2000),  # len, not UTF-16
    ("song", {"lyrics": "l" * 3000}, "lyrics", "l" * 3000),
    ("instrumental", {"chords": "C" * 200}, "chords", "C" * 200),
    ("song", {"reply_ref": "r" * 1024}, "replyRef", "r" * 1024),
    ("instrumental", {"reply_url": LONG_URL[:-1]}, "replyUrl", LONG_URL[:-1]),
    ("song", {"reply_url": REMOTE_HOOK}, "replyUrl", REMOTE_HOOK),
    ("instrumental", {"bpm": 50}, "bpm", 50),
    ("instrumental", {"bpm": 190}, "bpm", 190),
    ("instrumental", {"tonality": Tonality.C_SHARP_MINOR}, "tonality", "C#:minor"),
    ("instrumental", {"tonality": "C#:minor"}, "tonality", "C#:minor"),
    ("instrumental", {"tonality": Tonality.A_FLAT_MAJOR}, "tonality", "Ab:major"),
    ("instrumental", {"tonality": "Ab:major"}, "tonality", "Ab:major"),
    ("song", {"max_jobs": 1}, "maxJobs", 1),
    ("instrumental", {"max_jobs": 7}, "maxJobs", 7),
    ("song", {"model": "v9"}, "model_song", "v9"),
    ("song", {"model": "v4.5+"}, "model_song", "v4.5+"),
    ("song", {"model": SongModel.V3_5}, "model_song", "v3.5"),
    ("instrumental", {"model": "i4"}, "model_instrumental", "i4"),
    ("instrumental", {"model": InstrumentalModel.I3_5_BETA}, "model_instrumental", "i3.5 beta"),
]


@pytest.mark.parametrize(("kind", "options", "key", "wire"), GENERATION_ACCEPTED)
async def test_values_within_the_rules_are_sent(client, fake, kind, options, key, wire):
    options.setdefault("user_id", UNKNOWN_USER)  # the SDK's part ends once the body is sent
    with contextlib.suppress(NotFoundError):
        await run(lambda: generate(client, kind, **options))
    # What was sent, past the capacity gate's reads of the accounts' slots.
    [request] = fake.requests_to("POST", "/music/*")
    assert request.path == f"/music/{kind}"
    assert last_body(fake)[key] == wire
    assert type(last_body(fake)[key]) is type(wire)


@pytest.mark.parametrize("kind", ["song", "instrumental"])
async def test_limits_hold_end_to_end(client, fake, kind):
    options = {"prompt": "p" * 2000, "reply_ref": "r" * 1024, "max_jobs": 2}
    submission = await generate(client, kind, **options)
    assert isinstance(submission, Submission)
    assert len(submission.jobs) == 2


@pytest.mark.parametrize("kind", ["song", "instrumental"])
async def test_parameters_left_none_are_not_sent(client, fake, kind):
    await generate(client, kind)
    assert last_body(fake) == {"prompt": PROMPT}
    assert fake.requests[-1].headers["Content-Type"].startswith("application/json")


SONG_OPTIONS = {
    "lyrics": "first line\nsecond line",
    "model": SongModel.V3,
    "reply_url": LOCAL_HOOK,
    "reply_ref": "ref-1",
    "max_jobs": 3,
    "user_id": UNKNOWN_USER,
}
SONG_WIRE = {
    "prompt": PROMPT,
    "lyrics": "first line\nsecond line",
    "model_song": "v3",
    "replyUrl": LOCAL_HOOK,
    "replyRef": "ref-1",
    "maxJobs": 3,
    "user_id": UNKNOWN_USER,
}


@pytest.mark.parametrize(
    ("kind", "options", "wire"),
    [
        (
            "song",
            {**SONG_OPTIONS, "artist_voice_item_id": "voice_12345"},
            {**SONG_WIRE, "artistVoiceItemId": "voice_12345"},
        ),
        (
            "song",
            {**SONG_OPTIONS, "cloned_voice_item_id": "user:1-tempolor:2-voice:abc"},
            {**SONG_WIRE, "clonedVoiceItemId": "user:1-tempolor:2-voice:abc"},
        ),
        (
            "song",
            {**SONG_OPTIONS, "midi_item_id": "user:1-tempolor:2-midi:abc"},
            {**SONG_WIRE, "midiItemId": "user:1-tempolor:2-midi:abc"},
        ),
        (
            "instrumental",
            {
                "model": InstrumentalModel.I3,
                "tonality": Tonality.F_SHARP_MINOR,
                "bpm": 120,
                "chords": "C F G Am",
                "reply_url": LOCAL_HOOK,
                "reply_ref": "ref-2",
                "max_jobs": 4,
                "user_id": UNKNOWN_USER,
            },
            {
                "prompt": PROMPT,
                "model_instrumental": "i3",
                "tonality": "F#:minor",
                "bpm": 120,
                "chords": "C F G Am",
                "replyUrl": LOCAL_HOOK,
                "replyRef": "ref-2",
                "maxJobs": 4,
                "user_id": UNKNOWN_USER,
            },
        ),
    ],
)
async def test_documented_wire_names(client, fake, kind, options, wire):
    with pytest.raises(NotFoundError):  # unknown account: nothing is generated
        await generate(client, kind, **options)
    assert last_body(fake) == wire


async def test_client_default_user_id_is_sent(fake):
    async with fake.client(user_id=DEFAULT_USER) as client:
        await client.music.create_song(PROMPT)
    assert last_body(fake) == {"prompt": PROMPT, "user_id": DEFAULT_USER}


# ------------------------------------------------------------------ list type, file format


@pytest.mark.parametrize("value", ["video", "SONG", "Song", "songs", "", None])
async def test_music_list_type(client, fake, value):
    await refused(fake, lambda: client.music.list(type=value), "type", "song.*instrumental")


@pytest.mark.parametrize(
    ("value", "wire"),
    [(MusicType.INSTRUMENTAL, "instrumental"), ("instrumental", "instrumental"), ("song", "song")],
)
async def test_music_list_type_is_sent_as_its_value(client, fake, value, wire):
    await client.music.list(type=value).first_page()
    assert fake.requests[-1].query["type"] == wire


FORMAT_CALLS = {
    "download_url": lambda client, value, folder: client.music.download_url(
        JOB_ID, file_format=value
    ),
    "download": lambda client, value, folder: client.music.download(
        JOB_ID, folder, file_format=value
    ),
}


@pytest.mark.parametrize("value", ["flac", "MP3", "zip", "mp4", "", None])
@pytest.mark.parametrize("method", FORMAT_CALLS)
async def test_file_format(client, fake, tmp_path, method, value):
    call = FORMAT_CALLS[method]
    await refused(fake, lambda: call(client, value, tmp_path), "file_format", "mp3.*wav.*stems")


@pytest.mark.parametrize(
    ("value", "wire"),
    [(FileFormat.STEMS, "stems"), ("wav", "wav"), (FileFormat.MP3, "mp3"), ("stems", "stems")],
)
async def test_file_format_is_sent_as_its_value(client, fake, value, wire):
    fake.inject("GET", "/music/download/*", body=DOWNLOAD_LINK)
    link = await client.music.download_url(JOB_ID, file_format=value)
    assert link.url == "https://cdn.example.com/a.mp3"
    assert fake.requests[-1].query["file_format"] == wire
    assert fake.requests[-1].path == f"/music/download/{JOB_ID}"


# ---------------------------------------------------------------------------- path ids

PATH_ID_CALLS: dict[str, tuple[str, Callable[..., Any]]] = {
    "music.get": ("job_id", lambda c, v, d: c.music.get(v)),
    "music.delete": ("job_id", lambda c, v, d: c.music.delete(v)),
    "music.download_url": ("job_id", lambda c, v, d: c.music.download_url(v)),
    "music.download": ("job_id", lambda c, v, d: c.music.download(v, d)),
    "scheduler.cancel": ("job_id", lambda c, v, d: c.scheduler.cancel(v)),
    "await_job": ("job_id", lambda c, v, d: c.await_job(v, timeout=1)),
    "accounts.get": ("user_id", lambda c, v, d: c.accounts.get(v)),
    "accounts.delete": ("user_id", lambda c, v, d: c.accounts.delete(v)),
    "create_song": ("user_id", lambda c, v, d: c.music.create_song(PROMPT, user_id=v)),
    "create_instrumental": ("user_id", lambda c, v, d: c.music.create_instrumental("p", user_id=v)),
    "music.list": ("user_id", lambda c, v, d: c.music.list(user_id=v)),
    "voices.list_cloned": ("user_id", lambda c, v, d: c.voices.list_cloned(user_id=v)),
    "midi.upload": ("user_id", lambda c, v, d: c.midi.upload(MIDI, name="n", user_id=v)),
    "voices.delete_cloned": ("cloned_voice_item_id", lambda c, v, d: c.voices.delete_cloned(v)),
    "midi.delete": ("midi_item_id", lambda c, v, d: c.midi.delete(v)),
}
BAD_IDS = {
    "empty": "",
    "blank": "   ",
    "slash": "user:1-tempolor:2-job:a/b",
    "question-mark": "abc?x=1",
    "hash": "abc#frag",
    "percent": "abc%2Fdef",
    "space": "abc def",
    "leading-space": " abc",
    "newline": "abc\n",
    "carriage-return": "abc\rdef",
    "tab": "abc\tdef",
    "nul": "abc\x00def",
    "escape": "abc\x1bdef",
    "delete": "abc\x7fdef",
    "c1-control": "abc\x9bdef",
    "next-line": "abc\x85def",
    "no-break-space": "abc\xa0def",
    "line-separator": "abc\u2028def",
    "dot-dot": "..",
    "dot": ".",
    "dot-dot-slash": "../accounts",
}


async def _outcome(call: Callable[[], Any]) -> str:
    """The parameter a ValidationError names (if it is a ValueError stating the rule), or
    what happened instead."""
    try:
        await run(call)
    except ValidationError as exc:
        states_rule = re.search(r"blank|required|contain|must not be|Unicode", str(exc))
        is_value_error = isinstance(exc, ValueError)
        return exc.parameter if states_rule and is_value_error else f"unclear: {exc}"
    except Exception as exc:
        return f"not refused ({type(exc).__name__})"
    return "not refused"


@pytest.mark.parametrize("value", BAD_IDS.values(), ids=BAD_IDS.keys())
async def test_path_ids_are_checked(client, fake, tmp_path, value):
    outcomes = {
        name: await _outcome(lambda call=call: call(client, value, tmp_path))
        for name, (_, call) in PATH_ID_CALLS.items()
    }
    assert outcomes == {name: parameter for name, (parameter, _) in PATH_ID_CALLS.items()}
    assert fake.requests == []


REQUIRED_IDS = [
    "music.get", "music.delete", "music.download_url", "music.download", "scheduler.cancel",
    "await_job", "accounts.get", "accounts.delete", "voices.delete_cloned", "midi.delete",
]  # fmt: skip


async def test_required_path_ids_cannot_be_none(client, fake, tmp_path):
    outcomes = {
        name: await _outcome(lambda call=PATH_ID_CALLS[name][1]: call(client, None, tmp_path))
        for name in REQUIRED_IDS
    }
    assert outcomes == {name: PATH_ID_CALLS[name][0] for name in REQUIRED_IDS}
    assert fake.requests == []


COLON_CALLS = {
    "music.get": (lambda c: c.music.get(JOB_ID), f"/music/{JOB_ID}"),
    "music.delete": (lambda c: c.music.delete(JOB_ID), f"/music/{JOB_ID}"),
    "music.download_url": (lambda c: c.music.download_url(JOB_ID), f"/music/download/{JOB_ID}"),
    "scheduler.cancel": (lambda c: c.scheduler.cancel(JOB_ID), f"/scheduler/{JOB_ID}"),
    "accounts.get": (lambda c: c.accounts.get("user:12345"), "/accounts/user:12345"),
    "accounts.delete": (lambda c: c.accounts.delete("user:12345"), "/accounts/user:12345"),
    "voices.delete_cloned": (
        lambda c: c.voices.delete_cloned("user:12345-tempolor:user_id-voice:abc"),
        "/music/cloned-voices/user:12345-tempolor:user_id-voice:abc",
    ),
    "midi.delete": (
        lambda c: c.midi.delete("user:12345-tempolor:user_id-midi:abc"),
        "/music/midi/user:12345-tempolor:user_id-midi:abc",
    ),
}


@pytest.mark.parametrize("name", COLON_CALLS)
async def test_ids_with_colons_are_sent_as_they_are(client, fake, name):
    call, path = COLON_CALLS[name]
    fake.inject("GET", "/music/download/*", body=DOWNLOAD_LINK)
    with contextlib.suppress(APIStatusError):  # the simulator knows no such record
        await run(lambda: call(client))
    assert [request.path for request in fake.requests] == [path]


@pytest.mark.parametrize("user_id", ["user:12345", "100349856"])
async def test_user_id_with_colons_is_sent_in_the_query(client, fake, user_id):
    with contextlib.suppress(APIStatusError):
        await client.voices.list_cloned(user_id=user_id).first_page()
    assert fake.requests[-1].query["user_id"] == user_id


# ------------------------------------------------------------------------------ uploads

UPLOADS: dict[str, tuple[str, Callable[..., Any]]] = {
    "split_stems": ("audio", lambda c, src, ct: c.music.split_stems(src, content_type=ct)),
    "clone": ("audio", lambda c, src, ct: c.voices.clone(src, name="My Voice", content_type=ct)),
    "midi.upload": ("midi", lambda c, src, ct: c.midi.upload(src, name="My Tune", content_type=ct)),
}
AUDIO_UPLOADS = ["split_stems", "clone"]
SUFFIX = {"audio": ".mp3", "midi": ".mid"}


def make_source(kind: str, stack: contextlib.ExitStack, path) -> Any:
    """An upload source of ``kind`` holding the bytes in ``path``."""
    if kind == "bytes":
        return path.read_bytes()
    if kind == "path":
        return path
    if kind == "str-path":
        return str(path)
    if kind == "open-file":
        return stack.enter_context(open(path, "rb"))
    return io.BytesIO(path.read_bytes())


@pytest.mark.parametrize("kind", ["bytes", "path", "str-path", "open-file", "bytes-io"])
@pytest.mark.parametrize("method", UPLOADS)
async def test_empty_uploads_are_refused(client, fake, tmp_path, method, kind):
    parameter, call = UPLOADS[method]
    with contextlib.ExitStack() as stack:
        source = upload_source(stack, kind, tmp_path / f"empty{SUFFIX[parameter]}", b"")
        await refused(fake, lambda: call(client, source, None), parameter, "empty")


@pytest.mark.parametrize("method", UPLOADS)
async def test_missing_upload_file_is_refused(client, fake, tmp_path, method):
    parameter, call = UPLOADS[method]
    missing = tmp_path / f"missing{SUFFIX[parameter]}"
    await refused(fake, lambda: call(client, missing, None), parameter, "no such file|exist")


def upload_source(stack: contextlib.ExitStack, kind: str, path, data: bytes) -> Any:
    path.write_bytes(data)
    return make_source(kind, stack, path)


CONTENT_TYPE_REFUSED = [
    *[
        (method, kind, filename, content_type)
        for method in AUDIO_UPLOADS
        for kind, filename, content_type in [
            ("bytes", "voice.mp3", None),
            ("bytes-io", "voice.mp3", None),
            ("path", "voice.ogg", None),
            ("path", "voice.aac", None),
            ("path", "voice", None),
            ("path", "voice.mid", None),
            ("bytes", "voice.mp3", "audio/ogg"),
            ("bytes", "voice.mp3", "text/plain"),
            ("bytes", "voice.mp3", "audio/midi"),
            ("bytes", "voice.mp3", "application/octet-stream"),
            ("path", "voice.mp3", "video/mp4"),
            ("bytes", "voice.mp3", ""),
        ]
    ],
    ("midi.upload", "path", "tune.txt", None),
    ("midi.upload", "path", "tune.mp3", None),
    ("midi.upload", "bytes", "tune.mid", "audio/mpeg"),
    ("midi.upload", "bytes", "tune.mid", "audio/wav"),
    ("midi.upload", "bytes", "tune.mid", "application/octet-stream"),
    ("midi.upload", "path", "tune.mid", "text/plain"),
]


@pytest.mark.parametrize(("method", "kind", "filename", "content_type"), CONTENT_TYPE_REFUSED)
async def test_unsupported_content_types_are_refused_with_the_supported_list(
    client, fake, tmp_path, method, kind, filename, content_type
):
    parameter, call = UPLOADS[method]
    data, supported = (MIDI, MIDI_TYPES) if parameter == "midi" else (AUDIO, AUDIO_TYPES)
    with contextlib.ExitStack() as stack:
        source = upload_source(stack, kind, tmp_path / filename, data)
        await refused(
            fake, lambda: call(client, source, content_type), {"content_type", parameter}, supported
        )


UPLOAD_ACCEPTED = [
    *[(m, "bytes", "x.bin", t, t) for m in AUDIO_UPLOADS for t in ("audio/x-m4a", "audio/wave")],
    *[(m, "bytes", "x.bin", t, t) for m in AUDIO_UPLOADS for t in ("audio/x-flac", "audio/mpeg")],
    ("split_stems", "bytes", "x.bin", "audio/mp4", "audio/mp4"),
    ("clone", "bytes-io", "x.bin", "audio/flac", "audio/flac"),
    ("split_stems", "path", "voice.m4a", None, "audio/mp4"),
    ("clone", "path", "voice.mp3", None, "audio/mpeg"),
    ("split_stems", "str-path", "voice.wav", None, "audio/wav"),
    ("clone", "path", "voice.flac", None, "audio/flac"),
    ("split_stems", "path", "VOICE.MP3", None, "audio/mpeg"),
    ("clone", "open-file", "voice.wav", None, "audio/wav"),
    ("midi.upload", "bytes", "x.bin", None, "audio/midi"),
    ("midi.upload", "bytes-io", "x.bin", None, "audio/midi"),
    ("midi.upload", "bytes", "x.bin", "audio/x-midi", "audio/x-midi"),
    ("midi.upload", "path", "tune.mid", None, "audio/midi"),
    ("midi.upload", "path", "tune.midi", None, "audio/midi"),
    ("midi.upload", "open-file", "tune.mid", "audio/x-midi", "audio/x-midi"),
]


@pytest.mark.parametrize(("method", "kind", "filename", "given", "sent"), UPLOAD_ACCEPTED)
async def test_supported_upload_types_are_sent(
    client, fake, tmp_path, method, kind, filename, given, sent
):
    parameter, call = UPLOADS[method]
    data = MIDI if parameter == "midi" else AUDIO
    with contextlib.ExitStack() as stack:
        source = upload_source(stack, kind, tmp_path / filename, data)
        await run(lambda: call(client, source, given))
    [request] = fake.requests
    assert request.method == "POST"
    assert request.headers["Content-Type"] == sent
    assert request.body == data


@contextlib.asynccontextmanager
async def resource_warnings() -> AsyncIterator[list[str]]:
    """Collect the ResourceWarnings of objects freed by the end of the block."""
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        try:
            yield found
        finally:
            gc.collect()
            await anyio.sleep(0.01)  # let asyncio finalise abandoned async generators
            gc.collect()
    found.extend(str(w.message) for w in caught if issubclass(w.category, ResourceWarning))


def descriptors_open_on(path: Path) -> list[str]:
    """This process's file descriptors open on ``path`` (Linux; elsewhere none are seen)."""
    folder = Path("/proc/self/fd")
    if not folder.is_dir():
        return []
    found = []
    for fd in os.listdir(folder):
        with contextlib.suppress(OSError):
            if os.readlink(folder / fd) == str(path):
                found.append(fd)
    return found


@pytest.mark.parametrize("kind", ["path", "str-path"])
@pytest.mark.parametrize("method", UPLOADS)
async def test_path_uploads_close_their_file(client, fake, tmp_path, method, kind):
    parameter, call = UPLOADS[method]
    path = tmp_path / f"upload{SUFFIX[parameter]}"
    with contextlib.ExitStack() as stack:
        source = upload_source(stack, kind, path, MIDI if parameter == "midi" else AUDIO)
    async with resource_warnings() as leaks:
        gc.disable()  # the file must be closed by the SDK, not by a lucky garbage collection
        try:
            await run(lambda: call(client, source, None))
            still_open = descriptors_open_on(path)
        finally:
            gc.enable()
    assert fake.requests[-1].body == path.read_bytes()
    assert still_open == []
    assert leaks == []


@pytest.mark.parametrize("name", ["", "   ", "\n", None, 5])
@pytest.mark.parametrize(
    "call",
    [
        lambda c, name: c.voices.clone(AUDIO, name=name, content_type="audio/wav"),
        lambda c, name: c.midi.upload(MIDI, name=name),
    ],
    ids=["clone", "midi.upload"],
)
async def test_upload_name_is_required(client, fake, call, name):
    await refused(fake, lambda: call(client, name), "name", "required|blank|str")


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.voices.clone(AUDIO, name="My Voice", content_type="audio/wav"),
        lambda c: c.midi.upload(MIDI, name="My Tune"),
    ],
    ids=["clone", "midi.upload"],
)
async def test_upload_name_and_user_id_travel_in_the_query(client, fake, call):
    await call(client)
    assert fake.requests[-1].query["name"] in ("My Voice", "My Tune")


# ----------------------------------------------------------------------- accounts, dest


@pytest.mark.parametrize("params", [{}, None, [("user_id", "1")], "user_id=1"])
async def test_accounts_create_needs_request_params(client, fake, params):
    await refused(fake, lambda: client.accounts.create(params), "request_params", "requestParams")


@pytest.mark.parametrize("max_jobs", [0, -3, 1.5, "2", False])
async def test_accounts_create_max_jobs(client, fake, max_jobs):
    call = lambda: client.accounts.create({"user_id": "1"}, max_jobs=max_jobs)  # noqa: E731
    await refused(fake, call, "max_jobs", "positive")


@pytest.mark.parametrize(
    "call",
    [
        lambda c, dest: c.music.download(JOB_ID, dest),
        lambda c, dest: c.download_file("http://127.0.0.1:9/cdn/a.mp3", dest),
    ],
    ids=["music.download", "download_file"],
)
async def test_download_into_a_missing_folder_is_refused(client, fake, tmp_path, call):
    dest = tmp_path / "missing" / "song.mp3"
    await refused(fake, lambda: call(client, dest), "dest", "does not exist")
    assert not (tmp_path / "missing").exists()


def test_ids_remembered_as_checked_stay_bounded():
    from tempolor_async import _validation

    for number in range(_validation._MAX_CHECKED_IDS + 10):
        assert _validation.path_id("job_id", f"job-{number}") == f"job-{number}"
    assert 0 < len(_validation._CHECKED_IDS) <= _validation._MAX_CHECKED_IDS
    with pytest.raises(ValidationError, match="job_id"):
        _validation.path_id("job_id", "job-1/../x")
    assert "job-1/../x" not in _validation._CHECKED_IDS
