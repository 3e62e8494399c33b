"""The fault matrix: every endpoint of SPEC section 3 against every fault the network or the
service can produce, asserting the documented outcome (SPEC section 7) and the exact number
of requests the simulator saw.

The matrix is data. ``ENDPOINTS`` says what each call is and how it may be retried (its
``Kind``); ``FAULTS`` says what each fault does to each Kind. An endpoint overrides a fault's
outcome only where the contract is more specific: a DELETE has no body to decode, a 204 has
no body to cut, ``accounts.list`` reads 404 as "no accounts", and a download link rides out
404 and 400 "not completed yet" for ``DOWNLOAD_LINK_GRACE_SECONDS``.

Each fault strikes the call's first request (``times=1``: the call may recover) or every
request (``times=None``: retries are exhausted). A refused connection reaches no server, so
its attempts are counted from the WARNING line the SDK logs before each retry.
"""

from __future__ import annotations

import fnmatch
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

from tempolor_async import (
    Account,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    Capacity,
    DownloadLink,
    MidiUpload,
    MusicJob,
    NotFoundError,
    Page,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    StemsSplit,
    Submission,
    TempolorClient,
    VoiceClone,
    _protocol,
)
from tempolor_async._protocol import Kind
from tempolor_async.testing import FakeTempolor

# Jobs run for a minute, so the one the scheduler calls act on is still running.
pytestmark = [pytest.mark.anyio, pytest.mark.faults, pytest.mark.fake(job_duration=60)]

MAX_RETRIES = 2
SHORT = 0.05  # the client timeout under the timeout fault, in seconds
SLOW = 0.1  # the injected delay that outlasts it
BUSY_FLOOR = 0.01  # a generation's wait after 429, instead of the documented 30 s
BUSY_TIMEOUT = 0.1  # how long a generation keeps waiting out 429
LINK_GRACE = 0.9  # DOWNLOAD_LINK_GRACE_SECONDS here: the link's first pause (0.5 s) fits once
DEFAULT_USER = "100349856"  # the pre-configured account of FakeTempolor
TOKEN = "fake-token"  # FakeTempolor's default; the refused client uses it too
MIDI = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk\x00\x00\x00\x04\x00\xff\x2f\x00"
AUDIO = b"ID3" + bytes(64)
MEDIA = bytes(range(256)) * 16
BUSY_ACCOUNT = "Account is busy executing 1 jobs"
BUSY_PLAN = "please wait for current Generations to finish or upgrade your plan"
NOT_READY = "Generation is not completed yet (0)"
RUNNING = {"user_id": DEFAULT_USER, "job_id": "j", "started": 1715791234567, "replyRef": "r"}


@pytest.fixture(autouse=True)
def quick_policy(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Backoff of milliseconds, a short download-link grace, and the retry log captured."""
    monkeypatch.setattr(_protocol, "RETRY_BASE_SECONDS", 0.001)
    monkeypatch.setattr(_protocol, "DOWNLOAD_LINK_GRACE_SECONDS", LINK_GRACE)
    caplog.set_level(logging.WARNING, logger="tempolor_async")


def retries_logged(caplog: pytest.LogCaptureFixture) -> int:
    """WARNING lines of the SDK's logger: one before every retry."""
    return sum(
        record.name == "tempolor_async" and record.levelno == logging.WARNING
        for record in caplog.records
    )


def unused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: connecting is refused."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
    finally:
        probe.close()


# ----------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Outcome:
    """What a call does when a fault strikes its first request (``once``) or every request
    (``always``): whether it succeeds, and after how many requests (None: as many as
    ``busy_timeout`` allows). Each repeat is announced by a WARNING line (SPEC section 2)."""

    name: str
    once: tuple[bool, int]
    always: tuple[bool, int | None]

    def expect(self, times: int | None) -> tuple[bool, int | None]:
        return self.once if times == 1 else self.always


RETRIED = Outcome("retried", once=(True, 2), always=(False, 1 + MAX_RETRIES))
SENT_ONCE = Outcome("sent once", once=(False, 1), always=(False, 1))
UNHARMED = Outcome("unharmed", once=(True, 1), always=(True, 1))
WAITED_OUT = Outcome("waited out", once=(True, 2), always=(False, None))
# A download link not there yet: the first pause (0.5 s) fits in LINK_GRACE, the second does
# not. A retry like any other, so it too is announced by a WARNING line.
LINK_LAG = Outcome("link lag", once=(True, 2), always=(False, 2))


@dataclass(frozen=True)
class Fault:
    """A fault, as ``FakeTempolor.inject`` keyword arguments, and what it does per Kind.

    ``handled``: whether the service acts on a request the fault strikes (None: it may, after
    the client gave up). ``message``: how an ``APIStatusError``'s ``.message`` starts.
    ``body_from``: the endpoint attribute holding the body to answer 200 with.
    """

    name: str
    inject: Mapping[str, Any]
    error: type[Exception]
    outcomes: Mapping[Kind, Outcome]
    handled: bool | None = False
    message: str = ""
    running: tuple[str, ...] = ()
    body_from: str | None = None
    client: Mapping[str, Any] = field(default_factory=dict)

    def kwargs(self, endpoint: Endpoint) -> dict[str, Any]:
        body = {"body": getattr(endpoint, self.body_from)} if self.body_from else {}
        return {**self.inject, **body}


# A request that may have reached the service is repeated only if that is harmless.
SAFE_ONLY = {Kind.IDEMPOTENT: RETRIED, Kind.GENERATION: SENT_ONCE, Kind.UPLOAD: SENT_ONCE}
# 429 "busy": a generation was not accepted and waits; an upload's body was sent.
BUSY = {Kind.IDEMPOTENT: RETRIED, Kind.GENERATION: WAITED_OUT, Kind.UPLOAD: SENT_ONCE}
NEVER = dict.fromkeys(Kind, SENT_ONCE)
# Nothing was sent: every Kind may try again.
REFUSED = dict.fromkeys(Kind, RETRIED)
TIMEOUTS = {"timeout": SHORT, "upload_timeout": SHORT}


def status_fault(status: int, error: type[Exception], outcomes: Mapping[Kind, Outcome]) -> Fault:
    """The service's usual error body for ``status``."""
    phrase = HTTPStatus(status).phrase
    return Fault(str(status), {"status": status}, error, outcomes, message=phrase)


def busy_fault(name: str, text: str, **payload: Any) -> Fault:
    body = {"error": text, **payload, "code": 429}
    running = tuple(payload.get("runningJobs", ()))
    return Fault(name, {"status": 429, "body": body}, RateLimitError, BUSY, False, text, running)


FAULTS = [
    Fault("drop", {"drop": True}, APIConnectionError, SAFE_ONLY),
    Fault("truncate", {"truncate": True}, APIConnectionError, SAFE_ONLY, handled=True),
    Fault("timeout", {"delay": SLOW}, APITimeoutError, SAFE_ONLY, None, client=TIMEOUTS),
    busy_fault("429-account", BUSY_ACCOUNT, runningJobs={DEFAULT_USER: [RUNNING]}),
    busy_fault("429-plan", BUSY_PLAN),
    *(status_fault(status, ServerError, SAFE_ONLY) for status in (500, 502, 503, 504)),
    Fault(
        "502-html",
        {"status": 502, "body": b"<html>bad gateway</html>"},
        ServerError,
        SAFE_ONLY,
        message="HTTP 502 (non-JSON body: '<html>bad gateway</html>')",
    ),
    status_fault(400, BadRequestError, NEVER),
    Fault(
        "400-not-ready",
        {"status": 400, "body": {"error": NOT_READY, "code": 400}},
        BadRequestError,
        NEVER,
        message=NOT_READY,
    ),
    status_fault(401, AuthenticationError, NEVER),
    status_fault(404, NotFoundError, NEVER),
    Fault("malformed-json", {"body": b'{"result": tru'}, ResponseDecodeError, NEVER),
    Fault("200-html", {"body": b"<html>sign in to the wifi</html>"}, ResponseDecodeError, NEVER),
    Fault("wrong-container", {}, ResponseDecodeError, NEVER, body_from="wrong_container"),
    Fault("wrong-type", {}, ResponseDecodeError, NEVER, body_from="wrong_type"),
]
REFUSAL = Fault("refused", {}, APIConnectionError, REFUSED)

# A call that returns None reads no body: a 200 it cannot decode is still a success.
BODY_UNREAD = dict.fromkeys(
    ["malformed-json", "200-html", "wrong-container", "wrong-type"], UNHARMED
)
# A 204 has no body to cut in half: truncating it changes nothing.
NO_CONTENT = {**BODY_UNREAD, "truncate": UNHARMED}


# ---------------------------------------------------------------- endpoints


@dataclass(frozen=True)
class Ids:
    """What the calls act on, made before any fault is injected."""

    running_job: str
    done_job: str
    voice: str
    midi: str
    media_url: str
    dest: Path

    @classmethod
    async def prepare(cls, fake: FakeTempolor, folder: Path) -> Ids:
        async with fake.client() as client:
            running, done = (await client.music.create_song("a calm piano piece")).jobs or []
            voice = await client.voices.clone(AUDIO, name="me", content_type="audio/mpeg")
            upload = await client.midi.upload(MIDI, name="tune")
        fake.complete(done)
        midi = upload.midi.midi_item_id if upload.midi else None
        assert voice.cloned_voice_item_id
        assert midi
        media_url = fake.add_media("take.bin", MEDIA)
        return cls(running, done, voice.cloned_voice_item_id, midi, media_url, folder / "take.bin")

    @classmethod
    def unreachable(cls, port: int, folder: Path) -> Ids:
        """Well-formed ids, and a media URL on a port nothing listens on."""
        prefix = f"user:12345-tempolor:{DEFAULT_USER}"
        return cls(
            f"{prefix}-job:a1",
            f"{prefix}-job:b2",
            f"{prefix}-voice:c3",
            f"{prefix}-midi:d4",
            f"http://127.0.0.1:{port}/cdn/files/take.bin",
            folder / "take.bin",
        )


Call = Callable[[TempolorClient, Ids], Awaitable[Any]]


@dataclass(frozen=True)
class Endpoint:
    """One SDK call: the request it makes (method, and the glob ``inject`` and
    ``requests_to`` match), how it may be retried, what it returns, two 200 bodies of the
    wrong shape, and for a DELETE the effect it has once the service handled it."""

    name: str
    method: str
    glob: str
    call: Call
    kind: Kind
    returns: type | tuple[type, ...]
    wrong_type: Any = None
    wrong_container: Any = field(default_factory=list)
    overrides: Mapping[str, Outcome] = field(default_factory=dict)
    gone: Callable[[FakeTempolor, Ids], bool] | None = None

    def outcome(self, fault: Fault) -> Outcome:
        return self.overrides.get(fault.name, fault.outcomes[self.kind])


IDEMPOTENT, GENERATION, UPLOAD = Kind.IDEMPOTENT, Kind.GENERATION, Kind.UPLOAD
NEW_ACCOUNT = {"user_id": "4242", "vip_type": 20}


def deletion(
    name: str,
    glob: str,
    call: Call,
    gone: Callable[[FakeTempolor, Ids], bool],
    overrides: Mapping[str, Outcome] = BODY_UNREAD,
) -> Endpoint:
    """A DELETE: idempotent, returns None, and leaves ``gone`` true once handled."""
    return Endpoint(
        name, "DELETE", glob, call, IDEMPOTENT, type(None), {"result": "yes"}, [], overrides, gone
    )


def listing(name: str, glob: str, call: Call, bad_record: Mapping[str, Any]) -> Endpoint:
    """The first page of a list; ``bad_record`` has a value of the wrong JSON type."""
    wrong_type = {"records": [bad_record], "hasNext": False}
    return Endpoint(name, "GET", glob, call, IDEMPOTENT, Page, wrong_type)


ENDPOINTS = [
    Endpoint(
        "accounts.list",
        "GET",
        "/accounts",
        lambda client, ids: client.accounts.list(),
        IDEMPOTENT,
        dict,
        wrong_type={DEFAULT_USER: {"maxJobs": "ten"}},
        overrides={"404": UNHARMED},  # "no accounts configured" is {}
    ),
    Endpoint(
        "accounts.get",
        "GET",
        "/accounts/*",
        lambda client, ids: client.accounts.get(DEFAULT_USER),
        IDEMPOTENT,
        Account,
        wrong_type={"maxJobs": "ten"},
    ),
    Endpoint(
        "accounts.create",
        "POST",
        "/accounts",
        lambda client, ids: client.accounts.create(NEW_ACCOUNT, max_jobs=3),
        IDEMPOTENT,  # an upsert: safe to repeat
        Account,
        wrong_type={"user_id": "4242", "maxJobs": "ten"},
    ),
    deletion(
        "accounts.delete",
        "/accounts/*",
        lambda client, ids: client.accounts.delete(DEFAULT_USER),
        lambda fake, ids: DEFAULT_USER not in fake.accounts,
        NO_CONTENT,
    ),
    Endpoint(
        "music.create_song",
        "POST",
        "/music/song",
        lambda client, ids: client.music.create_song("a calm piano piece", lyrics="la la"),
        GENERATION,
        Submission,
        wrong_type={"jobs": ["a", "b"], "remainSeconds": "lots"},
    ),
    Endpoint(
        "music.create_instrumental",
        "POST",
        "/music/instrumental",
        lambda client, ids: client.music.create_instrumental("a slow waltz", bpm=90),
        GENERATION,
        Submission,
        wrong_type={"maxGenCountAtOnce": "ten"},
    ),
    Endpoint(
        "music.get",
        "GET",
        "/music/user:*",
        lambda client, ids: client.music.get(ids.running_job),
        IDEMPOTENT,
        MusicJob,
        wrong_type={"status": "done"},
    ),
    listing(
        "music.list",
        "/music/",
        lambda client, ids: client.music.list().first_page(),
        {"status": "done"},
    ),
    deletion(
        "music.delete",
        "/music/user:*",
        lambda client, ids: client.music.delete(ids.running_job),
        lambda fake, ids: ids.running_job not in fake.jobs,
    ),
    Endpoint(
        "music.download_url",
        "GET",
        "/music/download/*",
        lambda client, ids: client.music.download_url(ids.done_job),
        IDEMPOTENT,
        DownloadLink,
        wrong_type={"url": "https://cdn.example/a.mp3", "remainSeconds": "soon"},
        overrides={"404": LINK_LAG, "400-not-ready": LINK_LAG},
    ),
    Endpoint(
        "music.split_stems",
        "POST",
        "/music/stems-splitter/",
        lambda client, ids: client.music.split_stems(AUDIO, content_type="audio/mpeg"),
        UPLOAD,
        StemsSplit,
        wrong_type={"state": "done"},
    ),
    listing(
        "voices.list_artist",
        "/music/artist-voices/",
        lambda client, ids: client.voices.list_artist().first_page(),
        {"weight": "x"},
    ),
    listing(
        "voices.list_cloned",
        "/music/cloned-voices/",
        lambda client, ids: client.voices.list_cloned().first_page(),
        {"status": "ready"},
    ),
    Endpoint(
        "voices.clone",
        "POST",
        "/music/cloned-voices/",
        lambda client, ids: client.voices.clone(AUDIO, name="me", content_type="audio/mpeg"),
        UPLOAD,
        VoiceClone,
        wrong_type={"result": "yes"},
    ),
    deletion(
        "voices.delete_cloned",
        "/music/cloned-voices/*",
        lambda client, ids: client.voices.delete_cloned(ids.voice),
        lambda fake, ids: ids.voice not in fake.cloned_voices,
    ),
    listing(
        "midi.list",
        "/music/midi/",
        lambda client, ids: client.midi.list().first_page(),
        {"name": 7},
    ),
    Endpoint(
        "midi.upload",
        "POST",
        "/music/midi/",
        lambda client, ids: client.midi.upload(MIDI, name="tune"),
        UPLOAD,
        MidiUpload,
        wrong_type={"isFirst": "yes"},
    ),
    deletion(
        "midi.delete",
        "/music/midi/*",
        lambda client, ids: client.midi.delete(ids.midi),
        lambda fake, ids: ids.midi not in fake.midi_files,
    ),
    Endpoint(
        "scheduler.list",
        "GET",
        "/scheduler/",
        lambda client, ids: client.scheduler.list(),
        IDEMPOTENT,
        list,
        wrong_type=[{"job_id": 7}],
        wrong_container={"jobs": []},  # an object where the list belongs
    ),
    Endpoint(
        "scheduler.available",
        "GET",
        "/scheduler/available",
        lambda client, ids: client.scheduler.available(),
        IDEMPOTENT,
        Capacity,
        wrong_type={"executing": [], "available": [{"maxJobs": "ten"}]},
    ),
    deletion(
        "scheduler.cancel",
        "/scheduler/*",
        lambda client, ids: client.scheduler.cancel(ids.running_job),
        lambda fake, ids: not fake.jobs[ids.running_job].tracked,
        NO_CONTENT,
    ),
    Endpoint(
        "download_file",
        "GET",
        "/cdn/*",
        lambda client, ids: client.download_file(ids.media_url, ids.dest),
        IDEMPOTENT,  # a media GET: retried on transient failures like any GET
        Path,
        wrong_type={"size": "big"},
        overrides=BODY_UNREAD,  # the body is the file: any bytes are a valid download
    ),
]
ENDPOINT_PARAMS = [pytest.param(endpoint, id=endpoint.name) for endpoint in ENDPOINTS]


def check_error(error: BaseException, endpoint: Endpoint, fault: Fault) -> None:
    """The documented class exactly (a drop is not a timeout), naming the request and never
    the token, and for a status the service's own text and, for 429, its running jobs."""
    assert type(error) is fault.error, repr(error)
    method, path = getattr(error, "method", None), getattr(error, "path", "")
    assert method == endpoint.method
    assert fnmatch.fnmatchcase(path, endpoint.glob), error
    assert f"{method} {path}" in str(error)
    assert TOKEN not in str(error)
    if isinstance(error, APIStatusError):
        assert error.status == fault.inject["status"]
        assert error.message.startswith(fault.message), error.message
    if isinstance(error, RateLimitError):
        assert sorted(error.running_jobs) == list(fault.running)


# ------------------------------------------------------------------- tests


def matrix() -> list[Any]:
    """Every endpoint with every fault, striking the first request (``once``) and, where
    that changes the outcome, every request (``always``). Where it does not (the call makes
    one request either way, or the fault does no harm), ``once`` is the sharper case: a
    retry there would succeed, so a wrong retry shows as a wrong count and a wrong outcome."""
    cases = []
    for endpoint in ENDPOINTS:
        for fault in FAULTS:
            outcome = endpoint.outcome(fault)
            for times in (1, None) if outcome.once != outcome.always else (1,):
                name = f"{endpoint.name}-{fault.name}-{'once' if times else 'always'}"
                cases.append(pytest.param(endpoint, fault, times, id=name))
    return cases


@pytest.mark.parametrize(("endpoint", "fault", "times"), matrix())
async def test_fault(fake, tmp_path, caplog, endpoint, fault, times):
    ids = await Ids.prepare(fake, tmp_path)
    outcome = endpoint.outcome(fault)
    succeeds, expected = outcome.expect(times)
    sent_before = len(fake.requests_to(endpoint.method, endpoint.glob))
    submitted_before = len(fake.submissions)
    caplog.clear()
    fake.inject(endpoint.method, endpoint.glob, times=times, **fault.kwargs(endpoint))
    options = {"max_retries": MAX_RETRIES, "busy_timeout": BUSY_TIMEOUT, **fault.client}
    async with fake.client(**options) as client:
        client._http.busy_retry_seconds = BUSY_FLOOR
        if succeeds:
            result = await endpoint.call(client, ids)
            assert isinstance(result, endpoint.returns), outcome.name
        else:
            with pytest.raises(fault.error) as caught:
                await endpoint.call(client, ids)
            check_error(caught.value, endpoint, fault)
            assert not any(tmp_path.iterdir())  # no partial download left behind

    sent = len(fake.requests_to(endpoint.method, endpoint.glob)) - sent_before
    if expected is None:  # waited out 429 until the next wait would overrun busy_timeout
        assert 2 <= sent <= 1 + BUSY_TIMEOUT / BUSY_FLOOR
    else:
        assert sent == expected, outcome.name
    assert retries_logged(caplog) == sent - 1

    handled = fault.handled or (times is not None and sent > times)
    if succeeds and handled and endpoint.gone is not None:
        assert endpoint.gone(fake, ids)
    if succeeds and isinstance(result, Path) and sent > 1:
        assert result.read_bytes() == MEDIA  # the retry wrote the whole file, once
    if endpoint.kind is GENERATION:
        made = len(fake.submissions) - submitted_before
        assert made <= 1  # never a second paid generation
        if succeeds or fault.handled is not None:
            assert made == int(succeeds or bool(fault.handled))


@pytest.mark.parametrize("endpoint", ENDPOINT_PARAMS)
async def test_refused_connection(tmp_path, caplog, endpoint):
    """Nothing was sent, so every Kind retries; the attempts are the retry lines plus one."""
    port = unused_port()
    _, attempts = endpoint.outcome(REFUSAL).expect(None)
    base_url = f"http://127.0.0.1:{port}/v1/tempolor"
    # Without the capacity gate, whose first read would meet the refusal instead.
    options = {"max_retries": MAX_RETRIES, "capacity_aware": False}
    async with TempolorClient(TOKEN, base_url=base_url, **options) as client:
        with pytest.raises(APIConnectionError) as caught:
            await endpoint.call(client, Ids.unreachable(port, tmp_path))
    check_error(caught.value, endpoint, REFUSAL)
    assert retries_logged(caplog) + 1 == attempts
    assert not any(tmp_path.iterdir())
