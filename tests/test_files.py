"""Files in and out: downloads written atomically under a safe name, without the token, and
uploads streamed from bytes, paths and file objects with the right Content-Type."""

from __future__ import annotations

import contextlib
import gc
import io
import os
import pathlib
import warnings
import wave
import zipfile

import aiohttp
import anyio
import anyio.lowlevel
import pytest
from conftest import DEFAULT_USER

from tempolor_async import (
    APIConnectionError,
    BadRequestError,
    FileFormat,
    MidiUpload,
    StemsSplit,
    VoiceClone,
    _protocol,
)
from tempolor_async.testing import sample_audio, sample_midi

pytestmark = [pytest.mark.anyio, pytest.mark.fake(audio_seconds=0.5)]

PROMPT = "a calm piano piece"


@pytest.fixture
def quick_retries(monkeypatch):
    monkeypatch.setattr(_protocol, "RETRY_BASE_SECONDS", 0.01)


async def finished_job(client, fake):
    """A completed job: its id and its itemId."""
    submission = await client.music.create_song(PROMPT)
    fake.complete(submission.jobs[0])
    return submission.jobs[0], submission.item_ids[0]


async def raw_get(url):
    """The media as a plain aiohttp GET sees it."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return await response.read()


def files_in(folder):
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*"))


def link_requests(fake):
    return fake.requests_to("GET", "/music/download/*")


def media_requests(fake):
    return fake.requests_to("GET", "/cdn/*")


def check_wav(data):
    with wave.open(io.BytesIO(data)) as reader:
        assert reader.getnframes() > 0
        assert reader.getframerate() > 0


def check_mp3(data):
    assert data[:3] == b"ID3"
    size = int.from_bytes(bytes(b & 0x7F for b in data[6:10]), "big")  # syncsafe
    sync = data[10 + size : 12 + size]
    assert sync[0] == 0xFF
    assert sync[1] & 0xE0 == 0xE0


def check_zip(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = [name for name in archive.namelist() if name.endswith(".wav")]
        assert len(members) >= 2
        for name in members:
            check_wav(archive.read(name))


CHECKS = {"mp3": check_mp3, "wav": check_wav, "zip": check_zip}


# ------------------------------------------------------------------------ downloads


@pytest.mark.parametrize(
    ("file_format", "extension"),
    [
        (None, "mp3"),
        ("mp3", "mp3"),
        ("wav", "wav"),
        ("stems", "zip"),
        (FileFormat.WAV, "wav"),
        (FileFormat.STEMS, "zip"),
    ],
)
async def test_download_into_a_folder(client, fake, tmp_path, file_format, extension):
    job_id, item_id = await finished_job(client, fake)
    options = {} if file_format is None else {"file_format": file_format}
    path = await client.music.download(job_id, tmp_path, **options)
    assert path == tmp_path / f"{item_id}.{extension}"
    assert files_in(tmp_path) == [path.name]
    (media_request,) = media_requests(fake)
    assert "Authorization" not in media_request.headers
    assert fake.requests_to("GET", "/music/download/*")[0].headers["Authorization"]
    link = await client.music.download_url(job_id, **options)
    data = path.read_bytes()
    assert data == await raw_get(link.url)
    CHECKS[extension](data)


@pytest.mark.parametrize("existing", [False, True])
async def test_download_to_a_file_path(client, fake, tmp_path, existing):
    job_id, _ = await finished_job(client, fake)
    dest = tmp_path / "my song.wav"
    if existing:
        dest.write_bytes(b"an older take")
    path = await client.music.download(job_id, str(dest), file_format="wav")
    assert path == dest
    assert files_in(tmp_path) == ["my song.wav"]
    check_wav(dest.read_bytes())


async def test_a_caller_session_with_a_default_token_is_not_sent_to_the_cdn(fake, tmp_path):
    headers = {"Authorization": f"Bearer {fake.token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with fake.client(session=session) as client:
            job_id, _ = await finished_job(client, fake)
            path = await client.music.download(job_id, tmp_path)
        assert not session.closed
    check_mp3(path.read_bytes())
    assert len(media_requests(fake)) == 1
    assert "Authorization" not in media_requests(fake)[0].headers


def progress_recorder(kind):
    calls: list[tuple[int, int | None]] = []

    def sync(done: int, total: int | None) -> None:
        calls.append((done, total))

    async def asynchronous(done: int, total: int | None) -> None:
        await anyio.lowlevel.checkpoint()
        sync(done, total)

    return (sync if kind == "sync" else asynchronous), calls


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_download_progress(client, fake, tmp_path, kind):
    data = os.urandom(1_500_000)
    url = fake.add_media("big/take.bin", data)
    callback, calls = progress_recorder(kind)
    path = await client.download_file(url, tmp_path, on_progress=callback)
    assert path.read_bytes() == data
    done = [count for count, _ in calls]
    assert len(calls) > 1
    assert done == sorted(set(done))
    assert done[-1] == len(data)
    assert {total for _, total in calls} == {len(data)}

    job_id, _ = await finished_job(client, fake)
    callback, calls = progress_recorder(kind)
    song = await client.music.download(job_id, tmp_path, file_format="wav", on_progress=callback)
    assert calls[-1] == (song.stat().st_size, song.stat().st_size)


async def test_download_waits_for_a_job_that_is_just_completing(client, fake, tmp_path):
    submission = await client.music.create_song(PROMPT)  # completes after 0.3 s
    path = await client.music.download(submission.jobs[0], tmp_path, file_format="wav")
    assert path.name == f"{submission.item_ids[0]}.wav"
    check_wav(path.read_bytes())
    assert len(link_requests(fake)) >= 2


async def test_download_url_retries_an_early_404(client, fake):
    job_id, item_id = await finished_job(client, fake)
    fake.inject("GET", "/music/download/*", status=404, times=1)
    link = await client.music.download_url(job_id)
    assert item_id in link.url
    assert len(link_requests(fake)) == 2


@pytest.mark.fake(job_duration=60)
async def test_download_gives_up_on_a_job_that_stays_generating(
    client, fake, tmp_path, monkeypatch
):
    monkeypatch.setattr(_protocol, "DOWNLOAD_LINK_GRACE_SECONDS", 0.6)
    job_id = (await client.music.create_song(PROMPT)).jobs[0]
    with pytest.raises(BadRequestError) as info:
        await client.music.download(job_id, tmp_path)
    assert info.value.message == "Generation is not completed yet (0)"
    assert len(link_requests(fake)) >= 2
    assert files_in(tmp_path) == []
    assert media_requests(fake) == []


@pytest.mark.fake(job_duration=60)
async def test_download_of_a_failed_job_raises_at_once(client, fake, tmp_path):
    job_id = (await client.music.create_song(PROMPT)).jobs[0]
    fake.fail(job_id)
    with pytest.raises(BadRequestError, match=r"not completed yet \(10\)"):
        await client.music.download_url(job_id)
    assert len(link_requests(fake)) == 1


@pytest.mark.parametrize("existing", [False, True])
async def test_an_interrupted_download_leaves_nothing(fake, tmp_path, existing):
    if existing:
        (tmp_path / "keep.mp3").write_bytes(b"the old file")
    async with fake.client(max_retries=0) as client:
        job_id, _ = await finished_job(client, fake)
        fake.inject("GET", "/cdn/*", truncate=True, times=1)
        dest = tmp_path / "keep.mp3" if existing else tmp_path
        with pytest.raises(APIConnectionError):
            await client.music.download(job_id, dest)
    assert files_in(tmp_path) == (["keep.mp3"] if existing else [])
    if existing:
        assert (tmp_path / "keep.mp3").read_bytes() == b"the old file"
    assert len(media_requests(fake)) == 1


async def test_an_interrupted_download_is_retried(client, fake, tmp_path, quick_retries):
    job_id, item_id = await finished_job(client, fake)
    fake.inject("GET", "/cdn/*", truncate=True, times=2)
    path = await client.music.download(job_id, tmp_path, file_format="stems")
    assert files_in(tmp_path) == [f"{item_id}.zip"]
    assert len(media_requests(fake)) == 3
    link = await client.music.download_url(job_id, file_format="stems")
    assert path.read_bytes() == await raw_get(link.url)
    check_zip(path.read_bytes())


async def test_cancelled_while_waiting_for_the_response(client, fake, tmp_path):
    job_id, _ = await finished_job(client, fake)
    fake.inject("GET", "/cdn/*", delay=2.0)
    with anyio.move_on_after(0.2) as scope:
        await client.music.download(job_id, tmp_path)
    assert scope.cancelled_caught
    assert files_in(tmp_path) == []


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_cancelled_mid_body(client, fake, tmp_path, kind):
    """on_progress (sync, or async with a checkpoint of its own) cancels after the first chunk."""
    size = 3_000_000
    url = fake.add_media("big.bin", os.urandom(size))
    scope, calls = anyio.CancelScope(), []

    def sync(done, total):
        calls.append(done)
        scope.cancel()

    async def asynchronous(done, total):
        await anyio.lowlevel.checkpoint()
        sync(done, total)

    with scope:
        await client.download_file(
            url, tmp_path, on_progress=sync if kind == "sync" else asynchronous
        )
    assert files_in(tmp_path) == []
    assert scope.cancelled_caught
    assert 0 < calls[-1] < size


@pytest.mark.parametrize(
    ("name", "url_path", "expected"),
    [
        ("take-1.wav", "take-1.wav", "take-1.wav"),
        ("mixes/final mix.mp3", "mixes/final%20mix.mp3?sig=abc&exp=9", "final_mix.mp3"),
    ],
)
async def test_download_file_names_by_the_last_url_segment(
    client, fake, tmp_path, name, url_path, expected
):
    data = sample_audio(0.1)
    fake.add_media(name, data)
    url = f"{fake.media_url}/files/{url_path}"
    path = await client.download_file(url, tmp_path)
    assert path == tmp_path / expected
    assert path.read_bytes() == data
    assert files_in(tmp_path) == [expected]
    assert "Authorization" not in media_requests(fake)[-1].headers


async def test_download_file_of_a_stems_split(client, fake, tmp_path):
    split = await client.music.split_stems(sample_audio(0.2), content_type="audio/wav")
    path = await client.download_file(split.stems_zip_url, tmp_path)
    assert path.parent == tmp_path
    assert path.suffix == ".zip"
    assert split.stems_zip_url.endswith("/" + path.name)
    check_zip(path.read_bytes())


@pytest.mark.parametrize(
    ("stored", "segment"),
    [
        ("../../evil.wav", "../../evil.wav"),
        ("../../evil.wav", "..%2F..%2Fevil.wav"),
        ("..\\..\\evil.wav", "..%5C..%5Cevil.wav"),
    ],
)
async def test_download_file_never_writes_outside_the_folder(
    client, fake, tmp_path, stored, segment
):
    out = tmp_path / "a" / "b" / "out"
    out.mkdir(parents=True)
    fake.add_media(stored, b"evil bytes")
    path = await client.download_file(f"{fake.media_url}/files/{segment}", out)
    assert path.parent == out
    assert path.read_bytes() == b"evil bytes"
    assert files_in(tmp_path) == ["a", "a/b", "a/b/out", f"a/b/out/{path.name}"]
    assert "evil" in path.name
    assert ".." not in path.name


# -------------------------------------------------------------------------- uploads

ENDPOINTS = {
    "midi": "/music/midi/",
    "clone": "/music/cloned-voices/",
    "stems": "/music/stems-splitter/",
}
RESULTS = {"midi": MidiUpload, "clone": VoiceClone, "stems": StemsSplit}


async def upload(client, kind, source, **options):
    if kind == "midi":
        return await client.midi.upload(source, name="My upload", **options)
    if kind == "clone":
        return await client.voices.clone(source, name="My upload", **options)
    return await client.music.split_stems(source, **options)


def open_files():
    """The paths this process holds open (Linux); empty where that cannot be known."""
    folder = "/proc/self/fd"
    found = set()
    for fd in os.listdir(folder) if os.path.isdir(folder) else []:
        with contextlib.suppress(OSError):
            found.add(os.readlink(f"{folder}/{fd}"))
    return found


def uploaded(fake, kind):
    """The upload request the fake received, checked for its query string."""
    request = fake.requests_to("POST", ENDPOINTS[kind])[-1]
    name = {} if kind == "stems" else {"name": "My upload"}
    assert dict(request.query) == {**name, "user_id": DEFAULT_USER}
    return request


@pytest.mark.parametrize("source", ["str", "pathlib", "file"])
@pytest.mark.parametrize(
    ("kind", "filename", "content_type"),
    [
        ("midi", "riff.mid", "audio/midi"),
        ("midi", "riff.midi", "audio/midi"),
        ("clone", "voice.mp3", "audio/mpeg"),
        ("clone", "voice.wav", "audio/wav"),
        ("clone", "voice.m4a", "audio/mp4"),
        ("clone", "voice.flac", "audio/flac"),
        ("stems", "mix.wav", "audio/wav"),
        ("stems", "mix.M4A", "audio/mp4"),
    ],
)
async def test_upload_from_disk(client, fake, tmp_path, source, kind, filename, content_type):
    data = sample_midi() if kind == "midi" else sample_audio(0.2)
    path = tmp_path / filename
    path.write_bytes(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        if source == "file":
            with path.open("rb") as stream:
                result = await upload(client, kind, stream, user_id=DEFAULT_USER)
                assert not stream.closed  # the caller's file stays the caller's
        else:
            given = str(path) if source == "str" else pathlib.Path(path)
            result = await upload(client, kind, given, user_id=DEFAULT_USER)
        left_open = str(path) in open_files()
        await anyio.sleep(0.02)
        gc.collect()
    # The file the SDK opened is closed by the SDK when the upload returns, not left to the
    # garbage collector (which warns "unclosed file").
    assert not left_open
    assert [str(warning.message) for warning in caught] == []
    assert isinstance(result, RESULTS[kind])
    request = uploaded(fake, kind)
    assert request.body == data
    assert request.headers["Content-Type"] == content_type
    if source != "file":
        assert request.headers["Content-Length"] == str(len(data))


@pytest.mark.parametrize(
    ("kind", "wrap", "content_type", "sent_type"),
    [
        ("midi", bytes, None, "audio/midi"),
        ("midi", io.BytesIO, "audio/x-midi", "audio/x-midi"),
        ("clone", bytes, "audio/x-m4a", "audio/x-m4a"),
        ("clone", io.BytesIO, "audio/wave", "audio/wave"),
        ("stems", bytearray, "audio/flac", "audio/flac"),
        ("stems", memoryview, "audio/mpeg", "audio/mpeg"),
    ],
)
async def test_upload_from_memory(client, fake, kind, wrap, content_type, sent_type):
    data = sample_midi() if kind == "midi" else sample_audio(0.2)
    result = await upload(client, kind, wrap(data), content_type=content_type, user_id=DEFAULT_USER)
    assert isinstance(result, RESULTS[kind])
    request = uploaded(fake, kind)
    assert (request.body, request.headers["Content-Type"]) == (data, sent_type)
