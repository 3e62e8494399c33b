"""A fleet through Redis (SPEC 17): every process that shares the accounts takes leases on
their slots here, and hears the callbacks any of their receivers accepts.

Keys live under ``tempolor:<namespace>:`` and hold job ids, user ids, lease names and times,
never a secret:

- ``leases:<user_id>``: a sorted set of lease names scored by their expiry (Redis's own
  clock, in ms). A generation takes one lease per job it creates, atomically (``TAKE``);
  the holder renews them while it lives; a dead holder's leases expire after ``lease_ttl``.
- ``jobs:<user_id>``: which lease covers which job, so that a running job no live lease
  covers (another program's, or a dead holder's) still counts against the account.
- ``poller``: the fleet's poller lease, the name of the process that reads the scheduler
  for the whole fleet (taken with SET NX PX, renewed while its holder's wait loop runs,
  taken over by another process within ``lease_ttl`` when its holder stops renewing it).
- channels ``callbacks`` (``<origin> <0|1> <job_id>``), ``ended`` (job ids whose leases
  ended: their slots are free), ``listing`` (JSON: ``origin``, ``read_at``, the wall time of
  the poller's last read of the scheduler, ``jobs``, the ids it lists as running, and
  ``slots``, each account's ``[maxJobs, executing]``) and ``wanted`` (``<origin>``: a process
  asks the poller to read the slots afresh).

The ``redis`` package is imported only when a fleet opens: without it the SDK works alone.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import secrets
from collections.abc import Collection, Iterable
from contextlib import suppress
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import anyio

from ._errors import ConfigurationError, CoordinationError

if TYPE_CHECKING:
    from ._coordination import FleetHooks, Slots

logger = logging.getLogger("tempolor_async")

SCHEMES = ("redis", "rediss", "unix")
EXTRA = 'pip install "tempolor-async[redis]"'
# Seconds one Redis command may take before the fleet counts as lost.
COMMAND_TIMEOUT = 2.0
# Seconds between attempts to reach a lost Redis again.
REJOIN_EVERY = 1.0
# A process asks the poller for a fresh read of the slots at most this often (seconds).
WANT_EVERY = 1.0

# KEYS: leases, jobs. ARGV: ttl ms, limit, running jobs no one names, lease count, the
# leases..., the running job ids the caller's view lists... As section 12 and the service
# have it, a generation may start while one slot of the account is free. Answers 1 (taken),
# 2 (the caller's view of running jobs fills the account) or, when the leases fill it, minus
# the milliseconds until the first of them expires.
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
local external = tonumber(ARGV[3])
local count = tonumber(ARGV[4])
for i = 5 + count, #ARGV do
  local lease = redis.call('HGET', KEYS[2], ARGV[i])
  if (not lease) or (not redis.call('ZSCORE', KEYS[1], lease)) then
    external = external + 1
  end
end
if held >= tonumber(ARGV[2]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.min(-1, now - tonumber(first[2]))
end
if held + external >= tonumber(ARGV[2]) then
  return 2
end
for i = 5, 4 + count do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i])
end
return 1
"""
# KEYS: leases. ARGV: ttl ms, the leases to renew (those that expired stay gone).
RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i])
end
return 1
"""
# KEYS: poller. ARGV: origin, ttl ms. Answers 1 when the caller holds the poller lease
# (renewed, or taken because no one held it), else 0.
POLL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
"""
# KEYS: poller. ARGV: origin. Gives the poller lease back if the caller holds it.
UNPOLL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def safe_url(url: str) -> str:
    """The URL without its password (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis.exceptions

    return (redis.exceptions.RedisError, OSError, asyncio.TimeoutError, TimeoutError)


class RedisCoordination:
    """A fleet through Redis: ``TempolorClient(coordination=RedisCoordination(url))``.

    ``url``: ``redis://``, ``rediss://`` or ``unix://``. ``lease_ttl``: seconds after which
    the slot leases of a process that stopped renewing them (killed, frozen, cut off)
    expire. ``namespace``: the fleet's name under ``tempolor:`` (default: a digest of the
    base URL and the token, never the token itself). Needs ``pip install
    "tempolor-async[redis]"``. One instance per client.
    """

    def __init__(self, url: str, *, lease_ttl: float = 15.0, namespace: str | None = None) -> None:
        if not isinstance(url, str) or urlsplit(url).scheme not in SCHEMES:
            raise ConfigurationError(
                "coordination must be a redis://, rediss:// or unix:// URL (or a RedisCoordination)"
            )
        if isinstance(lease_ttl, bool) or not isinstance(lease_ttl, (int, float)):
            raise ConfigurationError("lease_ttl must be a positive number of seconds")
        if not 0 < lease_ttl < math.inf:
            raise ConfigurationError("lease_ttl must be a positive number of seconds")
        if namespace is not None and (not isinstance(namespace, str) or not namespace):
            raise ConfigurationError("namespace must be a non-empty string")
        try:
            import redis.asyncio  # noqa: F401
        except ImportError:
            raise ConfigurationError(f"coordination needs the redis package: {EXTRA}") from None
        self.url = url
        self.lease_ttl = float(lease_ttl)
        self.namespace = namespace
        self._redis: Any = None
        self._take: Any = None
        self._renew: Any = None
        self._poll: Any = None
        self._unpoll: Any = None
        self.polling = False  # this process holds the fleet's poller lease
        self._prefix = ""
        self._hooks: FleetHooks | None = None
        self._origin = secrets.token_hex(6)
        self._names = itertools.count()
        self._held: dict[str, tuple[str, str | None]] = {}  # lease -> (user_id, job_id)
        self._lost = False
        self.view_stale = False  # the last refusal counted running jobs no lease covers
        self._expiry = 0.0  # when the first lease of the last full account expires
        self._wanted_at = -math.inf  # when this process last asked the poller for a read
        self._freed = anyio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._maintainer: asyncio.Task[None] | None = None
        self._errors: tuple[type[BaseException], ...] = ()
        self._claimed = False  # a client was built with it

    def __repr__(self) -> str:
        return f"<RedisCoordination url={safe_url(self.url)!r} lease_ttl={self.lease_ttl:g}>"

    @property
    def joined(self) -> bool:
        return self._redis is not None and not self._lost

    def claim(self) -> None:
        """Called by the client built with it: one instance serves one client (its leases,
        its poller lease and its listeners are that client's)."""
        if self._claimed:
            raise ConfigurationError(
                "this RedisCoordination already serves a client; give each client its own "
                "(or the same URL)"
            )
        self._claimed = True

    # ------------------------------------------------------------ open, close

    async def open(self, fleet: str, hooks: FleetHooks) -> None:
        """Reach Redis (or raise CoordinationError) and start listening to the fleet."""
        import redis.asyncio

        self._errors = _redis_errors()
        self._prefix = f"tempolor:{self.namespace or fleet}:"
        self._hooks = hooks
        client = redis.asyncio.from_url(
            self.url, socket_timeout=COMMAND_TIMEOUT, socket_connect_timeout=COMMAND_TIMEOUT
        )
        try:
            with anyio.fail_after(COMMAND_TIMEOUT * 2):
                await client.ping()
        except self._errors as exc:
            await client.aclose()
            raise CoordinationError(
                f"cannot reach Redis at {safe_url(self.url)} ({type(exc).__name__})"
            ) from None
        self._redis = client
        self._take = client.register_script(TAKE)
        self._renew = client.register_script(RENEW)
        self._poll = client.register_script(POLL)
        self._unpoll = client.register_script(UNPOLL)
        self._maintainer = self._spawn(self._maintain())

    async def aclose(self) -> None:
        """Finish the commands under way, give back the leases no job took (those of
        running jobs expire after ``lease_ttl``), stop listening, close the connection."""
        with anyio.CancelScope(shield=True):
            pending = [task for task in self._tasks if task is not self._maintainer]
            if pending:
                await asyncio.wait(pending, timeout=COMMAND_TIMEOUT)
        self._closing = True
        with anyio.CancelScope(shield=True):
            for task in list(self._tasks):
                # Cancelled until done: on Python 3.10 and 3.11 a timeout inside the redis
                # client can swallow a cancellation that meets it, and the task goes on.
                while not task.done():
                    task.cancel()
                    await asyncio.wait({task}, timeout=0.5)
        if self._redis is None:
            return
        with anyio.CancelScope(shield=True):
            if self._held and not self._lost:
                by_user: dict[str, list[str]] = {}
                for lease, (user_id, job_id) in self._held.items():
                    if job_id is None:
                        by_user.setdefault(user_id, []).append(lease)
                with anyio.move_on_after(COMMAND_TIMEOUT), _quiet():
                    for user_id, leases in by_user.items():
                        await self._command(self._redis.zrem, self._key("leases", user_id), *leases)
            self._held.clear()
            if self.polling and not self._lost:
                with anyio.move_on_after(COMMAND_TIMEOUT), _quiet():
                    await self._give_back_poller()
            self.polling = False
            await self._redis.aclose()
            self._redis = None

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _key(self, kind: str, user_id: str) -> str:
        return f"{self._prefix}{kind}:{user_id}"

    async def _command(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """One Redis command, within COMMAND_TIMEOUT; a failure marks the fleet lost."""
        try:
            with anyio.fail_after(COMMAND_TIMEOUT):
                return await method(*args, **kwargs)
        except self._errors as exc:
            self._lose(exc)
            raise _Lost from None

    def _lose(self, error: BaseException) -> None:
        if self._lost:
            return
        self._lost = True
        self._held.clear()  # they expire in Redis; the 429 is the arbiter meanwhile
        self.polling = False
        self._freed.set()
        logger.warning(
            "lost Redis at %s (%s); going on in this process alone until it answers again",
            safe_url(self.url),
            type(error).__name__,
        )

    # ----------------------------------------------------------------- leases

    async def take(
        self, user_id: str, count: int, limit: int, running: Collection[str], other: int
    ) -> list[str] | None:
        if not self.joined:
            return []
        leases = [f"{self._origin}:{next(self._names)}" for _ in range(count)]
        ttl_ms = int(self.lease_ttl * 1000)
        args = [ttl_ms, limit, other, count, *leases, *running]
        keys = [self._key("leases", user_id), self._key("jobs", user_id)]
        try:
            taken = await self._command(self._take, keys=keys, args=args)
        except _Lost:
            return []
        if taken != 1:
            self.view_stale = taken == 2
            self._expiry = anyio.current_time() + max(0, -int(taken)) / 1000
            return None
        for lease in leases:
            self._held[lease] = (user_id, None)
        return leases

    def bind(self, user_id: str, leases: list[str], job_ids: list[str]) -> None:
        if not leases or not self.joined:
            return
        pairs = dict(zip(job_ids, leases, strict=False))
        for job_id, lease in pairs.items():
            self._held[lease] = (user_id, job_id)
        unused = leases[len(pairs) :]
        self._spawn(self._bind(user_id, pairs, unused))

    async def _bind(self, user_id: str, pairs: dict[str, str], unused: list[str]) -> None:
        with _quiet():
            if pairs:
                key = self._key("jobs", user_id)
                await self._command(self._redis.hset, key, mapping=pairs)
                await self._command(self._redis.expire, key, 86400)
            if unused:
                await self._end(user_id, unused, [])

    def give_back(self, user_id: str, leases: list[str]) -> None:
        for lease in leases:
            self._held.pop(lease, None)
        if leases and self.joined:
            self._spawn(self._end_quietly(user_id, leases, []))

    def abandon(self, leases: list[str]) -> None:
        """Whether these leases' generation was sent is unknown: stop renewing them, so
        they expire after ``lease_ttl`` (its jobs, if any, count as running jobs no lease
        covers once the scheduler lists them)."""
        for lease in leases:
            self._held.pop(lease, None)

    def ended(self, job_ids: Iterable[str]) -> None:
        ended = set(job_ids)
        by_user: dict[str, tuple[list[str], list[str]]] = {}
        for lease, (user_id, job_id) in list(self._held.items()):
            if job_id in ended:
                del self._held[lease]
                leases, jobs = by_user.setdefault(user_id, ([], []))
                leases.append(lease)
                jobs.append(job_id)
        if self.joined:
            for user_id, (leases, jobs) in by_user.items():
                self._spawn(self._end_quietly(user_id, leases, jobs))

    async def _end_quietly(self, user_id: str, leases: list[str], job_ids: list[str]) -> None:
        with _quiet():
            await self._end(user_id, leases, job_ids)

    async def _end(self, user_id: str, leases: list[str], job_ids: list[str]) -> None:
        await self._command(self._redis.zrem, self._key("leases", user_id), *leases)
        if job_ids:
            await self._command(self._redis.hdel, self._key("jobs", user_id), *job_ids)
        await self._command(self._redis.publish, self._prefix + "ended", " ".join(job_ids))

    async def slot_freed(self, timeout: float) -> None:
        """Wait until a lease of the fleet ends or expires (or ``timeout``)."""
        if not self.view_stale:
            timeout = min(timeout, max(0.0, self._expiry - anyio.current_time()) + 0.01)
        with anyio.move_on_after(timeout):
            await self._freed.wait()

    # -------------------------------------------------------------- callbacks

    def publish_hint(self, job_id: str, final: bool) -> None:
        if self.joined:
            message = f"{self._origin} {int(final)} {job_id}"
            self._spawn(self._publish(self._prefix + "callbacks", message))

    async def _publish(self, channel: str, message: str) -> None:
        with _quiet():
            await self._command(self._redis.publish, channel, message)

    # ------------------------------------------------------------ the poller

    async def poller(self) -> bool:
        """True when this process reads the scheduler: it holds (or just took) the fleet's
        poller lease, or the fleet cannot be reached."""
        if not self.joined:
            return True
        try:
            held = await self._command(
                self._poll,
                keys=[self._prefix + "poller"],
                args=[self._origin, int(self.lease_ttl * 1000)],
            )
        except _Lost:
            return True
        self.polling = held == 1
        return self.polling

    def stop_polling(self) -> None:
        """This process's wait loop stopped: another process may take the poller lease."""
        if self.polling and self.joined:
            self._spawn(self._stop_polling())
        self.polling = False

    async def _stop_polling(self) -> None:
        with _quiet():
            await self._give_back_poller()

    async def _give_back_poller(self) -> None:
        keys = [self._prefix + "poller"]
        await self._command(self._unpoll, keys=keys, args=[self._origin])

    def publish_listing(self, job_ids: Collection[str], read_at: float, slots: Slots) -> None:
        """The poller read the scheduler (at wall time ``read_at``): tell the fleet which
        jobs run and each account's slots."""
        if self.polling and self.joined:
            message = json.dumps(
                {
                    "origin": self._origin,
                    "read_at": round(read_at, 3),
                    "jobs": list(job_ids),
                    "slots": {user_id: list(counts) for user_id, counts in slots.items()},
                },
                separators=(",", ":"),
            )
            self._spawn(self._publish(self._prefix + "listing", message))

    def want_view(self) -> None:
        """Ask the fleet's poller to read the slots afresh (its listing answers); at most
        once every WANT_EVERY seconds."""
        now = anyio.current_time()
        if self.joined and not self.polling and now - self._wanted_at >= WANT_EVERY:
            self._wanted_at = now
            self._spawn(self._publish(self._prefix + "wanted", self._origin))

    # ---------------------------------------------------- listening, renewing

    async def _maintain(self) -> None:
        """Listen to the fleet and renew the leases while Redis answers; when it is lost,
        try again every REJOIN_EVERY seconds and rejoin."""
        while not self._closing:
            if self._lost:
                await anyio.sleep(REJOIN_EVERY)
                try:
                    with anyio.fail_after(COMMAND_TIMEOUT):
                        await self._redis.ping()
                except self._errors:
                    continue
                self._lost = False
                self._freed = anyio.Event()
                logger.warning("Redis at %s answers again; rejoined the fleet", safe_url(self.url))
            try:
                await self._listen()
            except self._errors as exc:
                self._lose(exc)
            except _Lost:
                pass

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            with anyio.fail_after(COMMAND_TIMEOUT):
                await pubsub.subscribe(*(self._prefix + name for name in CHANNELS))
            renew_every = self.lease_ttl / 3
            renewed = anyio.current_time()
            while not self._lost and not self._closing:
                with anyio.fail_after(COMMAND_TIMEOUT + 1.0):
                    message = await pubsub.get_message(timeout=min(1.0, renew_every))
                if message is not None:
                    self._heard(message["channel"], message["data"])
                if anyio.current_time() - renewed >= renew_every:
                    renewed = anyio.current_time()
                    await self._renew_all()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0), suppress(Exception):
                await pubsub.aclose()

    def _heard(self, channel: bytes, data: bytes) -> None:
        assert self._hooks is not None
        text = data.decode("utf-8", "replace")
        name = channel.decode()
        if name == self._prefix + "listing":
            self._wake_slot_waiters()  # the listing may show slots free
            listing = _listing(text)
            if listing is not None and listing[0] != self._origin:
                self._hooks.listed(*listing[1:])
        elif name == self._prefix + "wanted":
            if text != self._origin and self.polling:
                self._hooks.wanted()
        elif name == self._prefix + "callbacks":
            origin, final, job_id = [*text.split(" ", 2), "", ""][:3]
            if origin != self._origin and job_id:
                self._hooks.hinted(job_id, final == "1")
        else:
            self._wake_slot_waiters()
            if text:
                self._hooks.ended(text.split(" "))

    def _wake_slot_waiters(self) -> None:
        freed, self._freed = self._freed, anyio.Event()
        freed.set()

    async def _renew_all(self) -> None:
        by_user: dict[str, list[str]] = {}
        for lease, (user_id, _) in self._held.items():
            by_user.setdefault(user_id, []).append(lease)
        ttl_ms = int(self.lease_ttl * 1000)
        for user_id, leases in by_user.items():
            keys = [self._key("leases", user_id)]
            await self._command(self._renew, keys=keys, args=[ttl_ms, *leases])
        if self.polling:
            await self.poller()


CHANNELS = ("callbacks", "ended", "listing", "wanted")


def _listing(text: str) -> tuple[str, list[str], float, Slots] | None:
    """A published listing: origin, job ids, wall time of the read, slots (None if it is
    not one)."""
    try:
        message = json.loads(text)
        jobs = [str(job_id) for job_id in message["jobs"]]
        slots: dict[str, tuple[int | None, int | None]] = {}
        for user_id, (max_jobs, executing) in message["slots"].items():
            slots[str(user_id)] = (_count(max_jobs), _count(executing))
        return str(message["origin"]), jobs, float(message["read_at"]), slots
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _count(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError("not a count")


class _Lost(Exception):
    """Redis stopped answering (already logged once)."""


def _quiet() -> suppress:
    """A background command that failed has marked the fleet lost: nothing more to do."""
    return suppress(_Lost)
