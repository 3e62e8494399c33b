"""``tempolor accounts``: the TemPolor accounts behind the token; credentials never shown."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .._models import Account
from ._common import Command, listing, options_named, tempolor_client, text_file
from ._output import Output, positive_int


def add_command(command: Command) -> None:
    """Register ``tempolor accounts`` with the command line's ``command`` helper."""
    accounts = command(
        "accounts", cmd_accounts, "TemPolor accounts behind the token", options="service"
    )
    actions = accounts.add_subparsers(dest="action", required=True, metavar="ACTION")
    command("list", cmd_accounts, "list accounts", actions, "service")
    getting = command("get", cmd_accounts, "show an account", actions, "service")
    getting.add_argument("id", metavar="ID", help="an account's user_id")
    add = command("add", cmd_accounts, "add or update an account", actions, "service")
    add.add_argument(
        "--request-params",
        required=True,
        metavar="FILE",
        type=_request_params_file,
        help="JSON file with the account's requestParams (see the setup guide)",
    )
    add.add_argument(
        "--max-jobs",
        type=positive_int,
        metavar="N",
        help="jobs the account may run at once (default: the service's)",
    )
    deleting = command("delete", cmd_accounts, "delete an account", actions, "service")
    deleting.add_argument("id", metavar="ID", help="an account's user_id")


async def cmd_accounts(args: argparse.Namespace, out: Output) -> int:
    with options_named(user_id="ID"):
        return await _accounts(args, out)


async def _accounts(args: argparse.Namespace, out: Output) -> int:
    async with tempolor_client(args) as client:
        if args.action == "list":
            accounts = list((await client.accounts.list()).values())
        elif args.action == "get":
            accounts = [await client.accounts.get(args.id)]
        elif args.action == "add":
            accounts = [await client.accounts.create(args.request_params, max_jobs=args.max_jobs)]
        else:
            await client.accounts.delete(args.id)
            return listing(out, {"deleted": args.id}, ["deleted"], [[args.id]])
    rows: list[list[Any]] = [[a.user_id, a.max_jobs, a.updated_utc] for a in accounts]
    data: Any = [_redacted(a) for a in accounts]
    if args.action != "list":
        data = data[0]
    return listing(out, data, ["user_id", "max_jobs", "updated"], rows)


def _redacted(account: Account) -> dict[str, Any]:
    """An account's JSON with its credentials' values hidden."""
    raw = dict(account.raw)
    if isinstance(raw.get("requestParams"), dict):
        raw["requestParams"] = {key: "<redacted>" for key in raw["requestParams"]}
    return raw


def _request_params_file(path: str) -> dict[str, Any]:
    try:
        params = json.loads(text_file(path))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{path} is not JSON: {exc}") from None
    if isinstance(params, dict) and isinstance(params.get("requestParams"), dict):
        params = params["requestParams"]  # the file may hold the whole setup JSON
    if not isinstance(params, dict):
        raise argparse.ArgumentTypeError(f"{path} must hold a JSON object")
    return params
