"""SPEC 11, what a newcomer trips over first: help that states every default and where it
comes from, limits that must be positive, headers on piped tables, errors in the
command's own terms, the demo's file names and times, and one error line for any failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aiohttp
import anyio
import pytest
from test_cli import assert_one_error_line, tempolor

from tempolor_async import NotFoundError, RateLimitError
from tempolor_async.testing import FakeTempolor, sample_audio

pytestmark = pytest.mark.anyio

SIMULATOR_OPTIONS = [
    "--host",
    "--port",
    "--token",
    "--job-duration",
    "--max-jobs",
    "--page-size",
    "--fail-marker",
    "--noiz",
]


async def test_list_states_its_default_type_and_wants_a_positive_limit(
    fake: FakeTempolor,
) -> None:
    helped = await tempolor("list", "--help")
    assert "(default: song)" in " ".join(helped.stdout.split())
    for limit in ("-1", "0", "x"):
        run = await tempolor("list", "--limit", limit, fake=fake)
        assert run.code == 2, run
        assert_one_error_line(run, "--limit", "positive integer")
    assert fake.requests == []


async def test_simulate_takes_every_simulator_option_and_says_where_defaults_come_from() -> None:
    helped = await tempolor("simulate", "--help")
    text = " ".join(helped.stdout.split())
    for option in SIMULATOR_OPTIONS:
        assert option in text, option
    assert "not read from USEAPI_TOKEN" in text
    assert "USEAPI_TOKEN environment variable" not in text  # it is not the API token
    assert text.count("(default:") >= len(SIMULATOR_OPTIONS) - 2  # --host .. --fail-marker


async def test_simulate_serves_with_the_options_given() -> None:
    command = [sys.executable, "-m", "tempolor_async.cli", "simulate", "--port", "0"]
    command += ["--token", "sim-token-42", "--max-jobs", "3", "--page-size", "5"]
    process = await anyio.open_process(command, stdout=subprocess.PIPE)
    async with process:
        assert process.stdout is not None
        banner = b""
        with anyio.fail_after(15):
            async for chunk in process.stdout:
                banner += chunk
                if b"token:" in banner and banner.endswith(b"\n"):
                    break
        base_url = banner.decode().split("base URL:", 1)[1].split()[0]
        assert "token:    sim-token-42" in banner.decode()
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{base_url}/scheduler/available",
                headers={"Authorization": "Bearer sim-token-42"},
            ) as response,
        ):
            capacity = await response.json()
        process.terminate()
        with anyio.fail_after(10):
            await process.wait()
    assert capacity["available"][0]["maxJobs"] == 3


@pytest.mark.parametrize(
    ("args", "header"),
    [
        (("scheduler", "available"), "user_id\tmax_jobs\texecuting\tavailable"),
        (("scheduler", "list"), "job_id\tstarted\telapsed"),
        (("accounts", "list"), "user_id\tmax_jobs\tupdated"),
    ],
)
async def test_piped_tables_start_with_their_column_names(
    fake: FakeTempolor, args: tuple[str, ...], header: str
) -> None:
    fake.job_duration = 60
    await tempolor("song", "x", fake=fake)
    run = await tempolor(*args, fake=fake)
    assert run.code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == header
    assert len(lines) >= 2


async def test_a_piped_list_of_ids_stays_bare_for_xargs(fake: FakeTempolor) -> None:
    run = await tempolor("song", "x", fake=fake)
    assert run.stdout.split() == fake.submissions[-1]


async def test_errors_name_the_commands_options_not_the_sdks(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    (tmp_path / "voice.ogg").write_bytes(sample_audio())
    run = await tempolor("voices", "clone", "voice.ogg", "--name", "me", fake=fake, cwd=tmp_path)
    assert run.code == 2
    assert_one_error_line(run, "--content-type")
    assert "content_type" not in run.stderr
    run = await tempolor("song", "x", "--artist-voice", " ", fake=fake)
    assert_one_error_line(run, "--artist-voice", "blank")
    assert fake.requests == []


async def test_help_speaks_proper_english() -> None:
    run = await tempolor("--help")
    assert "generate an instrumental" in run.stdout
    assert "a instrumental" not in run.stdout


async def test_the_demo_names_song_and_instrumental_files_and_times_each_job(
    tmp_path: Path,
) -> None:
    run = await tempolor("demo", "--json", cwd=tmp_path)
    assert run.code == 0, run.stderr
    files = run.json()["files"]
    for entry in files:
        kind = entry["label"].split()[0]
        assert Path(entry["path"]).name.startswith(f"{kind}-"), entry
        assert entry["job_seconds"] > 0
    by_job = {entry["job_id"]: entry["job_seconds"] for entry in files}
    for entry in files:  # one figure per job, the same on each of its files
        assert entry["job_seconds"] == by_job[entry["job_id"]]
    assert "seconds" not in files[0]


async def test_wait_turns_any_tempolor_error_into_one_line(fake: FakeTempolor) -> None:
    fake.inject("GET", "/scheduler/", status=401, times=None)
    fake.inject("GET", "/music/*", status=401, times=None)
    run = await tempolor("wait", "user:1-tempolor:100349856-job:abc", fake=fake)
    assert run.code == 1
    assert_one_error_line(run, "401")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup is 3.11+")
def test_an_exception_group_of_tempolor_errors_counts_as_one_failure() -> None:
    from tempolor_async.cli import _tempolor_errors

    first = NotFoundError("gone", status=404, method="GET", path="/music/a")
    second = RateLimitError("busy", status=429, method="GET", path="/music/b")
    group = ExceptionGroup("waits", [first, ExceptionGroup("inner", [second])])  # noqa: F821
    assert _tempolor_errors(group) == [first, second]
    mixed = ExceptionGroup("waits", [first, KeyError("job")])  # noqa: F821
    assert _tempolor_errors(mixed) is None
