"""Finding a generation whose answer was lost: sent, but its job ids never recorded.

The service has no idempotency key, so a generation sent again is paid again. Before an
item left in ``submitting`` is sent again, the batch looks for it:

1. among the running jobs (``GET scheduler/``), by the ``replyRef`` it was sent with (an
   item with no ``reply_ref`` of its own is sent with a per-item token);
2. among recent records (``GET music/``, newest first, per account), by type and prompt
   (and model, lyrics, bpm and tonality where given), created after the intent.

Job ids another item of the journal already holds are never taken twice.

https://useapi.net/docs/api-tempolor-v1/get-tempolor-scheduler
https://useapi.net/docs/api-tempolor-v1/get-tempolor-music
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._models import MusicJob
from ._journal import ItemRecord

if TYPE_CHECKING:
    from .._client import TempolorClient

# How far before an intent a record may carry its creation time: the intent is committed
# right before the POST, so only a difference between this machine's clock and the
# service's can put a generation before it.
CLOCK_MARGIN_SECONDS = 5.0
# Pages of GET music/ read at most per account and type.
MAX_PAGES = 50


async def find_generations(
    client: TempolorClient, records: Iterable[ItemRecord], claimed: set[str]
) -> dict[str, list[str]]:
    """Job ids per key for the records whose generation was found; ``claimed`` (every job
    id the journal holds) grows with what is found."""
    records = [record for record in records if record.intent_at is not None]
    found: dict[str, list[str]] = {}
    if not records:
        return found
    by_reference: dict[str, list[str]] = {}
    for job in await client.scheduler.list():
        if job.reply_ref and job.job_id:
            by_reference.setdefault(job.reply_ref, []).append(job.job_id)
    remaining = []
    for record in records:
        ids = [job_id for job_id in by_reference.get(record.reply_ref, []) if job_id not in claimed]
        if ids:
            found[record.key] = ids[:2]
            claimed.update(ids[:2])
        if len(ids) < 2:  # not running, or one of its two jobs has already ended
            remaining.append(record)
    if remaining:
        found.update(await _search_records(client, remaining, claimed, found))
    return found


async def _search_records(
    client: TempolorClient,
    records: list[ItemRecord],
    claimed: set[str],
    running: dict[str, list[str]],
) -> dict[str, list[str]]:
    """Complete ``running`` (job ids found among the running jobs) from the records."""
    groups: dict[tuple[str, str | None], list[ItemRecord]] = {}
    every_account: list[str | None] | None = None
    for record in records:
        named = record.params.get("user_id") or client.user_id
        if named is not None:
            accounts: list[str | None] = [named]
        else:
            if every_account is None:
                listed = list(await client.accounts.list())
                every_account = list(listed) if len(listed) > 1 else [None]
            accounts = every_account
        for account in accounts:
            groups.setdefault((record.type, account), []).append(record)
    found = {record.key: list(running.get(record.key, [])) for record in records}
    for (kind, account), group in groups.items():
        pending = [record for record in group if len(found[record.key]) < 2]
        if not pending:
            continue
        oldest = min(record.intent_at or 0.0 for record in pending) - CLOCK_MARGIN_SECONDS
        candidates = await _recent(client, kind, account, oldest)
        for record in sorted(pending, key=lambda record: record.intent_at or 0.0):
            known = found[record.key]
            ids = _best_match(record, candidates, claimed, 2 - len(known))
            if ids:
                found[record.key] = known + ids
                claimed.update(ids)
    return {key: ids for key, ids in found.items() if ids}


async def _recent(
    client: TempolorClient, kind: str, account: str | None, oldest: float
) -> list[MusicJob]:
    """Records of one type and account created since ``oldest`` (epoch seconds)."""
    recent: list[MusicJob] = []
    pages = 0
    async for page in client.music.list(type=kind, user_id=account).pages():
        for job in page.items:
            if job.create_time is not None and job.create_time.timestamp() < oldest:
                return recent
            recent.append(job)
        pages += 1
        if pages >= MAX_PAGES:
            break
    return recent


def _best_match(
    record: ItemRecord, candidates: list[MusicJob], claimed: set[str], wanted: int
) -> list[str]:
    """The (up to ``wanted``) unclaimed records that match, those created after the intent
    first."""
    intent = record.intent_at or 0.0
    matches = [
        job
        for job in candidates
        if job.job_id
        and job.job_id not in claimed
        and _created(job) >= intent - CLOCK_MARGIN_SECONDS
        and _same_request(job, record.params)
    ]
    matches.sort(key=lambda job: (_created(job) < intent, abs(_created(job) - intent)))
    return [job.job_id for job in matches[:wanted] if job.job_id]


def _created(job: MusicJob) -> float:
    return job.create_time.timestamp() if job.create_time is not None else float("inf")


def _same_request(job: MusicJob, params: dict[str, Any]) -> bool:
    extend = job.ltm_material_extend_dto
    material = job.music_material
    prompt = (extend.prompt or extend.description) if extend else None
    if prompt is None and material is not None:
        prompt = material.other_info
    if prompt != params.get("prompt"):
        return False
    model = params.get("model")
    shown = extend.model_show_name if extend is not None else None
    if model is not None and shown and shown.casefold() != str(model).casefold():
        return False
    lyrics = params.get("lyrics")
    if lyrics is not None and extend is not None and extend.lyrics_prompt not in (None, lyrics):
        return False
    if material is not None:
        bpm = params.get("bpm")
        if bpm is not None and material.bpm is not None and material.bpm != bpm:
            return False
        tonality = params.get("tonality")
        if tonality is not None and material.key and material.key != tonality:
            return False
    return True
