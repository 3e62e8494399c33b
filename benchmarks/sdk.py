"""The SDK side of each benchmark: the same operations as ``raw.py``, through
``TempolorClient`` used as its documentation shows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

from tempolor_async import MusicJob, TempolorClient


class SdkApi:
    def __init__(self, client: TempolorClient) -> None:
        self._client = client

    async def get_job(self, job_id: str) -> MusicJob:
        return await self._client.music.get(job_id)

    async def walk(self) -> int:
        count = 0
        async for _ in self._client.music.list():
            count += 1
        return count

    async def await_job(self, job_id: str, poll_interval: float) -> None:
        await self._client.await_job(job_id, poll_interval=poll_interval)

    async def download(self, url: str, dest: Path) -> None:
        await self._client.download_file(url, dest)

    async def as_completed(
        self, job_ids: Sequence[str], poll_interval: float
    ) -> AsyncIterator[str]:
        """The shared poll loop: yields each job id as its final record is seen."""
        jobs = self._client.as_completed(job_ids, poll_interval=poll_interval)
        async with aclosing(jobs):
            async for job in jobs:
                yield job.job_id or ""


@asynccontextmanager
async def open_api(task: Mapping[str, Any]) -> AsyncIterator[SdkApi]:
    server = task["server"]
    options = task.get("client_options", {})
    async with TempolorClient(server["token"], base_url=server["base_url"], **options) as client:
        yield SdkApi(client)
