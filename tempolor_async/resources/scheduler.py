"""Jobs the API is tracking: https://useapi.net/docs/api-tempolor-v1/get-tempolor-scheduler"""

from __future__ import annotations

from .. import _validation
from .._models import Capacity, RunningJob
from .._protocol import ApiRequest
from ._base import Resource


class Scheduler(Resource):
    """The jobs useapi.net is tracking for you, and free slots (``client.scheduler``)."""

    async def list(self) -> list[RunningJob]:
        """Every job executing now, across accounts, in one response.
        https://useapi.net/docs/api-tempolor-v1/get-tempolor-scheduler"""
        jobs: list[RunningJob] = await self._call(list[RunningJob], "GET", "/scheduler/")
        return jobs

    async def available(self) -> Capacity:
        """Executing jobs and free slots per account.
        https://useapi.net/docs/api-tempolor-v1/get-tempolor-scheduler-available"""
        capacity: Capacity = await self._call(Capacity, "GET", "/scheduler/available")
        return capacity

    async def cancel(self, job_id: str) -> None:
        """Stop tracking a job. TemPolor still finishes it; the API stops following it and
        no longer counts it against the account's ``maxJobs``.
        https://useapi.net/docs/api-tempolor-v1/del-tempolor-scheduler-job_id"""
        job_id = _validation.path_id("job_id", job_id)
        await self._send(ApiRequest("DELETE", f"/scheduler/{job_id}"))
