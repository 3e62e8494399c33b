"""Property tests of decoding (SPEC section 4) and error mapping (section 7) on hostile input.

Whatever the service sends, decoding a model either works or raises ResponseDecodeError:
never another exception. Objects are built from each model's own JSON keys (read from
``attrs.fields``) with well-typed values, wrong types, nulls, huge numbers, inf/nan, deep
nesting and odd unicode, plus extra and missing keys. A value that decodes keeps its source
object as ``.raw`` (nested models too) and survives ``repr``/``str``; one built only from
well-typed values must decode. The same holds one level down, for raw response bytes, and
``error_for`` turns any status, headers and body into an APIStatusError.
"""

from __future__ import annotations

import functools
import json
import math
import types
import typing
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

import tempolor_async
from tempolor_async import (
    Account,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    JobStatus,
    NotFoundError,
    Page,
    PaymentRequiredError,
    RateLimitError,
    ResponseDecodeError,
    RunningJob,
    ServerError,
)
from tempolor_async import _convert as convert
from tempolor_async import _protocol as protocol
from tempolor_async.resources import _service as tempolor_service
from tempolor_async.resources._service import TEMPOLOR

FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

EXPECTED_MODELS = {
    "Account", "Submission", "MusicJob", "MusicMaterial", "LtmMaterialExtend", "DownloadLink",
    "StemsSplit", "ArtistVoice", "ClonedVoice", "VoiceClone", "MidiFile", "MidiUpload",
    "RunningJob", "Capacity", "AccountCapacity",
}  # fmt: skip
MODELS = [
    getattr(tempolor_async, name)
    for name in tempolor_async.__all__
    if attrs.has(getattr(tempolor_async, name))
    and getattr(tempolor_async, name) is not Page
    # batch requests and reports are built by the caller, not decoded from the service's JSON
    and not getattr(tempolor_async, name).__module__.startswith("tempolor_async.batch")
]
CONTAINERS = [list[RunningJob], dict[str, Account]]
PAGED = [getattr(tempolor_async, name) for name in ("MusicJob", "ArtistVoice", "ClonedVoice")]
PAGED.append(tempolor_async.MidiFile)  # the item types of the four AsyncPager lists


def type_id(target: Any) -> str:
    if typing.get_args(target):
        return str(target).replace("tempolor_async._models.", "")
    return str(target.__name__)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


@functools.cache
def json_fields(cls: type) -> tuple[tuple[str, str, Any], ...]:
    """``(json key, attribute name, type)`` of every attribute the JSON feeds."""
    hints = typing.get_type_hints(cls)
    found = []
    for field in attrs.fields(cls):
        key = field.metadata.get("json", camel(field.name))
        if field.name != "raw" and key is not None:
            found.append((key, field.name, hints[field.name]))
    return tuple(found)


def test_every_exported_model_is_fuzzed():
    assert {cls.__name__ for cls in MODELS} == EXPECTED_MODELS
    assert all(json_fields(cls) for cls in MODELS)
    assert ("midiRenderVO", "midi", tempolor_async.MidiFile | None) in json_fields(
        tempolor_async.MidiUpload
    )
    assert "ready" not in {name for _, name, _ in json_fields(tempolor_async.VoiceClone)}


# ------------------------------------------------------------------------ strategies

ODD_TEXT = [
    "", " ", "\u0301", "e\u0301\u0301", "\u200f\u05e9\u05dc\u05d5\u05dd", "\u202eevil", "\u200b",
    "\ufeff", "\x00", "a\x00b", "\x1b[31m", "\U0001f3b5", "\U0001f468\u200d\U0001f469", "\ufdfa",
    "\n\r\t", "null", "NaN", "1e999", "-0", "true", "[]", "{}", "\\", "%2e%2e/", "x" * 5000,
    "2025-05-15T14:30:34.567Z", "2025-13-45T99:99:99Z", "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00", "2025-05-15", "2025-05-15T14:30:34.567z", "Z",
]  # fmt: skip
TEXT = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=20), st.sampled_from(ODD_TEXT)
)
HUGE_INTS = [2**63, -(2**63) - 1, 2**64 + 1, 10**30, -(10**400), 2**1000]
ODD_FLOATS = [1e308, -1e308, 5e-324, -0.0, 3.9, 1e16, 2.0**63, 2.0**1000]
ODD_FLOATS += [json.loads(text) for text in ("1e999", "-1e999", "NaN", "-Infinity")]
INTS = st.one_of(st.integers(), st.sampled_from(HUGE_INTS))
NUMBERS = st.one_of(INTS, st.floats(), st.sampled_from(ODD_FLOATS))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)


def nested(depth: int, kind: str) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


DEEP = st.builds(nested, st.integers(50, 500), st.sampled_from(["list", "dict"]))
SHALLOW = st.one_of(
    st.lists(SCALARS, max_size=3), st.dictionaries(TEXT, SCALARS, max_size=3), st.just([{}])
)
ANY = st.one_of(SCALARS, SHALLOW, st.lists(SHALLOW, max_size=2), DEEP)
WHOLE_FLOATS = st.integers(-(2**53), 2**53).map(float)
OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
MOMENTS = st.datetimes(datetime(1971, 1, 1), datetime(9998, 1, 1), timezones=OFFSETS)
TIMESTAMPS = st.one_of(
    st.integers(0, 253_000_000_000_000),
    st.floats(0, 2.5e14),
    MOMENTS.map(datetime.isoformat),
    MOMENTS.map(lambda moment: moment.replace(tzinfo=None).isoformat() + "Z"),
    MOMENTS.map(lambda moment: moment.replace(tzinfo=None).isoformat()),
)
SIMPLE = {
    str: TEXT,
    bool: st.booleans(),
    # Whole numbers a JSON parser reads exactly: orjson, the SDK's, reads integers beyond 64
    # bits as floats, which no int field accepts (huge ones still come in non-strict cases).
    int: st.one_of(st.integers(-(2**63), 2**64 - 1), WHOLE_FLOATS),
    float: NUMBERS,
    datetime: TIMESTAMPS,
    Any: ANY,
}


def members(annotation: Any) -> list[Any]:
    """The non-None types of an ``X | None`` annotation, or the annotation itself."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return [annotation]


@functools.cache
def values(annotation: Any, strict: bool) -> st.SearchStrategy[Any]:
    """JSON for ``annotation``: well-typed (strict), or well-typed and anything else."""
    typed = [well_typed(member, strict) for member in members(annotation)]
    return st.one_of(*typed) if strict else st.one_of(*typed, ANY)


def well_typed(annotation: Any, strict: bool) -> st.SearchStrategy[Any]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        return st.lists(values(args[0], strict), max_size=3)
    if origin is dict:
        return st.dictionaries(TEXT, values(args[1], strict), max_size=3)
    if attrs.has(annotation):
        return objects(annotation, strict)
    if annotation is JobStatus:
        return st.sampled_from([status.value for status in JobStatus])
    return SIMPLE[annotation]


@functools.cache
def objects(cls: type, strict: bool) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object with any subset of the model's keys (null allowed), plus extra keys."""
    fields = {key: st.none() | values(kind, strict) for key, _, kind in json_fields(cls)}
    known = set(fields)
    extra_keys = TEXT.filter(lambda key: key not in known) if strict else TEXT
    extras = st.dictionaries(extra_keys, ANY, max_size=3)
    return st.builds(
        lambda extra, own: {**extra, **own}, extras, st.fixed_dictionaries({}, optional=fields)
    )


@functools.cache
def inputs(target: Any) -> st.SearchStrategy[tuple[bool, Any]]:
    """``(must decode, JSON)``: strict objects, messy objects, or any JSON at all."""
    return st.one_of(
        values(target, True).map(lambda value: (True, value)),
        values(target, False).map(lambda value: (False, value)),
    )


# -------------------------------------------------------------------------- checks


def same(left: Any, right: Any) -> bool:
    return left == right or (left != left and right != right)  # NaN is itself here


def check_value(decoded: Any, source: Any, annotation: Any) -> None:
    """``decoded`` is what ``source`` (JSON of a well-typed ``annotation``) should become."""
    if source is None:
        assert decoded is None
        return
    [kind] = members(annotation) if JobStatus not in members(annotation) else [JobStatus]
    origin = typing.get_origin(kind)
    if origin is list:
        assert len(decoded) == len(source)
        for item, raw in zip(decoded, source, strict=True):
            check_value(item, raw, typing.get_args(kind)[0])
    elif origin is dict:
        assert list(decoded) == list(source)
        for key, raw in source.items():
            check_value(decoded[key], raw, typing.get_args(kind)[1])
    elif attrs.has(kind):
        check_model(decoded, source)
    elif kind is datetime:
        assert isinstance(decoded, datetime)
        assert decoded.utcoffset() == timedelta(0)
    elif kind is JobStatus:
        assert decoded == source
        assert isinstance(decoded, JobStatus) == (source in (0, 10, 30))
    else:
        assert same(decoded, source)
        assert type(decoded) is (int if kind is int else type(source))


def check_model(model: Any, source: dict[str, Any]) -> None:
    assert model.raw is source
    for key, name, kind in json_fields(type(model)):
        check_value(getattr(model, name), source.get(key), kind)


def check_raw(decoded: Any, source: Any) -> None:
    """Every model, however deep, keeps the very object it came from as ``.raw``."""
    if attrs.has(type(decoded)):
        assert decoded.raw is source
        for key, name, _ in json_fields(type(decoded)):
            check_raw(getattr(decoded, name), source.get(key))
    elif isinstance(decoded, list):
        for item, raw in zip(decoded, source, strict=True):
            check_raw(item, raw)
    elif isinstance(decoded, dict) and isinstance(source, dict):
        for key, item in decoded.items():
            check_raw(item, source[key])


def shown(decoded: Any) -> None:
    """``repr`` and ``str`` of the result and of every model in it work."""
    for text in (repr(decoded), str(decoded)):
        assert isinstance(text, str)
    found = decoded.values() if isinstance(decoded, dict) else decoded
    for item in found if isinstance(decoded, (dict, list)) else [decoded]:
        assert repr(item) == str(item)
        assert repr(item).startswith(type(item).__name__ + "(")


def outcome(call: Any, *args: Any) -> tuple[Any, ResponseDecodeError | None]:
    """``(result, None)``, or ``(None, the ResponseDecodeError)``; anything else escapes."""
    try:
        return call(*args), None
    except ResponseDecodeError as exc:
        return None, exc


def decode_or_reject(value: Any, target: Any) -> Any:
    decoded, error = outcome(convert.decode, value, target)
    if error is not None:
        assert str(error).startswith("expected ")
        assert repr(error).startswith("ResponseDecodeError(")
        return None
    shown(decoded)
    check_raw(decoded, value)
    return decoded


@pytest.mark.parametrize("target", MODELS + CONTAINERS, ids=type_id)
@FUZZ
@given(case=st.data())
def test_decoding_raises_only_response_decode_error(target, case):
    strict, value = case.draw(inputs(target))
    decoded = decode_or_reject(value, target)
    if strict:
        assert decoded is not None, value
        check_value(decoded, value, target)


# ---------------------------------------------------------------------------- bytes

ENCODINGS = ["utf-8", "utf-16", "utf-32"]
ODD_BYTES = [
    b"", b" ", b"null", b"NaN", b"1e999", b"-Infinity", b'"\\ud800"', b'{"a": "\\udfff"}',
    b"\xff\xfe\x00", b"\xef\xbb\xbf{}", b"\xc0\xaf", b"{\"a\": 1,}", b"{'a': 1}", b"[1, 2",
    b"<html>bad gateway</html>", b"{}" * 3, b"[" * 100_000, b'{"a":' * 50_000,
    b"9" * 5000, b"[" + b"1e999," * 100 + b"0]",
]  # fmt: skip


def dumped(value: Any, encoding: str) -> bytes:
    return json.dumps(value, ensure_ascii=encoding == "ascii").encode(encoding)


def mutated(content: bytes, where: int, byte: int) -> bytes:
    where %= len(content) + 1
    return content[:where] + bytes([byte]) + content[where + 1 :]


@functools.cache
def content_for(target: st.SearchStrategy[tuple[bool, Any]]) -> st.SearchStrategy[Any]:
    """``(must decode, parsed JSON or None, bytes)`` for a response body."""
    encoded = st.tuples(target, st.sampled_from([*ENCODINGS, "ascii"])).map(
        lambda pair: (pair[0][0], pair[0][1], dumped(pair[0][1], pair[1]))
    )
    broken = st.tuples(encoded, st.integers(0, 10**6), st.integers(0, 255)).map(
        lambda triple: (False, None, mutated(triple[0][2], triple[1], triple[2]))
    )
    cut = st.tuples(encoded, st.integers(0, 10**6)).map(
        lambda pair: (False, None, pair[0][2][: pair[1] % max(1, len(pair[0][2]))])
    )
    junk = st.one_of(st.binary(max_size=300), st.sampled_from(ODD_BYTES))
    return st.one_of(encoded, broken, cut, junk.map(lambda data: (False, None, data)))


def as_json(value: Any) -> str:
    """The value as the SDK's JSON parser (orjson) reads it back: an integer beyond 64 bits
    becomes a float (one too large for a float falls back to the standard library, which
    reads it exactly), the one place where parsed JSON differs from the standard library's."""
    return json.dumps(_as_parsed(value), sort_keys=False)


def _as_parsed(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _as_parsed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_parsed(item) for item in value]
    if type(value) is int and not -(2**63) <= value < 2**64:
        try:
            return float(value)
        except OverflowError:  # orjson refuses it; the standard library reads it exactly
            return value
    return value


@pytest.mark.parametrize("target", MODELS + CONTAINERS, ids=type_id)
@settings(FUZZ, max_examples=300)
@given(case=st.data())
def test_response_bytes_decode_or_raise_response_decode_error(target, case):
    strict, value, content = case.draw(content_for(inputs(target)))
    decoded, error = outcome(protocol.decode, content, target, "GET", "/x")
    if error is not None:
        assert str(error).startswith("GET /x: ")
        assert error.body == content
        assert not strict, value
        return
    shown(decoded)
    if value is not None:
        assert as_json(raw_json(decoded)) == as_json(value)


def raw_json(decoded: Any) -> Any:
    """The JSON the result was decoded from, rebuilt from its models' ``.raw``."""
    if isinstance(decoded, list):
        return [raw_json(item) for item in decoded]
    if isinstance(decoded, dict):
        return {key: raw_json(item) for key, item in decoded.items()}
    return decoded.raw


@functools.cache
def pages(item: type, strict: bool) -> st.SearchStrategy[Any]:
    keys = {
        "records": st.none() | values(list[item], strict),
        "hasNext": st.booleans() if strict else st.one_of(st.booleans(), ANY),
        "cursor": st.none() | TEXT if strict else st.one_of(TEXT, ANY),
    }
    page = st.fixed_dictionaries({}, optional=keys)
    return page if strict else st.one_of(page, ANY)


@functools.cache
def page_inputs(item: type) -> st.SearchStrategy[tuple[bool, Any]]:
    strict = pages(item, True).map(lambda value: (True, value))
    return st.one_of(strict, pages(item, False).map(lambda value: (False, value)))


@pytest.mark.parametrize("item", PAGED, ids=type_id)
@FUZZ
@given(case=st.data())
def test_pages_decode_or_raise_response_decode_error(item, case):
    strict, value, content = case.draw(content_for(page_inputs(item)))
    page, error = outcome(tempolor_service.decode_page, content, item, "GET", "/music/")
    if error is not None:
        assert str(error).startswith("GET /music/: ")
        assert not strict, value
        return
    assert isinstance(page, Page)
    assert type(page.has_next) is bool
    assert page.cursor is None or (page.has_next and isinstance(page.cursor, str) and page.cursor)
    shown(page)
    records = json.loads(content).get("records") or []
    assert [as_json(found.raw) for found in page.items] == [as_json(raw) for raw in records]
    for found in page.items:
        assert isinstance(found, item)
        shown(found)


# ----------------------------------------------------------------------- error_for

ERRORS = {400: BadRequestError, 401: AuthenticationError, 402: PaymentRequiredError}
ERRORS |= {404: NotFoundError, 429: RateLimitError}
RETRY_AFTER = st.one_of(
    st.sampled_from(
        [
            "", "0", "-1", "1e999", "nan", "inf", "-inf", "120", "1.5", " 7 ", "1_0", "\u0661",
            "Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "garbage",
            "Mon, 01 Jan 0001 00:00:00 GMT", "Sun, 06 Nov 1994 08:49:37 +2359", "Thu, 01 Jan 1970",
            "Sun, 06 Nov 1994 08:49:37 +9999", "Sun, 99 Nov 1994 08:49:37 GMT",
        ]
    ),
    TEXT,
    st.datetimes(timezones=OFFSETS).map(format_datetime),
    NUMBERS.map(str),
)  # fmt: skip
HEADER_NAMES = st.sampled_from(["Retry-After", "retry-after", "Content-Type", "X-Other"])
HEADERS = st.lists(st.tuples(HEADER_NAMES, RETRY_AFTER), max_size=3).map(CIMultiDict)
ERROR_BODIES = st.fixed_dictionaries(
    {},
    optional={
        "error": st.one_of(TEXT, ANY),
        "code": ANY,
        "runningJobs": values(dict[str, list[RunningJob]], False),
    },
)
ERROR_CONTENT = st.one_of(
    st.tuples(ERROR_BODIES, st.sampled_from(ENCODINGS)).map(lambda pair: dumped(*pair)),
    content_for(inputs(RunningJob)).map(lambda triple: triple[2]),
)


@FUZZ
@given(
    status=st.one_of(st.integers(100, 599), st.sampled_from([0, 600, 999, 1000])),
    headers=HEADERS,
    content=ERROR_CONTENT,
    method=st.sampled_from(["GET", "POST", "DELETE"]),
)
def test_error_for_always_returns_a_status_error(status, headers, content, method):
    error = TEMPOLOR.error_for(status, headers, content, method, "/music/x")
    assert isinstance(error, APIStatusError)
    expected = ERRORS.get(status) or (ServerError if status >= 500 else APIStatusError)
    assert type(error) is expected
    assert error.status == status
    assert str(error).startswith(f"{method} /music/x -> {status}: ")
    assert isinstance(error.message, str)
    assert error.message
    assert repr(error)
    if isinstance(error, RateLimitError):
        assert isinstance(error.running_jobs, dict)
        for jobs in error.running_jobs.values():
            assert all(isinstance(job, RunningJob) for job in jobs)
            shown(jobs)
        after = error.retry_after
        assert after is None or (math.isfinite(after) and after >= 0)


@pytest.mark.parametrize("records", [0, False, "", {}, "abc", 1.5, {"a": {}}], ids=repr)
def test_records_of_the_wrong_type_are_refused(records):
    content = json.dumps({"records": records, "hasNext": False, "cursor": ""}).encode()
    with pytest.raises(ResponseDecodeError, match="records"):
        tempolor_service.decode_page(content, tempolor_async.MusicJob, "GET", "/music/")
