"""SPEC 8 and 11 for the command: folders are folders, every option is checked before a
generation is paid for, the job ids of anything submitted are always printed, and output
cut short by a closed pipe ends quietly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from test_cli import Run, assert_one_error_line, check_media, tempolor

from tempolor_async.testing import FakeTempolor, sample_audio

pytestmark = pytest.mark.anyio

FAST = ("--poll-interval", "0.05")


def generations(fake: FakeTempolor) -> int:
    return len(fake.requests_to("POST", "/music/song")) + len(
        fake.requests_to("POST", "/music/instrumental")
    )


# ------------------------------------------------------------ folders


@pytest.mark.parametrize("folder", ["songs/", "songs", "a/b/songs/"])
async def test_download_into_a_folder_that_does_not_exist_yet(
    fake: FakeTempolor, tmp_path: Path, folder: str
) -> None:
    run = await tempolor("song", "sea shanty", "--download", folder, *FAST, fake=fake, cwd=tmp_path)
    assert run.code == 0, run.stderr
    where = tmp_path / folder
    written = sorted(where.iterdir())
    assert len(written) == 2, written
    for path in written:
        check_media(path)
    jobs = fake.submissions[-1]
    assert sorted(p.name for p in written) == sorted(
        f"{job_id.rpartition('-job:')[2]}.mp3" for job_id in jobs
    )


@pytest.mark.parametrize("folder", ["stems/", "stems"])
async def test_stems_out_is_always_a_folder(
    fake: FakeTempolor, tmp_path: Path, folder: str
) -> None:
    (tmp_path / "track.wav").write_bytes(sample_audio())
    run = await tempolor("stems", "track.wav", "--out", folder, "--json", fake=fake, cwd=tmp_path)
    assert run.code == 0, run.stderr
    (written,) = run.json()["files"]
    assert written["source"] == "track.wav"  # the file it was given, not a job id
    path = Path(written["path"])
    assert (tmp_path / path).parent == tmp_path / "stems"
    check_media(tmp_path / path)


async def test_download_out_with_a_separator_creates_the_folder(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    jobs = fake.submissions[-1] if fake.submissions else None
    assert jobs is None
    run = await tempolor("song", "x", "--json", fake=fake)
    job_id = run.json()["jobs"][0]
    fake.complete(job_id)
    got = await tempolor("download", job_id, "--out", "new/", "--json", fake=fake, cwd=tmp_path)
    assert got.code == 0, got.stderr
    assert (tmp_path / got.json()["files"][0]["path"]).parent == tmp_path / "new"


def test_no_two_jobs_share_a_file_name() -> None:
    from tempolor_async.cli._music import file_names

    names = file_names(["u-job:abc", "v-job:abc", "w-job:a/bc", "x-job:ABC", "y-job:"], "mp3")
    assert len(set(map(str.lower, names.values()))) == 5
    assert names["u-job:abc"] == "abc.mp3"


# ---------------------------------------------- checked before anything is sent


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (("--wait", "--poll-interval", "0"), "--poll-interval"),
        (("--wait", "--poll-interval", "-1"), "--poll-interval"),
        (("--wait", "--poll-interval", "nan"), "--poll-interval"),
        (("--wait", "--poll-interval", "inf"), "--poll-interval"),
        (("--download", "taken"), "--download"),
        (("--download", "taken/inside"), "--download"),
        (("--format", "ogg"), "--format"),
        (("--lyrics-file", "missing.txt"), "--lyrics-file"),
    ],
)
async def test_a_bad_option_exits_2_with_nothing_submitted(
    fake: FakeTempolor, tmp_path: Path, extra: tuple[str, ...], fragment: str
) -> None:
    (tmp_path / "taken").write_bytes(b"precious")
    run = await tempolor("song", "x", *extra, fake=fake, cwd=tmp_path)
    assert run.code == 2, run
    assert_one_error_line(run, fragment)
    assert fake.requests == []
    assert (tmp_path / "taken").read_bytes() == b"precious"


async def test_stems_refuses_a_file_as_its_folder_before_uploading(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    (tmp_path / "track.wav").write_bytes(sample_audio())
    (tmp_path / "taken").write_bytes(b"precious")
    run = await tempolor("stems", "track.wav", "--out", "taken", fake=fake, cwd=tmp_path)
    assert run.code == 2
    assert_one_error_line(run, "--out", "is a file, not a folder")
    assert fake.requests == []


# ------------------------------------------------ job ids are never lost


async def test_job_ids_are_printed_when_the_wait_fails(fake: FakeTempolor) -> None:
    fake.inject("GET", "/scheduler/", status=401, times=None)
    fake.inject("GET", "/music/*", status=401, times=None)
    run = await tempolor("song", "x", "--wait", *FAST, fake=fake)
    assert run.code == 1
    assert_one_error_line(run, "401")
    assert run.stdout.split() == fake.submissions[-1]


async def test_job_ids_are_in_the_json_object_when_the_download_fails(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    fake.inject("GET", "/music/download/*", status=402, times=None)
    run = await tempolor("song", "x", "--download", "out", "--json", *FAST, fake=fake, cwd=tmp_path)
    assert run.code == 1
    assert_one_error_line(run, "402")
    result = run.json()
    assert result["jobs"] == fake.submissions[-1]
    assert [record["job_id"] for record in result["records"]] == result["jobs"]
    assert "402" in result["error"]
    assert "files" not in result


async def test_job_ids_are_printed_when_interrupted(fake: FakeTempolor) -> None:
    fake.job_duration = 60
    env = {**os.environ, "TEMPOLOR_BASE_URL": fake.base_url, "USEAPI_TOKEN": fake.token}
    command = [sys.executable, "-m", "tempolor_async.cli", "song", "x", "--wait", "--json"]
    process = await anyio.open_process(command, env=env, stdout=subprocess.PIPE)
    async with process:
        for _ in range(400):  # until it waits: the generation was accepted
            if fake.requests_to("GET", "/scheduler/"):
                break
            await anyio.sleep(0.05)
        process.send_signal(signal.SIGINT)
        assert process.stdout is not None
        with anyio.fail_after(20):
            output = b"".join([chunk async for chunk in process.stdout])
            assert await process.wait() == 130
    result = Run(130, output.decode(), "").json()
    assert result["jobs"] == fake.submissions[-1]
    assert result["error"] == "interrupted"


async def test_a_server_job_id_unfit_for_a_path_is_the_services_fault(fake: FakeTempolor) -> None:
    fake.inject(
        "POST", "/music/song", body={"jobs": ["user:1-job:a/b", "user:1-job:c"], "itemIds": []}
    )
    run = await tempolor("song", "x", "--wait", "--json", *FAST, fake=fake)
    assert run.code == 1
    assert_one_error_line(run, "job_id")
    assert run.json()["jobs"] == ["user:1-job:a/b", "user:1-job:c"]


# ------------------------------------------------------------ closed pipes


@pytest.mark.parametrize(
    "args",
    [
        ("voices", "artist"),
        ("list",),
        ("list", "--json"),
        ("scheduler", "available"),
        ("song", "x"),
        ("--help",),
    ],
)
async def test_a_closed_pipe_ends_quietly_with_exit_0(
    fake: FakeTempolor, args: tuple[str, ...]
) -> None:
    await tempolor("song", "something to list", fake=fake)
    reader, writer = os.pipe()
    os.close(reader)  # every write to stdout now fails with EPIPE
    env = {**os.environ, "TEMPOLOR_BASE_URL": fake.base_url, "USEAPI_TOKEN": fake.token}
    try:
        result = await anyio.run_process(
            [sys.executable, "-m", "tempolor_async.cli", *args],
            env=env,
            stdout=writer,
            check=False,
        )
    finally:
        os.close(writer)
    assert result.stderr.decode() == ""
    assert result.returncode == 0
