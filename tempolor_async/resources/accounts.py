"""TemPolor accounts behind the token: https://useapi.net/docs/api-tempolor-v1/get-tempolor-accounts"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import _protocol, _validation
from .._errors import NotFoundError
from .._models import Account
from ._base import Resource


class Accounts(Resource):
    """The TemPolor accounts configured behind your useapi.net token (``client.accounts``)."""

    async def list(self) -> dict[str, Account]:
        """Every configured account by user_id; ``{}`` when none is (the service says 404).
        https://useapi.net/docs/api-tempolor-v1/get-tempolor-accounts"""
        try:
            accounts: dict[str, Account] = await self._call(dict[str, Account], "GET", "/accounts")
        except NotFoundError:
            return {}
        return accounts

    async def get(self, user_id: str) -> Account:
        """One account's configuration (its ``requestParams`` stay out of its repr).
        https://useapi.net/docs/api-tempolor-v1/get-tempolor-accounts-user_id"""
        user_id = _validation.path_id("user_id", user_id)
        account: Account = await self._call(Account, "GET", f"/accounts/{user_id}")
        return account

    async def create(
        self, request_params: Mapping[str, Any], *, max_jobs: int | None = None
    ) -> Account:
        """Create or update the account the ``requestParams`` belong to (see the setup guide:
        https://useapi.net/docs/start-here/setup-tempolor). Safe to retry: it is an upsert.
        ``max_jobs`` is how many jobs the account may run at once.
        https://useapi.net/docs/api-tempolor-v1/post-tempolor-accounts"""
        body = _protocol.body(
            requestParams=_validation.request_params(request_params),
            maxJobs=_validation.positive_int("max_jobs", max_jobs),
        )
        account: Account = await self._call(Account, "POST", "/accounts", json=body)
        return account

    async def delete(self, user_id: str) -> None:
        """Remove an account from useapi.net (the TemPolor account itself stays).
        https://useapi.net/docs/api-tempolor-v1/del-tempolor-accounts-user_id"""
        user_id = _validation.path_id("user_id", user_id)
        await self._send(_protocol.ApiRequest("DELETE", f"/accounts/{user_id}"))
