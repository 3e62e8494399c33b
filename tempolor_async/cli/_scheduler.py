"""``tempolor scheduler``: the jobs the API is tracking, and each account's free slots."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import Command, listing, options_named, tempolor_client
from ._output import Output


def add_command(command: Command) -> None:
    """Register ``tempolor scheduler`` with the command line's ``command`` helper."""
    scheduler = command("scheduler", cmd_scheduler, "jobs the API is tracking", options="service")
    actions = scheduler.add_subparsers(dest="action", required=True, metavar="ACTION")
    command("list", cmd_scheduler, "list running jobs", actions, "service")
    command("available", cmd_scheduler, "free slots per account", actions, "service")
    cancel = command("cancel", cmd_scheduler, "stop tracking a job", actions, "service")
    cancel.add_argument("job_id", metavar="JOB_ID", help="the job to stop tracking")


async def cmd_scheduler(args: argparse.Namespace, out: Output) -> int:
    async with tempolor_client(args) as client:
        if args.action == "list":
            running = await client.scheduler.list()
            rows: list[list[Any]] = [[j.job_id, j.started, j.elapsed] for j in running]
            return listing(out, [j.raw for j in running], ["job_id", "started", "elapsed"], rows)
        if args.action == "available":
            capacity = await client.scheduler.available()
            rows = [
                [a.user_id, a.max_jobs, a.executing, a.available] for a in capacity.available or []
            ]
            columns = ["user_id", "max_jobs", "executing", "available"]
            return listing(out, capacity.raw, columns, rows)
        with options_named(job_id="JOB_ID"):
            await client.scheduler.cancel(args.job_id)
        return listing(out, {"cancelled": args.job_id}, ["cancelled"], [[args.job_id]])
