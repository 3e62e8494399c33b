"""The scheduler: running jobs, capacity, cancelling tracking."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from .._server import Call, Reply, json_response
from .base import JOB_ID_PATTERN, TempolorBase


class SchedulerRoutes(TempolorBase):
    """scheduler/ and scheduler/available."""

    async def _list_running(self, call: Call) -> web.Response:
        return json_response(
            200,
            [
                job.render_running(self.wall_ms(), numeric_started=False)
                for job in self.running_jobs()
            ],
        )

    async def _available(self, call: Call) -> web.Response:
        running = self.running_jobs()
        capacity: list[dict[str, Any]] = []
        for account in self.accounts.values():
            executing = sum(1 for job in running if job.user_id == account.user_id)
            capacity.append(
                {
                    "user_id": account.user_id,
                    "maxJobs": account.max_jobs,
                    "executing": executing,
                    "available": max(0, account.max_jobs - executing),
                }
            )
        capacity.sort(key=lambda entry: -entry["available"])
        executing_jobs = [
            job.render_running(self.wall_ms(), numeric_started=False) for job in running
        ]
        return json_response(200, {"executing": executing_jobs, "available": capacity})

    async def _cancel_tracking(self, call: Call) -> web.Response:
        job_id = call.match["job_id"]
        if not JOB_ID_PATTERN.match(job_id):
            raise Reply(400, "job_id has incorrect format")
        job = self.jobs.get(job_id)
        if job is None or not job.is_running(time.monotonic()):
            raise Reply(404, "Unable to locate running job_id")
        job.tracked = False
        return web.Response(status=204)
