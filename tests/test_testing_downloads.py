"""GET music/download/{job_id} and the media it links to: real MP3, WAV and ZIP-of-WAV files
served by the fake at URLs that need no token."""

from __future__ import annotations

import io
import wave
import zipfile
from urllib.parse import urlsplit

import anyio
import pytest
from conftest import DEFAULT_USER

pytestmark = [pytest.mark.anyio, pytest.mark.fake(job_duration=60, audio_seconds=0.5)]

MP3_FRAME_BYTES = 384  # 128 kbit/s at 48 kHz, as the fake encodes


async def _media(api, fake, job_id, file_format=None):
    """Ask for the download link, check it, fetch it without a token; return the bytes."""
    params = {"file_format": file_format} if file_format else None
    status, link = await api("GET", f"/music/download/{job_id}", params=params)
    assert status == 200, link
    assert set(link) == {"url", "remainSeconds"}
    assert link["remainSeconds"] == fake.download_url_expiry
    assert link["url"].startswith(fake.media_url + "/")
    status, content_type, data = await api.fetch(link["url"])
    assert status == 200
    request = fake.requests[-1]
    assert request.path == urlsplit(link["url"]).path
    assert "Authorization" not in request.headers
    return link["url"], content_type, data


@pytest.mark.parametrize("file_format", [None, "mp3", "wav", "stems"])
async def test_download_before_completion_is_the_documented_400(api, file_format):
    job_id = (await api.generate())[0]
    params = {"file_format": file_format} if file_format else None
    status, body = await api("GET", f"/music/download/{job_id}", params=params)
    assert (status, body) == (400, {"error": "Generation is not completed yet (0)", "code": 400})


async def test_download_of_a_failed_job_is_400_with_its_status(api, fake):
    job_id = (await api.generate())[0]
    fake.fail(job_id)
    status, body = await api("GET", f"/music/download/{job_id}")
    assert (status, body) == (400, {"error": "Generation is not completed yet (10)", "code": 400})


async def test_download_of_unknown_or_malformed_job_ids(api):
    unknown = f"user:12345-tempolor:{DEFAULT_USER}-job:abcdef123456789"
    assert await api("GET", f"/music/download/{unknown}") == (
        404,
        {"error": f"No record found for {unknown}", "code": 404},
    )
    assert await api("GET", "/music/download/abcdef123456789") == (
        400,
        {"error": "job_id has incorrect format", "code": 400},
    )


async def test_an_unsupported_file_format_is_400(api, fake):
    job_id = (await api.generate())[0]
    fake.complete(job_id)
    status, body = await api("GET", f"/music/download/{job_id}", params={"file_format": "flac"})
    assert status == 400
    assert "file_format" in body["error"]


async def test_mp3_is_an_id3_tag_then_mpeg_frames(api, fake):
    job_id = (await api.generate(prompt="sunset synth drive"))[0]
    fake.complete(job_id)
    record = await api.job(job_id)
    url, content_type, data = await _media(api, fake, job_id)
    assert urlsplit(url).path.endswith(f"/{record['itemId']}.mp3")
    assert content_type == "audio/mpeg"
    assert data[:3] == b"ID3"
    size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]  # syncsafe
    assert record["titleEn"].encode("utf-16") in data[10 : 10 + size]
    frames = data[10 + size :]
    assert frames[:2] == bytes((0xFF, 0xFB))
    assert len(frames) % MP3_FRAME_BYTES == 0
    starts = range(0, len(frames), MP3_FRAME_BYTES)
    assert len(starts) >= 10
    assert all(frames[start : start + 2] == b"\xff\xfb" for start in starts)
    assert (await _media(api, fake, job_id, "mp3"))[2] == data


async def test_wav_is_a_real_pcm_file(api, fake):
    job_id = (await api.generate())[0]
    fake.complete(job_id)
    url, content_type, data = await _media(api, fake, job_id, "wav")
    assert url.split("?")[0].endswith(".wav")
    assert content_type == "audio/wav"
    with wave.open(io.BytesIO(data)) as audio:
        assert (audio.getnchannels(), audio.getsampwidth()) == (1, 2)
        assert audio.getnframes() / audio.getframerate() == pytest.approx(fake.audio_seconds)
        assert any(audio.readframes(audio.getnframes()))  # a tone, not silence


async def test_stems_are_a_zip_of_wav_files(api, fake):
    job_id = (await api.generate())[0]
    fake.complete(job_id)
    url, content_type, data = await _media(api, fake, job_id, "stems")
    assert url.split("?")[0].endswith(".zip")
    assert content_type == "application/zip"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        members = [name for name in archive.namelist() if name.endswith(".wav")]
        assert len(members) >= 2
        for name in members:
            with wave.open(io.BytesIO(archive.read(name))) as audio:
                assert audio.getnframes() > 0


async def test_media_of_a_deleted_job_is_gone(api, fake):
    job_id = (await api.generate())[0]
    fake.complete(job_id)
    url, _, _ = await _media(api, fake, job_id, "wav")
    await api("DELETE", f"/music/{job_id}")
    status, _, _ = await api.fetch(url)
    assert status == 404


@pytest.mark.fake(download_lag=0.3)
async def test_download_lag_answers_404_for_a_while_after_completion(api, fake):
    job_id = (await api.generate())[0]
    fake.complete(job_id)
    status, body = await api("GET", f"/music/download/{job_id}")
    assert (status, body) == (404, {"error": f"No record found for {job_id}", "code": 404})
    status, record = await api("GET", f"/music/{job_id}")
    assert record["status"] == 30  # the record says COMPLETED all the while
    await anyio.sleep(0.35)
    status, link = await api("GET", f"/music/download/{job_id}")
    assert status == 200, link


@pytest.mark.fake(job_duration=0.2, download_lag=0.6)
async def test_download_lag_counts_from_a_natural_completion(fake):
    async with fake.client() as client:
        job_id = (await client.music.create_song("lagging")).jobs[0]
        job = await client.await_job(job_id, poll_interval=0.05)
        assert job.is_completed
        link = await client.music.download_url(job_id)  # 404s are retried for up to 10 s
    assert link.url
    answers = fake.requests_to("GET", f"/music/download/{job_id}")
    assert len(answers) >= 2  # at least one 404 before the link
