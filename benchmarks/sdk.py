"""The SDK side of each benchmark: the same operations as ``raw.py``, through
``TempolorClient`` used as its documentation shows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import orjson

from tempolor_async import MusicJob, TempolorClient
from tempolor_async._protocol import ApiRequest


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


class UntypedApi(SdkApi):
    """A diagnostic, not a way to use the SDK: its HTTP path (session, retry policy, error
    mapping) with the bodies parsed by orjson and no models built. Measured beside the SDK,
    it shows what typed, checked decoding costs."""

    async def get_job(self, job_id: str) -> Any:
        reply = await self._client._http.send(ApiRequest("GET", f"/music/{job_id}"))
        return orjson.loads(reply.content)

    async def walk(self) -> int:
        count = 0
        query = {"type": "song"}
        while True:
            reply = await self._client._http.send(ApiRequest("GET", "/music/", query=query))
            page = orjson.loads(reply.content)
            for _ in page["records"]:
                count += 1
            if not page.get("hasNext") or not page.get("cursor"):
                return count
            query = {"type": "song", "cursor": page["cursor"]}


@asynccontextmanager
async def open_api(task: Mapping[str, Any]) -> AsyncIterator[SdkApi]:
    server = task["server"]
    options = task.get("client_options", {})
    kind = UntypedApi if task["variant"] == "sdk-untyped" else SdkApi
    async with TempolorClient(server["token"], base_url=server["base_url"], **options) as client:
        yield kind(client)
