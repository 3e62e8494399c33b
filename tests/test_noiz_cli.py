"""``tempolor noiz`` run as a subprocess against FakeNoiz, and the simulator standalone with
``--noiz``: output, exit codes, one-line errors, and the key never printed."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import anyio
import pytest

from tempolor_async.testing import FakeNoiz, sample_audio

pytestmark = pytest.mark.anyio

KEY = "nz-cli-5d1c0e8a7b9f"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
async def noiz_fake() -> AsyncIterator[FakeNoiz]:
    async with FakeNoiz(KEY) as server:
        yield server


async def tempolor(*args: str, fake: FakeNoiz | None = None, key: str | None = KEY) -> Run:
    env = {k: v for k, v in os.environ.items() if k not in ("NOIZ_API_KEY", "NOIZ_BASE_URL")}
    if fake is not None:
        env["NOIZ_BASE_URL"] = fake.base_url
    if key is not None:
        env["NOIZ_API_KEY"] = key
    command = [sys.executable, "-m", "tempolor_async.cli", "noiz", *args]
    result = await anyio.run_process(command, env=env, check=False)
    return Run(result.returncode, result.stdout.decode(), result.stderr.decode())


def one_error_line(run: Run) -> str:
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


async def test_voices_list_as_text_and_json(noiz_fake):
    run = await tempolor("voices", "list", "--type", "built-in", "--limit", "3", fake=noiz_fake)
    assert run.code == 0, run.stderr
    header, *lines = run.stdout.splitlines()  # piped tables start with their column names
    assert header.split("\t")[1] == "name"
    assert [line.split("\t")[1] for line in lines] == [
        "Aria",
        "Bruno",
        "Chen Jing",
    ]
    run = await tempolor(
        "voices", "list", "--type", "built-in", "--keyword", "trailer", "--json", fake=noiz_fake
    )
    assert [voice["display_name"] for voice in json.loads(run.stdout)] == ["Bruno"]
    assert run.stderr == ""  # no progress when piped


async def test_clone_speak_and_delete(noiz_fake, tmp_path: Path):
    sample = tmp_path / "me.wav"
    sample.write_bytes(sample_audio(1.0))
    run = await tempolor(
        "voices", "clone", str(sample), "--name", "Me", "--denoise", "--json", fake=noiz_fake
    )
    assert run.code == 0, run.stderr
    voice_id = json.loads(run.stdout)["voice_id"]
    out = tmp_path / "hello.wav"
    run = await tempolor(
        "speak", "Hello there", "--voice", voice_id, "--out", str(out), "--json", fake=noiz_fake
    )
    assert run.code == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["path"] == str(out)
    assert result["bytes"] == out.stat().st_size
    with wave.open(str(out)) as reader:
        assert reader.getnframes() / reader.getframerate() == pytest.approx(
            result["duration"], abs=0.01
        )
    run = await tempolor("voices", "delete", voice_id, fake=noiz_fake)
    assert run.code == 0
    assert run.stdout.splitlines()[-1].startswith(voice_id)  # after the header line
    run = await tempolor("voices", "get", voice_id, fake=noiz_fake)
    assert run.code == 1
    assert f"Voice {voice_id} not found" in one_error_line(run)


async def test_clone_from_a_url_with_the_key_on_the_command_line(noiz_fake):
    run = await tempolor(
        "voices",
        "clone",
        "--url",
        "https://example.com/v/sample.mp3",
        "--noiz-key",
        KEY,
        fake=noiz_fake,
        key=None,
    )
    assert run.code == 0, run.stderr
    assert run.stdout.splitlines()[-1].split("\t")[1] == "sample"  # after the header line


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["voices", "clone"], 2, "one of the arguments"),
        (["speak", "Hi", "--out", "x.wav"], 2, "--voice --reference"),
        (["speak", " ", "--voice", "95814add", "--out", "x.wav"], 2, "text: must not be blank"),
        (["speak", "Hi", "--voice", "nope", "--out", "x.wav"], 1, "404"),
        (["voices", "list", "--type", "mine"], 2, "invalid choice"),
    ],
)
async def test_bad_usage_and_api_errors_are_one_line(noiz_fake, args, code, fragment):
    run = await tempolor(*args, fake=noiz_fake)
    assert run.code == code
    assert fragment in one_error_line(run)
    assert "Traceback" not in run.stderr


async def test_a_missing_or_refused_key_and_the_key_never_printed(noiz_fake):
    run = await tempolor("voices", "list", fake=noiz_fake, key=None)
    assert run.code == 2
    assert "pass --noiz-key or set the NOIZ_API_KEY" in one_error_line(run)
    run = await tempolor("voices", "list", fake=noiz_fake, key=f"Bearer {KEY}")
    assert run.code == 1
    assert "401" in one_error_line(run)
    assert KEY not in run.stdout + run.stderr


@pytest.mark.parametrize(
    ("command", "key"),
    [
        (["tempolor_async.testing", "--noiz", "--port", "0", "--noiz-key", KEY], KEY),
        (["tempolor_async.cli", "simulate", "--noiz", "--port", "0"], "fake-noiz-key"),
    ],
    ids=["python -m tempolor_async.testing", "tempolor simulate"],
)
async def test_the_standalone_simulator_serves_noiz(command, key):
    command = [sys.executable, "-m", *command]
    async with await anyio.open_process(command) as process:
        text = ""
        with anyio.fail_after(20):
            while "API key:" not in text or not text.endswith("\n"):
                text += (await process.stdout.receive()).decode()
        base_url = re.search(r"base URL: (http://127\.0\.0\.1:\d+/v1)\n", text)
        assert base_url is not None, text
        assert "Noiz simulator running" in text
        async with aiohttp.ClientSession() as session:
            url = base_url[1] + "/voices?voice_type=built-in"
            async with session.get(url, headers={"Authorization": key}) as response:
                assert (await response.json())["data"]["total_count"] == 12
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(10):
            assert await process.wait() == 0
