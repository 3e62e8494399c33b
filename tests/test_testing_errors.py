"""The documented error answers: 401 everywhere, unknown routes, every documented 400, 402
and 404 text, the voice-combination rules, bpm/tonality/length checks, and form bodies.
(The ``api`` fixture also checks that none of these requests got a 5xx or an HTML body.)"""

from __future__ import annotations

import aiohttp
import pytest
from conftest import DEFAULT_USER

from tempolor_async.testing import sample_audio, sample_midi

pytestmark = [pytest.mark.anyio, pytest.mark.fake(job_duration=60)]

UNAUTHORIZED = {"error": "Unauthorized", "code": 401}
PROMPT_REQUIRED = {"error": "Parameter prompt is required", "code": 400}
BAD_JOB_ID = {"error": "job_id has incorrect format", "code": 400}
NO_SOURCE = {"error": "The source material does not exist.", "code": 404}
SUBSCRIPTION = {"error": "Subscription required", "code": 402}
PARAMS_REQUIRED = {"error": "Parameter requestParams is required", "code": 400}
BAD_TYPE = {"error": "Invalid type parameter. Must be 'song' or 'instrumental'", "code": 400}
JOB = f"user:12345-tempolor:{DEFAULT_USER}-job:abcdef123456789"
VOICE = f"user:12345-tempolor:{DEFAULT_USER}-voice:abcdef123456789"
MIDI = f"user:12345-tempolor:{DEFAULT_USER}-midi:abcdef123456789"
ENDPOINTS = [
    ("GET", "/accounts"),
    ("POST", "/accounts"),
    ("GET", f"/accounts/{DEFAULT_USER}"),
    ("DELETE", f"/accounts/{DEFAULT_USER}"),
    ("POST", "/music/song"),
    ("POST", "/music/instrumental"),
    ("POST", "/music/stems-splitter/"),
    ("GET", "/music/"),
    ("GET", "/music/{job}"),
    ("DELETE", "/music/{job}"),
    ("GET", "/music/download/{job}"),
    ("GET", "/music/artist-voices/"),
    ("GET", "/music/cloned-voices/"),
    ("POST", "/music/cloned-voices/"),
    ("DELETE", f"/music/cloned-voices/{VOICE}"),
    ("GET", "/music/midi/"),
    ("POST", "/music/midi/"),
    ("DELETE", f"/music/midi/{MIDI}"),
    ("GET", "/scheduler/"),
    ("GET", "/scheduler/available"),
    ("DELETE", "/scheduler/{job}"),
]
BAD_AUTHORIZATION = [None, "Bearer wrong-token", "Bearer", "fake-token", "Basic fake-token"]


async def _post(api, kind, **fields):
    return await api("POST", f"/music/{kind}", json=fields)


# ------------------------------------------------------------------------ 401


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_every_endpoint_needs_the_token(api, fake, method, path):
    job_id = (await api.generate())[0]
    path = path.format(job=job_id)
    before = (len(fake.jobs), len(fake.accounts))
    for authorization in BAD_AUTHORIZATION:
        headers = {"Content-Type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        status, body = await api(method, path, data=b'{"prompt": "x"}', headers=headers, auth=False)
        assert (status, body) == (401, UNAUTHORIZED), authorization
    assert (len(fake.jobs), len(fake.accounts)) == before
    assert (await api.job(job_id))["status"] == 0  # nor cancelled nor deleted
    assert len(await _running(api)) == 2


async def _running(api):
    return (await api("GET", "/scheduler/"))[1]


# ------------------------------------------------------------- unknown routes


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/music/song/extra/parts"),
        ("GET", "/nothing-here"),
        ("POST", "/scheduler/available/now"),
        ("GET", "ORIGIN/v2/tempolor/accounts"),
        ("GET", "ORIGIN/"),
    ],
)
async def test_an_unknown_route_is_a_json_404(api, fake, method, url):
    status, body = await api(method, url.replace("ORIGIN", fake.origin))
    assert status == 404
    assert body["code"] == 404
    assert body["error"]


async def test_a_known_route_with_another_method_is_a_json_error(api):
    status, body = await api("PUT", "/music/song", json={"prompt": "x"})
    assert (status, body["code"]) == (405, 405)


# ------------------------------------------------------------------------ 400


@pytest.mark.parametrize("kind", ["song", "instrumental"])
@pytest.mark.parametrize("body", [{}, {"prompt": ""}, {"prompt": "   "}, {"prompt": None}])
async def test_prompt_is_required(api, fake, kind, body):
    assert await api("POST", f"/music/{kind}", json=body) == (400, PROMPT_REQUIRED)
    assert fake.jobs == {}


async def test_an_empty_or_malformed_body_is_400(api, fake):
    assert await api("POST", "/music/song") == (400, PROMPT_REQUIRED)
    for data in (b"{not json", b"[1, 2]", b'"prompt"'):
        status, body = await api(
            "POST", "/music/song", data=data, headers={"Content-Type": "application/json"}
        )
        assert (status, body["code"]) == (400, 400)
    status, body = await api("POST", "/music/song", json={"prompt": 42})
    assert (status, body["code"]) == (400, 400)
    assert fake.jobs == {}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/music/{id}"),
        ("DELETE", "/music/{id}"),
        ("GET", "/music/download/{id}"),
        ("DELETE", "/scheduler/{id}"),
    ],
)
@pytest.mark.parametrize(
    "job_id",
    ["abcdef123456789", "user:12345-tempolor:1-job:", "user:x-tempolor:1-job:abc", VOICE],
)
async def test_a_malformed_job_id_is_400(api, method, path, job_id):
    assert await api(method, path.format(id=job_id)) == (400, BAD_JOB_ID)


@pytest.mark.parametrize("kind", ["video", "SONG", ""])
async def test_list_type_must_be_song_or_instrumental(api, kind):
    assert await api("GET", "/music/", params={"type": kind}) == (400, BAD_TYPE)


@pytest.mark.parametrize(
    "body", [{}, {"requestParams": None}, {"requestParams": {}}, {"requestParams": ""}]
)
async def test_request_params_are_required(api, fake, body):
    assert await api("POST", "/accounts", json={**body, "maxJobs": 3}) == (400, PARAMS_REQUIRED)
    assert list(fake.accounts) == [DEFAULT_USER]


# ------------------------------------------------------------------------ 402


async def test_an_account_without_subscription_is_refused(api, fake):
    params = {"user_id": "555", "vip_type": 0}
    assert await api("POST", "/accounts", json={"requestParams": params}) == (402, SUBSCRIPTION)
    assert "555" not in fake.accounts


@pytest.mark.parametrize("kind", ["song", "instrumental"])
async def test_generation_on_an_unsubscribed_account_is_402(api, fake, kind):
    fake.add_account("555", subscribed=False)
    assert await _post(api, kind, prompt="x", user_id="555") == (402, SUBSCRIPTION)
    assert fake.jobs == {}


# ------------------------------------------------------------ source material


@pytest.mark.parametrize(
    "field", [("artistVoiceItemId", "voice_0"), ("clonedVoiceItemId", VOICE), ("midiItemId", MIDI)]
)
async def test_unknown_source_material_is_404(api, fake, field):
    name, value = field
    assert await _post(api, "song", prompt="x", **{name: value}) == (404, NO_SOURCE)
    assert fake.jobs == {}


async def _sources(api):
    """An existing artist voice, cloned voice and MIDI file."""
    _, artists = await api("GET", "/music/artist-voices/")
    _, cloned = await api(
        "POST",
        "/music/cloned-voices/",
        params={"name": "v"},
        data=sample_audio(0.1),
        headers={"Content-Type": "audio/wav"},
    )
    _, midi = await api(
        "POST",
        "/music/midi/",
        params={"name": "m"},
        data=sample_midi(),
        headers={"Content-Type": "audio/midi"},
    )
    return {
        "artistVoiceItemId": artists["records"][0]["itemId"],
        "clonedVoiceItemId": cloned["clonedVoiceItemId"],
        "midiItemId": midi["midiRenderVO"]["midiItemId"],
    }


@pytest.mark.parametrize(
    "combination",
    [
        ("artistVoiceItemId", "clonedVoiceItemId"),
        ("midiItemId", "artistVoiceItemId"),
        ("midiItemId", "clonedVoiceItemId"),
        ("midiItemId", "artistVoiceItemId", "clonedVoiceItemId"),
    ],
)
async def test_voice_combination_rules(api, fake, combination):
    sources = await _sources(api)
    for name in combination:  # each one alone is fine
        assert len(await api.generate(**{name: sources[name]})) == 2
    created = len(fake.jobs)
    status, body = await _post(api, "song", prompt="x", **{n: sources[n] for n in combination})
    assert (status, body["code"]) == (400, 400)
    assert sum(name in body["error"] for name in combination) >= 2  # it names the conflict
    assert len(fake.jobs) == created


# ----------------------------------------------------------------- bpm, tonality


@pytest.mark.fake(max_jobs=100, max_gen_count_at_once=100)
async def test_bpm_range_is_50_to_190(api, fake):
    for bpm in (50, 190, "120"):
        assert len(await api.generate("instrumental", bpm=bpm)) == 2
    for bpm in (49, 191, 0, -80, "fast", 80.5, True, [80]):
        status, body = await _post(api, "instrumental", prompt="x", bpm=bpm)
        assert (status, body["code"]) == (400, 400), bpm
        assert "bpm" in body["error"]
    assert len(fake.jobs) == 6


@pytest.mark.fake(max_jobs=100, max_gen_count_at_once=100)
async def test_all_24_documented_tonalities_and_nothing_else(api, fake):
    keys = [
        f"{root}:{mode}"
        for root in ("A", "Ab", "B", "Bb", "C#", "C", "D", "E", "Eb", "F#", "F", "G")
        for mode in ("major", "minor")
    ]
    for key in keys:
        record = await api.job((await api.generate("instrumental", tonality=key))[0])
        assert record["musicMaterial"]["key"] == key
    for key in ("H:major", "C:Major", "c:major", "Db:major", "C", "C#:dorian", ""):
        status, body = await _post(api, "instrumental", prompt="x", tonality=key)
        assert (status, body["code"]) == (400, 400), key
        assert "tonality" in body["error"]
    assert len(fake.jobs) == 48


# -------------------------------------------------------------------- lengths


@pytest.mark.parametrize(
    ("kind", "name", "limit"),
    [
        ("song", "prompt", 2000),
        ("instrumental", "prompt", 2000),
        ("song", "lyrics", 3000),
        ("instrumental", "chords", 200),
        ("song", "replyRef", 1024),
        ("instrumental", "replyRef", 1024),
        ("song", "replyUrl", 1024),
    ],
)
async def test_length_limits(api, fake, receiver, kind, name, limit):
    def value(length):
        if name == "replyUrl":
            prefix = receiver.url + "?pad="
            return prefix + "x" * (length - len(prefix))
        return "é" * length  # counted in characters, not bytes

    fields = {"prompt": "x", "replyUrl": receiver.url, name: value(limit)}
    assert len(await api.generate(kind, **fields)) == 2
    status, body = await _post(api, kind, **{**fields, name: value(limit + 1)})
    assert (status, body["code"]) == (400, 400)
    assert name in body["error"]
    assert len(fake.jobs) == 2


async def test_reply_url_must_be_http(api, fake):
    for url in ("ftp://example.com/hook", "not a url", "file:///etc/passwd"):
        status, body = await _post(api, "song", prompt="x", replyUrl=url)
        assert (status, body["code"]) == (400, 400)
        assert "replyUrl" in body["error"]
    assert fake.jobs == {}


# ----------------------------------------------------------------- form bodies


@pytest.mark.parametrize("multipart", [False, True], ids=["urlencoded", "multipart"])
async def test_form_encoded_generation_bodies_are_accepted(api, multipart):
    fields = {"prompt": "lo-fi study beats", "tonality": "Eb:minor", "bpm": "85", "chords": "Am F"}
    form = aiohttp.FormData(fields, default_to_multipart=multipart)
    status, body = await api("POST", "/music/instrumental", data=form)
    assert status == 200, body
    record = await api.job(body["jobs"][0])
    material = record["musicMaterial"]
    assert (material["key"], material["bpm"], material["chord"]) == ("Eb:minor", 85, "Am F")
    assert record["ltmMaterialExtendDto"]["prompt"] == "lo-fi study beats"

    song = aiohttp.FormData({"prompt": "ünïcode ballad", "lyrics": "la la\nla"}, charset="utf-8")
    if multipart:  # a file part among the fields, as browsers send them
        song.add_field("cover", b"\x89PNG", filename="cover.png", content_type="image/png")
    status, body = await api("POST", "/music/song", data=song)
    assert status == 200, body
    extend = (await api.job(body["jobs"][0]))["ltmMaterialExtendDto"]
    assert (extend["prompt"], extend["lyricsPrompt"]) == ("ünïcode ballad", "la la\nla")


@pytest.mark.parametrize("multipart", [False, True], ids=["urlencoded", "multipart"])
async def test_form_bodies_are_checked_like_json(api, fake, multipart):
    def form(fields):
        return aiohttp.FormData(fields, default_to_multipart=multipart)

    assert await api("POST", "/music/song", data=form({"lyrics": "x"})) == (400, PROMPT_REQUIRED)
    status, body = await api(
        "POST", "/music/instrumental", data=form({"prompt": "x", "bpm": "fast"})
    )
    assert (status, body["code"]) == (400, 400)
    assert fake.jobs == {}


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=xyz", "multipart/form-data; boundary="],
)
async def test_a_malformed_multipart_body_is_400(api, fake, content_type):
    for data in (b"", b"prompt=x", b"--xyz\r\ngarbage"):
        status, body = await api(
            "POST", "/music/song", data=data, headers={"Content-Type": content_type}
        )
        assert (status, body["code"]) == (400, 400), data
    assert fake.jobs == {}
