"""Requests per actor per second, and API calls per organization per UTC day.

An actor key is built by the caller: `person:<id>`, `key:<api key id>` or `ip:<address>`. Each
key has a token bucket holding at most `burst` tokens, refilled at `rate` per second; a request
takes one token, or is told how many seconds until the next one. An organization may make its
plan's `api_calls_per_day` calls per UTC day, and each actor at most `actor_limit` of them, so
one member cannot spend the whole day's quota for the others. A refused call is not counted.

Without Redis both are kept in this process. With Redis every replica shares one truth: each
check is a single Lua script, atomic on the server, and buckets use the server's clock so that
replicas with skewed clocks agree; a request's token and call (`admit`) are one script too, one
round trip. If Redis does not answer, this process counts on its own (buckets as if it were
the only replica, calls from zero) and tries Redis again 5 s later, warning at most once a
minute: a Redis outage loosens the limits but never takes the gateway down with it.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from providers.errors import QuotaExceededError, RateLimitedError

__all__ = [
    "Buckets",
    "Count",
    "DailyCalls",
    "LocalBuckets",
    "LocalDailyCalls",
    "RateLimits",
    "RedisBuckets",
    "RedisDailyCalls",
]

log = logging.getLogger("one.rate_limits")

MAX_LOCAL_BUCKETS = 100_000  # a flood of distinct addresses forgets the idlest, not the memory
REDIS_TIMEOUT = 0.5  # seconds per attempt; after a failure Redis is skipped for a while
REDIS_RETRY_AFTER = 5.0
WARN_EVERY = 60.0
DAY_MARGIN = timedelta(hours=1)  # a day's counts outlive it, for replicas with skewed clocks

ORG_QUOTA = "api_calls_per_day"
ACTOR_QUOTA = "api_calls_per_day_per_actor"

T = TypeVar("T")


class Count(NamedTuple):
    refused: str | None  # ORG_QUOTA, ACTOR_QUOTA, or None when the call was counted
    org_used: int
    actor_used: int


class Buckets(Protocol):
    async def take(self, key: str, rate: float, burst: int) -> float | None:
        """None when a token was taken, else the seconds until one is available."""
        ...


class DailyCalls(Protocol):
    async def count(
        self, day: date, org_id: str, actor_key: str, org_limit: int | None, actor_limit: int | None
    ) -> Count:
        """Count one call unless either limit is already reached; both checks and both
        increments happen together or not at all."""
        ...

    async def used(self, day: date, org_id: str) -> int: ...


class LocalBuckets:
    def __init__(self, max_keys: int = MAX_LOCAL_BUCKETS) -> None:
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    async def take(self, key: str, rate: float, burst: int) -> float | None:
        now = time.monotonic()
        tokens, at = self._buckets.pop(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - at) * rate)
        wait = None if tokens >= 1 else (1 - tokens) / rate
        self._buckets[key] = (tokens - 1 if wait is None else tokens, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)  # the least recently used, likely full again
        return wait


class LocalDailyCalls:
    def __init__(self) -> None:
        self._day: date | None = None
        self._orgs: dict[str, int] = {}
        self._actors: dict[tuple[str, str], int] = {}

    async def count(
        self, day: date, org_id: str, actor_key: str, org_limit: int | None, actor_limit: int | None
    ) -> Count:
        if day != self._day:  # a new day: forget the last one
            self._day, self._orgs, self._actors = day, {}, {}
        org = self._orgs.get(org_id, 0)
        actor = self._actors.get((org_id, actor_key), 0)
        if org_limit is not None and org >= org_limit:
            return Count(ORG_QUOTA, org, actor)
        if actor_limit is not None and actor >= actor_limit:
            return Count(ACTOR_QUOTA, org, actor)
        self._orgs[org_id] = org + 1
        self._actors[(org_id, actor_key)] = actor + 1
        return Count(None, org + 1, actor + 1)

    async def used(self, day: date, org_id: str) -> int:
        return self._orgs.get(org_id, 0) if day == self._day else 0


# Time in milliseconds (a double keeps sub-microsecond precision at that scale); the wait is
# returned in whole microseconds because Redis truncates Lua numbers to integers. A key left
# alone until its bucket would be full again expires: absent means full.
_TAKE_FUNCTION = """
local function take(key, rate, burst)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(state[1]) or burst
  local at = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
  local wait = 0
  if tokens >= 1 then
    tokens = tokens - 1
  else
    wait = math.ceil((1 - tokens) * 1000000 / rate)
  end
  redis.call('HSET', key, 'tokens', tokens, 'at', now)
  redis.call('PEXPIRE', key, math.ceil((burst - tokens) * 1000 / rate) + 1000)
  return wait
end
"""
_TAKE = _TAKE_FUNCTION + "return take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))"


class RedisBuckets:
    def __init__(self, redis: Redis, prefix: str = "one:bucket:") -> None:
        self.prefix = prefix
        self._take = redis.register_script(_TAKE)

    async def take(self, key: str, rate: float, burst: int) -> float | None:
        return _seconds(await self._take(keys=[self.prefix + key], args=[rate, burst]))


# Both limits are checked before either count moves, in one script, so a refused call is not
# counted and two replicas cannot both pass the last slot. A limit of -1 means none.
_COUNT_FUNCTION = """
local function count(org_key, actor_key, org_limit, actor_limit, ends)
  local org = tonumber(redis.call('GET', org_key) or '0')
  local actor = tonumber(redis.call('GET', actor_key) or '0')
  if org_limit >= 0 and org >= org_limit then return {1, org, actor} end
  if actor_limit >= 0 and actor >= actor_limit then return {2, org, actor} end
  org = redis.call('INCR', org_key)
  actor = redis.call('INCR', actor_key)
  redis.call('EXPIREAT', org_key, ends)
  redis.call('EXPIREAT', actor_key, ends)
  return {0, org, actor}
end
"""
_COUNT = (
    _COUNT_FUNCTION
    + "return count(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3])"
)
# A token first: a request refused for its rate is not counted. Answers {wait, count...}.
_ADMIT = (
    _TAKE_FUNCTION
    + _COUNT_FUNCTION
    + """
local wait = take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if wait > 0 then return {wait, 0, 0, 0} end
local counted = count(KEYS[2], KEYS[3], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5])
return {0, counted[1], counted[2], counted[3]}
"""
)
_REFUSALS = {0: None, 1: ORG_QUOTA, 2: ACTOR_QUOTA}


class RedisDailyCalls:
    def __init__(self, redis: Redis, prefix: str = "one:calls:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._count = redis.register_script(_COUNT)

    async def count(
        self, day: date, org_id: str, actor_key: str, org_limit: int | None, actor_limit: int | None
    ) -> Count:
        status, org, actor = await self._count(
            keys=self.keys(day, org_id, actor_key), args=self.args(day, org_limit, actor_limit)
        )
        return _count(status, org, actor)

    async def used(self, day: date, org_id: str) -> int:
        return int(await self._redis.get(self._key(day, org_id)) or 0)

    def keys(self, day: date, org_id: str, actor_key: str) -> list[str]:
        org_key = self._key(day, org_id)
        return [org_key, f"{org_key}:{actor_key}"]

    def args(self, day: date, org_limit: int | None, actor_limit: int | None) -> list[int]:
        ends = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC) + DAY_MARGIN
        limits = [-1 if limit is None else limit for limit in (org_limit, actor_limit)]
        return [*limits, int(ends.timestamp())]

    def _key(self, day: date, org_id: str) -> str:
        return f"{self._prefix}{day:%Y%m%d}:{org_id}"


class _Admissions(Protocol):
    async def admit(
        self,
        key: str,
        rate: float,
        burst: int,
        day: date,
        org_id: str,
        org_limit: int | None,
        actor_limit: int | None,
    ) -> float | Count:
        """A token from `key`'s bucket, then `key`'s call counted (`DailyCalls.count`): the
        seconds until a token when there was none (and nothing counted), else the count."""
        ...


class _LocalAdmissions(NamedTuple):
    buckets: LocalBuckets
    calls: LocalDailyCalls

    async def admit(
        self,
        key: str,
        rate: float,
        burst: int,
        day: date,
        org_id: str,
        org_limit: int | None,
        actor_limit: int | None,
    ) -> float | Count:
        wait = await self.buckets.take(key, rate, burst)
        if wait is not None:
            return wait
        return await self.calls.count(day, org_id, key, org_limit, actor_limit)


class _RedisAdmissions:
    """Both steps in one script: one round trip per request, not two."""

    def __init__(self, redis: Redis, buckets: RedisBuckets, calls: RedisDailyCalls) -> None:
        self._buckets = buckets
        self._calls = calls
        self._admit = redis.register_script(_ADMIT)

    async def admit(
        self,
        key: str,
        rate: float,
        burst: int,
        day: date,
        org_id: str,
        org_limit: int | None,
        actor_limit: int | None,
    ) -> float | Count:
        keys = [self._buckets.prefix + key, *self._calls.keys(day, org_id, key)]
        args = [rate, burst, *self._calls.args(day, org_limit, actor_limit)]
        micros, status, org, actor = await self._admit(keys=keys, args=args)
        wait = _seconds(micros)
        return wait if wait is not None else _count(status, org, actor)


def _seconds(micros: int) -> float | None:
    return int(micros) / 1_000_000 if micros else None


def _count(status: int, org: int, actor: int) -> Count:
    return Count(_REFUSALS[int(status)], int(org), int(actor))


class _Backend(NamedTuple):
    buckets: Buckets
    calls: DailyCalls
    admissions: _Admissions


class RateLimits:
    """Rate limits per actor and the daily calls per organization, in Redis when configured.

    Example:
        limits = RateLimits.from_url(settings.redis_url)
        await limits.enforce(f"person:{person_id}", rate=10, burst=50)  # RateLimitedError
        await limits.count_call(org_id, f"person:{person_id}", 100_000, 20_000)  # QuotaExceeded
        await limits.close()
    """

    def __init__(self, redis: Redis | None = None, *, where: str = "Redis") -> None:
        self._redis = redis
        self._where = where
        buckets, calls = LocalBuckets(), LocalDailyCalls()
        self._local = _Backend(buckets, calls, _LocalAdmissions(buckets, calls))
        self._shared = None
        if redis is not None:
            shared_buckets, shared_calls = RedisBuckets(redis), RedisDailyCalls(redis)
            self._shared = _Backend(
                shared_buckets,
                shared_calls,
                _RedisAdmissions(redis, shared_buckets, shared_calls),
            )
        self._retry_at = 0.0
        self._warned_at = -math.inf

    @classmethod
    def from_url(cls, redis_url: str | None) -> RateLimits:
        """Shared through the Redis at `redis_url`, or kept in this process for None."""
        if redis_url is None:
            return cls()
        redis = Redis.from_url(
            redis_url,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), 1),  # once, for a pooled connection Redis has dropped
        )
        return cls(redis, where=_without_password(redis_url))

    @property
    def shared(self) -> bool:
        """Whether limits are kept in Redis right now: configured, and not failed lately."""
        return self._shared is not None and time.monotonic() >= self._retry_at

    async def take(self, key: str, rate: float, burst: int) -> float | None:
        """Take a token from `key`'s bucket: None if there was one, else the seconds until
        there will be."""
        _check_bucket(rate, burst)
        return await self._run(lambda backend: backend.buckets.take(key, rate, burst))

    async def enforce(self, key: str, rate: float, burst: int) -> None:
        """Take a token, or raise `RateLimitedError` with `retryAfter` in whole seconds."""
        wait = await self.take(key, rate, burst)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            raise RateLimitedError(
                f"too many requests; try again in {seconds} s",
                retryAfter=seconds,
                limit=f"{rate:g} per second, bursts of {burst}",
            )

    async def count_call(
        self, org_id: str, actor_key: str, org_limit: int | None, actor_limit: int | None
    ) -> int:
        """Count one call of `actor_key` in `org_id` today (UTC) and return the organization's
        calls today; past either limit raise `QuotaExceededError` and count nothing."""
        today = datetime.now(UTC).date()
        count = await self._run(
            lambda backend: backend.calls.count(today, org_id, actor_key, org_limit, actor_limit)
        )
        return _counted(count, org_limit, actor_limit)

    async def admit(
        self,
        key: str,
        rate: float,
        burst: int,
        org_id: str,
        org_limit: int | None,
        actor_limit: int | None,
    ) -> int:
        """`enforce` then `count_call` for `key`, in one step (one round trip to Redis): a
        request refused for its rate is not counted. Returns the organization's calls today."""
        _check_bucket(rate, burst)
        today = datetime.now(UTC).date()
        admitted = await self._run(
            lambda backend: backend.admissions.admit(
                key, rate, burst, today, org_id, org_limit, actor_limit
            )
        )
        if not isinstance(admitted, Count):
            raise _rate_limited(admitted, rate, burst)
        return _counted(admitted, org_limit, actor_limit)

    async def used_today(self, org_id: str) -> int:
        """The organization's counted calls today (UTC)."""
        today = datetime.now(UTC).date()
        return await self._run(lambda backend: backend.calls.used(today, org_id))

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    async def _run(self, step: Callable[[_Backend], Awaitable[T]]) -> T:
        if self._shared is not None and self.shared:
            try:
                return await step(self._shared)
            except RedisError as exc:
                self._redis_failed(exc)
        return await step(self._local)

    def _redis_failed(self, exc: RedisError) -> None:
        now = time.monotonic()
        self._retry_at = now + REDIS_RETRY_AFTER
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(
                "rate limits: %s did not answer (%s: %s); counting in this process for now",
                self._where,
                type(exc).__name__,
                exc,
            )


def _check_bucket(rate: float, burst: int) -> None:
    if rate <= 0 or burst < 1:
        raise ValueError(f"a bucket needs rate > 0 and burst >= 1, not {rate} and {burst}")


def _rate_limited(wait: float, rate: float, burst: int) -> RateLimitedError:
    seconds = max(1, math.ceil(wait))
    return RateLimitedError(
        f"too many requests; try again in {seconds} s",
        retryAfter=seconds,
        limit=f"{rate:g} per second, bursts of {burst}",
    )


def _counted(count: Count, org_limit: int | None, actor_limit: int | None) -> int:
    """The organization's calls today, or the `QuotaExceededError` of a refused call."""
    if count.refused == ORG_QUOTA:
        raise QuotaExceededError(
            f"this organization has made its {org_limit} API calls for today (UTC)",
            quota=ORG_QUOTA,
            limit=org_limit,
            used=count.org_used,
        )
    if count.refused == ACTOR_QUOTA:
        raise QuotaExceededError(
            f"you have made your share, {actor_limit}, of this organization's API calls"
            " for today (UTC)",
            quota=ACTOR_QUOTA,
            limit=actor_limit,
            used=count.actor_used,
        )
    return count.org_used


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    host = f"{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
