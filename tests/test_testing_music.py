"""Generation and the job lifecycle: POST music/song|instrumental, GET/DELETE music/{job_id},
and GET music/ with its type filter and cursor pagination."""

from __future__ import annotations

import pytest
from conftest import DEFAULT_USER

pytestmark = pytest.mark.anyio

SUBMISSION_KEYS = {
    "result",
    "itemIds",
    "jobs",
    "remainSeconds",
    "maxGenCountAtOnce",
    "unlimited",
    "remainNum",
    "totalNum",
}
# Every key of the documented GET music/{job_id} example.
RECORD_KEYS = {
    "bizType", "childType", "matChildType", "sourceType", "itemId", "job_id", "genItemId",
    "userId", "titleEn", "cover", "mp3OssId", "wavOssId", "ossWatermarkMp3",
    "officialPlaylistSong", "status", "status_name", "status_final", "progress",
    "downloadTotal", "likeTotal", "collectTotal", "musicMaterial", "readStatus",
    "downloadStatus", "createTime", "updateTime", "materialQualityScore",
    "ltmMaterialExtendDto", "editType", "operatorType", "rootItemId", "parentItemId",
    "canExtend", "canEditLyrics", "canFixVocals", "canReplaced",
}  # fmt: skip
MATERIAL_KEYS = {
    "style", "chord", "mood", "inst", "instInfo", "scene", "otherInfo", "otherInfoCn", "key",
    "bpm", "dur", "seed", "waveformUrl",
}  # fmt: skip
EXTEND_KEYS = {
    "lyricsPrompt", "description", "ltmVocalModel", "ltmMidiModel", "genItemId", "prompt",
    "genMode", "model", "modelShowName",
}  # fmt: skip


@pytest.mark.parametrize("kind", ["song", "instrumental"])
async def test_submission_creates_two_generating_jobs(api, fake, kind):
    status, body = await api("POST", f"/music/{kind}", json={"prompt": "rainy day jazz"})
    assert status == 200
    assert set(body) == SUBMISSION_KEYS
    assert body["result"] is True
    assert len(body["itemIds"]) == len(body["jobs"]) == 2
    assert body["jobs"] == [f"user:12345-tempolor:{DEFAULT_USER}-job:{i}" for i in body["itemIds"]]
    assert body["maxGenCountAtOnce"] == 10
    assert (body["unlimited"], body["totalNum"]) == (False, 3000)
    assert isinstance(body["remainSeconds"], int)
    for job_id, item_id in zip(body["jobs"], body["itemIds"], strict=True):
        record = await api.job(job_id)
        assert (record["job_id"], record["itemId"], record["userId"]) == (
            job_id,
            item_id,
            DEFAULT_USER,
        )
        assert (record["status"], record["status_name"], record["status_final"]) == (
            0,
            "GENERATING",
            False,
        )
        assert 0 <= record["progress"] < 100
    assert sorted(fake.jobs) == sorted(body["jobs"])


async def test_each_submission_uses_two_of_the_remaining_generations(api):
    _, first = await api("POST", "/music/song", json={"prompt": "one"})
    _, second = await api("POST", "/music/instrumental", json={"prompt": "two"})
    assert second["remainNum"] == first["remainNum"] - 2


@pytest.mark.fake(job_duration=60)
async def test_records_have_the_documented_fields_before_and_after_completion(api, fake):
    job_id = (await api.generate(prompt="epic orchestral battle theme"))[0]
    running = await api.job(job_id)
    assert set(running) >= RECORD_KEYS
    assert set(running["musicMaterial"]) >= MATERIAL_KEYS
    assert set(running["ltmMaterialExtendDto"]) >= EXTEND_KEYS
    assert (running["titleEn"], running["mp3OssId"], running["wavOssId"]) == ("", "", "")

    fake.complete(job_id)
    done = await api.job(job_id)
    item_id = done["itemId"]
    assert (done["status"], done["status_name"], done["status_final"]) == (30, "COMPLETED", True)
    assert done["progress"] == 100
    assert done["titleEn"].startswith("Epic Orchestral Battle Theme (")
    assert done["mp3OssId"] == f"ai_material/ai_material/mp3/{item_id}.mp3"
    assert done["wavOssId"] == f"ai_material/ai_material/wav/{item_id}.wav"
    assert done["updateTime"] >= done["createTime"] == running["createTime"]


async def test_song_options_are_reflected_in_the_record(api):
    lyrics = "first line\nsecond line"
    default, v3, custom = [
        await api.job((await api.generate(prompt="pop anthem", lyrics=lyrics, **extra))[0])
        for extra in ({}, {"model_song": "v3"}, {"model_song": "v4.5+"})
    ]
    extend = default["ltmMaterialExtendDto"]
    assert extend["lyricsPrompt"] == lyrics
    assert extend["prompt"] == extend["description"] == "pop anthem"
    assert default["musicMaterial"]["otherInfo"] == "pop anthem"
    assert default["childType"] == "lyric_to_material"
    assert extend["modelShowName"] == "v3.5"
    assert v3["ltmMaterialExtendDto"]["modelShowName"] == "v3"
    assert v3["ltmMaterialExtendDto"]["model"] != extend["model"]
    # Model names are open: an unknown one is kept as given.
    assert custom["ltmMaterialExtendDto"]["modelShowName"] == "v4.5+"


async def test_instrumental_options_are_reflected_in_the_record(api):
    options = {"tonality": "C#:minor", "bpm": 120, "chords": "C F G Am", "model_instrumental": "i3"}
    record = await api.job((await api.generate("instrumental", **options))[0])
    material = record["musicMaterial"]
    assert (material["key"], material["bpm"], material["chord"]) == ("C#:minor", 120, "C F G Am")
    assert record["childType"] == "text_to_material"
    assert record["ltmMaterialExtendDto"]["modelShowName"] == "i3"
    plain = await api.job((await api.generate("instrumental"))[0])
    assert plain["ltmMaterialExtendDto"]["modelShowName"] == "i3.5 beta"


@pytest.mark.fake(job_duration=0.5)
async def test_a_job_completes_on_its_own_with_rising_progress(api):
    records = await api.records_until_final((await api.generate())[0])
    progress = [record["progress"] for record in records]
    assert progress == sorted(progress)
    assert any(0 < value < 100 for value in progress), progress
    assert all(record["status"] == 0 for record in records[:-1])
    assert (records[-1]["status"], records[-1]["progress"]) == (30, 100)
    updates = [record["updateTime"] for record in records]
    assert updates == sorted(updates)


@pytest.mark.parametrize(
    "prompt",
    [
        "doomed [fail] ballad",
        pytest.param("this one goes BOOM", marks=pytest.mark.fake(fail_marker="BOOM")),
    ],
)
async def test_a_prompt_with_the_fail_marker_ends_failed(api, prompt):
    for job_id in await api.generate(prompt=prompt):
        last = (await api.records_until_final(job_id))[-1]
        assert (last["status"], last["status_name"], last["status_final"]) == (10, "FAILED", True)
        assert last["progress"] < 100


@pytest.mark.fake(job_duration=60)
async def test_complete_and_fail_finish_jobs_at_once(api, fake):
    ok, bad = await api.generate()
    fake.complete(ok)
    fake.fail(bad)
    completed, failed = await api.job(ok), await api.job(bad)
    assert (completed["status_name"], completed["progress"], completed["status_final"]) == (
        "COMPLETED",
        100,
        True,
    )
    assert (failed["status_name"], failed["progress"] < 100, failed["status_final"]) == (
        "FAILED",
        True,
        True,
    )


async def test_delete_removes_only_that_job(api):
    kept, gone = await api.generate()
    assert await api("DELETE", f"/music/{gone}") == (200, {"result": True})
    missing = {"error": f"No record found for {gone}", "code": 404}
    assert await api("GET", f"/music/{gone}") == (404, missing)
    assert await api("DELETE", f"/music/{gone}") == (404, missing)
    assert (await api.job(kept))["job_id"] == kept
    _, listed = await api("GET", "/music/")
    assert [record["job_id"] for record in listed["records"]] == [kept]


async def test_unknown_job_is_404_with_its_id(api):
    job_id = f"user:12345-tempolor:{DEFAULT_USER}-job:abcdef123456789"
    expected = (404, {"error": f"No record found for {job_id}", "code": 404})
    assert await api("GET", f"/music/{job_id}") == expected
    assert await api("DELETE", f"/music/{job_id}") == expected


async def test_list_defaults_to_songs_and_filters_by_type(api):
    songs = await api.generate("song")
    instrumentals = await api.generate("instrumental")
    for params, expected in [
        (None, songs),
        ({"type": "song"}, songs),
        ({"type": "instrumental"}, instrumentals),
    ]:
        status, page = await api("GET", "/music/", params=params)
        assert status == 200
        assert (page["hasNext"], page["cursor"]) == (False, "")
        assert [record["job_id"] for record in page["records"]] == expected[::-1]


async def test_list_is_newest_first(api):
    older = await api.generate(prompt="older")
    newer = await api.generate(prompt="newer")
    _, page = await api("GET", "/music")
    assert [record["job_id"] for record in page["records"]] == newer[::-1] + older[::-1]


@pytest.mark.fake(page_size=3)
async def test_cursor_pagination_walks_every_record_once(api, fake):
    expected = []
    for index in range(4):
        expected = (await api.generate(prompt=f"track {index}"))[::-1] + expected
    pages, cursor = [], None
    while True:
        status, page = await api("GET", "/music/", params={"cursor": cursor} if cursor else None)
        assert status == 200
        pages.append(page)
        if not page["hasNext"]:
            break
        assert page["cursor"]
        cursor = page["cursor"]
    assert [len(page["records"]) for page in pages] == [3, 3, 2]
    assert [page["hasNext"] for page in pages] == [True, True, False]
    assert pages[-1]["cursor"] == ""
    assert [record["job_id"] for page in pages for record in page["records"]] == expected

    # A saved cursor resumes at the same place, even after the record it names is deleted.
    saved = pages[0]["cursor"]
    await api("DELETE", f"/music/{expected[2]}")
    _, again = await api("GET", "/music/", params={"cursor": saved})
    assert [record["job_id"] for record in again["records"]] == expected[3:6]


async def test_a_malformed_cursor_is_400(api):
    status, body = await api("GET", "/music/", params={"cursor": "not-a-cursor!"})
    assert status == 400
    assert body["code"] == 400
    assert "cursor" in body["error"]
