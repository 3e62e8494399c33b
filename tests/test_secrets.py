"""SPEC sections 2, 7 and 11: the token and the values of an account's ``requestParams`` never
show: not in any log line (every logger, DEBUG and up, aiohttp's included), not in any
exception's ``str``/``repr`` (its whole ``__cause__``/``__context__`` chain), not in ``repr`` of
the client or of any model, and not in what the ``tempolor`` command prints.

Every secret here is distinctive, so that no innocent text can match it. The values of
``user_id`` and ``ucid`` are not secret: they are the account's public id, which the API itself
returns as ``user_id``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Iterator
from typing import Any

import anyio
import pytest

import tempolor_async as sdk
from tempolor_async import _protocol as protocol
from tempolor_async.testing import FakeTempolor

pytestmark = pytest.mark.anyio

TOKEN = "tok-QZ83kV-right-bearer"
WRONG_TOKEN = "tok-WX51pL-wrong-bearer"
DEFAULT_USER = "100349856"  # the fake's pre-configured account
SECOND_USER = "300400500"
CLI_USER = "555666777"
UNKNOWN_USER = "404404404"
UNKNOWN_JOB = f"user:1-tempolor:{DEFAULT_USER}-job:nosuchjob"
PUBLIC_KEYS = {"user_id", "ucid"}
LOGGERS = ["", "tempolor_async", "aiohttp", "aiohttp.client", "aiohttp.server", "asyncio"]
LOGGERS += ["aiohttp.access", "aiohttp.internal", "aiohttp.web", "aiohttp.websocket"]


def params(user_id: str, tag: str, vip_type: int) -> dict[str, Any]:
    """requestParams as the setup guide has them, every value but the ids distinctive."""
    return {
        "user_id": user_id,
        "ucid": user_id,
        "service_ticket": f"st-{tag}-ticket-9Jq4",
        "di": f"di-{tag}-device-7Rw2",
        "utdid": f"utdid-{tag}-Kx58Ze",
        "ip": f"203.0.113.{vip_type % 200 + 21}",
        "vip_type": vip_type,
        "cookies": {"sid": f"sid-{tag}-nested-3Pm6"},
        "devices": [f"dev-{tag}-listed-8Hy1"],
    }


DEFAULT_PARAMS = params(DEFAULT_USER, "Dflt", 7319052846)
SECOND_PARAMS = params(SECOND_USER, "Scnd", 8462139371)
REFUSED_PARAMS = {**params("777888999", "Rfsd", 9153726628), "vip_type": 0}  # 402: no plan
CLI_PARAMS = params(CLI_USER, "Clin", 6284175513)


def leaves(value: Any, key: str = "") -> Iterator[str]:
    """Every value in requestParams, at any depth, but the public ids."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield from leaves(item, name)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item, key)
    elif key not in PUBLIC_KEYS and value != 0:
        yield str(value)


SECRETS = [TOKEN, WRONG_TOKEN]
for _params in (DEFAULT_PARAMS, SECOND_PARAMS, REFUSED_PARAMS, CLI_PARAMS):
    SECRETS += leaves(_params)


def test_the_secrets_are_distinctive():
    assert len(SECRETS) == len(set(SECRETS)) == 2 + 4 * 7 - 1  # REFUSED_PARAMS has vip_type 0
    assert all(len(secret) >= 6 for secret in SECRETS)
    assert REFUSED_PARAMS["service_ticket"] in SECRETS
    assert DEFAULT_USER not in SECRETS


def leaked(texts: list[str]) -> dict[str, list[str]]:
    """For each secret found, the texts (shortened) that show it."""
    found = {}
    for secret in SECRETS:
        showing = [text[:300] for text in texts if secret in text]
        if showing:
            found[secret] = showing
    return found


def chain(error: BaseException) -> Iterator[BaseException]:
    """The exception and everything behind it, through ``__cause__`` and ``__context__``."""
    todo, seen = [error], set()
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [link for link in (current.__cause__, current.__context__) if link is not None]


class Seen:
    """Every text a user of the SDK could come across in the scenario."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.raised: list[type[BaseException]] = []
        self.models = 0

    def show(self, *items: object) -> None:
        for item in items:
            self.texts += [repr(item), str(item)]
            if hasattr(item, "raw"):
                self.models += 1

    def error(self, error: BaseException) -> None:
        for link in chain(error):
            self.texts += [str(link), repr(link), repr(link.args)]

    async def raises(self, kind: type[sdk.TempolorError], action: Awaitable[object]) -> Any:
        with pytest.raises(kind) as caught:
            await action
        self.raised.append(type(caught.value))
        self.error(caught.value)
        return caught.value


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    texts = [caplog.text]
    for record in caplog.records:
        texts += [formatter.format(record), repr(record.args), repr(record.msg)]
    return texts


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(protocol, "RETRY_BASE_SECONDS", 0.005)  # keep the backoff short
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


# ------------------------------------------------------------------------------ the SDK


async def use_accounts(
    client: sdk.TempolorClient, wrong: sdk.TempolorClient, seen: Seen, fake
) -> None:
    listed = await client.accounts.list()
    seen.show(listed, *listed.values(), await client.accounts.get(DEFAULT_USER))
    fake.inject("POST", "/accounts", status=503)  # an upsert: retried
    created = await client.accounts.create(SECOND_PARAMS, max_jobs=1)
    assert created.request_params == SECOND_PARAMS  # there for code that needs it
    fake.inject("GET", "/accounts/*", drop=True)
    fake.inject("GET", "/accounts", status=429, headers={"Retry-After": "0"})
    seen.show(created, await client.accounts.get(SECOND_USER), await client.accounts.list())
    await seen.raises(sdk.AuthenticationError, wrong.accounts.list())
    await seen.raises(sdk.AuthenticationError, wrong.accounts.create(SECOND_PARAMS))
    await seen.raises(sdk.NotFoundError, client.accounts.get(UNKNOWN_USER))
    await seen.raises(sdk.NotFoundError, client.accounts.delete(UNKNOWN_USER))
    await seen.raises(sdk.PaymentRequiredError, client.accounts.create(REFUSED_PARAMS))
    await seen.raises(sdk.ValidationError, client.accounts.create({}))
    fake.inject("GET", "/accounts/*", drop=True, times=3)
    await seen.raises(sdk.APIConnectionError, client.accounts.get(DEFAULT_USER))
    fake.inject("POST", "/accounts", status=500, times=3)
    await seen.raises(sdk.ServerError, client.accounts.create(SECOND_PARAMS))


async def use_music(
    client: sdk.TempolorClient, busy: sdk.TempolorClient, seen: Seen, fake, dest
) -> None:
    await seen.raises(sdk.NotFoundError, client.music.get(UNKNOWN_JOB))
    fake.inject("GET", "/scheduler/", status=502, times=3)
    await seen.raises(sdk.ServerError, client.scheduler.list())
    fake.inject("GET", "/scheduler/available", delay=0.5, times=3)
    await seen.raises(sdk.APITimeoutError, client.scheduler.available())
    fake.inject("POST", "/music/instrumental", drop=True)
    await seen.raises(sdk.APIConnectionError, client.music.create_instrumental("dropped"))

    seen.show(await busy.music.create_song("fills the one slot", user_id=SECOND_USER))
    error = await seen.raises(
        sdk.RateLimitError, busy.music.create_song("busy", user_id=SECOND_USER)
    )
    seen.show(error.running_jobs, *error.running_jobs.get(SECOND_USER, []))
    failing = await client.music.create_song("a song [fail]", user_id=DEFAULT_USER)
    failed = await seen.raises(
        sdk.JobFailedError, client.await_job(failing.jobs[0], poll_interval=0.05)
    )
    seen.show(failing, failed.job)

    done = await client.music.create_instrumental("a slow waltz", user_id=DEFAULT_USER)
    fake.complete(done.jobs[0])
    fake.inject("GET", "/music/*", status=503)
    job = await client.await_job(done.jobs[0], poll_interval=0.05)
    fake.inject("GET", "/cdn/*", drop=True)  # the media request is retried too
    seen.show(done, job, await client.music.download(job.job_id, dest))
    seen.show(await client.music.download_url(job.job_id), job.music_material)
    seen.show(await client.scheduler.list(), await client.scheduler.available())
    page = await client.music.list(user_id=DEFAULT_USER).first_page()
    seen.show(page, *page.items, *(await client.accounts.list()).values())
    seen.show(*await client.voices.list_artist(user_id=DEFAULT_USER).to_list(limit=2))
    await client.accounts.delete(SECOND_USER)


@pytest.mark.fake(token=TOKEN, job_duration=0.15)
async def test_the_sdk_never_shows_the_token_or_request_params(fake, all_logs, tmp_path):
    fake.add_account(DEFAULT_USER, request_params=DEFAULT_PARAMS)
    seen = Seen()
    async with (
        fake.client(timeout=0.2) as client,
        fake.client(token=WRONG_TOKEN) as wrong,
        fake.client(busy_timeout=0) as busy,
    ):
        seen.show(client, wrong, busy)
        await use_accounts(client, wrong, seen, fake)
        await use_music(client, busy, seen, fake, tmp_path)
    seen.show(client, wrong, busy)

    assert len(seen.raised) == 14
    assert seen.models >= 18
    sdk = [record.levelno for record in all_logs.records if record.name == "tempolor_async"]
    api_requests = [request for request in fake.requests if not request.path.startswith("/cdn/")]
    assert sdk.count(logging.DEBUG) >= len(api_requests)  # the logs were captured
    assert sdk.count(logging.WARNING) >= 13  # one per retry above
    assert all(fault.hits >= 1 for fault in fake.faults)
    assert leaked(seen.texts + log_texts(all_logs)) == {}


@pytest.mark.fake(token=TOKEN)
async def test_an_account_body_that_is_not_json_is_not_quoted(fake, all_logs):
    """A cut-off account record (here with requestParams first) is a decode error whose text
    must not quote the credentials."""
    credentials_first = dict(reversed(DEFAULT_PARAMS.items()))
    body = json.dumps({"requestParams": credentials_first, "user_id": DEFAULT_USER}).encode()
    fake.inject("GET", "/accounts/*", body=body[: len(body) // 2])
    seen = Seen()
    async with fake.client() as client:
        await seen.raises(sdk.ResponseDecodeError, client.accounts.get(DEFAULT_USER))
    assert leaked(seen.texts + log_texts(all_logs)) == {}


async def test_a_malformed_http_response_leaves_no_token_in_the_exception_chain(all_logs):
    """A broken HTTP response (here a bad Content-Length, as a faulty proxy might send) makes
    aiohttp raise an error that holds the request's headers; it must not travel with ours."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    seen = Seen()
    async with server:
        base_url = f"http://127.0.0.1:{port}/v1/tempolor"
        async with sdk.TempolorClient(TOKEN, base_url=base_url, max_retries=1) as client:
            await seen.raises(sdk.APIConnectionError, client.accounts.list())
    assert any("invalid HTTP response" in text for text in seen.texts)
    assert leaked(seen.texts + log_texts(all_logs)) == {}


# ------------------------------------------------------------------------------ the CLI


async def tempolor(fake: FakeTempolor, token: str, *args: str) -> tuple[int, str]:
    """Run the command with the token on its command line; return its code and output."""
    env = {k: v for k, v in os.environ.items() if k not in ("USEAPI_TOKEN", "TEMPOLOR_BASE_URL")}
    command = [sys.executable, "-m", "tempolor_async.cli", "--token", token]
    command += ["--base-url", fake.base_url, *args]
    result = await anyio.run_process(command, env=env, check=False)
    return result.returncode, result.stdout.decode() + result.stderr.decode()


@pytest.mark.fake(token=TOKEN)
async def test_the_cli_never_prints_the_token_or_request_params(fake, tmp_path):
    fake.add_account(DEFAULT_USER, request_params=DEFAULT_PARAMS)
    setup = tmp_path / "setup.json"
    setup.write_text(json.dumps({"requestParams": CLI_PARAMS}), encoding="utf-8")
    refused = tmp_path / "refused.json"
    refused.write_text(json.dumps(REFUSED_PARAMS), encoding="utf-8")
    runs = {
        "add": await tempolor(fake, TOKEN, "accounts", "add", "--request-params", str(setup)),
        "add --json": await tempolor(
            fake, TOKEN, "accounts", "add", "--request-params", str(setup), "--json"
        ),
        "list": await tempolor(fake, TOKEN, "accounts", "list"),
        "list --json": await tempolor(fake, TOKEN, "accounts", "list", "--json"),
        "get": await tempolor(fake, TOKEN, "accounts", "get", CLI_USER),
        "get --json": await tempolor(fake, TOKEN, "accounts", "get", DEFAULT_USER, "--json"),
        "401": await tempolor(fake, WRONG_TOKEN, "accounts", "list"),
        "401 --json": await tempolor(fake, WRONG_TOKEN, "accounts", "get", CLI_USER, "--json"),
        "402": await tempolor(fake, TOKEN, "accounts", "add", "--request-params", str(refused)),
        "404": await tempolor(fake, TOKEN, "accounts", "get", UNKNOWN_USER),
    }
    codes = {name: code for name, (code, _) in runs.items()}
    assert codes == {name: int(name[:1] == "4") for name in runs}
    assert fake.accounts[CLI_USER].request_params == CLI_PARAMS
    assert {CLI_USER, DEFAULT_USER} <= {
        row["user_id"] for row in json.loads(runs["list --json"][1])
    }
    assert CLI_USER in runs["get"][1]
    assert "Unauthorized" in runs["401"][1]
    assert leaked([output for _, output in runs.values()]) == {}
