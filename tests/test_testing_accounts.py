"""The simulator's accounts endpoints: GET/POST accounts, GET/DELETE accounts/{user_id}."""

from __future__ import annotations

from datetime import datetime

import pytest
from conftest import DEFAULT_USER

pytestmark = pytest.mark.anyio

ACCOUNT_KEYS = {"user_id", "updated", "updatedUTC", "maxJobs", "requestParams"}


def _utc_ms(text: str) -> int:
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


async def test_list_shows_the_preconfigured_account(api):
    status, accounts = await api("GET", "/accounts")
    assert status == 200
    assert list(accounts) == [DEFAULT_USER]
    account = accounts[DEFAULT_USER]
    assert set(account) == ACCOUNT_KEYS
    assert account["user_id"] == DEFAULT_USER
    assert account["maxJobs"] == 10
    assert isinstance(account["updated"], int)
    assert _utc_ms(account["updatedUTC"]) == account["updated"]
    assert account["requestParams"]["user_id"] == DEFAULT_USER


@pytest.mark.fake(user_id="777", max_jobs=3)
async def test_constructor_options_shape_the_preconfigured_account(api):
    status, account = await api("GET", "/accounts/777")
    assert status == 200
    assert account["user_id"] == "777"
    assert account["maxJobs"] == 3
    _, accounts = await api("GET", "/accounts")
    assert accounts == {"777": account}


async def test_get_unknown_account_is_404(api):
    status, body = await api("GET", "/accounts/nobody")
    assert status == 404
    assert body["code"] == 404
    assert "nobody" in body["error"]


async def test_post_creates_an_account_with_default_max_jobs(api, fake):
    params = {"user_id": "555", "vip_type": 20, "service_ticket": "ticket"}
    status, account = await api("POST", "/accounts", json={"requestParams": params})
    assert status == 200
    assert set(account) == ACCOUNT_KEYS
    assert account["user_id"] == "555"
    assert account["maxJobs"] == 10
    assert account["requestParams"] == params
    assert _utc_ms(account["updatedUTC"]) == account["updated"]
    assert await api("GET", "/accounts/555") == (200, account)
    _, accounts = await api("GET", "/accounts")
    assert sorted(accounts) == sorted([DEFAULT_USER, "555"])
    assert fake.accounts["555"].max_jobs == 10


async def test_post_updates_an_existing_account(api):
    params = {"user_id": 4242, "vip_type": 20}  # a numeric user_id becomes the string key
    status, first = await api("POST", "/accounts", json={"requestParams": params, "maxJobs": 3})
    assert (status, first["user_id"], first["maxJobs"]) == (200, "4242", 3)
    status, second = await api("POST", "/accounts", json={"requestParams": params, "maxJobs": 7})
    assert (status, second["maxJobs"]) == (200, 7)
    _, accounts = await api("GET", "/accounts")
    assert len(accounts) == 2
    assert accounts["4242"]["maxJobs"] == 7


@pytest.mark.parametrize("max_jobs", [0, -1, "many", 2.5, True])
async def test_post_rejects_a_bad_max_jobs(api, fake, max_jobs):
    body = {"requestParams": {"user_id": "555"}, "maxJobs": max_jobs}
    status, answer = await api("POST", "/accounts", json=body)
    assert status == 400
    assert answer["code"] == 400
    assert "maxJobs" in answer["error"]
    assert "555" not in fake.accounts


async def test_post_without_a_user_id_in_request_params_is_400(api, fake):
    status, body = await api("POST", "/accounts", json={"requestParams": {"vip_type": 20}})
    assert status == 400
    assert "user_id" in body["error"]
    assert list(fake.accounts) == [DEFAULT_USER]


async def test_delete_removes_the_account(api):
    await api("POST", "/accounts", json={"requestParams": {"user_id": "555"}})
    status, body = await api("DELETE", "/accounts/555")
    assert (status, body) == (204, b"")
    assert (await api("GET", "/accounts/555"))[0] == 404
    assert (await api("DELETE", "/accounts/555"))[0] == 404
    _, accounts = await api("GET", "/accounts")
    assert list(accounts) == [DEFAULT_USER]


async def test_with_no_accounts_left_the_list_is_404(api):
    assert (await api("DELETE", f"/accounts/{DEFAULT_USER}"))[0] == 204
    status, body = await api("GET", "/accounts")
    assert status == 404
    assert body["code"] == 404


async def test_generation_uses_the_named_account(api):
    await api("POST", "/accounts", json={"requestParams": {"user_id": "555"}})
    jobs = await api.generate(user_id="555")
    assert all(job.startswith("user:12345-tempolor:555-job:") for job in jobs)
    assert (await api.job(jobs[0]))["userId"] == "555"
    _, mine = await api("GET", "/music/", params={"user_id": "555"})
    assert [record["job_id"] for record in mine["records"]] == jobs[::-1]
    _, other = await api("GET", "/music/", params={"user_id": DEFAULT_USER})
    assert other["records"] == []


async def test_with_several_accounts_lists_need_a_user_id(api):
    await api("POST", "/accounts", json={"requestParams": {"user_id": "555"}})
    for path in ("/music/", "/music/artist-voices/", "/music/cloned-voices/", "/music/midi/"):
        status, body = await api("GET", path)
        assert status == 400, path
        assert "user_id" in body["error"]
        assert (await api("GET", path, params={"user_id": "555"}))[0] == 200


async def test_generation_for_an_unknown_account_is_404(api, fake):
    status, body = await api("POST", "/music/song", json={"prompt": "x", "user_id": "ghost"})
    assert status == 404
    assert "ghost" in body["error"]
    assert fake.jobs == {}
