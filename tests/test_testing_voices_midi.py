"""Artist voices, cloned voices, MIDI files and the stems splitter."""

from __future__ import annotations

import io
import re
import wave
import zipfile

import anyio
import pytest
from conftest import DEFAULT_USER

from tempolor_async.testing import sample_audio, sample_midi

pytestmark = pytest.mark.anyio

AUDIO_TYPES = [
    "audio/mp4",
    "audio/x-m4a",
    "audio/mpeg",
    "audio/wav",
    "audio/wave",
    "audio/flac",
    "audio/x-flac",
]
ARTIST_KEYS = {
    "ucid", "bizType", "itemId", "name", "resourceUrl", "coverUrl", "vocalUrl", "weight",
    "isAddRel", "relSource", "labels",
}  # fmt: skip
CLONED_KEYS = {
    "isAddRel", "relSource", "ucid", "bizType", "operatorType", "itemId", "rootItemId",
    "parentItemId", "name", "resourceUrl", "coverUrl", "readStatus", "status", "vocalUrl",
    "createTime", "updateTime", "labels", "clonedVoiceItemId",
}  # fmt: skip
PENDING_MESSAGE = "Voice cloning is still processing after 120 seconds. Please check back later."


async def _clone(api, name="My Voice", content_type="audio/wav", data=None):
    return await api(
        "POST",
        "/music/cloned-voices/",
        params={"name": name},
        data=sample_audio(0.2) if data is None else data,
        headers={"Content-Type": content_type},
    )


async def _upload_midi(api, name="Piano Composition", content_type="audio/midi", data=None):
    return await api(
        "POST",
        "/music/midi/",
        params={"name": name},
        data=sample_midi() if data is None else data,
        headers={"Content-Type": content_type},
    )


async def _pages(api, path):
    pages, params = [], None
    while True:
        status, page = await api("GET", path, params=params)
        assert status == 200, page
        pages.append(page)
        if not page["hasNext"]:
            return pages
        params = {"cursor": page["cursor"]}


# ------------------------------------------------------------------ artist voices


async def test_artist_voice_catalogue_pages(api, fake):
    pages = await _pages(api, "/music/artist-voices/")
    records = [record for page in pages for record in page["records"]]
    assert [len(page["records"]) for page in pages[:-1]] == [fake.page_size] * (len(pages) - 1)
    assert len(pages) >= 2
    assert pages[-1]["cursor"] == ""
    assert all(isinstance(page["sysTime"], int) for page in pages)
    assert all(set(record) == ARTIST_KEYS for record in records)
    ids = [record["itemId"] for record in records]
    assert len(set(ids)) == len(ids)
    weights = [record["weight"] for record in records]
    assert weights == sorted(weights, reverse=True)


@pytest.mark.fake(page_size=5)
async def test_artist_voice_page_size_follows_the_fake(api):
    status, page = await api("GET", "/music/artist-voices/")
    assert (status, len(page["records"]), page["hasNext"]) == (200, 5, True)
    _, second = await api("GET", "/music/artist-voices/", params={"cursor": page["cursor"]})
    assert {r["itemId"] for r in page["records"]}.isdisjoint(r["itemId"] for r in second["records"])


async def test_an_artist_voice_can_be_used_for_a_song(api):
    _, page = await api("GET", "/music/artist-voices/")
    voice = page["records"][0]["itemId"]
    assert len(await api.generate(artistVoiceItemId=voice)) == 2


# ------------------------------------------------------------------ cloned voices


async def test_clone_a_voice_then_list_use_and_delete_it(api):
    status, body = await _clone(api, name="Deep Test Voice")
    assert status == 200
    assert set(body) == {"result", "itemId", "clonedVoiceItemId"}
    assert body["result"] is True
    voice_id = body["clonedVoiceItemId"]
    assert voice_id == f"user:12345-tempolor:{DEFAULT_USER}-voice:{body['itemId']}"

    _, listed = await api("GET", "/music/cloned-voices/")
    assert (listed["hasNext"], listed["cursor"]) == (False, "")
    [record] = listed["records"]
    assert set(record) == CLONED_KEYS
    assert (record["clonedVoiceItemId"], record["name"], record["status"]) == (
        voice_id,
        "Deep Test Voice",
        30,
    )
    status, _, sample = await api.fetch(record["vocalUrl"])
    assert (status, sample) == (200, sample_audio(0.2))

    song = await api.job((await api.generate(clonedVoiceItemId=voice_id))[0])
    assert song["ltmMaterialExtendDto"]["ltmVocalModel"] is True

    assert await api("DELETE", f"/music/cloned-voices/{voice_id}") == (200, {"result": True})
    missing = (404, {"error": f"No record found for {voice_id}", "code": 404})
    assert await api("DELETE", f"/music/cloned-voices/{voice_id}") == missing
    assert (await api("GET", "/music/cloned-voices/"))[1]["records"] == []
    gone = await api("POST", "/music/song", json={"prompt": "x", "clonedVoiceItemId": voice_id})
    assert gone == (404, {"error": "The source material does not exist.", "code": 404})


async def test_every_documented_audio_content_type_is_accepted(api):
    for content_type in AUDIO_TYPES:
        status, body = await _clone(api, name=content_type, content_type=content_type)
        assert status == 200, (content_type, body)
    _, listed = await api("GET", "/music/cloned-voices/")
    assert sorted(record["name"] for record in listed["records"]) == sorted(AUDIO_TYPES)


@pytest.mark.parametrize("content_type", ["text/plain", "audio/midi", "application/json", ""])
async def test_clone_rejects_other_content_types(api, fake, content_type):
    status, body = await _clone(api, content_type=content_type)
    assert status == 400
    assert body["code"] == 400
    assert "Content-Type" in body["error"]
    assert fake.cloned_voices == {}


async def test_clone_needs_a_file_and_a_name(api, fake):
    assert await _clone(api, data=b"") == (400, {"error": "Empty file received", "code": 400})
    for name in ("", "   "):
        status, body = await _clone(api, name=name)
        assert status == 400
        assert "name" in body["error"]
    assert fake.cloned_voices == {}


@pytest.mark.fake(voice_clone_pending=True, job_duration=0.2)
async def test_slow_cloning_answers_the_documented_202(api):
    status, body = await _clone(api)
    assert status == 202
    assert set(body) == {"itemId", "clonedVoiceItemId", "message"}
    assert body["message"] == PENDING_MESSAGE
    _, listed = await api("GET", "/music/cloned-voices/")
    assert [(r["clonedVoiceItemId"], r["status"]) for r in listed["records"]] == [
        (body["clonedVoiceItemId"], 0)
    ]
    with anyio.fail_after(5):  # "check back later": the voice becomes ready
        while listed["records"][0]["status"] != 30:
            await anyio.sleep(0.02)
            _, listed = await api("GET", "/music/cloned-voices/")


@pytest.mark.parametrize("voice_id", ["abcdef123456789", "user:12345-tempolor:1-midi:abc"])
async def test_delete_voice_with_a_malformed_id_is_400(api, voice_id):
    assert await api("DELETE", f"/music/cloned-voices/{voice_id}") == (
        400,
        {"error": "clonedVoiceItemId has incorrect format", "code": 400},
    )


@pytest.mark.fake(page_size=2)
async def test_cloned_voices_page_newest_first(api):
    ids = [(await _clone(api, name=f"voice {index}"))[1]["clonedVoiceItemId"] for index in range(3)]
    pages = await _pages(api, "/music/cloned-voices/")
    assert [[r["clonedVoiceItemId"] for r in page["records"]] for page in pages] == [
        ids[:0:-1],
        ids[:1],
    ]


# ------------------------------------------------------------------------ MIDI


async def test_upload_list_use_and_delete_midi(api):
    status, first = await _upload_midi(api, name="Piano Composition")
    assert status == 200
    assert set(first) == {"isFirst", "midiRenderVO"}
    assert first["isFirst"] is True
    midi = first["midiRenderVO"]
    assert set(midi) == {"opType", "ucid", "midiItemId", "name", "midiUrl"}
    assert (midi["opType"], midi["name"]) == ("upload", "Piano Composition")
    assert re.fullmatch(rf"user:12345-tempolor:{DEFAULT_USER}-midi:\w+", midi["midiItemId"])
    assert await api.fetch(midi["midiUrl"]) == (200, "audio/midi", sample_midi())

    status, second = await _upload_midi(api, name="Guitar", content_type="audio/x-midi")
    assert (status, second["isFirst"]) == (200, False)
    _, listed = await api("GET", "/music/midi/")
    assert listed["records"] == [second["midiRenderVO"], midi]
    assert (listed["hasNext"], listed["cursor"]) == (False, "")

    song = await api.job((await api.generate(midiItemId=midi["midiItemId"]))[0])
    assert song["ltmMaterialExtendDto"]["ltmMidiModel"] is True

    midi_id = midi["midiItemId"]
    assert await api("DELETE", f"/music/midi/{midi_id}") == (200, {"result": True})
    missing = (404, {"error": f"No record found for {midi_id}", "code": 404})
    assert await api("DELETE", f"/music/midi/{midi_id}") == missing
    assert (await api("GET", "/music/midi/"))[1]["records"] == [second["midiRenderVO"]]


@pytest.mark.parametrize("content_type", ["audio/mpeg", "application/octet-stream", ""])
async def test_midi_upload_needs_a_midi_content_type(api, fake, content_type):
    assert await _upload_midi(api, content_type=content_type) == (
        400,
        {"error": "Content-Type must be audio/midi or audio/x-midi", "code": 400},
    )
    assert fake.midi_files == {}


async def test_midi_upload_needs_a_name_and_a_midi_file(api, fake):
    assert (await _upload_midi(api, name=" "))[0] == 400
    assert await _upload_midi(api, data=b"") == (400, {"error": "Empty file received", "code": 400})
    assert (await _upload_midi(api, data=b"not a midi file"))[0] == 400
    assert fake.midi_files == {}


@pytest.mark.parametrize("midi_id", ["abcdef123456789", "user:12345-tempolor:1-voice:abc"])
async def test_delete_midi_with_a_malformed_id_is_400(api, midi_id):
    assert await api("DELETE", f"/music/midi/{midi_id}") == (
        400,
        {"error": "midiItemId has incorrect format", "code": 400},
    )


# --------------------------------------------------------------- stems splitter


async def test_stems_splitter_returns_a_real_zip(api, fake):
    status, body = await api(
        "POST",
        "/music/stems-splitter/",
        data=sample_audio(0.3),
        headers={"Content-Type": "audio/mpeg"},
    )
    assert status == 200
    assert (body["state"], body["title"]) == (2, "audio_file.mp3")
    assert body["stemsZipUrl"].startswith(fake.media_url + "/")
    status, content_type, data = await api.fetch(body["stemsZipUrl"])
    assert (status, content_type) == (200, "application/zip")
    assert "Authorization" not in fake.requests[-1].headers
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = [name for name in archive.namelist() if name.endswith(".wav")]
        assert len(members) >= 2
        for name in members:
            with wave.open(io.BytesIO(archive.read(name))) as audio:
                assert audio.getnframes() > 0


async def test_stems_splitter_checks_the_upload(api):
    url = "/music/stems-splitter/"
    status, body = await api("POST", url, data=b"x", headers={"Content-Type": "text/plain"})
    assert (status, body["code"]) == (400, 400)
    status, body = await api("POST", url, data=b"", headers={"Content-Type": "audio/wav"})
    assert (status, body) == (400, {"error": "Empty file received", "code": 400})
