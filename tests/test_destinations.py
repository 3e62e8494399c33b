"""SPEC 8: where downloads go. A destination ending in a path separator is a folder, created
with its parents if missing; nothing ever writes two results to one path; a destination
that cannot hold the file is refused before anything is sent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tempolor_async import TempolorClient, ValidationError
from tempolor_async.testing import FakeTempolor

pytestmark = pytest.mark.anyio


async def finished_jobs(fake: FakeTempolor, client: TempolorClient) -> list[str]:
    submission = await client.music.create_song("a calm piano piece")
    jobs = list(submission.jobs or [])
    for job_id in jobs:
        fake.complete(job_id)
    return jobs


def item(job_id: str) -> str:
    return job_id.rpartition("-job:")[2]


def sent_downloads(fake: FakeTempolor) -> list[str]:
    return [r.path for r in fake.requests if r.path.startswith(("/music/download/", "/cdn/"))]


async def test_a_trailing_separator_makes_a_new_folder_for_each_job(
    fake: FakeTempolor, client: TempolorClient, tmp_path: Path
) -> None:
    jobs = await finished_jobs(fake, client)
    folder = tmp_path / "new" / "deeper"
    written = [await client.music.download(job_id, f"{folder}{os.sep}") for job_id in jobs]
    assert written == [folder / f"{item(job_id)}.mp3" for job_id in jobs]
    for job_id, path in zip(jobs, written, strict=True):
        assert path.read_bytes() == fake.media_bytes(job_id, "mp3")
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in written)


async def test_download_file_into_a_new_folder_uses_the_url_name(
    fake: FakeTempolor, client: TempolorClient, tmp_path: Path
) -> None:
    jobs = await finished_jobs(fake, client)
    link = await client.music.download_url(jobs[0], file_format="wav")
    assert link.url is not None
    path = await client.download_file(link.url, f"{tmp_path / 'out'}/")
    assert path.parent == tmp_path / "out"
    assert path.name == link.url.rpartition("/")[2].partition("?")[0]
    assert path.read_bytes() == fake.media_bytes(jobs[0], "wav")


@pytest.mark.parametrize(
    ("make", "dest", "fragment"),
    [
        ("file", "taken/", "is a file, not a folder"),
        ("file", "taken/sub/", "cannot create folder"),
        ("none", "missing/name.mp3", "does not exist"),
        ("folder", "", "is a folder, not a file"),
    ],
)
async def test_an_impossible_destination_is_refused_before_anything_is_sent(
    fake: FakeTempolor,
    client: TempolorClient,
    tmp_path: Path,
    make: str,
    dest: str,
    fragment: str,
) -> None:
    jobs = await finished_jobs(fake, client)
    if make == "file":
        (tmp_path / "taken").write_bytes(b"precious")
    elif make == "folder":  # where the job's own file would go, a folder is in the way
        (tmp_path / f"{item(jobs[0])}.mp3").mkdir()
    target = f"{tmp_path}{os.sep}{dest}"  # a str: pathlib drops a trailing separator
    with pytest.raises(ValidationError, match=fragment) as caught:
        await client.music.download(jobs[0], target)
    assert caught.value.parameter == "dest"
    with pytest.raises(ValidationError, match=fragment):
        await client.download_file(f"{fake.base_url}/cdn/x/{item(jobs[0])}.mp3", target)
    assert sent_downloads(fake) == []
    if make == "file":
        assert (tmp_path / "taken").read_bytes() == b"precious"


async def test_a_file_path_without_separator_is_still_a_file(
    fake: FakeTempolor, client: TempolorClient, tmp_path: Path
) -> None:
    jobs = await finished_jobs(fake, client)
    path = await client.music.download(jobs[0], str(tmp_path / "song"))
    assert path == tmp_path / "song"
    assert path.is_file()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
async def test_a_folder_that_cannot_be_written_is_refused(
    fake: FakeTempolor, client: TempolorClient, tmp_path: Path
) -> None:
    jobs = await finished_jobs(fake, client)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ValidationError, match="cannot write"):
            await client.music.download(jobs[0], f"{locked}/")
    finally:
        locked.chmod(0o700)
    assert sent_downloads(fake) == []
