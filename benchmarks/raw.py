"""The baseline: what a careful user writes with aiohttp alone.

One ``ClientSession``, the ``Authorization`` header, ``await response.read()`` then
``json.loads``, a status check, nothing else. Imports nothing from ``tempolor_async``, so a
raw process pays none of the SDK's import time or memory.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

MAX_PAGES = 100_000
MAX_POLLS = 100_000


class RawApi:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self._session = session
        self._base_url = base_url
        self._headers = {"Authorization": f"Bearer {token}"}

    async def _get_json(self, url: str, params: Mapping[str, str] | None = None) -> Any:
        async with self._session.get(url, params=params, headers=self._headers) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {url}: HTTP {response.status}")
        return json.loads(body)

    async def get_job(self, job_id: str) -> Any:
        return await self._get_json(f"{self._base_url}/music/{job_id}")

    async def walk(self) -> int:
        """Follow ``hasNext``/``cursor`` through every page of songs; count the records one
        by one (the SDK side yields each record, so this side visits each too)."""
        count = 0
        params = {"type": "song"}
        for _ in range(MAX_PAGES):
            page = await self._get_json(f"{self._base_url}/music/", params)
            for _ in page["records"]:  # every record visited, as the SDK's walk does
                count += 1
            if not page.get("hasNext") or not page.get("cursor"):
                return count
            params = {"type": "song", "cursor": page["cursor"]}
        raise RuntimeError("too many pages")

    async def await_job(self, job_id: str, poll_interval: float) -> None:
        """GET the job, sleep, again, until ``status_final``."""
        for _ in range(MAX_POLLS):
            job = await self.get_job(job_id)
            if job.get("status_final"):
                return
            await asyncio.sleep(poll_interval)
        raise RuntimeError(f"{job_id} never finished")

    async def download(self, url: str, dest: Path) -> None:
        """Stream the body to disk as it arrives (no token: the URL is a CDN's)."""
        async with self._session.get(url) as response:
            response.raise_for_status()
            with open(dest, "wb") as out:
                async for chunk in response.content.iter_any():
                    out.write(chunk)


@asynccontextmanager
async def open_api(task: Mapping[str, Any]) -> AsyncIterator[RawApi]:
    async with aiohttp.ClientSession() as session:
        yield RawApi(session, task["server"]["base_url"], task["server"]["token"])
