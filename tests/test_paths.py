"""Paths, both ways (SPEC sections 8 and 9), for what tests/test_validation.py leaves out.

Out: an id that could change the URL's path never reaches the network, whichever method
takes it, including ``user_id=`` on the methods test_validation.py does not try, the client's
default account, and values that are not strings; ids that are allowed arrive as exactly one
path segment. In: whatever download URL the service hands out, and whatever URL is given to
``download_file``, the file lands directly inside the folder asked for, and no temporary file
is left behind.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
import pytest

from tempolor_async import (
    APIStatusError,
    ConfigurationError,
    NotFoundError,
    TempolorClient,
    ValidationError,
)
from tempolor_async.testing import sample_audio, sample_midi

pytestmark = pytest.mark.anyio

JOB_ID = "user:12345-tempolor:100349856-job:abc"
AUDIO = sample_audio(0.05)
DATA = b"served media bytes \x00\xff"

# ------------------------------------------------------------------------------- ids out

ID_CALLS: dict[str, tuple[str, Callable[..., Any]]] = {
    "music.get": ("/music/{}", lambda c, v, d: c.music.get(v)),
    "music.delete": ("/music/{}", lambda c, v, d: c.music.delete(v)),
    "music.download_url": ("/music/download/{}", lambda c, v, d: c.music.download_url(v)),
    "music.download": ("/music/download/{}", lambda c, v, d: c.music.download(v, d)),
    "await_job": ("/music/{}", lambda c, v, d: c.await_job(v, timeout=2, poll_interval=0.05)),
    "scheduler.cancel": ("/scheduler/{}", lambda c, v, d: c.scheduler.cancel(v)),
    "voices.delete_cloned": ("/music/cloned-voices/{}", lambda c, v, d: c.voices.delete_cloned(v)),
    "midi.delete": ("/music/midi/{}", lambda c, v, d: c.midi.delete(v)),
    "accounts.get": ("/accounts/{}", lambda c, v, d: c.accounts.get(v)),
    "accounts.delete": ("/accounts/{}", lambda c, v, d: c.accounts.delete(v)),
}
WAIT_CALLS: dict[str, Callable[..., Any]] = {
    "as_completed": lambda c, v, d: c.as_completed([JOB_ID, v], timeout=2),
    "await_jobs": lambda c, v, d: c.await_jobs([JOB_ID, v], timeout=2),
}
ALL_ID_CALLS = {name: call for name, (_, call) in ID_CALLS.items()} | WAIT_CALLS
USER_ID_CALLS: dict[str, Callable[..., Any]] = {
    "create_song": lambda c, **user: c.music.create_song("a calm piano piece", **user),
    "create_instrumental": lambda c, **user: c.music.create_instrumental("a waltz", **user),
    "music.list": lambda c, **user: c.music.list(**user).first_page(),
    "split_stems": lambda c, **user: c.music.split_stems(AUDIO, content_type="audio/wav", **user),
    "voices.list_artist": lambda c, **user: c.voices.list_artist(**user).first_page(),
    "voices.list_cloned": lambda c, **user: c.voices.list_cloned(**user).first_page(),
    "voices.clone": lambda c, **user: c.voices.clone(
        AUDIO, name="v", content_type="audio/wav", **user
    ),
    "midi.list": lambda c, **user: c.midi.list(**user).first_page(),
    "midi.upload": lambda c, **user: c.midi.upload(sample_midi(), name="tune", **user),
}
NOT_IN_TEST_VALIDATION = ["split_stems", "voices.list_artist", "voices.clone", "midi.list"]
UNSAFE_IDS = {
    "encoded-dot-dot": "%2e%2e",
    "encoded-traversal": "..%2f..%2faccounts",
    "inner-traversal": "abc/../../accounts",
    "slash": "/",
    "question-mark": "?",
    "hash": "#",
    "percent": "%",
    "ideographic-space": "abc\u3000def",
    "paragraph-separator": "abc\u2029def",
    "file-separator": "abc\x1cdef",
    "bell": "abc\x07",
    "trailing-crlf": f"{JOB_ID}\r\n",
}
ID_PARAMETERS = {"job_id", "job_ids", "user_id", "cloned_voice_item_id", "midi_item_id"}
NOT_TEXT = {"int": 12345, "bytes": b"abc", "list": ["abc"], "path": Path("abc")}


async def attempt(call: Callable[[], Any]) -> Any:
    with anyio.fail_after(5):
        result = call()
        return await result if inspect.isawaitable(result) else result


@pytest.mark.parametrize(
    "value", [*UNSAFE_IDS.values(), *NOT_TEXT.values()], ids=[*UNSAFE_IDS, *NOT_TEXT]
)
@pytest.mark.parametrize("name", ALL_ID_CALLS)
async def test_unsafe_ids_are_refused_before_sending(client, fake, tmp_path, name, value):
    with pytest.raises(ValidationError) as caught:
        await attempt(lambda: ALL_ID_CALLS[name](client, value, tmp_path))
    assert caught.value.parameter in ID_PARAMETERS
    assert fake.requests == []


@pytest.mark.parametrize("value", [*UNSAFE_IDS.values(), ".."], ids=[*UNSAFE_IDS, "dot-dot"])
@pytest.mark.parametrize("name", NOT_IN_TEST_VALIDATION)
async def test_unsafe_user_ids_are_refused_before_sending(client, fake, name, value):
    with pytest.raises(ValidationError) as caught:
        await attempt(lambda: USER_ID_CALLS[name](client, user_id=value))
    assert caught.value.parameter == "user_id"
    assert fake.requests == []


@pytest.mark.parametrize("value", ["a/b", "..", "%2e%2e", "abc def", "abc\n"])
async def test_an_unsafe_default_account_is_refused(fake, value):
    with pytest.raises(ConfigurationError, match="user_id"):
        TempolorClient(fake.token, base_url=fake.base_url, user_id=value)
    async with fake.client() as client:
        client.user_id = value  # changed after construction: still checked on every call
        for name, call in USER_ID_CALLS.items():
            with pytest.raises(ValidationError) as caught:
                await attempt(lambda call=call: call(client))
            assert caught.value.parameter == "user_id", name
    assert fake.requests == []


ALLOWED_ODD_IDS = {
    "backslashes": "user:1-tempolor:2-job:..\\..\\x",
    "dots": "user:1-tempolor:2-job:....",
    "fullwidth-solidus": "abc\uff0f..\uff0fdef",
    "division-slash": "abc\u2215..\u2215def",
    "semicolon": "..;x=1",
    "at-sign": "user@host:1",
}


@pytest.mark.parametrize("value", ALLOWED_ODD_IDS.values(), ids=ALLOWED_ODD_IDS.keys())
async def test_allowed_odd_ids_arrive_as_one_path_segment(client, fake, tmp_path, value):
    for route, call in ID_CALLS.values():
        fake.requests.clear()
        with contextlib.suppress(APIStatusError):  # the simulator knows no such record
            await attempt(lambda call=call: call(client, value, tmp_path))
        # Leave out the capacity gate's reads and the shared wait loop's scheduler ticks.
        shared = ("/accounts", "/scheduler/available", "/scheduler/")
        sent = {request.path for request in fake.requests if request.path not in shared}
        assert sent == {route.format(value)}
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------------- downloads in

SEGMENTS = {
    "dot-dot": "..",
    "dot": ".",
    "encoded-dot-dot": "%2e%2e",
    "encoded-traversal": "..%2f..%2fescape.mp3",
    "encoded-slash": "%2F",
    "encoded-absolute": "%2Fetc%2Fpasswd",
    "encoded-deep-absolute": "..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "backslashes": "..\\..\\x",
    "encoded-backslashes": "..%5C..%5Cescape.mp3",
    "long-ascii": "a" * 1000 + ".mp3",
    "long-multibyte": "%E9%9F%B3" * 300,
    "nul": "a%00b.mp3",
    "newline": "a%0Ab.mp3",
    "empty": "",
    "query-traversal": "x.mp3?name=../../escape.mp3",
    "fragment-traversal": "x.mp3#/../../escape.mp3",
    "hidden": ".bashrc",
    "rtl-override": "%E2%80%AEpm3.exe",
}


def serve(fake, segment: str) -> tuple[str, bool]:
    """The media URL ending in ``segment``, with DATA served there where the simulator can
    (its router refuses a path with a newline); returns the URL and whether it is served."""
    key = unquote(segment.partition("#")[0].partition("?")[0])
    if "\n" in key:
        served = False
    elif key.startswith("/"):
        fake.inject("GET", f"/cdn/files/{key}", body=DATA)
        served = True
    else:
        fake.add_media(key, DATA)
        served = True
    return f"{fake.media_url}/files/{segment}", served


async def fetch(client, fake, how: str, url: str, dest: Path) -> Path:
    if how == "download_file":
        return await client.download_file(url, dest)
    fake.inject("GET", "/music/download/*", body={"url": url, "remainSeconds": 60})
    return await client.music.download(JOB_ID, dest)


def tree(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def check_written(before: set[Path], after: set[Path], dest: Path, path: Path | None) -> None:
    """Only ``path`` (if any) was created, directly inside ``dest``; nothing temporary left."""
    assert after - before == ({path} if path is not None else set())
    assert after >= before
    assert [entry.name for entry in dest.iterdir() if entry != path] == []
    if path is not None:
        assert path.parent == dest
        assert path.name not in ("", ".", "..")
        assert not {"/", "\\", "\x00", "\n"} & set(path.name)
        assert path.read_bytes() == DATA


@pytest.mark.parametrize("segment", SEGMENTS.values(), ids=SEGMENTS.keys())
@pytest.mark.parametrize("how", ["download_file", "music.download"])
async def test_downloads_stay_in_their_folder(client, fake, tmp_path, how, segment):
    dest = tmp_path / "dest"
    dest.mkdir()
    url, served = serve(fake, segment)
    before = tree(tmp_path)
    path = None
    if served:
        path = await fetch(client, fake, how, url, dest)
        if how == "music.download":
            assert path == dest / "abc.mp3"
    else:
        with pytest.raises(NotFoundError):
            await fetch(client, fake, how, url, dest)
    check_written(before, tree(tmp_path), dest, path)


ITEM_IDS = {
    "dot-dot": "..",
    "dots": "....",
    "backslashes": "..\\..\\x",
    "hidden": ".profile",
    "long-ascii": "a" * 300,
    "long-multibyte": "\u97f3" * 300,
    "rtl-override": "\u202epm3.exe",
    "colon": "a:b",
}


@pytest.mark.parametrize("item_id", ITEM_IDS.values(), ids=ITEM_IDS.keys())
async def test_music_download_names_from_odd_item_ids_stay_in_the_folder(
    client, fake, tmp_path, item_id
):
    dest = tmp_path / "dest"
    dest.mkdir()
    fake.inject("GET", "/music/download/*", body={"url": fake.add_media("t.mp3", DATA)})
    before = tree(tmp_path)
    path = await client.music.download(f"user:1-tempolor:2-job:{item_id}", dest)
    assert path.suffix == ".mp3"
    check_written(before, tree(tmp_path), dest, path)


@pytest.mark.parametrize("how", ["download_file", "music.download"])
async def test_a_symlink_in_the_folder_is_replaced_not_followed(client, fake, tmp_path, how):
    dest = tmp_path / "dest"
    dest.mkdir()
    outside = tmp_path / "outside.mp3"
    outside.write_bytes(b"not to be touched")
    (dest / "abc.mp3").symlink_to(outside)
    url = fake.add_media("abc.mp3", DATA)
    path = await fetch(client, fake, how, url, dest)
    assert path == dest / "abc.mp3"
    assert not path.is_symlink()
    assert path.read_bytes() == DATA
    assert outside.read_bytes() == b"not to be touched"
    assert sorted(os.listdir(dest)) == ["abc.mp3"]
