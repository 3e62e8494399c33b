"""``tempolor simulate`` and ``python -m tempolor_async.testing``: every FakeTempolor option
as a dashed option, and ``--fault`` injecting faults, so a program in any language can be
tested against the simulator. Started as a subprocess on a free port and spoken to in HTTP."""

from __future__ import annotations

import email.utils
import inspect
import io
import json
import re
import sys
import time
import wave
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlsplit

import aiohttp
import anyio
import pytest

from tempolor_async.cli import main as tempolor_main
from tempolor_async.testing import FakeTempolor, sample_audio
from tempolor_async.testing.__main__ import build_parser, parse_fault

pytestmark = pytest.mark.anyio

TEMPOLOR = [sys.executable, "-m", "tempolor_async.cli", "simulate"]
MODULE = [sys.executable, "-m", "tempolor_async.testing"]
DAY = 86_400


@asynccontextmanager
async def _running(command, *args, until="token:"):
    """Start the simulator on a free port; yield (base URL, banner up to ``until``'s line)."""
    process = await anyio.open_process([*command, "--port", "0", *args])
    try:
        banner = ""
        with anyio.fail_after(30):
            while until not in banner or not banner.endswith("\n"):
                banner += (await process.stdout.receive()).decode()
        base_url = re.search(r"base URL: (\S+)\n", banner)
        assert base_url is not None, banner
        yield base_url[1], banner
    finally:
        if process.returncode is None:
            process.terminate()
            with anyio.fail_after(10):
                await process.wait()
        await process.aclose()


class Http:
    def __init__(self, session, base_url, token):
        self.session = session
        self.base_url = base_url
        self.auth = {"Authorization": f"Bearer {token}"}

    async def __call__(self, method, path, **kwargs):
        url = path if path.startswith("http") else self.base_url + path
        headers = {
            **(self.auth if not path.startswith("http") else {}),
            **kwargs.pop("headers", {}),
        }
        async with self.session.request(method, url, headers=headers, **kwargs) as response:
            body = await response.read()
            return response.status, response.headers, body


async def test_every_option_reaches_the_simulator():
    args = [
        "--token", "T0k3n",
        "--user-id", "acct-7",
        "--job-duration", "1",
        "--max-jobs", "3",
        "--max-gen-count-at-once", "6",
        "--page-size", "1",
        "--fail-marker", "XFAILX",
        "--download-lag", "1.5",
        "--download-url-expiry", "2",
        "--audio-seconds", "1.25",
        "--clock-offset", str(DAY),
        "--voice-clone-pending",
        "--voice-clone-delay", "0.5",
        "--fault", "GET /scheduler/available status=503 times=1",
        "--fault", "POST /music/instrumental status=502 handled",
    ]  # fmt: skip
    last_line = "fault:    POST /music/instrumental status=502 handled"
    running = _running(TEMPOLOR, *args, until=last_line)
    async with running as (base_url, banner), aiohttp.ClientSession() as s:
        assert "token:    T0k3n" in banner
        assert "fault:    GET /scheduler/available status=503 times=1\n" in banner
        http = Http(s, base_url, "T0k3n")

        status, headers, body = await http("GET", "/accounts")
        assert status == 200
        accounts = json.loads(body)
        assert list(accounts) == ["acct-7"]
        assert accounts["acct-7"]["maxJobs"] == 3
        shown = email.utils.parsedate_to_datetime(headers["Date"]).timestamp()
        assert abs(shown - (time.time() + DAY)) < 120  # --clock-offset

        # --fault, status: the first GET scheduler/available fails, the next does not.
        assert (await http("GET", "/scheduler/available"))[0] == 503
        assert (await http("GET", "/scheduler/available"))[0] == 200

        # --fault, handled: answered 502, yet the generation was made.
        status, _, body = await http("POST", "/music/instrumental", json={"prompt": "calm"})
        assert status == 502
        status, _, body = await http("GET", "/music/?type=instrumental")
        listed = json.loads(body)
        assert len(listed["records"]) == 1  # --page-size 1
        assert listed["hasNext"] is True  # the other job of the generation
        created = listed["records"][0]["createTime"] / 1000
        assert abs(created - (time.time() + DAY)) < 120

        status, _, body = await http("POST", "/music/song", json={"prompt": "x XFAILX"})
        assert status == 200, body
        failing = json.loads(body)
        assert failing["maxGenCountAtOnce"] == 6
        # --max-jobs 3: four jobs run (2 + 2 >= 3), a third generation is refused.
        status, _, body = await http("POST", "/music/song", json={"prompt": "ok"})
        assert status == 429, body

        # --voice-clone-pending: the documented 202.
        status, _, body = await http(
            "POST",
            "/music/cloned-voices/?name=me",
            data=sample_audio(0.2),
            headers={"Content-Type": "audio/wav"},
        )
        assert status == 202, body

        # --job-duration 1, --fail-marker: the marked generation fails.
        job_id = failing["jobs"][0]
        with anyio.fail_after(10):
            while True:
                record = json.loads((await http("GET", f"/music/{job_id}"))[2])
                if record["status_final"]:
                    break
                await anyio.sleep(0.1)
        assert record["status_name"] == "FAILED"

        # --download-lag 1.5: the instrumental is COMPLETED before its file can be served.
        job_id = listed["records"][0]["job_id"]
        with anyio.fail_after(10):
            while True:
                record = json.loads((await http("GET", f"/music/{job_id}"))[2])
                if record["status_final"]:
                    break
                await anyio.sleep(0.05)
        assert record["status_name"] == "COMPLETED"
        assert (await http("GET", f"/music/download/{job_id}?file_format=wav"))[0] == 404
        with anyio.fail_after(10):
            while True:
                status, _, body = await http("GET", f"/music/download/{job_id}?file_format=wav")
                if status == 200:
                    break
                await anyio.sleep(0.1)
        link = json.loads(body)
        assert link["remainSeconds"] == 2  # --download-url-expiry
        status, _, wav = await http("GET", link["url"])
        assert status == 200
        with wave.open(io.BytesIO(wav)) as audio:  # --audio-seconds 1.25
            assert audio.getnframes() / audio.getframerate() == pytest.approx(1.25, abs=0.01)
        expires = int(parse_qs(urlsplit(link["url"]).query)["auth_key"][0].split("-")[0])
        await anyio.sleep(max(0.0, expires - (time.time() + DAY)) + 0.1)
        assert (await http("GET", link["url"]))[0] == 403


async def test_the_module_takes_the_same_options_and_faults():
    args = ["--token", "M", "--audio-seconds", "0.5", "--fault", "GET /accounts status=418 times=2"]
    async with _running(MODULE, *args) as (base_url, _), aiohttp.ClientSession() as session:
        http = Http(session, base_url, "M")
        statuses = [(await http("GET", "/accounts"))[0] for _ in range(3)]
        assert statuses == [418, 418, 200]


def test_every_fake_tempolor_option_is_a_dashed_option():
    parameters = set(inspect.signature(FakeTempolor.__init__).parameters) - {"self"}
    parser = build_parser()
    flags = {flag for action in parser._actions for flag in action.option_strings}
    for name in parameters:
        assert "--" + name.replace("_", "-") in flags, name
    help_text = " ".join(parser.format_help().split())
    for name in parameters:
        flag = "--" + name.replace("_", "-")
        described = help_text.split(f" {flag} ", 1)[1].split(" --", 1)[0]
        assert re.search(r"\(default: .*(as FakeTempolor|this command's own)", described), flag


def test_tempolor_simulate_has_every_option_of_the_module(capsys):
    with pytest.raises(SystemExit) as exit_info:
        tempolor_main(["simulate", "--help"])
    assert exit_info.value.code == 0
    shown = capsys.readouterr().out
    for action in build_parser()._actions:
        for flag in action.option_strings:
            assert flag in shown, flag
    assert "default: 5.0, this command's own" in " ".join(shown.split())


HANDLED = {"status": 502, "handled": True, "times": 1}
GATEWAY = {"status": 502, "body": "<html>bad gateway</html>", "headers": {"Retry-After": "7"}}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("POST /music/song status=502 handled times=1", ("POST", "/music/song", HANDLED)),
        ("get /music/* delay=2.5", ("GET", "/music/*", {"delay": 2.5})),
        ("* /cdn/* drop always", ("*", "/cdn/*", {"drop": True, "times": None})),
        (
            "GET /x status=502 'body=<html>bad gateway</html>' header=Retry-After:7",
            ("GET", "/x", GATEWAY),
        ),
        (
            "GET /x truncate probability=0.5 seed=3",
            ("GET", "/x", {"truncate": True, "probability": 0.5, "seed": 3}),
        ),
    ],
)
def test_fault_specs_become_inject_arguments(spec, expected):
    parsed = parse_fault(spec)
    assert (parsed.method, parsed.path, parsed.options) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("POST", "needs a method and a path"),
        ("FETCH /x status=500", "'FETCH' is not an HTTP method"),
        ("GET x status=500", "must start with /"),
        ("GET /x status=abc", "status: must be a whole number"),
        ("GET /x status=700", "status: must be from 100 to 599"),
        ("GET /x times=0", "times: must be a positive integer"),
        ("GET /x delay=-1", "delay: must be zero or more seconds"),
        ("GET /x colour=red", "unknown setting 'colour=red'"),
        ("GET /x drop=maybe", "drop is a flag"),
        ("GET /x", "needs status, body, drop, truncate or delay"),
        ("POST /music/song handled delay=1", "needs the status"),
        ("GET /x status=500 status=502", "status is given twice"),
        ("GET /x header=Retry-After", "header must be NAME:VALUE"),
        ("GET /x 'body=<p>", "cannot split"),
    ],
)
def test_a_bad_fault_exits_2_with_what_is_wrong(capsys, spec, message):
    with pytest.raises(SystemExit) as exit_info:
        tempolor_main(["simulate", "--fault", spec])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: argument --fault: ")
    assert message in error
    assert "Traceback" not in error


@pytest.mark.parametrize(
    "args",
    [
        ["--audio-seconds", "0"],
        ["--max-jobs", "0"],
        ["--page-size", "x"],
        ["--user-id", "a/b"],
        ["--download-url-expiry", "-1"],
        ["--clock-offset", "nan"],
        ["--download-lag", "-2"],
        ["--max-gen-count-at-once", "0"],
    ],
)
def test_bad_option_values_exit_2(capsys, args):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(args)
    assert exit_info.value.code == 2
    assert f"argument {args[0]}: must be" in capsys.readouterr().err


async def test_a_bad_fault_exits_2_before_listening():
    process = await anyio.run_process(
        [*TEMPOLOR, "--port", "0", "--fault", "GET /x colour=red"], check=False
    )
    assert process.returncode == 2
    assert b"unknown setting 'colour=red'" in process.stderr
    assert process.stdout == b""
