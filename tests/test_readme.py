"""The README's quick start, run exactly as written against the simulator."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from tempolor_async import APIConnectionError, TempolorClient
from tempolor_async.testing import FakeTempolor

README = Path(__file__).resolve().parent.parent / "README.md"


def quick_start() -> str:
    section = README.read_text(encoding="utf-8").split("## Quick start", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the Quick start section has no python block"
    return match.group(1)


async def run_example(code: str, folder: Path, env: dict[str, str]) -> str:
    """Run a README example in a fresh interpreter in ``folder``; it must succeed."""
    result = await anyio.run_process(
        [sys.executable, "-c", code],
        cwd=folder,
        env={**os.environ, **env},
        check=False,
        stderr=subprocess.STDOUT,
    )
    output = result.stdout.decode()
    assert result.returncode == 0, output
    return output


@pytest.mark.anyio
@pytest.mark.fake(job_duration=0.2)
async def test_quick_start_runs_against_the_simulator(fake: FakeTempolor, tmp_path: Path) -> None:
    env = {"USEAPI_TOKEN": fake.token, "TEMPOLOR_BASE_URL": fake.base_url}
    output = await run_example(quick_start(), tmp_path, env)
    assert "COMPLETED 100%" in output
    saved = list(tmp_path.glob("*.mp3"))
    assert len(saved) == 1, output
    assert f"saved {saved[0].name}" in output
    assert saved[0].read_bytes()[:3] == b"ID3"
    assert len(fake.requests_to("POST", "/music/song")) == 1
    assert not any(
        request.path.startswith("/cdn/") and "Authorization" in request.headers
        for request in fake.requests
    )


def recovery_recipe() -> dict[str, Any]:
    """The README's recipe for an ambiguous generation failure, as a namespace."""
    section = README.read_text(encoding="utf-8").split("### After an ambiguous failure", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the recovery recipe has no python block"
    namespace: dict[str, Any] = {}
    exec(match.group(1), namespace)
    return namespace


@pytest.mark.anyio
@pytest.mark.parametrize(("fault", "accepted"), [("truncate", True), ("drop", False)])
async def test_the_recovery_recipe_finds_an_accepted_job(
    fake: FakeTempolor, client: TempolorClient, fault: str, accepted: bool
) -> None:
    create_song_once = recovery_recipe()["create_song_once"]
    await client.music.create_song("an older song")
    fake.inject("POST", "/music/song", **{fault: True})
    if accepted:  # the service took it, then the answer was lost: the recipe finds the jobs
        jobs = await create_song_once(client, "a brand new song")
        assert sorted(jobs) == sorted(fake.submissions[-1])
    else:  # nothing was created: the recipe re-raises, so submitting again is safe
        with pytest.raises(APIConnectionError):
            await create_song_once(client, "a brand new song")
    assert len(fake.submissions) == 1 + accepted


def batches_blocks(language: str) -> list[str]:
    """The code blocks of one language in the README's "Batches" section."""
    section = README.read_text(encoding="utf-8").split("## Batches", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)


@pytest.mark.anyio
@pytest.mark.fake(job_duration=0.2)
async def test_the_batches_example_runs_and_resumes(fake: FakeTempolor, tmp_path: Path) -> None:
    env = {"USEAPI_TOKEN": fake.token, "TEMPOLOR_BASE_URL": fake.base_url}
    outputs = [await run_example(batches_blocks("python")[0], tmp_path, env) for _ in range(2)]
    assert outputs[0] == outputs[1]
    assert "2 completed, 0 failed, 0 pending" in outputs[0]
    assert "shanty downloaded shanty-1.mp3 shanty-2.mp3" in outputs[0]
    assert len(fake.submissions) == 2  # the second run resumed: nothing sent again
    assert (tmp_path / "tracks" / "lofi-84-2.mp3").read_bytes()[:3] == b"ID3"
    assert (tmp_path / "tracks" / "manifest.jsonl").read_text().count("\n") == 2


@pytest.mark.anyio
@pytest.mark.fake(job_duration=0.2)
async def test_the_batch_command_and_the_journal_query_run(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    (tmp_path / "songs.jsonl").write_text(batches_blocks("jsonl")[0])
    command, query = (block.strip() for block in batches_blocks("sh"))
    bin_folder = str(Path(sys.executable).parent)  # where the `tempolor` script is installed
    env = {
        **os.environ,
        "USEAPI_TOKEN": fake.token,
        "TEMPOLOR_BASE_URL": fake.base_url,
        "PATH": bin_folder + os.pathsep + os.environ.get("PATH", ""),
    }
    result = await anyio.run_process(["sh", "-c", command], cwd=tmp_path, env=env, check=False)
    assert result.returncode == 0, result.stderr.decode()
    names = {path.name for path in (tmp_path / "tracks").iterdir()}
    for key in ("shanty", "lofi-84", "ballad"):
        assert {f"{key}-1.mp3", f"{key}-2.wav"} <= names
    if shutil.which("sqlite3") is not None:
        shown = await anyio.run_process(["sh", "-c", query], cwd=tmp_path, env=env)
        rows = shown.stdout.decode().splitlines()
    else:  # the same SQL through Python's sqlite3 module
        path, sql = re.fullmatch(r'sqlite3 (\S+) "(.*)"', query).groups()  # type: ignore[union-attr]
        with sqlite3.connect(tmp_path / path) as connection:
            rows = ["|".join(map(str, row)) for row in connection.execute(sql)]
    assert sorted(row.split("|")[:2] for row in rows) == [
        ["ballad", "downloaded"],
        ["lofi-84", "downloaded"],
        ["shanty", "downloaded"],
    ]


def noiz_recipe() -> str:
    section = README.read_text(encoding="utf-8").split("### Recipe: clone a voice", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the Noiz recipe has no python block"
    return match.group(1)


@pytest.mark.anyio
async def test_the_noiz_recipe_clones_a_voice_and_speaks_with_it(tmp_path: Path) -> None:
    from tempolor_async.testing import FakeNoiz, sample_audio

    (tmp_path / "me.wav").write_bytes(sample_audio(1.5))
    async with FakeNoiz() as fake:
        env = {"NOIZ_API_KEY": fake.api_key, "NOIZ_BASE_URL": fake.base_url}
        output = await run_example(noiz_recipe(), tmp_path, env)
        [voice] = fake.custom_voices()
        assert f"cloned {voice.voice_id} from 1.5 s of audio" in output
        assert "wrote hello.wav" in output
        assert voice.sample == (tmp_path / "me.wav").read_bytes()
        [speech] = fake.requests_to("POST", "/text-to-speech")
        assert voice.voice_id.encode() in speech.body
    assert (tmp_path / "hello.wav").read_bytes()[:4] == b"RIFF"


def section(title: str) -> str:
    """One section of the README, from its heading to the next heading of its level."""
    level = title.split(" ", 1)[0]
    text = README.read_text(encoding="utf-8").split(f"\n{title}\n", 1)[1]
    return text.split(f"\n{level} ", 1)[0]


def shell_env(fake: FakeTempolor) -> dict[str, str]:
    bin_folder = str(Path(sys.executable).parent)  # where the `tempolor` script is installed
    return {
        **os.environ,
        "USEAPI_TOKEN": fake.token,
        "TEMPOLOR_BASE_URL": fake.base_url,
        "PATH": bin_folder + os.pathsep + os.environ.get("PATH", ""),
    }


@pytest.mark.anyio
@pytest.mark.fake(job_duration=0.2)
async def test_the_command_examples_run_as_written_into_folders_not_yet_made(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    from tempolor_async.testing import sample_audio

    (tmp_path / "lyrics.txt").write_text("Heave away\nhaul away\n", encoding="utf-8")
    (tmp_path / "track.mp3").write_bytes(sample_audio())
    block = re.findall(r"```sh\n(.*?)```", section("## The `tempolor` command"), re.DOTALL)[0]
    assert "--download songs/" in block
    assert "--out stems/" in block
    result = await anyio.run_process(
        ["sh", "-e", "-c", block], cwd=tmp_path, env=shell_env(fake), check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr.decode() == ""
    songs = sorted(path.suffix for path in (tmp_path / "songs").iterdir())
    assert songs == [".mp3", ".wav", ".wav"]  # two jobs as wav, then one downloaded as mp3
    [stems] = (tmp_path / "stems").iterdir()
    assert stems.suffix == ".zip"
    assert len(fake.requests_to("POST", "/music/song")) == 2
    assert len(fake.requests_to("POST", "/music/instrumental")) == 1
    assert "user_id\tmax_jobs\texecuting\tavailable" in result.stdout.decode()


@pytest.mark.anyio
async def test_the_account_set_up_commands_run_as_written(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    params = {"requestParams": {"user_id": "424242", "service_ticket": "st-x", "vip_type": 20}}
    (tmp_path / "request-params.json").write_text(json.dumps(params), encoding="utf-8")
    setup = section("### From zero to a token and an account")
    block = re.findall(r"```sh\n(.*?)```", setup, re.DOTALL)[0]
    commands = "\n".join(line.strip() for line in block.splitlines())
    result = await anyio.run_process(
        ["sh", "-e", "-c", commands], cwd=tmp_path, env=shell_env(fake), check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    assert fake.accounts["424242"].max_jobs == 3
    assert "424242" in result.stdout.decode()
    assert "st-x" not in result.stdout.decode()


@pytest.mark.anyio
async def test_the_errors_example_runs_against_the_simulator(
    fake: FakeTempolor, tmp_path: Path
) -> None:
    [code] = re.findall(r"```python\n(.*?)```", section("## Errors"), re.DOTALL)
    env = {"USEAPI_TOKEN": fake.token, "TEMPOLOR_BASE_URL": fake.base_url}
    output = await run_example(code, tmp_path, env)
    assert "refused: bpm: must be an integer from 50 to 190 (got 500)" in output
    assert "not found: 404 No record found for user:12345-tempolor:100349856-job:abc123" in output
    assert fake.requests_to("POST", "/music/instrumental") == []


def test_the_errors_section_draws_the_whole_exception_tree() -> None:
    import tempolor_async

    tree = section("## Errors")
    errors = [
        name
        for name in tempolor_async.__all__
        if isinstance(getattr(tempolor_async, name), type)
        and issubclass(getattr(tempolor_async, name), tempolor_async.TempolorError)
    ]
    assert len(errors) >= 16
    assert [name for name in errors if f"── {name}" not in tree and name != "TempolorError"] == []


# ------------------------------------------------------------------ web backends


def web_example(heading: str) -> str:
    """The python block under ``### <heading>`` of the README's web backends section."""
    section = README.read_text(encoding="utf-8").split("## Web backends", 1)[1]
    part = section.split(f"### {heading}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", part, re.DOTALL)
    assert match is not None, f"no python block under {heading}"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def use_the_backend(base: str, fake: FakeTempolor) -> None:
    """What a browser does: submit a song, follow its progress, fetch the file."""
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/songs", json={"prompt": "a song for the web"}) as reply:
            assert reply.status == 200, await reply.text()
            jobs = (await reply.json())["jobs"]
        assert len(jobs) == 2
        [body] = [request.json() for request in fake.requests_to("POST", "/music/song")]
        assert body["replyUrl"].startswith(f"{base}/tempolor/")
        events: list[tuple[str, dict[str, Any]]] = []
        with anyio.fail_after(20):  # the safety-net poll is 60 s away: callbacks do this
            async with session.get(f"{base}/songs/{jobs[0]}/events") as stream:
                assert stream.headers["Content-Type"].startswith("text/event-stream")
                name = ""
                async for raw in stream.content:
                    line = raw.decode().strip()
                    if line.startswith("event: "):
                        name = line[len("event: ") :]
                    elif line.startswith("data: "):
                        events.append((name, json.loads(line[len("data: ") :])))
        names = [name for name, _ in events]
        assert names[-1] == "done"
        assert names.count("progress") >= 2
        assert [data["progress"] for _, data in events] == sorted(d["progress"] for _, d in events)
        done = events[-1][1]
        assert (done["job_id"], done["status"]) == (jobs[0], "COMPLETED")
        async with session.get(done["url"]) as media:
            assert (await media.read())[:3] == b"ID3"
    assert fake.callback_errors == []
    assert len(fake.requests_to("GET", "/scheduler/")) <= 2  # woken by callbacks, not polls


async def ask_for_unknown_jobs(base: str, caplog: pytest.LogCaptureFixture) -> None:
    """An unknown job's events: a 404 before any stream, and nothing logged as an error.
    (A well-formed id the service does not know ends the same way, after the grace a job just
    submitted gets to become visible.)"""
    unknown = ["not-a-job", "a%20b"]  # refused by the service; refused before sending
    async with aiohttp.ClientSession() as session:
        for job_id in unknown:
            with anyio.fail_after(10):
                async with session.get(f"{base}/songs/{job_id}/events") as reply:
                    assert reply.status == 404, (job_id, reply.status, await reply.text())
                    assert not reply.headers["Content-Type"].startswith("text/event-stream")
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == [], [record.getMessage() for record in errors]


@pytest.mark.anyio
@pytest.mark.fake(job_duration=1.0, download_lag=0.3)
async def test_the_aiohttp_backend(
    fake: FakeTempolor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("USEAPI_TOKEN", fake.token)
    monkeypatch.setenv("TEMPOLOR_BASE_URL", fake.base_url)
    namespace: dict[str, Any] = {"__name__": "readme_aiohttp_app"}
    exec(web_example("aiohttp.web"), namespace)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    runner = web.AppRunner(namespace["create_app"](base), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await use_the_backend(base, fake)
        await ask_for_unknown_jobs(base, caplog)
    finally:
        await runner.cleanup()


@pytest.mark.anyio
@pytest.mark.fake(job_duration=1.0, download_lag=0.3)
async def test_the_fastapi_backend_under_uvicorn(
    fake: FakeTempolor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    uvicorn = pytest.importorskip("uvicorn")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("USEAPI_TOKEN", fake.token)
    monkeypatch.setenv("TEMPOLOR_BASE_URL", fake.base_url)
    monkeypatch.setenv("PUBLIC_URL", base)
    namespace: dict[str, Any] = {"__name__": "readme_fastapi_app"}
    exec(web_example("FastAPI"), namespace)
    config = uvicorn.Config(namespace["app"], host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for this
                await anyio.sleep(0.01)
        try:
            await use_the_backend(base, fake)
            await ask_for_unknown_jobs(base, caplog)
        finally:
            server.should_exit = True


@pytest.mark.anyio
async def test_the_fastapi_backend_without_public_url_says_so_at_start(
    fake: FakeTempolor, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("fastapi")
    monkeypatch.setenv("USEAPI_TOKEN", fake.token)
    monkeypatch.setenv("TEMPOLOR_BASE_URL", fake.base_url)
    monkeypatch.delenv("PUBLIC_URL", raising=False)
    namespace: dict[str, Any] = {"__name__": "readme_fastapi_app"}
    exec(web_example("FastAPI"), namespace)  # importing it works
    app = namespace["app"]
    with pytest.raises(RuntimeError, match="set PUBLIC_URL"):
        async with app.router.lifespan_context(app):
            pass
    assert fake.requests == []
