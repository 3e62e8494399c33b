"""SPEC 9: ids and cursors are refused when they would change on the way (a lone surrogate
that a URL library drops, ``.``/``..`` that it resolves), and the message names only the
rule that was broken. The same holds for text sent in a query string or a body."""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tempolor_async import TempolorClient, ValidationError
from tempolor_async.testing import FakeTempolor, sample_audio, sample_midi

pytestmark = pytest.mark.anyio

JOB = "user:12345-tempolor:100349856-job:abc"

PATH_CALLS: dict[str, tuple[str, Callable[[TempolorClient, str], Awaitable[Any]]]] = {
    "music.get": ("job_id", lambda c, v: c.music.get(v)),
    "music.delete": ("job_id", lambda c, v: c.music.delete(v)),
    "music.download_url": ("job_id", lambda c, v: c.music.download_url(v)),
    "scheduler.cancel": ("job_id", lambda c, v: c.scheduler.cancel(v)),
    "accounts.get": ("user_id", lambda c, v: c.accounts.get(v)),
    "accounts.delete": ("user_id", lambda c, v: c.accounts.delete(v)),
    "voices.delete_cloned": ("cloned_voice_item_id", lambda c, v: c.voices.delete_cloned(v)),
    "midi.delete": ("midi_item_id", lambda c, v: c.midi.delete(v)),
    "music.list(user_id)": ("user_id", lambda c, v: c.music.list(user_id=v).to_list()),
    "music.list(cursor)": ("cursor", lambda c, v: c.music.list(cursor=v).to_list()),
    "voices.list_artist(cursor)": ("cursor", lambda c, v: c.voices.list_artist(cursor=v)),
    "voices.list_cloned(cursor)": ("cursor", lambda c, v: c.voices.list_cloned(cursor=v)),
    "midi.list(cursor)": ("cursor", lambda c, v: c.midi.list(cursor=v)),
}

# value: (the rule the message must state, rules it must not mention)
RULES = {
    "job-A\udcff": ("lone surrogate", ("contain", "blank")),
    "\udcff": ("lone surrogate", ("contain", "blank")),
    "..": ("must not be '..'", ("contain", "Unicode")),
    ".": ("must not be '.'", ("contain", "Unicode")),
    "a/b": ("must not contain '/'", ("whitespace", "control", "'?'")),
    "a?b": ("must not contain '?'", ("whitespace", "control", "'/'")),
    "a%2Fb": ("must not contain '%'", ("whitespace", "control", "'/'")),
    "a b": ("must not contain whitespace", ("control", "'/'")),
    "a\x00b": ("must not contain control characters", ("whitespace", "'/'")),
    "   ": ("must not be blank", ("contain", "Unicode")),
}


async def attempt(
    call: Callable[[TempolorClient, str], Any], client: TempolorClient, value: str
) -> None:
    """Make the call (a pager refuses when made, a method when awaited)."""
    result = call(client, value)
    if isinstance(result, Awaitable):
        await result


async def call_and_refuse(
    call: Callable[[TempolorClient, str], Any], client: TempolorClient, value: str
) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        await attempt(call, client, value)
    return caught.value


@pytest.mark.parametrize("value", RULES, ids=[repr(v) for v in RULES])
async def test_each_broken_rule_is_named_alone(
    fake: FakeTempolor, client: TempolorClient, value: str
) -> None:
    stated, unrelated = RULES[value]
    for name, (parameter, call) in PATH_CALLS.items():
        error = await call_and_refuse(call, client, value)
        assert error.parameter == parameter, name
        assert stated in str(error), (name, str(error))
        for other in unrelated:
            assert other not in str(error), (name, str(error))
    assert fake.requests == []


async def test_a_lone_surrogate_is_refused_in_text_sent_in_a_query_or_body(
    fake: FakeTempolor, client: TempolorClient
) -> None:
    calls = {
        "prompt": lambda: client.music.create_song("sea\udcff shanty"),
        "lyrics": lambda: client.music.create_song("x", lyrics="la\udcff"),
        "artist_voice_item_id": lambda: client.music.create_song(
            "x", artist_voice_item_id="voice_1\udcff"
        ),
        "model": lambda: client.music.create_instrumental("x", model="i3\udcff"),
        "chords": lambda: client.music.create_instrumental("x", chords="C\udcff"),
        "reply_ref": lambda: client.music.create_song("x", reply_ref="ref\udcff"),
        "name": lambda: client.voices.clone(
            sample_audio(), name="me\udcff", content_type="audio/wav"
        ),
    }
    for parameter, call in calls.items():
        with pytest.raises(ValidationError, match="lone surrogate") as caught:
            await call()
        assert caught.value.parameter == parameter
    with pytest.raises(ValidationError, match="lone surrogate"):
        await client.midi.upload(sample_midi(), name="tune\udcff")
    assert fake.requests == []


async def test_tempolor_scheduler_cancel_never_cancels_another_job(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    fake.job_duration = 60
    async with fake.client() as client:
        submission = await client.music.create_song("x")
    job_id = (submission.jobs or [])[0]
    env = {**os.environ, "TEMPOLOR_BASE_URL": fake.base_url, "USEAPI_TOKEN": fake.token}
    # As a shell passes bytes that are not UTF-8: Python reads them as lone surrogates.
    argument = job_id.encode() + b"\xff"
    result = await anyio.run_process(
        [sys.executable.encode(), b"-m", b"tempolor_async.cli", b"scheduler", b"cancel", argument],
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert "JOB_ID: must be valid Unicode text" in result.stderr.decode()
    assert fake.requests_to("DELETE", f"/scheduler/{job_id}") == []
    assert job_id in {job.job_id for job in fake.running_jobs()}


async def test_ids_that_follow_the_rules_still_work(
    fake: FakeTempolor, client: TempolorClient
) -> None:
    submission = await client.music.create_song("caf\u00e9 \U0001f3b5 song")
    job = await client.music.get((submission.jobs or [])[0])
    assert job.job_id == (submission.jobs or [])[0]
    page = await client.music.list().first_page()
    assert page.items
