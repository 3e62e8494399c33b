"""The ``tempolor`` command, run as a subprocess against the simulator."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import wave
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from tempolor_async.testing import FakeTempolor, sample_audio, sample_midi

pytestmark = pytest.mark.anyio


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


async def tempolor(
    *args: str, fake: FakeTempolor | None = None, cwd: Path | None = None, token: str | None = None
) -> Run:
    """Run the command with the fake's URL and token (unless told otherwise), piped."""
    env = {key: value for key, value in os.environ.items() if key != "USEAPI_TOKEN"}
    env.pop("TEMPOLOR_BASE_URL", None)
    if fake is not None:
        env["TEMPOLOR_BASE_URL"] = fake.base_url
        env["USEAPI_TOKEN"] = token or fake.token
    result = await anyio.run_process(
        [sys.executable, "-m", "tempolor_async.cli", *args], cwd=cwd, env=env, check=False
    )
    return Run(result.returncode, result.stdout.decode(), result.stderr.decode())


def assert_one_error_line(run: Run, *fragments: str) -> None:
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: "), run.stderr
    assert "Traceback" not in run.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def check_media(path: Path) -> None:
    """The file is real audio of its kind."""
    data = path.read_bytes()
    if path.suffix == ".wav":
        with wave.open(str(path)) as reader:
            assert reader.getnframes() > 0
    elif path.suffix == ".mp3":
        assert data[:3] == b"ID3"
        tag_size = int.from_bytes(data[6:10], "big")  # syncsafe, all bytes < 0x80 here
        frame = data[10 + tag_size :]
        assert frame[:2] == b"\xff\xfb", "no MPEG-1 Layer III frame sync after the tag"
    else:
        with zipfile.ZipFile(path) as archive:
            stems = [name for name in archive.namelist() if name.endswith(".wav")]
            assert len(stems) >= 2
            with wave.open(io.BytesIO(archive.read(stems[0]))) as reader:
                assert reader.getnframes() > 0


async def submit(fake: FakeTempolor, *extra: str, kind: str = "song") -> list[str]:
    run = await tempolor(kind, "a calm piano piece", "--json", *extra, fake=fake)
    assert run.code == 0, run.stderr
    jobs: list[str] = run.json()["jobs"]
    return jobs


# ---------------------------------------------------------------------- demo


async def test_demo_writes_real_audio_offline(tmp_path: Path) -> None:
    run = await tempolor("demo", "--json", cwd=tmp_path)
    assert run.code == 0, run.stderr
    report = run.json()
    assert {job["status_name"] for job in report["jobs"]} == {"COMPLETED"}
    assert len(report["jobs"]) == 4
    files = report["files"]
    assert sorted({entry["format"] for entry in files}) == ["mp3", "stems", "wav"]
    for entry in files:
        path = tmp_path / entry["path"]
        assert path.parent == tmp_path / "tempolor-demo"
        assert path.stat().st_size == entry["bytes"] > 0
        check_media(path)
    assert not [p for p in (tmp_path / "tempolor-demo").iterdir() if p.name.startswith(".")]


# -------------------------------------------------------------- generation


async def test_song_sends_lyrics_model_and_voice(fake: FakeTempolor, tmp_path: Path) -> None:
    lyrics = tmp_path / "lyrics.txt"
    lyrics.write_text("line one\nline two", encoding="utf-8")
    jobs = await submit(
        fake, "--lyrics-file", str(lyrics), "--model", "v3", "--artist-voice", "voice_10001"
    )
    assert len(jobs) == 2
    assert set(jobs) <= set(fake.jobs)
    body = fake.requests_to("POST", "/music/song")[0].json()
    assert body == {
        "prompt": "a calm piano piece",
        "lyrics": "line one\nline two",
        "model_song": "v3",
        "artistVoiceItemId": "voice_10001",
    }


async def test_instrumental_sends_musical_parameters(fake: FakeTempolor) -> None:
    extra = ("--bpm", "84", "--tonality", "F#:minor", "--chords", "Am F C G")
    await submit(fake, *extra, kind="instrumental")
    body = fake.requests_to("POST", "/music/instrumental")[0].json()
    assert (body["bpm"], body["tonality"], body["chords"]) == (84, "F#:minor", "Am F C G")


async def test_song_wait_prints_final_records(fake: FakeTempolor) -> None:
    run = await tempolor(
        "song", "sea shanty", "--wait", "--poll-interval", "0.05", "--json", fake=fake
    )
    assert run.code == 0, run.stderr
    result = run.json()
    assert [record["status_name"] for record in result["records"]] == ["COMPLETED", "COMPLETED"]
    assert [record["job_id"] for record in result["records"]] == result["jobs"]
    assert "error" not in result


async def test_song_download_writes_files(fake: FakeTempolor, tmp_path: Path) -> None:
    args = ("--download", str(tmp_path), "--format", "wav", "--poll-interval", "0.05", "--json")
    run = await tempolor("song", "sea shanty", *args, fake=fake)
    assert run.code == 0, run.stderr
    files = run.json()["files"]
    assert len(files) == 2
    assert {entry["job_id"] for entry in files} == set(run.json()["jobs"])
    for entry in files:
        assert entry["format"] == "wav"
        check_media(Path(entry["path"]))


async def test_failed_job_exits_1(fake: FakeTempolor) -> None:
    run = await tempolor("song", "doomed [fail]", "--wait", "--poll-interval", "0.05", fake=fake)
    assert run.code == 1
    assert "FAILED" in run.stdout
    assert "ended FAILED" in run.stderr
    assert "Traceback" not in run.stderr


# ------------------------------------------------------------------- jobs


async def test_status_wait_download_and_list(fake: FakeTempolor, tmp_path: Path) -> None:
    jobs = await submit(fake)
    for job_id in jobs:
        fake.complete(job_id)
    status = await tempolor("status", jobs[0], "--json", fake=fake)
    assert status.code == 0
    assert status.json()["job_id"] == jobs[0]
    plain = await tempolor("status", jobs[0], fake=fake)
    assert "COMPLETED" in plain.stdout
    assert "\x1b[" not in plain.stdout
    waited = await tempolor("wait", *jobs, "--json", fake=fake)
    assert [record["job_id"] for record in waited.json()] == jobs
    download = await tempolor(
        "download", jobs[1], "--format", "stems", "--out", str(tmp_path), "--json", fake=fake
    )
    written = Path(download.json()["files"][0]["path"])
    assert written == tmp_path / (jobs[1].rpartition("-job:")[2] + ".zip")
    check_media(written)
    listing = await tempolor("list", "--limit", "1", "--json", fake=fake)
    assert len(listing.json()) == 1
    empty = await tempolor("list", "--type", "instrumental", "--json", fake=fake)
    assert empty.json() == []


async def test_piped_list_is_plain_tab_separated(fake: FakeTempolor) -> None:
    jobs = await submit(fake)
    run = await tempolor("list", fake=fake)
    header, *lines = run.stdout.strip().splitlines()
    assert header.split("\t") == ["job_id", "status", "progress", "title", "created"]
    assert [line.split("\t")[0] for line in lines] == list(reversed(jobs))
    assert "\x1b[" not in run.stdout


# -------------------------------------------------------- voices, MIDI, stems


async def test_voices_commands(fake: FakeTempolor, tmp_path: Path) -> None:
    artists = await tempolor("voices", "artist", "--limit", "3", "--json", fake=fake)
    assert [voice["itemId"] for voice in artists.json()] == [
        "voice_10001",
        "voice_10002",
        "voice_10003",
    ]
    sample = tmp_path / "me.wav"
    sample.write_bytes(sample_audio())
    cloned = await tempolor("voices", "clone", str(sample), "--name", "me", "--json", fake=fake)
    voice_id = cloned.json()["clonedVoiceItemId"]
    assert (
        fake.requests_to("POST", "/music/cloned-voices/")[0].headers["Content-Type"] == "audio/wav"
    )
    listed = await tempolor("voices", "cloned", "--json", fake=fake)
    assert [voice["clonedVoiceItemId"] for voice in listed.json()] == [voice_id]
    deleted = await tempolor("voices", "delete", voice_id, fake=fake)
    assert deleted.code == 0
    assert voice_id not in fake.cloned_voices


async def test_midi_commands(fake: FakeTempolor, tmp_path: Path) -> None:
    tune = tmp_path / "tune.mid"
    tune.write_bytes(sample_midi())
    uploaded = await tempolor("midi", "upload", str(tune), "--name", "tune", "--json", fake=fake)
    midi_id = uploaded.json()["midiRenderVO"]["midiItemId"]
    assert fake.midi_files[midi_id].data == sample_midi()
    listed = await tempolor("midi", "list", "--json", fake=fake)
    assert [entry["midiItemId"] for entry in listed.json()] == [midi_id]
    assert (await tempolor("midi", "delete", midi_id, fake=fake)).code == 0
    assert midi_id not in fake.midi_files


async def test_stems_splits_and_downloads(fake: FakeTempolor, tmp_path: Path) -> None:
    track = tmp_path / "track.wav"
    track.write_bytes(sample_audio())
    run = await tempolor("stems", str(track), "--out", str(tmp_path), "--json", fake=fake)
    assert run.code == 0, run.stderr
    check_media(Path(run.json()["files"][0]["path"]))


# ----------------------------------------------------- accounts, scheduler


async def test_accounts_commands_never_print_credentials(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"requestParams": {"user_id": "777", "service_ticket": "S3CRET"}}))
    added = await tempolor(
        "accounts", "add", "--request-params", str(params), "--max-jobs", "3", "--json", fake=fake
    )
    assert added.json()["user_id"] == "777"
    assert added.json()["maxJobs"] == 3
    assert fake.accounts["777"].request_params["service_ticket"] == "S3CRET"
    outputs = [added]
    outputs.append(await tempolor("accounts", "list", "--json", fake=fake))
    assert {account["user_id"] for account in outputs[-1].json()} == {"100349856", "777"}
    outputs.append(await tempolor("accounts", "list", fake=fake))
    outputs.append(await tempolor("accounts", "get", "777", fake=fake))
    for run in outputs:
        assert run.code == 0, run.stderr
        assert "S3CRET" not in run.stdout + run.stderr
        assert fake.accounts["100349856"].request_params["service_ticket"] not in run.stdout
    assert (await tempolor("accounts", "delete", "777", fake=fake)).code == 0
    assert "777" not in fake.accounts


async def test_scheduler_commands(fake: FakeTempolor) -> None:
    fake.job_duration = 60
    jobs = await submit(fake)
    running = await tempolor("scheduler", "list", "--json", fake=fake)
    assert sorted(entry["job_id"] for entry in running.json()) == sorted(jobs)
    available = await tempolor("scheduler", "available", "--json", fake=fake)
    assert available.json()["available"][0]["executing"] == 2
    cancelled = await tempolor("scheduler", "cancel", jobs[0], fake=fake)
    assert cancelled.code == 0
    assert [job.job_id for job in fake.running_jobs()] == [jobs[1]]


# ------------------------------------------------------ errors and usage


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("instrumental", "x", "--bpm", "500"), ("bpm", "50 to 190")),
        (("instrumental", "x", "--tonality", "H:major"), ("tonality",)),
        (("song", ""), ("PROMPT",)),
        (("nonsense",), ("invalid choice",)),
        (("list", "--bogus"), ("--bogus",)),
        (("song", "x", "--artist-voice", "a", "--midi", "b"), ("not allowed",)),
        (("status", "bad/id"), ("JOB_ID",)),
    ],
)
async def test_bad_usage_exits_2_with_one_line(
    fake: FakeTempolor, args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    run = await tempolor(*args, fake=fake)
    assert run.code == 2
    assert_one_error_line(run, *fragments)
    assert fake.requests == []


async def test_missing_token_names_both_ways_to_give_it() -> None:
    run = await tempolor("list")
    assert run.code == 2
    assert_one_error_line(run, "USEAPI_TOKEN", "--token")


async def test_api_errors_exit_1_with_the_service_text(fake: FakeTempolor) -> None:
    missing = "user:12345-tempolor:100349856-job:abc123"
    run = await tempolor("status", missing, fake=fake)
    assert run.code == 1
    assert_one_error_line(run, f"GET /music/{missing}", "404", f"No record found for {missing}")
    denied = await tempolor("list", fake=fake, token="wrong-token")
    assert denied.code == 1
    assert_one_error_line(denied, "401", "Unauthorized")
    assert "wrong-token" not in denied.stderr


async def test_token_base_url_and_user_id_options(fake: FakeTempolor) -> None:
    options = ("--token", fake.token, "--base-url", fake.base_url, "--user-id", "100349856")
    run = await tempolor("list", "--json", *options)
    assert run.code == 0
    assert run.json() == []
    assert fake.requests[-1].headers["Authorization"] == f"Bearer {fake.token}"
    assert fake.requests[-1].query == {"type": "song", "user_id": "100349856"}


async def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("tempolor")
    assert script.exists()
    result = await anyio.run_process([str(script), "--version"], check=False)
    assert result.returncode == 0
    assert b"tempolor-async" in result.stdout


async def test_simulate_serves_until_interrupted() -> None:
    process = await anyio.open_process(
        [sys.executable, "-m", "tempolor_async.cli", "simulate", "--port", "0"],
        stdout=subprocess.PIPE,
    )
    async with process:
        assert process.stdout is not None
        output = b""
        with anyio.fail_after(10):
            async for chunk in process.stdout:
                output += chunk
                if b"token:" in output:
                    break
        assert b"base URL: http://127.0.0.1:" in output
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            assert await process.wait() == 0
