"""SPEC 11: what each TemPolor command's help and errors say. The documented models in
--help and a note for any other name (still sent: names are open), a file name whose
extension disagrees with --format refused before anything is written, only the options
that act on a command in its --help, a wait that says at once when the service does not
show a job, and errors in the command's own terms."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from test_cli import assert_one_error_line, tempolor

from tempolor_async.testing import FakeTempolor

pytestmark = pytest.mark.anyio

# Beyond the line's first word: SDK names that a hint inside a message could still carry.
SDK_NAMES = ("dest", "job_id", "user_id", "item_id")


def one_line(text: str) -> str:
    return " ".join(text.split())


# -------------------------------------------------------------------- models


@pytest.mark.parametrize(
    ("command", "models"),
    [("song", ["v3", "v3.5"]), ("instrumental", ["i3", "i3.5 beta"])],
)
async def test_help_lists_the_documented_models(command: str, models: list[str]) -> None:
    helped = one_line((await tempolor(command, "--help")).stdout)
    assert f"model name: {', '.join(models)} (default: the service's default)" in helped


async def test_batch_help_lists_the_documented_models() -> None:
    helped = one_line((await tempolor("batch", "--help")).stdout)
    assert "song v3, v3.5; instrumental i3, i3.5 beta" in helped


async def test_an_undocumented_model_is_sent_with_one_note(fake: FakeTempolor) -> None:
    run = await tempolor("song", "a calm piano piece", "--model", "v9-bogus", fake=fake)
    assert run.code == 0, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("note: model 'v9-bogus' is not a documented song model"), lines
    assert "v3, v3.5" in lines[0]
    assert {job.model for job in fake.jobs.values()} == {"v9-bogus"}  # sent all the same
    assert len(run.stdout.split()) == len(fake.jobs)  # the job ids, on stdout

    fake.jobs.clear()
    run = await tempolor("instrumental", "lo-fi", "--model", "i3.5 beta", fake=fake)
    assert run.code == 0, run.stderr
    assert run.stderr == ""
    assert {job.model for job in fake.jobs.values()} == {"i3.5 beta"}


async def test_batch_notes_each_undocumented_model_once(fake: FakeTempolor, tmp_path: Path) -> None:
    (tmp_path / "items.jsonl").write_text(
        '{"prompt": "one", "model": "v9"}\n'
        '{"prompt": "two", "model": "v9"}\n'
        '{"type": "instrumental", "prompt": "three", "model": "i3"}\n',
        encoding="utf-8",
    )
    run = await tempolor("batch", "items.jsonl", fake=fake, cwd=tmp_path)
    assert run.code == 0, run.stderr
    notes = [line for line in run.stderr.splitlines() if line.startswith("note:")]
    assert notes == [
        "note: model 'v9' is not a documented song model (v3, v3.5); it is sent as given"
    ]
    assert "v9" in {job.model for job in fake.jobs.values()}


# ------------------------------------------------------------ download --out


@pytest.mark.parametrize(
    ("file_format", "name"),
    [("mp3", "x.wav"), ("wav", "x.MP3"), ("stems", "x.wav"), ("mp3", "x.zip")],
)
async def test_download_refuses_a_file_name_of_another_format(
    fake: FakeTempolor, tmp_path: Path, file_format: str, name: str
) -> None:
    job_id = (await tempolor("song", "a calm piano piece", fake=fake)).stdout.split()[0]
    fake.complete(job_id)
    fake.requests.clear()
    args = ("download", job_id, "--format", file_format, "--out", name)
    run = await tempolor(*args, fake=fake, cwd=tmp_path)
    assert run.code == 2, run
    assert_one_error_line(run, "--out", name, f"--format is {file_format}")
    assert list(tmp_path.iterdir()) == []
    assert fake.requests == []  # refused before anything was asked


async def test_download_takes_a_name_with_no_audio_extension_as_given(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    job_id = (await tempolor("song", "a calm piano piece", fake=fake)).stdout.split()[0]
    fake.complete(job_id)
    run = await tempolor("download", job_id, "--out", "take.one", fake=fake, cwd=tmp_path)
    assert run.code == 0, run.stderr
    assert (tmp_path / "take.one").read_bytes()[:3] == b"ID3"


# ------------------------------------------------------------------ --help


GLOBALS = ("--token", "--base-url", "--user-id")


async def test_the_demo_lists_no_service_options() -> None:
    helped = (await tempolor("demo", "--help")).stdout
    for option in GLOBALS:
        assert option not in helped, option
    assert "--json" in helped
    assert "--out" in helped


@pytest.mark.parametrize(
    "command",
    [
        ("status",),
        ("wait",),
        ("download",),
        ("voices", "delete"),
        ("midi", "delete"),
        ("accounts",),
        ("accounts", "get"),
        ("scheduler", "cancel"),
    ],
)
async def test_commands_that_take_no_account_do_not_list_user_id(command: tuple[str]) -> None:
    helped = (await tempolor(*command, "--help")).stdout
    assert "--user-id" not in helped
    assert "--token" in helped
    assert "--json" in helped


@pytest.mark.parametrize(
    "command", [("song",), ("instrumental",), ("list",), ("stems",), ("voices", "clone")]
)
async def test_commands_that_take_an_account_list_user_id(command: tuple[str]) -> None:
    helped = (await tempolor(*command, "--help")).stdout
    for option in (*GLOBALS, "--json"):
        assert option in helped, option


# --------------------------------------------------------------------- wait


async def test_wait_says_at_once_that_the_service_does_not_show_the_job(
    fake: FakeTempolor,
) -> None:
    known = (await tempolor("song", "a calm piano piece", fake=fake)).stdout.split()[0]
    unknown = known[:-4] + "beef"
    env = {**os.environ, "TEMPOLOR_BASE_URL": fake.base_url, "USEAPI_TOKEN": fake.token}
    command = [sys.executable, "-m", "tempolor_async.cli", "wait", known, unknown]
    process = await anyio.open_process(command, env=env, stderr=subprocess.PIPE)
    async with process:
        assert process.stderr is not None
        said = b""
        # The wait gives up on a job it never sees after 30 s; the note comes well before.
        with anyio.fail_after(20):
            async for chunk in process.stderr:
                said += chunk
                if said.endswith(b"\n"):
                    break
        still_waiting = process.returncode is None
        process.terminate()
        with anyio.fail_after(10):
            await process.wait()
    assert still_waiting
    lines = said.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"note: the service does not show job {unknown} (yet)"), lines
    assert known not in lines[0]


async def test_wait_for_jobs_the_service_shows_says_nothing_more(fake: FakeTempolor) -> None:
    job_id = (await tempolor("song", "a calm piano piece", fake=fake)).stdout.split()[0]
    run = await tempolor("wait", job_id, "--poll-interval", "0.2", fake=fake)
    assert run.code == 0, run.stderr
    assert run.stderr == ""


# ------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("status", "a b"), "JOB_ID:"),
        (("wait", "a b"), "JOB_ID:"),
        (("download", "a b"), "JOB_ID:"),
        (("download", "x", "--out", "no/such/folder/x.mp3"), "--out:"),
        (("scheduler", "cancel", "a b"), "JOB_ID:"),
        (("stems", "missing.wav"), "FILE:"),
        (("voices", "clone", "missing.wav", "--name", "n"), "FILE:"),
        (("midi", "upload", "missing.mid", "--name", "n"), "FILE:"),
        (("voices", "delete", "a/b"), "ID:"),
        (("midi", "delete", "a/b"), "ID:"),
        (("accounts", "get", "a b"), "ID:"),
        (("song", " "), "PROMPT:"),
        (("instrumental", "x", "--bpm", "500"), "--bpm:"),
        (("instrumental", "x", "--tonality", "H:major"), "--tonality:"),
    ],
)
async def test_errors_name_the_commands_own_options(
    fake: FakeTempolor, tmp_path: Path, args: tuple[str, ...], named: str
) -> None:
    run = await tempolor(*args, fake=fake, cwd=tmp_path)
    assert run.code == 2, run
    assert_one_error_line(run)
    assert run.stderr.startswith(f"error: {named} "), run.stderr
    for name in SDK_NAMES:
        assert name not in run.stderr, (name, run.stderr)
    assert fake.requests == []
