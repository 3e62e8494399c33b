"""TempolorClient: configuration, its session (own or the caller's), closing, user_id."""

from __future__ import annotations

import gc
import logging
import math
import warnings

import aiohttp
import pytest

from tempolor_async import (
    ConfigurationError,
    NotFoundError,
    TempolorClient,
    TempolorError,
)
from tempolor_async.testing import FakeTempolor
from tempolor_async.testing._server import RecordedRequest

DEFAULT_USER = "100349856"
DEFAULT_BASE_URL = "https://api.useapi.net/v1/tempolor"
OTHER_USER = "200777"
MIDI = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk\x00\x00\x00\x04\x00\xff\x2f\x00"


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("USEAPI_TOKEN", raising=False)
    monkeypatch.delenv("TEMPOLOR_BASE_URL", raising=False)
    return monkeypatch


@pytest.fixture
def sessions_created(monkeypatch: pytest.MonkeyPatch) -> list[aiohttp.ClientSession]:
    """Every aiohttp.ClientSession created from now on."""
    created: list[aiohttp.ClientSession] = []
    real = aiohttp.ClientSession

    def tracking(*args: object, **kwargs: object) -> aiohttp.ClientSession:
        session = real(*args, **kwargs)  # type: ignore[arg-type]
        created.append(session)
        return session

    monkeypatch.setattr(aiohttp, "ClientSession", tracking)
    return created


# ------------------------------------------------------------ construction


@pytest.mark.parametrize("token", [None, "", "   "])
def test_no_token_anywhere_is_a_configuration_error(no_env, token):
    with pytest.raises(ConfigurationError, match="USEAPI_TOKEN"):
        TempolorClient(token)


@pytest.mark.anyio
async def test_the_token_comes_from_useapi_token(fake, no_env):
    no_env.setenv("USEAPI_TOKEN", fake.token)
    async with TempolorClient(base_url=fake.base_url) as client:
        assert DEFAULT_USER in await client.accounts.list()
    assert fake.requests[0].headers["Authorization"] == f"Bearer {fake.token}"


@pytest.mark.anyio
async def test_the_base_url_comes_from_tempolor_base_url(fake, no_env):
    no_env.setenv("TEMPOLOR_BASE_URL", fake.base_url)
    async with TempolorClient(fake.token) as client:
        assert client.base_url == fake.base_url
        assert await client.scheduler.list() == []
    assert [(request.method, request.path) for request in fake.requests] == [("GET", "/scheduler/")]


def test_the_default_base_url(no_env):
    assert TempolorClient("a-token").base_url == DEFAULT_BASE_URL


def test_an_explicit_base_url_wins_over_the_environment(no_env):
    no_env.setenv("TEMPOLOR_BASE_URL", "http://127.0.0.1:9/v1/tempolor")
    assert TempolorClient("a-token", base_url=DEFAULT_BASE_URL).base_url == DEFAULT_BASE_URL


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"timeout": 0}, id="timeout-zero"),
        pytest.param({"timeout": -1.0}, id="timeout-negative"),
        pytest.param({"timeout": math.nan}, id="timeout-nan"),
        pytest.param({"timeout": math.inf}, id="timeout-inf"),
        pytest.param({"timeout": "60"}, id="timeout-text"),
        pytest.param({"upload_timeout": 0}, id="upload-timeout-zero"),
        pytest.param({"max_retries": -1}, id="retries-negative"),
        pytest.param({"max_retries": 1.5}, id="retries-fraction"),
        pytest.param({"max_retries": True}, id="retries-bool"),
        pytest.param({"busy_timeout": -1}, id="busy-timeout-negative"),
        pytest.param({"max_poll_rate": 0}, id="poll-rate-zero"),
        pytest.param({"base_url": "ftp://example.com/v1"}, id="base-url-ftp"),
        pytest.param({"base_url": "api.useapi.net/v1/tempolor"}, id="base-url-relative"),
        pytest.param({"base_url": "http://"}, id="base-url-no-host"),
        pytest.param({"user_id": "a/b"}, id="user-id-slash"),
    ],
)
def test_bad_options_are_configuration_errors(no_env, options):
    with pytest.raises(ConfigurationError):
        TempolorClient("a-token", **options)


# ------------------------------------------------------------ closing


@pytest.mark.anyio
async def test_aclose_is_idempotent_and_a_closed_client_refuses_use(fake):
    async with fake.client() as client:
        assert not client.closed
        await client.scheduler.list()
    assert client.closed
    await client.aclose()  # again: no error
    assert client.closed
    with pytest.raises(TempolorError, match="closed"):
        await client.scheduler.list()
    assert len(fake.requests) == 1  # nothing was sent after closing


@pytest.mark.anyio
async def test_a_client_closed_with_aclose_refuses_use(fake):
    client = fake.client()
    await client.accounts.list()
    await client.aclose()
    with pytest.raises(TempolorError):
        await client.accounts.get(DEFAULT_USER)
    assert len(fake.requests) == 1


@pytest.mark.anyio
async def test_a_callers_session_is_used_and_left_open(fake):
    seen: list[str] = []

    async def on_request_start(session, context, params) -> None:
        seen.append(params.url.path)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        async with fake.client(session=session) as client:
            assert DEFAULT_USER in await client.accounts.list()
        assert not session.closed
        assert seen == ["/v1/tempolor/accounts"]  # sent through the caller's session
        assert [request.path for request in fake.requests] == ["/accounts"]
        async with session.get(fake.base_url + "/scheduler/") as response:
            assert response.status == 401  # still usable: no token of the client's


@pytest.mark.anyio
async def test_an_unused_client_creates_no_session(sessions_created):
    async with TempolorClient("a-token") as client:
        assert not client.closed
    assert sessions_created == []


@pytest.mark.anyio
async def test_the_own_session_is_created_on_first_use_and_closed(fake, sessions_created):
    async with fake.client() as client:
        assert sessions_created == []
        await client.scheduler.list()
        await client.scheduler.available()
        assert len(sessions_created) == 1  # one, reused
        assert not sessions_created[0].closed
    assert sessions_created[0].closed


@pytest.mark.anyio
async def test_correct_use_leaves_no_unclosed_session_warning(fake, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with fake.client() as client:
            submission = await client.music.create_song("a calm piano piece")
            fake.complete(submission.jobs[0])
            await client.music.download(submission.jobs[0], tmp_path)
        unused = fake.client()
        await unused.aclose()
        del client, unused
        gc.collect()
    assert [str(warning.message) for warning in caught] == []
    assert not [record for record in caplog.records if "Unclosed" in record.getMessage()]


# ------------------------------------------------------ a caller's session


@pytest.mark.anyio
async def test_a_session_raising_for_status_still_gives_sdk_exceptions(fake):
    job_id = f"user:1-tempolor:{DEFAULT_USER}-job:nosuchjob"
    async with (
        aiohttp.ClientSession(raise_for_status=True) as session,
        fake.client(session=session) as client,
    ):
        with pytest.raises(NotFoundError) as caught:
            await client.music.get(job_id)
    assert caught.value.message == f"No record found for {job_id}"
    assert not isinstance(caught.value, aiohttp.ClientError)


@pytest.mark.anyio
async def test_a_sessions_default_authorization_does_not_reach_downloads(fake, tmp_path):
    headers = {"Authorization": "Bearer the-callers-own"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with fake.client(session=session) as client:
            submission = await client.music.create_song("a calm piano piece")
            fake.complete(submission.jobs[0])
            written = await client.music.download(submission.jobs[0], tmp_path)
        assert not session.closed
    assert written.parent == tmp_path
    assert written.stat().st_size > 0
    media = fake.requests_to("GET", "/cdn/*")
    assert len(media) == 1
    assert "Authorization" not in media[0].headers
    api = [request for request in fake.requests if not request.path.startswith("/cdn/")]
    assert {request.headers["Authorization"] for request in api} == {f"Bearer {fake.token}"}


@pytest.mark.anyio
async def test_a_callers_session_keeps_its_own_headers(fake, tmp_path):
    """The token goes with each API request on a caller's session; nothing is added to the
    session's own defaults, which other code may share."""
    async with aiohttp.ClientSession(headers={"X-Caller": "mine"}) as session:
        before = dict(session.headers)
        async with fake.client(session=session) as client:
            submission = await client.music.create_song("a calm piano piece")
            fake.complete(submission.jobs[0])
            await client.music.get(submission.jobs[0])
            await client.music.download(submission.jobs[0], tmp_path)
        assert dict(session.headers) == before
        assert not session.closed
    api = [request for request in fake.requests if not request.path.startswith("/cdn/")]
    assert {request.headers["Authorization"] for request in api} == {f"Bearer {fake.token}"}
    assert {request.headers["X-Caller"] for request in fake.requests} == {"mine"}
    assert "Authorization" not in fake.requests_to("GET", "/cdn/*")[0].headers


@pytest.mark.anyio
async def test_the_own_session_sends_the_token_to_the_api_only(fake, tmp_path):
    async with fake.client() as client:
        submission = await client.music.create_song("a calm piano piece")
        fake.complete(submission.jobs[0])
        for _ in range(2):
            await client.music.get(submission.jobs[0])
        await client.music.download(submission.jobs[0], tmp_path)
    api = [request for request in fake.requests if not request.path.startswith("/cdn/")]
    assert len(fake.requests_to("GET", f"/music/{submission.jobs[0]}")) == 2
    assert {request.headers["Authorization"] for request in api} == {f"Bearer {fake.token}"}
    assert {request.headers["Accept"] for request in api} == {"application/json"}
    media = fake.requests_to("GET", "/cdn/*")
    assert len(media) == 1
    assert "Authorization" not in media[0].headers


# ---------------------------------------------------------------- user_id


def _sent(fake: FakeTempolor) -> list[RecordedRequest]:
    """The requests made, without the capacity gate's reads of the accounts' slots."""
    gate = {("GET", "/accounts"), ("GET", "/scheduler/available")}
    return [request for request in fake.requests if (request.method, request.path) not in gate]


async def _touch_every_kind(client: TempolorClient, user_id: str | None) -> None:
    """A list query, a generation body and an upload query, each with ``user_id=``."""
    await client.music.list(user_id=user_id).first_page()
    await client.music.create_instrumental("a slow waltz", user_id=user_id)
    await client.midi.upload(MIDI, name="tune", user_id=user_id)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("default", "per_call", "expected"),
    [
        pytest.param(DEFAULT_USER, None, DEFAULT_USER, id="default"),
        pytest.param(DEFAULT_USER, OTHER_USER, OTHER_USER, id="override"),
        pytest.param(None, OTHER_USER, OTHER_USER, id="per-call-only"),
    ],
)
async def test_user_id_default_and_override(fake, default, per_call, expected):
    fake.add_account(OTHER_USER)
    async with fake.client(user_id=default) as client:
        await _touch_every_kind(client, per_call)
    listed, generated, uploaded = _sent(fake)
    assert listed.query["user_id"] == expected
    assert generated.json()["user_id"] == expected
    assert uploaded.query["user_id"] == expected
    assert next(iter(fake.midi_files.values())).user_id == expected


@pytest.mark.anyio
async def test_no_user_id_anywhere_is_left_out(fake):
    async with fake.client() as client:
        await _touch_every_kind(client, None)
    listed, generated, uploaded = _sent(fake)
    assert "user_id" not in listed.query
    assert "user_id" not in generated.json()
    assert "user_id" not in uploaded.query
