"""The simulator's media behave like the service's CDN: each job of a generation has its own
audio and title, tracks last ``audio_seconds``, byte ranges are answered, and a link's
``auth_key`` expires. Its JSON is compact, as the service sends it."""

from __future__ import annotations

import io
import itertools
import json
import re
import struct
import time
import wave
import zipfile
from urllib.parse import parse_qs, urlsplit, urlunsplit

import aiohttp
import anyio
import pytest
from aiohttp import web

from tempolor_async.testing import FakeTempolor

pytestmark = pytest.mark.anyio

MP3_FRAME_BYTES = 384
MP3_FRAME_SECONDS = 1152 / 48_000


async def _completed_pair(api, fake, **fields):
    jobs = await api.generate(**fields)
    for job_id in jobs:
        fake.complete(job_id)
    return jobs


async def _link(api, job_id, file_format="mp3"):
    status, link = await api(
        "GET", f"/music/download/{job_id}", params={"file_format": file_format}
    )
    assert status == 200, link
    return link["url"]


async def _get(url, headers=None):
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, response.headers, await response.read()


def _wav_frames(data):
    with wave.open(io.BytesIO(data)) as audio:
        return audio.getframerate(), audio.readframes(audio.getnframes())


def _id3_title(data):
    assert data[:3] == b"ID3"
    size = sum(byte << shift for byte, shift in zip(data[6:10], (21, 14, 7, 0), strict=True))
    tag = data[10 : 10 + size]
    assert tag[:4] == b"TIT2"
    length = struct.unpack(">I", tag[4:8])[0]
    return tag[10 : 10 + length][1:].decode("utf-16"), data[10 + size :]


@pytest.mark.fake(job_duration=60, audio_seconds=0.5)
async def test_each_job_of_a_generation_has_its_own_audio_and_title(api, fake):
    first, second = await _completed_pair(api, fake, prompt="big band noir, action theme.")
    records = [await api.job(job_id) for job_id in (first, second)]
    titles = [record["titleEn"] for record in records]
    assert titles[0] != titles[1]
    assert all(re.fullmatch(r"Big Band Noir Action \(\w+\)", title) for title in titles), titles

    mp3s = [(await _get(await _link(api, job_id)))[2] for job_id in (first, second)]
    assert mp3s[0] != mp3s[1]
    for data, title in zip(mp3s, titles, strict=True):
        tagged, frames = _id3_title(data)
        assert tagged == title
        assert frames[:2] == b"\xff\xfb"
        assert len(frames) % MP3_FRAME_BYTES == 0
    # The audio frames differ too, not only the tags.
    assert _id3_title(mp3s[0])[1] != _id3_title(mp3s[1])[1]

    wavs = [(await _get(await _link(api, job_id, "wav")))[2] for job_id in (first, second)]
    assert _wav_frames(wavs[0])[1] != _wav_frames(wavs[1])[1]

    zips = [(await _get(await _link(api, job_id, "stems")))[2] for job_id in (first, second)]
    stems = []
    for data in zips:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            assert archive.testzip() is None
            stems.append({name: _wav_frames(archive.read(name))[1] for name in archive.namelist()})
    assert stems[0].keys() == stems[1].keys()
    assert all(stems[0][name] != stems[1][name] for name in stems[0])


def _pitch_changes(frames, rate):
    """How many distinct pitches (zero crossings per 0.1 s window) the samples show."""
    samples = struct.unpack(f"<{len(frames) // 2}h", frames)
    window = rate // 10
    counts = set()
    for start in range(0, len(samples) - window, window):
        chunk = samples[start : start + window]
        crossings = sum(1 for a, b in itertools.pairwise(chunk) if (a < 0) != (b < 0))
        counts.add(round(crossings / 10))
    return len(counts)


@pytest.mark.fake(job_duration=60, audio_seconds=2.0)
async def test_a_wav_plays_a_melody_not_one_tone(api, fake):
    job_id = (await _completed_pair(api, fake))[0]
    rate, frames = _wav_frames((await _get(await _link(api, job_id, "wav")))[2])
    assert _pitch_changes(frames, rate) >= 3


@pytest.mark.fake(job_duration=60, audio_seconds=4.0)
async def test_an_mp3_plays_a_melody_not_silence(api, fake):
    job_id = (await _completed_pair(api, fake))[0]
    frames = _id3_title((await _get(await _link(api, job_id)))[2])[1]
    starts = range(0, len(frames), MP3_FRAME_BYTES)
    # All-zero side information (the 17 bytes after the header) is silence.
    assert all(frames[start + 4 : start + 21] != bytes(17) for start in starts)
    # Each note is its own spectral line, coded in the side information and main data.
    notes = {frames[start + 4 : start + 40] for start in starts}
    assert len(notes) >= 3


@pytest.mark.parametrize("seconds", [1.0, 7.5])
async def test_audio_seconds_sets_the_length_of_every_file(seconds):
    fake = FakeTempolor(job_duration=60, audio_seconds=seconds)
    async with fake, aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {fake.token}"}
        async with session.post(
            fake.base_url + "/music/song", json={"prompt": "a piece"}, headers=headers
        ) as response:
            job_id = (await response.json())["jobs"][0]
        fake.complete(job_id)
        async with session.get(f"{fake.base_url}/music/{job_id}", headers=headers) as r:
            assert (await r.json())["musicMaterial"]["dur"] == round(seconds)
        files = {}
        for file_format in ("mp3", "wav", "stems"):
            async with session.get(
                f"{fake.base_url}/music/download/{job_id}",
                params={"file_format": file_format},
                headers=headers,
            ) as response:
                url = (await response.json())["url"]
            async with session.get(url) as response:
                files[file_format] = await response.read()
    rate, frames = _wav_frames(files["wav"])
    assert len(frames) / 2 / rate == pytest.approx(seconds, abs=0.01)
    mp3_frames = _id3_title(files["mp3"])[1]
    assert len(mp3_frames) // MP3_FRAME_BYTES * MP3_FRAME_SECONDS == pytest.approx(
        seconds, abs=MP3_FRAME_SECONDS
    )
    with zipfile.ZipFile(io.BytesIO(files["stems"])) as archive:
        for name in archive.namelist():
            rate, frames = _wav_frames(archive.read(name))
            assert len(frames) / 2 / rate == pytest.approx(seconds, abs=0.01)


@pytest.mark.fake(job_duration=60, audio_seconds=0.5)
@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, None),
        ("bytes=-50", -50, None),
        ("bytes=10-10", 10, 10),
        ("bytes=5-999999999", 5, None),
    ],
)
async def test_a_range_request_gets_206_with_the_range(api, fake, header, first, last):
    job_id = (await _completed_pair(api, fake))[0]
    url = await _link(api, job_id)
    status, headers, whole = await _get(url)
    assert status == 200
    assert headers["Accept-Ranges"] == "bytes"
    size = len(whole)
    status, headers, part = await _get(url, {"Range": header})
    assert status == 206
    start = first % size
    end = size - 1 if last is None else last
    assert part == whole[start : end + 1]
    assert headers["Content-Range"] == f"bytes {start}-{end}/{size}"
    assert int(headers["Content-Length"]) == end + 1 - start
    assert headers["Content-Type"] == "audio/mpeg"


@pytest.mark.fake(job_duration=60, audio_seconds=0.5)
async def test_a_range_past_the_end_is_416(api, fake):
    job_id = (await _completed_pair(api, fake))[0]
    url = await _link(api, job_id, "wav")
    size = len((await _get(url))[2])
    status, headers, _ = await _get(url, {"Range": f"bytes={size}-"})
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{size}"
    # A resumed download that already has everything asks exactly this.
    status, headers, part = await _get(url, {"Range": f"bytes={size - 4}-"})
    assert (status, len(part)) == (206, 4)


@pytest.mark.fake(job_duration=60, audio_seconds=0.5, download_url_expiry=1)
async def test_a_link_expires_after_download_url_expiry(api, fake):
    job_id = (await _completed_pair(api, fake))[0]
    url = await _link(api, job_id)
    expires = int(parse_qs(urlsplit(url).query)["auth_key"][0].split("-")[0])
    assert expires - time.time() <= 1 + 1
    assert (await _get(url))[0] == 200
    await anyio.sleep(max(0.0, expires - time.time()) + 0.05)
    status, _, body = await _get(url)
    assert status == 403
    assert b"403" in body
    # A fresh link works again.
    assert (await _get(await _link(api, job_id)))[0] == 200


@pytest.mark.fake(job_duration=60, audio_seconds=0.5)
async def test_a_track_needs_its_own_signed_auth_key(api, fake):
    first, second = await _completed_pair(api, fake)
    url = await _link(api, first)
    parts = urlsplit(url)
    assert (await _get(urlunsplit(parts._replace(query=""))))[0] == 403
    key = parse_qs(parts.query)["auth_key"][0]
    tampered = key[:-1] + ("0" if key[-1] != "0" else "1")
    assert (await _get(urlunsplit(parts._replace(query=f"auth_key={tampered}"))))[0] == 403
    later = str(int(key.split("-")[0]) + 3600) + key[key.index("-") :]
    assert (await _get(urlunsplit(parts._replace(query=f"auth_key={later}"))))[0] == 403
    # The key of one track does not open another.
    other = urlsplit(await _link(api, second))
    assert (await _get(urlunsplit(other._replace(query=parts.query))))[0] == 403


# ------------------------------------------------------------------ compact JSON


async def _raw(fake, method, path, **kwargs):
    headers = {"Authorization": f"Bearer {fake.token}", **kwargs.pop("headers", {})}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, fake.base_url + path, headers=headers, **kwargs) as response,
    ):
        return response.status, await response.read()


def _compact(payload):
    return json.dumps(payload, separators=(",", ":")).encode()


@pytest.mark.fake(job_duration=60)
async def test_json_answers_are_compact(api, fake):
    jobs = await api.generate()
    fake.complete(jobs[0])
    status, body = await _raw(fake, "DELETE", f"/music/{jobs[1]}")
    assert (status, body) == (200, b'{"result":true}')
    status, body = await _raw(fake, "GET", "/accounts", headers={"Authorization": "Bearer no"})
    assert (status, body) == (401, b'{"error":"Unauthorized","code":401}')
    status, body = await _raw(fake, "GET", f"/music/{jobs[1]}")
    assert status == 404
    assert body == _compact({"error": f"No record found for {jobs[1]}", "code": 404})
    for path in (
        f"/music/{jobs[0]}",
        f"/music/download/{jobs[0]}",
        "/music/?type=song",
        "/accounts",
        "/scheduler/",
        "/scheduler/available",
        "/music/artist-voices/",
    ):
        status, body = await _raw(fake, "GET", path)
        assert status == 200, (path, body)
        assert body == _compact(json.loads(body)), path
    status, body = await _raw(fake, "POST", "/music/song", json={"prompt": "x", "bpm": 1})
    assert status == 200
    assert body.startswith(b'{"result":true,"itemIds":[')
    status, body = await _raw(fake, "POST", "/music/song", json={})
    assert (status, body) == (400, b'{"error":"Parameter prompt is required","code":400}')


async def test_callbacks_and_injected_bodies_are_compact_json():
    bodies = []
    both_final = anyio.Event()

    async def collect(request):
        bodies.append(await request.read())
        if sum(b'"status_final":true' in body for body in bodies) == 2:
            both_final.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", collect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with FakeTempolor(job_duration=0.2) as fake:
            hook = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
            status, _ = await _raw(
                fake, "POST", "/music/song", json={"prompt": "x", "replyUrl": hook}
            )
            assert status == 200
            with anyio.fail_after(10):
                await both_final.wait()
            fake.inject("GET", "/accounts", status=429)
            status, body = await _raw(fake, "GET", "/accounts")
            fake.inject("GET", "/accounts", status=503, body={"error": "busy", "code": 503})
            assert (await _raw(fake, "GET", "/accounts"))[1] == b'{"error":"busy","code":503}'
    finally:
        await runner.cleanup()
    assert all(body == _compact(json.loads(body)) for body in bodies)
    assert status == 429
    assert body == _compact(json.loads(body))


@pytest.mark.fake(job_duration=60, max_jobs=2)
async def test_a_busy_answer_is_compact_and_in_the_documented_order(api, fake):
    await api.generate()
    status, body = await _raw(fake, "POST", "/music/song", json={"prompt": "x"})
    assert status == 429
    assert body.startswith(b'{"error":"Account is busy executing 2 jobs","runningJobs":{"')
    assert body.endswith(b'}]},"code":429}')
    assert body == _compact(json.loads(body))
