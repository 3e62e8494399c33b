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


async def tempolor(
    *args: str, fake: FakeNoiz | None = None, key: str | None = KEY, cwd: Path | None = None
) -> Run:
    env = {k: v for k, v in os.environ.items() if k not in ("NOIZ_API_KEY", "NOIZ_BASE_URL")}
    if fake is not None:
        env["NOIZ_BASE_URL"] = fake.base_url
    if key is not None:
        env["NOIZ_API_KEY"] = key
    command = [sys.executable, "-m", "tempolor_async.cli", "noiz", *args]
    result = await anyio.run_process(command, env=env, check=False, cwd=cwd)
    return Run(result.returncode, result.stdout.decode(), result.stderr.decode())


def one_error_line(run: Run) -> str:
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


async def test_voices_list_as_text_and_json(noiz_fake):
    run = await tempolor("voices", "list", "--type", "built-in", "--limit", "3", fake=noiz_fake)
    assert run.code == 0, run.stderr
    # Piped: bare ids, one per line, in the service's order, no header.
    assert run.stdout.splitlines() == ["95814add", "dde1b9b5", "3b9f1e27"]
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
    (voice_id,) = run.stdout.split()  # piped: the bare id
    run = await tempolor("voices", "get", voice_id, "--json", fake=noiz_fake)
    assert json.loads(run.stdout)["display_name"] == "sample"


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["voices", "clone"], 2, "one of the arguments"),
        (
            ["speak", "Hi", "--voice", "a", "--reference", "b.wav", "--out", "x.wav"],
            2,
            "not allowed",
        ),
        (["speak", " ", "--voice", "95814add", "--out", "x.wav"], 2, "TEXT: must not be blank"),
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


# ------------------------------------------------------------- published calls, papercuts

NOIZ_COMMANDS = [
    ["noiz"],
    ["noiz", "voices"],
    ["noiz", "voices", "list"],
    ["noiz", "voices", "get"],
    ["noiz", "voices", "clone"],
    ["noiz", "voices", "delete"],
    ["noiz", "voices", "design"],
    ["noiz", "speak"],
    ["noiz", "enhance"],
    ["noiz", "transcribe"],
]


@pytest.mark.parametrize("command", NOIZ_COMMANDS, ids=" ".join)
def test_help_lists_only_options_that_act_on_the_command(command, capsys):
    from tempolor_async.cli import main

    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = capsys.readouterr().out
    for foreign in ("--token", "--base-url", "--user-id"):
        assert foreign not in text
    assert "--noiz-key" in text


async def test_a_file_name_that_is_not_utf8_is_a_clear_error(noiz_fake, tmp_path):
    name = os.fsencode(tmp_path) + b"/m\xffe.wav"
    with open(name, "wb") as handle:
        handle.write(sample_audio(1.0))
    for args in (
        [b"voices", b"clone", name],
        [b"speak", b"Hi", b"--reference", name, b"--out", os.fsencode(tmp_path / "x.wav")],
    ):
        run = await tempolor(*args, fake=noiz_fake)  # type: ignore[arg-type]
        assert run.code == 2, run.stderr
        line = one_error_line(run)
        assert "not valid UTF-8" in line
        assert line.startswith(("error: FILE:", "error: --reference:"))
    assert noiz_fake.requests == []
    assert not (tmp_path / "x.wav").exists()


async def test_a_piped_clone_id_can_be_captured_by_the_shell(noiz_fake, tmp_path):
    (tmp_path / "me.wav").write_bytes(sample_audio(1.0))
    cli = f"{sys.executable} -m tempolor_async.cli noiz"
    script = f'V=$({cli} voices clone me.wav | head -1) && {cli} voices get "$V" --json'
    env = {**os.environ, "NOIZ_BASE_URL": noiz_fake.base_url, "NOIZ_API_KEY": KEY}
    result = await anyio.run_process(["sh", "-c", script], cwd=tmp_path, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["display_name"] == "me"


async def test_a_format_the_out_name_contradicts_is_refused_with_nothing_written(
    noiz_fake, tmp_path
):
    out = tmp_path / "x.wav"
    run = await tempolor("speak", "Hi", "--format", "mp3", "--out", str(out), fake=noiz_fake)
    assert run.code == 2
    assert "--out" in one_error_line(run)
    assert list(tmp_path.iterdir()) == []
    assert noiz_fake.requests == []
    run = await tempolor(
        "speak", "Hi", "--format", "mp3", "--out", str(tmp_path / "x.audio"), fake=noiz_fake
    )
    assert run.code == 0, run.stderr  # no known audio extension: taken as given
    assert (tmp_path / "x.audio").read_bytes()[:3] == b"ID3"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["speak", "Hi", "--voice", "a/b", "--out", "x.wav"], "error: --voice:"),
        (["speak", "Hi", "--speed", "0", "--out", "x.wav"], "error: --speed:"),
        (["speak", "Hi", "--emotion", "happy", "--out", "x.wav"], "error: --emotion:"),
        (["voices", "get", "a b"], "error: ID:"),
        (["voices", "clone", "--url", "ftp://x/y.wav"], "error: --url:"),
        (["voices", "design", "short", "--out", "d"], "error: DESCRIPTION:"),
        (["transcribe", "notes.txt"], "error: FILE:"),
    ],
)
async def test_errors_name_the_commands_options(noiz_fake, tmp_path, args, fragment):
    run = await tempolor(*args, fake=noiz_fake, cwd=tmp_path)
    assert run.code == 2, run.stderr
    assert one_error_line(run).startswith(fragment)
    assert noiz_fake.requests == []


async def test_speak_from_stdin_to_stdout_streamed_then_transcribed(noiz_fake, tmp_path):
    said = "Read from standard input. Then written to standard output!"
    for extra in ([], ["--stream"]):
        run = await tempolor_bytes(
            "speak",
            "-",
            "--out",
            "-",
            "--emotion",
            '{"Joy": 0.5}',
            *extra,
            fake=noiz_fake,
            stdin=said.encode(),
        )
        assert run.code == 0, run.stderr
        assert run.stdout[:4] == b"RIFF"
        (tmp_path / "said.wav").write_bytes(run.stdout)
        run2 = await tempolor("transcribe", str(tmp_path / "said.wav"), fake=noiz_fake)
        assert run2.code == 0, run2.stderr
        assert run2.stdout.strip() == said
    streamed = noiz_fake.requests_to("POST", "/text-to-speech")[-1]
    assert b'name="stream"' in streamed.body


async def test_enhance_and_design(noiz_fake, tmp_path):
    run = await tempolor("enhance", "We did it!", fake=noiz_fake)
    assert (run.code, run.stdout) == (0, "<Joy>We did it!\n")
    out = tmp_path / "designs"
    run = await tempolor(
        "voices",
        "design",
        "A deep calm voice for a lighthouse keeper",
        "--out",
        str(out),
        fake=noiz_fake,
    )
    assert run.code == 0, run.stderr
    files = sorted(out.iterdir())
    assert len(files) == 2
    for path in files:
        with wave.open(str(path)) as reader:
            assert reader.getnframes() > 0
        assert path.stem in run.stdout


async def tempolor_bytes(
    *args: str, fake: FakeNoiz, stdin: bytes = b"", key: str = KEY
) -> RunBytes:
    env = {k: v for k, v in os.environ.items() if k not in ("NOIZ_API_KEY", "NOIZ_BASE_URL")}
    env.update(NOIZ_BASE_URL=fake.base_url, NOIZ_API_KEY=key)
    command = [sys.executable, "-m", "tempolor_async.cli", "noiz", *args]
    result = await anyio.run_process(command, input=stdin, env=env, check=False)
    return RunBytes(result.returncode, result.stdout, result.stderr.decode())


@dataclass
class RunBytes:
    code: int
    stdout: bytes
    stderr: str


async def test_tempolor_simulate_noiz_takes_every_option_of_fake_noiz():
    command = [sys.executable, "-m", "tempolor_async.cli", "simulate", "--noiz", "--port", "0"]
    command += ["--noiz-key", KEY, "--noiz-credits", "5", "--noiz-max-page-size", "2"]
    async with await anyio.open_process(command) as process:
        text = ""
        with anyio.fail_after(20):
            while "API key:" not in text or not text.endswith("\n"):
                text += (await process.stdout.receive()).decode()
        base_url = re.search(r"base URL: (http://127\.0\.0\.1:\d+/v1)\n", text)
        assert base_url is not None, text
        headers = {"Authorization": KEY}
        async with aiohttp.ClientSession(headers=headers) as session:
            url = base_url[1] + "/voices?voice_type=built-in&limit=10"
            async with session.get(url) as response:
                assert len((await response.json())["data"]["voices"]) == 2
            url = base_url[1] + "/text-to-speech"
            async with session.post(url, data={"text": "Hi!"}) as response:
                assert response.status == 200  # 3 of the 5 characters
            async with session.post(url, data={"text": "Hi!"}) as response:
                assert response.status == 402
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(10):
            assert await process.wait() == 0
