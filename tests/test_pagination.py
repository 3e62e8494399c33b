"""AsyncPager: lazy, page by page, following hasNext/cursor, never looping on a repeated cursor."""

from __future__ import annotations

import pytest

from tempolor_async import ArtistVoice, AsyncPager, MusicJob, Page, PaginationError

pytestmark = [pytest.mark.anyio, pytest.mark.fake(page_size=3, job_duration=60)]


@pytest.fixture
async def songs(client):
    """Four submissions, eight songs; returned newest first, as the service lists them."""
    job_ids = []
    for index in range(4):
        job_ids += (await client.music.create_song(f"song number {index}")).jobs
    return job_ids[::-1]


def list_requests(fake):
    """The GET music/ requests made so far, as the cursor each one sent (None: none)."""
    return [request.query.get("cursor") for request in fake.requests_to("GET", "/music/")]


async def collect(pager, seen):
    async for job in pager:
        seen.append(job.job_id)


def record(n):
    return {"job_id": f"job-{n}", "status": 30, "status_final": True}


def inject_pages(fake, *pages):
    """Answer the next GET music/ requests with these (records, hasNext, cursor) pages."""
    for records, has_next, cursor in pages:
        body = {"records": [record(n) for n in records], "hasNext": has_next, "cursor": cursor}
        fake.inject("GET", "/music/", body=body, times=1)


async def test_list_makes_no_request(client, fake, songs):
    before = len(fake.requests)
    pager = client.music.list()
    assert isinstance(pager, AsyncPager)
    assert len(fake.requests) == before


async def test_async_for_walks_every_page_lazily(client, fake, songs):
    seen = []
    async for job in client.music.list():
        assert isinstance(job, MusicJob)
        seen.append(job.job_id)
        # A page is fetched only when the previous one is used up.
        assert len(list_requests(fake)) == len(seen) // 3 + (len(seen) % 3 > 0)
    assert seen == songs
    cursors = list_requests(fake)
    assert len(cursors) == 3
    assert cursors[0] is None
    assert None not in cursors[1:]
    assert cursors[1] != cursors[2]


async def test_break_after_first_item_makes_one_request(client, fake, songs):
    async for job in client.music.list():
        assert job.job_id == songs[0]
        break
    assert len(list_requests(fake)) == 1


async def test_pages_and_first_page(client, fake, songs):
    pages = [page async for page in client.music.list().pages()]
    assert all(isinstance(page, Page) for page in pages)
    assert [len(page.items) for page in pages] == [3, 3, 2]
    assert [page.has_next for page in pages] == [True, True, False]
    assert pages[-1].cursor is None
    assert list_requests(fake)[1:] == [pages[0].cursor, pages[1].cursor]
    assert [job.job_id for page in pages for job in page.items] == songs

    first = await client.music.list().first_page()
    assert [job.job_id for job in first.items] == songs[:3]
    assert (first.has_next, first.cursor) == (True, pages[0].cursor)


@pytest.mark.parametrize(("limit", "requests"), [(None, 3), (5, 2), (3, 1), (20, 3), (0, 0)])
async def test_to_list(client, fake, songs, limit, requests):
    items = await client.music.list().to_list(limit=limit)
    expected = songs if limit is None else songs[:limit]
    assert [job.job_id for job in items] == expected
    assert len(list_requests(fake)) == requests


async def test_resume_from_a_saved_cursor(client, fake, songs):
    saved = (await client.music.list().first_page()).cursor
    rest = await client.music.list(cursor=saved).to_list()
    assert [job.job_id for job in rest] == songs[3:]
    assert list_requests(fake) == [None, saved, list_requests(fake)[2]]
    assert list_requests(fake)[2] not in (None, saved)


async def test_an_empty_page_with_has_next_does_not_stop(client, fake):
    inject_pages(fake, ([], True, "c1"), ([], True, "c2"), ([1, 2], False, ""))
    items = await client.music.list().to_list()
    assert [job.job_id for job in items] == ["job-1", "job-2"]
    assert list_requests(fake) == [None, "c1", "c2"]


async def test_has_next_false_stops_even_with_a_cursor(client, fake):
    inject_pages(fake, ([1], False, "c1"))
    pages = [page async for page in client.music.list().pages()]
    assert [(len(page.items), page.has_next, page.cursor) for page in pages] == [(1, False, None)]
    assert list_requests(fake) == [None]


@pytest.mark.parametrize(
    ("start", "pages", "yielded"),
    [
        (None, [([1], True, "c1"), ([2], True, "c1")], ["job-1", "job-2"]),
        (
            None,
            [([1], True, "c1"), ([2], True, "c2"), ([3], True, "c1")],
            ["job-1", "job-2", "job-3"],
        ),
        ("c0", [([1], True, "c0")], ["job-1"]),
    ],
)
async def test_a_repeated_cursor_raises(client, fake, start, pages, yielded):
    inject_pages(fake, *pages)
    seen = []
    with pytest.raises(PaginationError, match=r"cursor 'c[01]'"):
        await collect(client.music.list(cursor=start), seen)
    assert seen == yielded
    assert len(list_requests(fake)) == len(pages)


@pytest.mark.fake(page_size=20)
async def test_artist_voices_across_two_pages(client, fake):
    pages = [page async for page in client.voices.list_artist().pages()]
    assert [len(page.items) for page in pages] == [20, 4]
    voices = [voice for page in pages for voice in page.items]
    assert all(isinstance(voice, ArtistVoice) for voice in voices)
    assert [voice.item_id for voice in voices] == [f"voice_{10001 + n}" for n in range(24)]
    requests = fake.requests_to("GET", "/music/artist-voices/")
    assert [request.query.get("cursor") for request in requests] == [None, pages[0].cursor]
    assert len(await client.voices.list_artist().to_list()) == 24
