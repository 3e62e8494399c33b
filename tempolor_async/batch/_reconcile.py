"""Reconciliation: was a generation whose answer was lost accepted by the service?

The service has no idempotency key, so a generation sent again is paid again, and a
generation wrongly adopted hands an item someone else's song. The rules, in the order they
are applied:

1. **Our own mark.** Every generation a batch sends carries a ``replyRef`` unique to the
   journal and the item (:func:`batch_reply_ref`): the batch's token, after the user's own
   ``reply_ref`` when there is one.
2. **Running jobs** (``GET scheduler/``): a job is adopted only when its ``replyRef`` is
   exactly the item's. A running job whose ``replyRef`` is no item's of this journal is
   someone else's: its id is remembered (in the journal) so the record search never adopts
   it either.
3. **Records** (``GET music/``, newest first, per type and account), for what the scheduler
   no longer shows: a record is the item's when its type, prompt, model (as sent, when one
   was sent) and account match, it was created after the intent on the *service's* clock
   (the offset is learnt from the ``Date`` header of the service's answer), it carries no
   other ``replyRef``, and no one owns it yet (any item of the journal, or someone else).
   Pages are walked back until records are older than the oldest intent, however many.
   Items are served oldest intent first, each taking the oldest records from its intent on,
   so items with identical parameters adopt at most as many records as exist.
4. **Not found is not proof.** A service may accept a generation after the client gave up
   on the request, so the runner sends an unconfirmed item again only after its
   ``confirm_window`` has passed (see :func:`resend_due`), looking again meanwhile.

https://useapi.net/docs/api-tempolor-v1/get-tempolor-scheduler
https://useapi.net/docs/api-tempolor-v1/get-tempolor-music
"""

from __future__ import annotations

import email.utils
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from .. import _protocol
from .._engine import account_of
from .._models import MusicJob, RunningJob
from .._protocol import ApiRequest
from ._journal import ItemRecord

if TYPE_CHECKING:
    from .._client import TempolorClient

# Longest ``reply_ref`` a batch item may carry: the service takes 1,024 characters, and the
# batch's own token follows it.
MAX_BATCH_REPLY_REF = 1000
TOKEN_PREFIX = "tempolor-batch:"
# How far the learnt clock offset may be off: ``Date`` has whole seconds, plus the round trip.
DATE_RESOLUTION_SECONDS = 1.0
# Without a ``Date`` header, how far apart the two clocks are assumed to be at most.
UNKNOWN_CLOCK_MARGIN_SECONDS = 5.0
# An unconfirmed item is looked for again at least this often while it waits.
LOOK_AGAIN_SECONDS = 10.0
JOBS_PER_GENERATION = 2


def new_token() -> str:
    """The batch's own part of an item's ``replyRef``: unique to the journal and item."""
    return TOKEN_PREFIX + secrets.token_hex(12)


def batch_reply_ref(user_reply_ref: str | None, token: str) -> str:
    """The ``replyRef`` an item is sent with: ``f"{reply_ref}~{token}"``, or the token."""
    return f"{user_reply_ref}~{token}" if user_reply_ref else token


def resend_due(request_ended: float, confirm_window: float, now: float | None = None) -> bool:
    """Whether an unconfirmed item may be sent again: ``confirm_window`` seconds after its
    request ended (both on this machine's wall clock)."""
    return (time.time() if now is None else now) >= request_ended + confirm_window


def look_interval(confirm_window: float) -> float:
    """How long an unconfirmed item waits between two looks (at most 10 s)."""
    return max(0.2, min(LOOK_AGAIN_SECONDS, confirm_window / 4))


@attrs.frozen
class ServiceClock:
    """The service's clock relative to this machine's: ``offset`` seconds ahead (negative:
    behind), known to within ``margin`` seconds."""

    offset: float = 0.0
    margin: float = UNKNOWN_CLOCK_MARGIN_SECONDS

    @classmethod
    def from_date(cls, date: str | None, sent: float, received: float) -> ServiceClock:
        """Learn the offset from an answer's ``Date`` header (whole seconds, RFC 9110),
        given this machine's wall clock when the request left and the answer came."""
        if not date:
            return cls()
        try:
            moment = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            return cls()
        if moment.tzinfo is None:
            return cls()
        middle = (sent + received) / 2
        offset = moment.timestamp() + DATE_RESOLUTION_SECONDS / 2 - middle
        return cls(offset, DATE_RESOLUTION_SECONDS + (received - sent) + 0.5)

    def service_time(self, local: float) -> float:
        return local + self.offset


@attrs.define
class Lookup:
    """What one reconciliation found: job ids per item key, and the running jobs seen to be
    someone else's (to remember in the journal)."""

    found: dict[str, list[str]] = attrs.Factory(dict)
    foreign: set[str] = attrs.Factory(set)
    clock: ServiceClock = attrs.Factory(ServiceClock)


# ------------------------------------------------------------------ the rules, pure


def adopt_running(
    records: Sequence[ItemRecord],
    running: Iterable[RunningJob],
    *,
    own_refs: set[str],
    owned: set[str],
) -> Lookup:
    """Rule 2: running jobs adopted by exact ``replyRef``; every other running job that no
    item of the journal owns (``owned``, ``own_refs``) is someone else's."""
    lookup = Lookup()
    by_ref = {record.reply_ref: record for record in records}
    for job in running:
        if not job.job_id or job.job_id in owned:
            continue
        record = by_ref.get(job.reply_ref or "")
        if record is not None:
            ids = lookup.found.setdefault(record.key, [])
            if len(ids) < JOBS_PER_GENERATION:
                ids.append(job.job_id)
        elif (job.reply_ref or "") not in own_refs:
            lookup.foreign.add(job.job_id)
    return lookup


def record_matches(
    job: MusicJob, record: ItemRecord, account: str | None, not_before: float
) -> bool:
    """Rule 3 for one record: same prompt, model as sent, account, no other ``replyRef``,
    created (service clock, epoch seconds) at or after ``not_before``."""
    if job.create_time is None or job.create_time.timestamp() < not_before:
        return False
    if account is not None and job.job_id and account_of(job.job_id) not in (None, account):
        return False
    reference = job.raw.get("replyRef")
    if isinstance(reference, str) and reference and reference != record.reply_ref:
        return False
    params = record.params
    extend = job.ltm_material_extend_dto
    material = job.music_material
    prompt = (extend.prompt or extend.description) if extend is not None else None
    if prompt is None and material is not None:
        prompt = material.other_info
    if prompt != params.get("prompt"):
        return False
    model = params.get("model")
    if model is not None:
        shown = extend.model_show_name if extend is not None else None
        if shown is None or shown.casefold() != str(model).casefold():
            return False
    return True


def assign_records(
    records: Sequence[ItemRecord],
    candidates: Sequence[MusicJob],
    *,
    account: str | None,
    clock: ServiceClock,
    taken: set[str],
    wanted: Mapping[str, int],
) -> dict[str, list[str]]:
    """Rule 3 for a group of items of one type and account: oldest intent first, each takes
    the oldest unowned matching records created after its intent. ``taken`` (every job id
    someone owns) grows with what is assigned. Items are served oldest intent first, each
    taking the oldest matching records from its intent on."""
    found: dict[str, list[str]] = {}
    for record in sorted(records, key=lambda record: record.intent_at or 0.0):
        need = wanted.get(record.key, 0)
        if need <= 0 or record.intent_at is None:
            continue
        intent = clock.service_time(record.intent_at)
        not_before = intent - clock.margin
        # Records from the intent on first, oldest first; those within the clock's margin
        # before it only after them.
        for job in sorted(candidates, key=lambda job: (_created(job) < intent, _created(job))):
            if len(found.get(record.key, [])) >= need:
                break
            if (
                job.job_id
                and job.job_id not in taken
                and record_matches(job, record, account, not_before)
            ):
                found.setdefault(record.key, []).append(job.job_id)
                taken.add(job.job_id)
    return found


def _created(job: MusicJob) -> float:
    return job.create_time.timestamp() if job.create_time is not None else float("inf")


# -------------------------------------------------------------- talking to the service


async def find_generations(
    client: TempolorClient,
    records: Sequence[ItemRecord],
    *,
    journal_records: Iterable[ItemRecord],
    foreign: set[str],
) -> Lookup:
    """Apply the rules to ``records`` (items whose answer was lost), against the journal's
    other items (``journal_records``) and the job ids known to be someone else's."""
    records = [record for record in records if record.intent_at is not None]
    if not records:
        return Lookup()
    journal_records = list(journal_records)
    owned = {job_id for record in journal_records for job_id in record.job_ids}
    own_refs = {record.reply_ref for record in journal_records}
    running, clock = await _running_jobs(client)
    lookup = adopt_running(records, running, own_refs=own_refs, owned=owned)
    lookup.clock = clock
    taken = owned | foreign | lookup.foreign
    taken.update(job_id for ids in lookup.found.values() for job_id in ids)
    wanted = {
        record.key: JOBS_PER_GENERATION - len(lookup.found.get(record.key, []))
        for record in records
    }
    groups = await _groups(client, [record for record in records if wanted[record.key] > 0])
    for (kind, account), group in groups.items():
        pending = [record for record in group if wanted[record.key] > 0]
        if not pending:
            continue
        oldest = min(record.intent_at or 0.0 for record in pending)
        candidates = await _records_since(
            client, kind, account, clock.service_time(oldest) - clock.margin
        )
        assigned = assign_records(
            pending, candidates, account=account, clock=clock, taken=taken, wanted=wanted
        )
        for key, ids in assigned.items():
            lookup.found.setdefault(key, []).extend(ids)
            wanted[key] -= len(ids)
    return lookup


async def _running_jobs(client: TempolorClient) -> tuple[list[RunningJob], ServiceClock]:
    """``GET scheduler/``, and the service's clock from the answer's ``Date`` header."""
    sent = time.time()
    reply = await client._http.send(ApiRequest("GET", "/scheduler/"))
    received = time.time()
    jobs: list[RunningJob] = _protocol.decode(reply.content, list[RunningJob], "GET", "/scheduler/")
    return jobs, ServiceClock.from_date(reply.headers.get("Date"), sent, received)


async def _groups(
    client: TempolorClient, records: Sequence[ItemRecord]
) -> dict[tuple[str, str | None], list[ItemRecord]]:
    """The items per (type, account) to search: the account the item names (or the
    client's default), else every account (the gate may have picked any)."""
    groups: dict[tuple[str, str | None], list[ItemRecord]] = {}
    every_account: list[str | None] | None = None
    for record in records:
        named: Any = record.params.get("user_id") or client.user_id
        accounts: list[str | None]
        if named is not None:
            accounts = [named]
        else:
            if every_account is None:
                listed = list(await client.accounts.list())
                every_account = list(listed) if len(listed) > 1 else [None]
            accounts = every_account
        for account in accounts:
            groups.setdefault((record.type, account), []).append(record)
    return groups


async def _records_since(
    client: TempolorClient, kind: str, account: str | None, oldest: float
) -> list[MusicJob]:
    """Records of one type and account, newest first, back to the first one created before
    ``oldest`` (service clock, epoch seconds), however many pages that takes."""
    recent: list[MusicJob] = []
    async for page in client.music.list(type=kind, user_id=account).pages():
        for job in page.items:
            if job.create_time is not None and job.create_time.timestamp() < oldest:
                return recent
            recent.append(job)
    return recent
