"""The pure protocol layer (``_protocol``): status -> exception, Retry-After, the retry and
poll timing, the retry decisions per request kind, and decoding, all with plain bytes."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from itertools import islice, pairwise

import pytest
from multidict import CIMultiDict

from tempolor_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    FileFormat,
    JobFailedError,
    JobStatus,
    JobTimeoutError,
    MusicJob,
    MusicType,
    NotFoundError,
    PaginationError,
    PaymentRequiredError,
    RateLimitError,
    ResponseDecodeError,
    RunningJob,
    ServerError,
    SongModel,
    TempolorError,
    Tonality,
    ValidationError,
    _protocol,
)
from tempolor_async._protocol import Kind
from tempolor_async.resources import _service as tempolor_service
from tempolor_async.resources._service import TEMPOLOR

# The documented 429 "busy" body (post-tempolor-music-song.md), verbatim.
BUSY_BODY = (
    b'{ "error": "Account is busy executing X jobs", "runningJobs": { "": [ { "user_id": "",'
    b' "job_id": "", "started": 1715791234567, "replyUrl": "call back URL here, if provided",'
    b' "replyRef": "reference id here, if provided" } ] }, "code": 429 }'
)
TEMPOLOR_BUSY = (
    b'{ "error": "please wait for current Generations to finish or upgrade your plan",'
    b' "code": 429 }'
)
JOB_PATH = "/music/user:12345-tempolor:user_id-job:abcdef123456789"


class FixedRandom(random.Random):
    """A random source whose every draw is ``value``: the extremes of the jitter."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def error(status, content, method="GET", path=JOB_PATH, headers=None):
    return TEMPOLOR.error_for(status, headers or {}, content, method, path)


# ------------------------------------------------------------------ the exception tree


@pytest.mark.parametrize(
    ("cls", "parent"),
    [
        (ConfigurationError, TempolorError),
        (ValidationError, TempolorError),
        (ValidationError, ValueError),
        (APIConnectionError, TempolorError),
        (APITimeoutError, APIConnectionError),
        (APIStatusError, TempolorError),
        (BadRequestError, APIStatusError),
        (AuthenticationError, APIStatusError),
        (PaymentRequiredError, APIStatusError),
        (NotFoundError, APIStatusError),
        (RateLimitError, APIStatusError),
        (ServerError, APIStatusError),
        (ResponseDecodeError, TempolorError),
        (PaginationError, TempolorError),
        (JobFailedError, TempolorError),
        (JobTimeoutError, TempolorError),
    ],
)
def test_exception_tree(cls, parent):
    assert issubclass(cls, parent)


def test_decode_and_status_errors_are_separate_branches():
    assert not issubclass(ResponseDecodeError, APIStatusError)
    assert not issubclass(APIStatusError, APIConnectionError)


# ----------------------------------------------------------------------------- error_for


@pytest.mark.parametrize(
    ("status", "content", "cls", "message"),
    [
        (400, b'{ "error": "Parameter prompt is required", "code": 400 }', BadRequestError,
         "Parameter prompt is required"),
        (401, b'{ "error": "Unauthorized", "code": 401 }', AuthenticationError, "Unauthorized"),
        (402, b'{ "error": "Subscription required", "code": 402 }', PaymentRequiredError,
         "Subscription required"),
        (404, b'{ "error": "No record found for user:1-tempolor:2-job:abc", "code": 404 }',
         NotFoundError, "No record found for user:1-tempolor:2-job:abc"),
        (429, TEMPOLOR_BUSY, RateLimitError,
         "please wait for current Generations to finish or upgrade your plan"),
        (500, b'{"error": "Internal error", "code": 500}', ServerError, "Internal error"),
        (502, b'{"error": "Bad gateway", "code": 502}', ServerError, "Bad gateway"),
        (503, b'{"error": "Service unavailable", "code": 503}', ServerError,
         "Service unavailable"),
        (504, b'{"error": "Gateway timeout", "code": 504}', ServerError, "Gateway timeout"),
        (418, b'{"error": "I am a teapot", "code": 418}', APIStatusError, "I am a teapot"),
    ],
)  # fmt: skip
def test_error_for_maps_status_to_exception(status, content, cls, message):
    exc = error(status, content, method="POST", path="/music/song")
    assert type(exc) is cls
    assert isinstance(exc, APIStatusError)
    assert exc.status == status
    assert exc.message == message
    assert exc.body == json.loads(content)
    assert (exc.method, exc.path) == ("POST", "/music/song")
    text = str(exc)
    assert "POST" in text
    assert "/music/song" in text
    assert message in text
    assert str(status) in text


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
def test_every_5xx_is_a_server_error(status):
    assert type(error(status, b"")) is ServerError


@pytest.mark.parametrize(
    ("status", "content", "fragment"),
    [
        (502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "Bad Gateway"),
        (503, b"<html>" + b"x" * 10_000 + b"</html>", "<html>"),
        (500, b"Internal Server Error\n", "Internal Server Error"),
    ],
)
def test_non_json_error_body_gives_a_readable_message(status, content, fragment):
    exc = error(status, content)
    assert type(exc) is ServerError
    assert str(status) in exc.message
    assert fragment in exc.message
    assert "b'" not in exc.message  # not a bytes repr
    assert len(str(exc)) < 300  # a huge page is cut, not dumped
    assert exc.body == content
    assert JOB_PATH in str(exc)


@pytest.mark.parametrize("content", [b"", b"   \n"])
@pytest.mark.parametrize("status", [404, 503])
def test_empty_error_body_gives_a_readable_message(status, content):
    exc = error(status, content)
    assert exc.status == status
    assert exc.message.strip()
    assert str(status) in exc.message
    assert "b'" not in str(exc)
    assert "GET" in str(exc)
    assert JOB_PATH in str(exc)


@pytest.mark.parametrize(
    "content",
    [
        b'{ "error": "", "code": 400 }',  # the stems splitter's documented 400
        b'{"code": 400}',
        b'{"error": 42}',
        b'["a list"]',
    ],
)
def test_json_error_without_usable_text_still_names_the_status(content):
    exc = error(400, content)
    assert type(exc) is BadRequestError
    assert "400" in exc.message
    assert exc.body == json.loads(content)


def test_error_text_never_contains_headers():
    headers = {"Authorization": "Bearer secret-token-123", "Retry-After": "3"}
    exc = error(429, TEMPOLOR_BUSY, headers=headers)
    assert "secret-token-123" not in str(exc)
    assert "secret-token-123" not in repr(exc)


def test_rate_limit_error_carries_documented_running_jobs():
    exc = error(429, BUSY_BODY, method="POST", path="/music/song", headers={"Retry-After": "31"})
    assert isinstance(exc, RateLimitError)
    assert exc.message == "Account is busy executing X jobs"
    assert exc.retry_after == 31.0
    assert list(exc.running_jobs) == [""]
    [job] = exc.running_jobs[""]
    assert isinstance(job, RunningJob)
    assert (job.user_id, job.job_id) == ("", "")
    assert job.started == datetime(2024, 5, 15, 16, 40, 34, 567000, tzinfo=timezone.utc)
    assert job.reply_url == "call back URL here, if provided"
    assert job.reply_ref == "reference id here, if provided"


def test_rate_limit_error_running_jobs_of_several_accounts():
    payload = {
        "error": "Account is busy executing 3 jobs",
        "code": 429,
        "runningJobs": {
            "111": [{"job_id": "a", "started": "2025-05-15T12:34:56.789Z"}],
            "222": [{"job_id": "b"}, {"job_id": "c", "elapsed": "01:23"}],
        },
    }
    exc = error(429, json.dumps(payload).encode())
    assert {uid: [job.job_id for job in jobs] for uid, jobs in exc.running_jobs.items()} == {
        "111": ["a"],
        "222": ["b", "c"],
    }
    assert exc.running_jobs["111"][0].started == datetime(
        2025, 5, 15, 12, 34, 56, 789000, tzinfo=timezone.utc
    )
    assert exc.running_jobs["222"][1].elapsed == "01:23"


@pytest.mark.parametrize(
    "running_jobs",
    [
        [{"job_id": "a"}],
        "busy",
        {"u": "not a list"},
        {"u": [["not", "an", "object"]]},
        {"u": [{"started": "yesterday"}]},
        {"u": [{"job_id": 5}]},
    ],
)
def test_rate_limit_error_with_malformed_running_jobs_gives_empty_dict(running_jobs):
    content = json.dumps({"error": "Account is busy", "runningJobs": running_jobs}).encode()
    exc = error(429, content)
    assert isinstance(exc, RateLimitError)
    assert exc.running_jobs == {}
    assert exc.message == "Account is busy"


@pytest.mark.parametrize("content", [TEMPOLOR_BUSY, b"", b"<html>busy</html>"])
def test_rate_limit_error_without_running_jobs(content):
    exc = error(429, content)
    assert isinstance(exc, RateLimitError)
    assert exc.running_jobs == {}
    assert exc.retry_after is None


# --------------------------------------------------------------------------- retry_after


def _http_date(seconds_from_now: float) -> str:
    return format_datetime(datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now), True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "2.5"}, 2.5),
        ({"Retry-After": "120"}, 120.0),
        (CIMultiDict({"retry-after": "9"}), 9.0),
    ],
)
def test_retry_after_parses_seconds(headers, expected):
    assert _protocol.retry_after(headers) == expected


def test_retry_after_parses_an_http_date():
    seconds = _protocol.retry_after({"Retry-After": _http_date(120)})
    assert seconds is not None
    assert 100 <= seconds <= 121


def test_retry_after_in_the_past_is_zero():
    assert _protocol.retry_after({"Retry-After": _http_date(-3600)}) == 0.0


@pytest.mark.parametrize(
    "value",
    ["", "soon", "abc123", "Mon, 99 Foo 2025 99:99:99 GMT", "1 minute", "nan", "inf"],
)
def test_retry_after_ignores_junk(value):
    assert _protocol.retry_after({"Retry-After": value}) is None


def test_retry_after_absent_is_none():
    assert _protocol.retry_after({}) is None
    assert _protocol.retry_after({"Content-Type": "application/json"}) is None


@pytest.mark.parametrize("value", ["-5", "-0.5"])
def test_retry_after_never_negative(value):
    assert _protocol.retry_after({"Retry-After": value}) in (0.0, None)


# ---------------------------------------------------------------------- retry timing


def _draws(retry, after=None, n=500):
    rng = random.Random(retry)
    return [_protocol.retry_delay(retry, after, rng=rng) for _ in range(n)]


def test_first_retry_waits_about_half_a_second():
    delays = _draws(1)
    assert min(delays) >= 0.25
    assert max(delays) <= 0.5
    assert max(delays) > 0.45
    assert _protocol.retry_delay(1, rng=FixedRandom(0.0)) == pytest.approx(0.25)
    assert _protocol.retry_delay(1, rng=FixedRandom(0.999999)) == pytest.approx(0.5)


@pytest.mark.parametrize("retry", range(1, 13))
def test_retry_delay_is_exponential_with_jitter_and_capped(retry):
    ceiling = min(8.0, 0.5 * 2 ** (retry - 1))
    delays = _draws(retry)
    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 100  # jittered, not one fixed value


def test_retry_delay_grows_then_stays_at_the_cap():
    means = [sum(_draws(retry)) / 500 for retry in range(1, 12)]
    assert all(later > earlier * 1.8 for earlier, later in pairwise(means[:5]))
    assert max(max(_draws(retry)) for retry in range(5, 12)) <= 8.0
    assert max(_draws(10)) > 7.5  # it does reach the cap
    assert means[-1] == pytest.approx(means[-2], rel=0.1)


def test_retry_delay_without_a_random_source_stays_in_bounds():
    delays = [_protocol.retry_delay(3) for _ in range(300)]
    assert all(1.0 <= delay <= 2.0 for delay in delays)


@pytest.mark.parametrize(("retry", "after"), [(1, 5.0), (2, 12.5), (6, 30.0)])
def test_retry_delay_honours_a_longer_retry_after(retry, after):
    assert all(delay == after for delay in _draws(retry, after, n=50))


def test_retry_delay_caps_retry_after():
    delays = _draws(1, after=100_000.0, n=20)
    assert all(delay == _protocol.RETRY_AFTER_CAP for delay in delays)
    assert 8.0 <= _protocol.RETRY_AFTER_CAP <= 300.0


def test_retry_delay_keeps_backoff_when_retry_after_is_shorter():
    assert all(2.0 <= delay <= 4.0 for delay in _draws(4, after=0.1))
    assert all(2.0 <= delay <= 4.0 for delay in _draws(4, after=0.0))


# ----------------------------------------------------------------------- busy timing


@pytest.mark.parametrize("after", [None, 0.0, 5.0, 29.9])
def test_busy_delay_is_never_below_30_seconds_by_default(after):
    rng = random.Random(7)
    delays = [_protocol.busy_delay(after, rng=rng) for _ in range(1000)]
    assert min(delays) >= 30.0
    assert max(delays) <= 33.0  # jitter, not an arbitrary wait
    assert _protocol.busy_delay(after, rng=FixedRandom(0.0)) >= 30.0


def test_busy_delay_default_without_random_source():
    assert min(_protocol.busy_delay() for _ in range(1000)) >= 30.0


def test_busy_delay_honours_a_longer_retry_after():
    assert _protocol.busy_delay(90.0, rng=FixedRandom(0.5)) == 90.0
    assert _protocol.busy_delay(10**9, rng=FixedRandom(0.5)) < 10**9  # capped


@pytest.mark.parametrize("floor", [0.05, 1.0, 10.0])
def test_busy_delay_respects_a_lower_floor(floor):
    rng = random.Random(3)
    delays = [_protocol.busy_delay(floor=floor, rng=rng) for _ in range(500)]
    assert min(delays) >= floor
    assert max(delays) <= floor * 1.1 + 1e-9
    assert max(delays) < 30.0
    assert _protocol.busy_delay(floor=floor, rng=FixedRandom(0.0)) == pytest.approx(floor)


# ----------------------------------------------------------------------- poll timing


def test_adaptive_poll_schedule_starts_at_2_and_grows_to_15():
    delays = list(islice(_protocol.poll_delays(), 20))
    assert delays[0] == 2.0
    assert all(later >= earlier for earlier, later in pairwise(delays))
    assert delays[1] > delays[0]
    assert max(delays) == 15.0
    assert delays[-1] == 15.0
    assert delays.index(15.0) <= 10  # reaches the cap in a reasonable number of polls


@pytest.mark.parametrize("fixed", [0.05, 1.0, 5.0, 30.0])
def test_fixed_poll_schedule_stays_fixed(fixed):
    assert list(islice(_protocol.poll_delays(fixed), 25)) == [fixed] * 25


# ------------------------------------------------------------------- retry decisions


@pytest.mark.parametrize(
    ("kind", "retried"),
    [
        (Kind.IDEMPOTENT, {429, 500, 502, 503, 504}),
        (Kind.GENERATION, set()),
        (Kind.UPLOAD, set()),
    ],
)
def test_should_retry_status(kind, retried):
    statuses = [400, 401, 402, 404, 409, 418, 429, 500, 502, 503, 504]
    assert {status for status in statuses if _protocol.should_retry_status(kind, status)} == (
        retried
    )


@pytest.mark.parametrize(
    ("kind", "sent", "expected"),
    [
        (Kind.IDEMPOTENT, False, True),
        (Kind.IDEMPOTENT, True, True),
        (Kind.GENERATION, False, True),
        (Kind.GENERATION, True, False),
        (Kind.UPLOAD, False, True),
        (Kind.UPLOAD, True, False),
    ],
)
def test_should_retry_failure(kind, sent, expected):
    assert _protocol.should_retry_failure(kind, sent) is expected


def _status_error(cls, status):
    return cls("x", status=status, method="GET", path="/music/x")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (APIConnectionError("refused"), True),
        (APITimeoutError("slow"), True),
        (_status_error(RateLimitError, 429), True),
        (_status_error(ServerError, 500), True),
        (_status_error(ServerError, 503), True),
        (_status_error(NotFoundError, 404), False),
        (_status_error(BadRequestError, 400), False),
        (_status_error(AuthenticationError, 401), False),
        (ResponseDecodeError("bad"), False),
        (ValueError("other"), False),
    ],
)
def test_transient_errors(exc, expected):
    assert _protocol.transient(exc) is expected


@pytest.mark.parametrize(
    ("job_id", "item_id"),
    [
        ("user:12345-tempolor:user_id-job:abcdef123456789", "abcdef123456789"),
        ("plain-id", "plain-id"),
        ("a-job:b-job:c", "c"),
    ],
)
def test_item_id_of(job_id, item_id):
    assert _protocol.item_id_of(job_id) == item_id


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"not json", b"<html>ok</html>", b'{"status": 30', b"[" * 100_000],
)
def test_decode_refuses_malformed_json(content):
    with pytest.raises(ResponseDecodeError) as info:
        _protocol.decode(content, MusicJob, "GET", JOB_PATH)
    assert (info.value.method, info.value.path) == ("GET", JOB_PATH)
    assert "GET" in str(info.value)
    assert JOB_PATH in str(info.value)


@pytest.mark.parametrize("content", [b"[]", b'[{"status": 30}]', b'"text"', b"30", b"null"])
def test_decode_refuses_a_non_object_where_an_object_belongs(content):
    with pytest.raises(ResponseDecodeError) as info:
        _protocol.decode(content, MusicJob, "GET", JOB_PATH)
    assert info.value.path == JOB_PATH
    assert info.value.body == content


def test_decode_refuses_an_object_where_a_list_belongs():
    with pytest.raises(ResponseDecodeError):
        _protocol.decode(b'{"job_id": "a"}', list[RunningJob], "GET", "/scheduler/")


def test_decode_error_names_the_key_path():
    with pytest.raises(ResponseDecodeError, match=r"musicMaterial\.bpm") as info:
        _protocol.decode(b'{"musicMaterial": {"bpm": "fast"}}', MusicJob, "GET", JOB_PATH)
    assert info.value.method == "GET"


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ({"musicMaterial": {"style": "pop", "bpm": "fast"}}, r"at musicMaterial\.bpm,"),
        ({"createTime": 10**30}, r"a timestamp at createTime,"),
        ({"createTime": True}, r"at createTime,"),
        ({"status": 2.5}, r"a whole number at status,"),
        ({"status": "30"}, r"a whole number at status,"),
        ({"progress": "50"}, r"a number at progress,"),
        ({"titleEn": 5}, r"text at titleEn,"),
    ],
)
def test_a_known_key_layout_is_checked_as_strictly(bad, where):
    """Records in a layout seen before take generated code with inline conversions (nested
    objects, timestamps, enums): a wrong value there is refused and named just the same."""
    good = {
        "job_id": "j",
        "status": 30,
        "progress": 100,
        "titleEn": "t",
        "createTime": 1716565425000,
        "musicMaterial": {"style": "pop", "bpm": 120},
    }
    job = _protocol.decode(json.dumps(good).encode(), MusicJob, "GET", JOB_PATH)
    assert job.status is JobStatus.COMPLETED
    assert job.create_time == datetime(2024, 5, 24, 15, 43, 45, tzinfo=timezone.utc)
    assert job.music_material is not None
    assert job.music_material.bpm == 120
    content = json.dumps({**good, **bad}).encode()  # the same keys in the same order
    for _ in range(2):  # the second time, the layout's code exists already
        with pytest.raises(ResponseDecodeError, match=where):
            _protocol.decode(content, MusicJob, "GET", JOB_PATH)


def test_a_page_names_the_index_of_the_bad_record():
    records = [{"job_id": "a", "status": 30}, {"job_id": "b", "status": "x"}]
    content = json.dumps({"records": records, "hasNext": False}).encode()
    with pytest.raises(ResponseDecodeError, match=r"records: .*at \[1\]\.status"):
        decode_page(content)


def test_decode_gives_the_model():
    job = _protocol.decode(b'{"job_id": "j", "status": 10}', MusicJob, "GET", JOB_PATH)
    assert isinstance(job, MusicJob)
    assert (job.job_id, job.status) == ("j", JobStatus.FAILED)


def page(**fields):
    return json.dumps({"records": [{"job_id": "a"}, {"job_id": "b"}], **fields}).encode()


def decode_page(content):
    return tempolor_service.decode_page(content, MusicJob, "GET", "/music/")


MALFORMED_PAGES = {
    "empty": b"",
    "broken-json": b"{",
    "list": b"[]",
    "list-of-records": b'[{"job_id": "a"}]',
    "text": b'"records"',
    "hasNext-text-true": page(hasNext="true", cursor="c"),
    "hasNext-text-false": page(hasNext="false"),
    "hasNext-1": page(hasNext=1, cursor="c"),
    "hasNext-0": page(hasNext=0),
    "hasNext-empty-text": page(hasNext="", cursor="c"),
    "hasNext-list": page(hasNext=[], cursor="c"),
    "cursor-number": page(hasNext=True, cursor=123),
    "cursor-list": page(hasNext=True, cursor=["c"]),
    "cursor-empty-list": page(hasNext=True, cursor=[]),
    "cursor-object": page(hasNext=True, cursor={"next": "c"}),
    "cursor-0": page(hasNext=False, cursor=0),
    "cursor-false": page(hasNext=True, cursor=False),
    "records-object": json.dumps({"records": {"job_id": "a"}, "hasNext": False}).encode(),
    "records-text": json.dumps({"records": "abc", "hasNext": False}).encode(),
    "record-wrong-type": json.dumps({"records": [{"status": "done"}], "hasNext": False}).encode(),
    "record-not-object": json.dumps({"records": ["a"], "hasNext": False}).encode(),
}


@pytest.mark.parametrize("content", MALFORMED_PAGES.values(), ids=MALFORMED_PAGES.keys())
def test_decode_page_refuses_malformed_pages(content):
    with pytest.raises(ResponseDecodeError) as info:
        decode_page(content)
    assert "/music/" in str(info.value)


def test_decode_page_error_names_the_record():
    content = json.dumps({"records": [{}, {"progress": "half"}], "hasNext": False}).encode()
    with pytest.raises(ResponseDecodeError, match=r"\[1\]\.progress"):
        decode_page(content)


@pytest.mark.parametrize(
    ("content", "has_next", "cursor"),
    [
        (page(hasNext=True, cursor="next_page_cursor_token"), True, "next_page_cursor_token"),
        (page(hasNext=False, cursor="stale"), False, None),
        (page(hasNext=False, cursor=""), False, None),
        (page(hasNext=True, cursor=""), True, None),
        (page(hasNext=True), True, None),
        (page(hasNext=True, cursor=None), True, None),
        (page(), False, None),
        (page(hasNext=None, cursor="x"), False, None),
    ],
)
def test_decode_page_cursor_is_none_at_the_end(content, has_next, cursor):
    result = decode_page(content)
    assert [job.job_id for job in result.items] == ["a", "b"]
    assert result.has_next is has_next
    assert result.cursor == cursor


@pytest.mark.parametrize(
    "content", [b'{"hasNext": false, "cursor": ""}', b'{"records": [], "hasNext": true}']
)
def test_decode_page_without_records_is_empty(content):
    assert decode_page(content).items == []


# ------------------------------------------------------------------ building requests


def test_query_drops_none_and_sends_enum_values():
    assert _protocol.query(
        type=MusicType.INSTRUMENTAL, cursor=None, user_id="100349856", file_format=FileFormat.STEMS
    ) == {"type": "instrumental", "user_id": "100349856", "file_format": "stems"}


def test_query_of_nothing_is_empty():
    assert _protocol.query(cursor=None, user_id=None) == {}


def test_body_drops_none_and_sends_enum_values():
    sent = _protocol.body(
        prompt="calm piano",
        lyrics=None,
        model_song=SongModel.V3_5,
        tonality=Tonality.C_SHARP_MINOR,
        bpm=80,
        maxJobs=None,
        replyRef="",
        flag=False,
        requestParams={"user_id": "1", "nested": [1, 2]},
    )
    assert sent == {
        "prompt": "calm piano",
        "model_song": "v3.5",
        "tonality": "C#:minor",
        "bpm": 80,
        "replyRef": "",
        "flag": False,
        "requestParams": {"user_id": "1", "nested": [1, 2]},
    }
    assert type(sent["model_song"]) is str
    assert type(sent["tonality"]) is str
    assert json.loads(json.dumps(sent)) == sent


@pytest.mark.parametrize(
    ("member", "wire"),
    [
        (Tonality.A_FLAT_MAJOR, "Ab:major"),
        (SongModel.V3, "v3"),
        (FileFormat.MP3, "mp3"),
        (MusicType.SONG, "song"),
        (JobStatus.COMPLETED, 30),
    ],
)
def test_enums_travel_as_their_values(member, wire):
    assert _protocol.body(value=member) == {"value": wire}
    assert json.dumps(_protocol.body(value=member)) == json.dumps({"value": wire})
