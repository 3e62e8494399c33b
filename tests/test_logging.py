"""Logging on "tempolor_async" (one DEBUG line per exchange, a WARNING per retry), and
secrets: the token and an account's requestParams values never show anywhere."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable

import pytest

from tempolor_async import (
    NotFoundError,
    TempolorClient,
    TempolorError,
)
from tempolor_async import _protocol as protocol

pytestmark = pytest.mark.anyio

DEFAULT_USER = "100349856"
SECOND_USER = "300400500"
TICKET = "ticket-SECRET-456"
DURATION = re.compile(r"\d+(\.\d+)?\s*(ms|s)\b")
ATTEMPT = re.compile(r"attempt\D{0,3}(\d+)")


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the exponential backoff (0.5 s doubling) from slowing the tests down."""
    monkeypatch.setattr(protocol, "RETRY_BASE_SECONDS", 0.005)


def sdk_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "tempolor_async" and record.levelno == level
    ]


# ------------------------------------------------------------------ lines


async def test_one_debug_line_per_exchange_and_a_warning_per_retry(fake, caplog):
    caplog.set_level(logging.DEBUG, logger="tempolor_async")
    fake.inject("GET", "/scheduler/", status=503)
    fake.inject("GET", "/scheduler/available", delay=0.3)
    async with fake.client(timeout=0.1) as client:
        await client.scheduler.list()
        await client.scheduler.available()
        submission = await client.music.create_song("a calm piano piece")
        await client.scheduler.cancel(submission.jobs[0])
    debug = sdk_lines(caplog, logging.DEBUG)
    expected = [
        ("GET", "/scheduler/", "503", 1),
        ("GET", "/scheduler/", "200", 2),
        ("GET", "/scheduler/available", None, 1),  # timed out: no status
        ("GET", "/scheduler/available", "200", 2),
        ("GET", "/accounts", "200", 1),  # the capacity gate reads the accounts' slots
        ("GET", "/scheduler/available", "200", 1),
        ("POST", "/music/song", "200", 1),
        ("DELETE", f"/scheduler/{submission.jobs[0]}", "204", 1),
    ]
    assert len(debug) == len(expected) == len(fake.requests)
    for line, (method, path, status, attempt) in zip(debug, expected, strict=True):
        assert line.startswith(f"{method} {path} "), line
        assert status is None or re.search(rf"\b{status}\b", line), line
        assert DURATION.search(line), line
        found = ATTEMPT.search(line)
        assert found, line
        assert int(found.group(1)) == attempt, line
    warnings = sdk_lines(caplog, logging.WARNING)
    assert len(warnings) == 2
    assert "GET /scheduler/ " in warnings[0]
    assert "503" in warnings[0]
    assert "GET /scheduler/available " in warnings[1]


async def test_no_retry_no_warning(fake, caplog):
    caplog.set_level(logging.DEBUG, logger="tempolor_async")
    async with fake.client() as client:
        await client.accounts.list()
        with pytest.raises(NotFoundError):
            await client.accounts.get("999999")
    assert len(sdk_lines(caplog, logging.DEBUG)) == 2
    assert sdk_lines(caplog, logging.WARNING) == []


async def test_media_downloads_are_logged_without_their_query(fake, caplog, tmp_path):
    caplog.set_level(logging.DEBUG, logger="tempolor_async")
    async with fake.client() as client:
        submission = await client.music.create_song("a calm piano piece")
        fake.complete(submission.jobs[0])
        await client.music.download(submission.jobs[0], tmp_path)
    media = [line for line in sdk_lines(caplog, logging.DEBUG) if "/cdn/" in line]
    assert len(media) == 1
    assert media[0].startswith("GET /cdn/ai_material/mp3/")
    assert "auth_key" not in caplog.text  # the signed part of the link


# ---------------------------------------------------------------- secrets


class Record:
    """Collects every text the scenario produces that a user could see."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.errors: list[type[BaseException]] = []

    def show(self, *objects: object) -> None:
        for item in objects:
            self.texts += [str(item), repr(item)]

    async def expect(self, error: type[TempolorError], action: Awaitable[object]) -> None:
        with pytest.raises(error) as caught:
            await action
        self.errors.append(type(caught.value))
        chained: BaseException | None = caught.value
        while chained is not None:
            self.show(chained, chained.args)
            chained = chained.__cause__ or chained.__context__


async def test_an_account_hides_its_request_params(fake):
    fake.add_account(SECOND_USER, request_params={"user_id": SECOND_USER, "ucid": TICKET})
    async with TempolorClient(fake.token, base_url=fake.base_url) as client:
        account = await client.accounts.get(SECOND_USER)
    assert account.user_id == SECOND_USER
    assert account.request_params == {"user_id": SECOND_USER, "ucid": TICKET}
    assert TICKET not in repr(account)
    assert TICKET not in str(account)
