"""Callbacks to replyUrl: the job record POSTed on every change until it is final."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from .._server import compact_json
from .base import TempolorBase
from .state import FakeJob


class CallbackSender(TempolorBase):
    """Sends a job's callbacks while it runs."""

    def _start_callbacks(self, job: FakeJob) -> None:
        task = asyncio.get_running_loop().create_task(self._send_callbacks(job))
        self._callback_tasks.add(task)
        task.add_done_callback(self._callback_tasks.discard)

    async def _send_callbacks(self, job: FakeJob) -> None:
        """POST the job record to replyUrl on every change, until final. Not retried, not
        signed, like the service's callbacks; failures are noted in ``callback_errors``."""
        last: tuple[int, int] | None = None
        while job.tracked and job.job_id in self.jobs and job.reply_url:
            now = time.monotonic()
            state = (job.status(now), job.progress(now))
            if state != last:
                last = state
                record = job.render(now, self.media_url, self.audio_seconds)
                record["replyRef"] = job.reply_ref
                await self._post_callback(job.reply_url, record)
                continue  # look again: complete()/fail() may have run during the POST
            next_change = job.next_change(now)
            if next_change is None:
                return
            await asyncio.sleep(max(0.0, next_change - time.monotonic()) + 0.001)

    async def _post_callback(self, url: str, record: dict[str, Any]) -> None:
        assert self._callback_session is not None
        try:
            body = compact_json(record)
            headers = {"Content-Type": "application/json"}
            async with self._callback_session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status >= 400:
                    self.callback_errors.append(f"{url}: HTTP {response.status}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.callback_errors.append(f"{url}: {exc!r}")
