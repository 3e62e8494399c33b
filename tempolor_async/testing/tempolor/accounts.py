"""Accounts: https://useapi.net/docs/api-tempolor-v1/post-tempolor-accounts"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .._server import Call, Reply, json_object, json_response
from .base import TempolorBase, positive_int
from .state import FakeAccount


class AccountRoutes(TempolorBase):
    """GET, POST and DELETE accounts."""

    def add_account(
        self,
        user_id: str,
        *,
        max_jobs: int = 10,
        request_params: dict[str, Any] | None = None,
        subscribed: bool = True,
    ) -> FakeAccount:
        """Configure an account directly, as POST accounts would."""
        params = request_params if request_params is not None else {"user_id": user_id}
        account = FakeAccount(
            user_id, max_jobs, params, subscribed=subscribed, updated_ms=self.wall_ms()
        )
        self.accounts[user_id] = account
        return account

    async def _list_accounts(self, call: Call) -> web.Response:
        if not self.accounts:
            raise Reply(404, "No accounts configured")
        return json_response(200, {uid: account.render() for uid, account in self.accounts.items()})

    async def _get_account(self, call: Call) -> web.Response:
        account = self.accounts.get(call.match["user_id"])
        if account is None:
            raise Reply(404, f"Configuration not found for user_id {call.match['user_id']}")
        return json_response(200, account.render())

    async def _create_account(self, call: Call) -> web.Response:
        payload = json_object(call.body)
        params = payload.get("requestParams")
        if params is None or params == {} or params == "":
            raise Reply(400, "Parameter requestParams is required")
        if not isinstance(params, dict):
            raise Reply(400, "Parameter requestParams must be an object")
        user_id = params.get("user_id")
        if not isinstance(user_id, (str, int)) or isinstance(user_id, bool) or not str(user_id):
            raise Reply(400, "Parameter requestParams.user_id is required")
        max_jobs = positive_int(payload.get("maxJobs", 10), "maxJobs")
        if params.get("vip_type") == 0:
            raise Reply(402, "Subscription required")
        account = self.add_account(str(user_id), max_jobs=max_jobs, request_params=params)
        return json_response(200, account.render())

    async def _delete_account(self, call: Call) -> web.Response:
        if self.accounts.pop(call.match["user_id"], None) is None:
            raise Reply(404, f"Configuration not found for user_id {call.match['user_id']}")
        return web.Response(status=204)
