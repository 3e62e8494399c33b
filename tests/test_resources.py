"""Every endpoint of SPEC section 3 through the SDK against FakeTempolor: the models the SDK
returns, and what actually reached the simulator (method, path, query, body, headers)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from conftest import DEFAULT_USER

import tempolor_async as tp
from tempolor_async import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    FileFormat,
    InstrumentalModel,
    JobStatus,
    MusicType,
    NotFoundError,
    PaymentRequiredError,
    SongModel,
    TempolorClient,
    Tonality,
)
from tempolor_async.testing import sample_audio, sample_midi

pytestmark = pytest.mark.anyio

PROMPT = "a calm piano piece"
PENDING_MESSAGE = "Voice cloning is still processing after 120 seconds. Please check back later."


def sent(fake, method, path, *, query=None, json=None):
    """The last request for ``method path``: authorised, with exactly this query (and body)."""
    matching = fake.requests_to(method, path)
    assert matching, f"no {method} {path} reached the fake"
    request = matching[-1]
    assert request.headers["Authorization"] == f"Bearer {fake.token}"
    assert dict(request.query) == (query or {})
    if json is not None:
        assert request.headers["Content-Type"].startswith("application/json")
        assert request.json() == json
    return request


def check_submission(submission, fake, user_id=DEFAULT_USER):
    assert isinstance(submission, tp.Submission)
    assert submission.result is True
    assert (submission.total_num, submission.max_gen_count_at_once) == (3000, 10)
    assert submission.unlimited is False
    assert isinstance(submission.remain_num, int)
    assert submission.remain_seconds == 21533
    assert len(submission.jobs) == 2
    assert [job.rpartition("-job:")[2] for job in submission.jobs] == submission.item_ids
    assert all(f"-tempolor:{user_id}-job:" in job for job in submission.jobs)
    assert set(submission.jobs) <= set(fake.jobs)


async def clone_voice(client, name="My Voice"):
    return await client.voices.clone(sample_audio(0.2), name=name, content_type="audio/wav")


# ----------------------------------------------------------------------- accounts


async def test_accounts_list_and_get(client, fake):
    accounts = await client.accounts.list()
    sent(fake, "GET", "/accounts")
    assert list(accounts) == [DEFAULT_USER]
    account = accounts[DEFAULT_USER]
    assert isinstance(account, tp.Account)
    assert (account.user_id, account.max_jobs) == (DEFAULT_USER, 10)
    assert account.request_params == fake.accounts[DEFAULT_USER].request_params
    assert account.updated.tzinfo is not None
    assert account.updated == account.updated_utc
    assert "fake-ticket" not in repr(account)
    assert "fake-ticket" not in str(account)

    assert await client.accounts.get(DEFAULT_USER) == account
    sent(fake, "GET", f"/accounts/{DEFAULT_USER}")


async def test_accounts_list_is_empty_when_the_service_says_404(client, fake):
    fake.accounts.clear()
    assert await client.accounts.list() == {}
    assert len(fake.requests_to("GET", "/accounts")) == 1


@pytest.mark.parametrize("max_jobs", [None, 3])
async def test_accounts_create_is_create_or_update(client, fake, max_jobs):
    params = {"user_id": "777", "vip_type": 20, "service_ticket": "t1"}
    account = await client.accounts.create(params, max_jobs=max_jobs)
    body: dict[str, Any] = {"requestParams": params}
    if max_jobs is not None:
        body["maxJobs"] = max_jobs
    sent(fake, "POST", "/accounts", json=body)
    assert (account.user_id, account.max_jobs) == ("777", max_jobs or 10)
    assert account.request_params == params

    updated = await client.accounts.create({**params, "service_ticket": "t2"}, max_jobs=5)
    assert (updated.user_id, updated.max_jobs) == ("777", 5)
    assert updated.request_params["service_ticket"] == "t2"
    assert sorted(await client.accounts.list()) == sorted([DEFAULT_USER, "777"])


async def test_accounts_delete_then_not_found(client, fake):
    fake.add_account("777")
    assert await client.accounts.delete("777") is None
    sent(fake, "DELETE", "/accounts/777")
    assert "777" not in fake.accounts
    with pytest.raises(NotFoundError) as info:
        await client.accounts.get("777")
    assert info.value.message == "Configuration not found for user_id 777"


# --------------------------------------------------------------------- generation

SONG_CASES = [
    ({}, {}),
    ({"lyrics": "la la la", "model": SongModel.V3}, {"lyrics": "la la la", "model_song": "v3"}),
    ({"model": "v3.5"}, {"model_song": "v3.5"}),
    ({"model": "v9-future"}, {"model_song": "v9-future"}),
    ({"artist_voice_item_id": "voice_10002"}, {"artistVoiceItemId": "voice_10002"}),
    ({"max_jobs": 4, "reply_ref": "order-7"}, {"maxJobs": 4, "replyRef": "order-7"}),
    ({"user_id": DEFAULT_USER}, {"user_id": DEFAULT_USER}),
]


@pytest.mark.parametrize(("options", "wire"), SONG_CASES)
async def test_create_song_sends_the_documented_body(client, fake, options, wire):
    submission = await client.music.create_song(PROMPT, **options)
    sent(fake, "POST", "/music/song", json={"prompt": PROMPT, **wire})
    check_submission(submission, fake)
    job = fake.jobs[submission.jobs[0]]
    assert (job.kind, job.prompt, job.lyrics) == ("song", PROMPT, options.get("lyrics"))
    assert job.artist_voice_item_id == options.get("artist_voice_item_id")


async def test_create_song_with_a_cloned_voice_and_with_midi(client, fake):
    voice = await clone_voice(client)
    with_voice = await client.music.create_song(
        PROMPT, cloned_voice_item_id=voice.cloned_voice_item_id
    )
    wire = {"prompt": PROMPT, "clonedVoiceItemId": voice.cloned_voice_item_id}
    sent(fake, "POST", "/music/song", json=wire)
    record = await client.music.get(with_voice.jobs[0])
    assert record.ltm_material_extend_dto.ltm_vocal_model is True

    midi = (await client.midi.upload(sample_midi(), name="riff")).midi
    with_midi = await client.music.create_song(PROMPT, midi_item_id=midi.midi_item_id)
    sent(fake, "POST", "/music/song", json={"prompt": PROMPT, "midiItemId": midi.midi_item_id})
    record = await client.music.get(with_midi.jobs[1])
    assert record.ltm_material_extend_dto.ltm_midi_model is True


async def test_create_song_with_reply_url_gets_callbacks(client, fake, receiver):
    submission = await client.music.create_song(PROMPT, reply_url=receiver.url, reply_ref="ref-1")
    sent(
        fake,
        "POST",
        "/music/song",
        json={"prompt": PROMPT, "replyUrl": receiver.url, "replyRef": "ref-1"},
    )
    job_id = submission.jobs[0]
    await receiver.wait_until(lambda: any(b["status_final"] for b in receiver.for_job(job_id)))
    assert {body["replyRef"] for body in receiver.for_job(job_id)} == {"ref-1"}


async def test_user_id_argument_and_client_default(fake):
    fake.add_account("u2")
    async with fake.client(user_id="u2") as client:
        check_submission(await client.music.create_instrumental(PROMPT), fake, "u2")
        sent(fake, "POST", "/music/instrumental", json={"prompt": PROMPT, "user_id": "u2"})
        check_submission(await client.music.create_song(PROMPT, user_id=DEFAULT_USER), fake)
        sent(fake, "POST", "/music/song", json={"prompt": PROMPT, "user_id": DEFAULT_USER})
        await client.music.list().first_page()
        sent(fake, "GET", "/music/", query={"type": "song", "user_id": "u2"})


INSTRUMENTAL_CASES = [
    ({"bpm": 120, "tonality": Tonality.C_SHARP_MINOR}, {"bpm": 120, "tonality": "C#:minor"}),
    (
        {"tonality": "Ab:major", "chords": "C G Am F"},
        {"tonality": "Ab:major", "chords": "C G Am F"},
    ),
    ({"model": InstrumentalModel.I3}, {"model_instrumental": "i3"}),
    ({"model": "i3.5 beta", "max_jobs": 2}, {"model_instrumental": "i3.5 beta", "maxJobs": 2}),
]


@pytest.mark.parametrize(("options", "wire"), INSTRUMENTAL_CASES)
async def test_create_instrumental_sends_the_documented_body(client, fake, options, wire):
    submission = await client.music.create_instrumental(PROMPT, **options)
    sent(fake, "POST", "/music/instrumental", json={"prompt": PROMPT, **wire})
    check_submission(submission, fake)
    job = await client.music.get(submission.jobs[0])
    material, extend = job.music_material, job.ltm_material_extend_dto
    seen = {
        "bpm": material.bpm,
        "tonality": material.key,
        "chords": material.chord,
        "model_instrumental": extend.model_show_name,
    }
    assert {key: seen[key] for key in wire if key in seen} == {
        key: value for key, value in wire.items() if key in seen
    }
    assert job.child_type == "text_to_material"


# ---------------------------------------------------------------------- music jobs


async def test_music_get_decodes_the_record(client, fake):
    submission = await client.music.create_song(PROMPT, lyrics="hello there")
    job_id = submission.jobs[0]
    job = await client.music.get(job_id)
    sent(fake, "GET", f"/music/{job_id}")
    assert isinstance(job, tp.MusicJob)
    assert (job.job_id, job.item_id, job.user_id) == (job_id, submission.item_ids[0], DEFAULT_USER)
    assert job.status is JobStatus.GENERATING
    assert (job.status_final, job.is_final, job.is_completed) == (False, False, False)
    assert isinstance(job.music_material, tp.MusicMaterial)
    assert isinstance(job.ltm_material_extend_dto, tp.LtmMaterialExtend)
    assert job.ltm_material_extend_dto.lyrics_prompt == "hello there"
    assert job.music_material.other_info == PROMPT
    assert job.create_time.tzinfo is not None
    assert abs((datetime.now(timezone.utc) - job.create_time).total_seconds()) < 60
    assert job.raw["job_id"] == job_id

    fake.complete(job_id)
    done = await client.music.get(job_id)
    assert done.status is JobStatus.COMPLETED
    assert done.is_completed
    assert done.is_final
    assert (done.progress, done.status_name) == (100, "COMPLETED")
    assert done.title_en is not None
    assert done.title_en.startswith("A Calm Piano Piece (")


async def test_music_delete_then_not_found(client, fake):
    job_id = (await client.music.create_song(PROMPT)).jobs[0]
    assert await client.music.delete(job_id) is None
    sent(fake, "DELETE", f"/music/{job_id}")
    with pytest.raises(NotFoundError) as info:
        await client.music.get(job_id)
    error = info.value
    assert (error.status, error.method, error.path) == (404, "GET", f"/music/{job_id}")
    assert error.message == f"No record found for {job_id}"
    assert f"No record found for {job_id}" in str(error)
    with pytest.raises(NotFoundError, match="No record found for"):
        await client.music.delete(job_id)


@pytest.mark.parametrize(
    ("kind", "wire"),
    [
        (None, "song"),
        ("song", "song"),
        (MusicType.SONG, "song"),
        ("instrumental", "instrumental"),
        (MusicType.INSTRUMENTAL, "instrumental"),
    ],
)
async def test_music_list_filters_by_type(client, fake, kind, wire):
    song = await client.music.create_song(PROMPT)
    instrumental = await client.music.create_instrumental(PROMPT)
    pager = client.music.list() if kind is None else client.music.list(type=kind)
    jobs = await pager.to_list()
    sent(fake, "GET", "/music/", query={"type": wire})
    expected = song if wire == "song" else instrumental
    assert [job.job_id for job in jobs] == expected.jobs[::-1]
    assert all(isinstance(job, tp.MusicJob) for job in jobs)


@pytest.mark.parametrize(
    ("file_format", "wire", "tail"),
    [
        (None, "mp3", "mp3/{}.mp3"),
        ("mp3", "mp3", "mp3/{}.mp3"),
        ("wav", "wav", "wav/{}.wav"),
        ("stems", "stems", "stems/{}.zip"),
        (FileFormat.MP3, "mp3", "mp3/{}.mp3"),
        (FileFormat.WAV, "wav", "wav/{}.wav"),
        (FileFormat.STEMS, "stems", "stems/{}.zip"),
    ],
)
async def test_download_url(client, fake, file_format, wire, tail):
    submission = await client.music.create_song(PROMPT)
    job_id = submission.jobs[1]
    fake.complete(job_id)
    options = {} if file_format is None else {"file_format": file_format}
    link = await client.music.download_url(job_id, **options)
    sent(fake, "GET", f"/music/download/{job_id}", query={"file_format": wire})
    assert isinstance(link, tp.DownloadLink)
    assert link.remain_seconds == 3600
    prefix = f"{fake.media_url}/ai_material/{tail.format(submission.item_ids[1])}?auth_key="
    assert link.url.startswith(prefix)


async def test_split_stems(client, fake):
    audio = sample_audio(0.3)
    split = await client.music.split_stems(audio, content_type="audio/wav")
    request = sent(fake, "POST", "/music/stems-splitter/")
    assert (request.body, request.headers["Content-Type"]) == (audio, "audio/wav")
    assert isinstance(split, tp.StemsSplit)
    assert (split.state, split.title, split.audio_type) == (2, "audio_file.wav", "wav")
    assert split.detail == ["vocals", "drums", "bass", "other"]
    assert split.stems_zip_url.startswith(f"{fake.media_url}/stems-splitter/")


# -------------------------------------------------------------------------- voices


async def test_voices_list_artist(client, fake):
    page = await client.voices.list_artist().first_page()
    sent(fake, "GET", "/music/artist-voices/")
    first = page.items[0]
    assert isinstance(first, tp.ArtistVoice)
    assert (first.item_id, first.name, first.labels) == (
        "voice_10001",
        "Deep Male Voice",
        ["male", "deep", "dramatic"],
    )
    assert first.vocal_url == f"{fake.media_url}/artist-voices/voice_10001.wav"
    assert first.weight == 100


@pytest.mark.parametrize(
    "pending", [False, pytest.param(True, marks=pytest.mark.fake(voice_clone_pending=True))]
)
async def test_voices_clone(client, fake, pending):
    audio = sample_audio(0.2)
    clone = await client.voices.clone(audio, name="My Voice", content_type="audio/wav")
    request = sent(fake, "POST", "/music/cloned-voices/", query={"name": "My Voice"})
    assert (request.body, request.headers["Content-Type"]) == (audio, "audio/wav")
    assert isinstance(clone, tp.VoiceClone)
    assert clone.ready is (not pending)
    assert clone.cloned_voice_item_id == f"user:12345-tempolor:{DEFAULT_USER}-voice:{clone.item_id}"
    assert clone.cloned_voice_item_id in fake.cloned_voices
    if pending:
        assert (clone.result, clone.message) == (None, PENDING_MESSAGE)
    else:
        assert (clone.result, clone.message) == (True, None)


async def test_voices_list_cloned_and_delete(client, fake):
    clone = await clone_voice(client, name="Choir")
    voices = await client.voices.list_cloned(user_id=DEFAULT_USER).to_list()
    sent(fake, "GET", "/music/cloned-voices/", query={"user_id": DEFAULT_USER})
    assert len(voices) == 1
    assert isinstance(voices[0], tp.ClonedVoice)
    voice = voices[0]
    assert (voice.cloned_voice_item_id, voice.name, voice.status) == (
        clone.cloned_voice_item_id,
        "Choir",
        30,
    )
    assert voice.create_time.tzinfo is not None

    assert await client.voices.delete_cloned(clone.cloned_voice_item_id) is None
    sent(fake, "DELETE", f"/music/cloned-voices/{clone.cloned_voice_item_id}")
    assert await client.voices.list_cloned().to_list() == []
    with pytest.raises(NotFoundError, match="No record found for"):
        await client.voices.delete_cloned(clone.cloned_voice_item_id)


# ---------------------------------------------------------------------------- MIDI


async def test_midi_upload_list_delete(client, fake):
    data = sample_midi()
    upload = await client.midi.upload(data, name="Piano riff")
    request = sent(fake, "POST", "/music/midi/", query={"name": "Piano riff"})
    assert (request.body, request.headers["Content-Type"]) == (data, "audio/midi")
    assert isinstance(upload, tp.MidiUpload)
    assert upload.is_first is True
    midi = upload.midi
    assert isinstance(midi, tp.MidiFile)
    assert midi.name == "Piano riff"
    assert midi.midi_item_id in fake.midi_files
    assert midi.midi_url.startswith(f"{fake.media_url}/midi/file/")
    second = await client.midi.upload(data, name="Bass line", content_type="audio/x-midi")
    assert second.is_first is False
    assert fake.requests_to("POST", "/music/midi/")[-1].headers["Content-Type"] == "audio/x-midi"

    listed = await client.midi.list().to_list()
    sent(fake, "GET", "/music/midi/")
    assert [(m.midi_item_id, m.name) for m in listed] == [
        (second.midi.midi_item_id, "Bass line"),
        (midi.midi_item_id, "Piano riff"),
    ]
    assert await client.midi.delete(midi.midi_item_id) is None
    sent(fake, "DELETE", f"/music/midi/{midi.midi_item_id}")
    assert [m.name for m in await client.midi.list().to_list()] == ["Bass line"]


# ----------------------------------------------------------------------- scheduler


@pytest.mark.fake(job_duration=60)
async def test_scheduler_list_available_and_cancel(client, fake):
    submission = await client.music.create_song(PROMPT)
    running = await client.scheduler.list()
    sent(fake, "GET", "/scheduler/")
    assert all(isinstance(job, tp.RunningJob) for job in running)
    assert sorted(job.job_id for job in running) == sorted(submission.jobs)
    assert all(job.started.tzinfo is not None and job.elapsed for job in running)

    capacity = await client.scheduler.available()
    sent(fake, "GET", "/scheduler/available")
    assert isinstance(capacity, tp.Capacity)
    assert sorted(job.job_id for job in capacity.executing) == sorted(submission.jobs)
    assert capacity.available == [tp.AccountCapacity(DEFAULT_USER, 10, 2, 8)]

    assert await client.scheduler.cancel(submission.jobs[0]) is None
    sent(fake, "DELETE", f"/scheduler/{submission.jobs[0]}")
    assert [job.job_id for job in await client.scheduler.list()] == [submission.jobs[1]]
    assert (await client.scheduler.available()).available[0].executing == 1


# -------------------------------------------------------------------------- errors


async def test_bad_request_carries_the_service_text(client):
    with pytest.raises(BadRequestError) as info:
        await client.music.list(cursor="not-a-cursor").first_page()
    error = info.value
    assert (error.status, error.message) == (400, "Parameter cursor is invalid")
    assert error.body == {"error": "Parameter cursor is invalid", "code": 400}
    assert "GET /music/" in str(error)


async def test_unknown_source_material_is_not_found(client):
    with pytest.raises(NotFoundError) as info:
        await client.music.create_song(PROMPT, artist_voice_item_id="voice_99999")
    assert info.value.message == "The source material does not exist."


async def test_payment_required(client, fake):
    fake.add_account("u2", subscribed=False)
    with pytest.raises(PaymentRequiredError) as info:
        await client.music.create_song(PROMPT, user_id="u2")
    assert (info.value.status, info.value.message) == (402, "Subscription required")
    assert len(fake.requests_to("POST", "/music/song")) == 1


async def test_wrong_token_is_an_authentication_error(fake):
    async with TempolorClient(token="wrong-secret", base_url=fake.base_url) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.accounts.list()
    error = info.value
    assert isinstance(error, APIStatusError)
    assert (error.status, error.message) == (401, "Unauthorized")
    assert "wrong-secret" not in str(error)
    assert "wrong-secret" not in repr(error)
    assert fake.requests_to("GET", "/accounts")[-1].headers["Authorization"] == (
        "Bearer wrong-secret"
    )
