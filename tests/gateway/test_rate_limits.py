"""Rate limits and daily quotas: the same tests in this process and on a real Redis server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from redis.asyncio import Redis

from gateway import rate_limits
from gateway.rate_limits import (
    DailyCalls,
    LocalBuckets,
    LocalDailyCalls,
    RateLimits,
    RedisBuckets,
    RedisDailyCalls,
)
from providers.errors import QuotaExceededError, RateLimitedError
from tests.conftest import free_port

SLOW = 0.001  # tokens per second: no refill within a test


async def _emptied(redis_url: str) -> Redis:
    client = Redis.from_url(redis_url)
    await client.flushdb()
    return client


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = await _emptied(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(params=["local", "redis"])
async def limits(request: pytest.FixtureRequest) -> AsyncIterator[RateLimits]:
    if request.param == "local":
        yield RateLimits.from_url(None)
        return
    shared = RateLimits(await _emptied(request.getfixturevalue("redis_url")))
    yield shared
    await shared.close()
    assert shared.shared, "Redis failed during the test, so it ran on the local fallback"


def test_the_exported_names() -> None:
    assert sorted(rate_limits.__all__) == [
        "Buckets",
        "Count",
        "DailyCalls",
        "LocalBuckets",
        "LocalDailyCalls",
        "RateLimits",
        "RedisBuckets",
        "RedisDailyCalls",
    ]


# -- token buckets ------------------------------------------------------------------------


async def test_a_bucket_allows_its_burst_then_says_when(limits: RateLimits) -> None:
    assert [await limits.take("person:ada", 0.1, 5) for _ in range(5)] == [None] * 5
    wait = await limits.take("person:ada", 0.1, 5)
    assert wait is not None and 0 < wait <= 10


async def test_a_bucket_refills_at_its_rate_up_to_its_burst(limits: RateLimits) -> None:
    assert await limits.take("key:k1", 10, 2) is None
    assert await limits.take("key:k1", 10, 2) is None
    wait = await limits.take("key:k1", 10, 2)
    assert wait is not None and 0 < wait <= 0.1 + 1e-6
    await asyncio.sleep(wait + 0.01)
    assert await limits.take("key:k1", 10, 2) is None
    await asyncio.sleep(0.5)  # long enough for 5 tokens, but a bucket holds 2
    waits = [await limits.take("key:k1", 10, 2) for _ in range(3)]
    assert waits[:2] == [None, None] and waits[2] is not None


async def test_buckets_of_different_keys_are_independent(limits: RateLimits) -> None:
    assert await limits.take("ip:10.0.0.1", SLOW, 1) is None
    assert await limits.take("ip:10.0.0.1", SLOW, 1) is not None
    assert await limits.take("ip:10.0.0.2", SLOW, 1) is None
    assert await limits.take("person:10.0.0.1", SLOW, 1) is None


async def test_concurrent_takes_allow_exactly_the_burst(limits: RateLimits) -> None:
    waits = await asyncio.gather(*(limits.take("ip:flood", SLOW, 10) for _ in range(50)))
    assert sum(wait is None for wait in waits) == 10


async def test_enforce_raises_with_whole_seconds_to_wait(limits: RateLimits) -> None:
    await limits.enforce("person:bo", 0.5, 1)
    with pytest.raises(RateLimitedError) as refused:
        await limits.enforce("person:bo", 0.5, 1)
    assert refused.value.code == "RATE_LIMITED"
    assert refused.value.extensions == {"retryAfter": 2, "limit": "0.5 per second, bursts of 1"}
    await limits.enforce("person:cy", 100, 1)
    with pytest.raises(RateLimitedError) as soon:
        await limits.enforce("person:cy", 100, 1)
    assert soon.value.extensions["retryAfter"] == 1  # never 0: HTTP's Retry-After is whole


async def test_a_bucket_needs_a_positive_rate_and_burst(limits: RateLimits) -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        await limits.take("ip:x", 0, 1)
    with pytest.raises(ValueError, match="burst >= 1"):
        await limits.take("ip:x", 1, 0)


# -- daily calls --------------------------------------------------------------------------


async def test_an_actor_past_its_share_is_refused_while_others_pass(limits: RateLimits) -> None:
    for used in (1, 2, 3):
        assert await limits.count_call("org1", "person:a", 10, 3) == used
    with pytest.raises(QuotaExceededError) as refused:
        await limits.count_call("org1", "person:a", 10, 3)
    assert refused.value.extensions == {
        "quota": "api_calls_per_day_per_actor",
        "limit": 3,
        "used": 3,
    }
    assert await limits.count_call("org1", "person:b", 10, 3) == 4
    assert await limits.count_call("org1", "key:k9", 10, 3) == 5


async def test_the_organization_limit_refuses_everyone(limits: RateLimits) -> None:
    for actor in ("person:a", "person:b", "ip:1.2.3.4"):
        await limits.count_call("org1", actor, 3, 2)
    for actor in ("person:a", "person:c"):
        with pytest.raises(QuotaExceededError) as refused:
            await limits.count_call("org1", actor, 3, 2)
        assert refused.value.extensions == {"quota": "api_calls_per_day", "limit": 3, "used": 3}
    assert await limits.count_call("org2", "person:a", 3, 2) == 1  # another organization


async def test_a_refused_call_is_not_counted(limits: RateLimits) -> None:
    await limits.count_call("org1", "person:a", 4, 1)
    for _ in range(3):
        with pytest.raises(QuotaExceededError):
            await limits.count_call("org1", "person:a", 4, 1)
    assert await limits.used_today("org1") == 1
    for actor in ("person:b", "person:c", "person:d"):
        await limits.count_call("org1", actor, 4, 1)  # the refusals took no one's slot
    assert await limits.used_today("org1") == 4


async def test_used_today_counts_per_organization(limits: RateLimits) -> None:
    assert await limits.used_today("org1") == 0
    for _ in range(3):
        await limits.count_call("org1", "person:a", None, None)
    await limits.count_call("org2", "person:a", None, None)
    assert await limits.used_today("org1") == 3
    assert await limits.used_today("org2") == 1


async def test_concurrent_calls_cannot_both_pass_the_last_slot(limits: RateLimits) -> None:
    async def call(n: int) -> bool:
        try:
            await limits.count_call("org1", f"person:{n % 3}", 7, None)
        except QuotaExceededError:
            return False
        return True

    passed = await asyncio.gather(*(call(n) for n in range(30)))
    assert sum(passed) == 7
    assert await limits.used_today("org1") == 7


@pytest.fixture(params=["local", "redis"])
async def daily_calls(request: pytest.FixtureRequest) -> AsyncIterator[DailyCalls]:
    if request.param == "local":
        yield LocalDailyCalls()
        return
    redis = await _emptied(request.getfixturevalue("redis_url"))
    yield RedisDailyCalls(redis)
    await redis.aclose()


async def test_each_utc_day_starts_from_zero(daily_calls: DailyCalls) -> None:
    monday, tuesday = date(2030, 1, 7), date(2030, 1, 8)
    await daily_calls.count(monday, "org1", "person:a", 1, None)
    assert (await daily_calls.count(monday, "org1", "person:a", 1, None)).refused
    tuesdays = await daily_calls.count(tuesday, "org1", "person:a", 1, None)
    assert tuesdays.refused is None and tuesdays.org_used == 1
    assert await daily_calls.used(tuesday, "org1") == 1


# -- in this process ----------------------------------------------------------------------


async def test_local_buckets_forget_the_least_recently_used_past_their_cap() -> None:
    buckets = LocalBuckets(max_keys=100)
    assert await buckets.take("ip:first", SLOW, 1) is None
    assert await buckets.take("ip:first", SLOW, 1) is not None
    for n in range(100):
        await buckets.take(f"ip:{n}", SLOW, 1)
    assert await buckets.take("ip:first", SLOW, 1) is None  # forgotten, so full again
    assert await buckets.take("ip:99", SLOW, 1) is not None  # recent ones are remembered


# -- in Redis -----------------------------------------------------------------------------


async def test_two_replicas_share_one_bucket(redis_url: str, redis: Redis) -> None:
    first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
    replicas = [RedisBuckets(first), RedisBuckets(second)]
    try:
        waits = [await replicas[n % 2].take("person:ada", SLOW, 4) for n in range(6)]
    finally:
        await first.aclose()
        await second.aclose()
    assert waits[:4] == [None] * 4
    assert all(wait is not None and wait > 0 for wait in waits[4:])


async def test_two_replicas_share_one_daily_count(redis_url: str, redis: Redis) -> None:
    replicas = [RateLimits.from_url(redis_url), RateLimits.from_url(redis_url)]

    async def call(n: int) -> bool:
        try:
            await replicas[n % 2].count_call("org1", f"person:{n % 4}", 9, None)
        except QuotaExceededError:
            return False
        return True

    try:
        passed = await asyncio.gather(*(call(n) for n in range(40)))
        assert sum(passed) == 9
        assert [await r.used_today("org1") for r in replicas] == [9, 9]
        assert all(r.shared for r in replicas)
    finally:
        for replica in replicas:
            await replica.close()


async def test_redis_keys_expire_when_no_longer_needed(redis: Redis) -> None:
    limits = RateLimits(redis)
    await limits.take("ip:9.9.9.9", 2, 10)
    bucket_ttl = await redis.pttl("one:bucket:ip:9.9.9.9")
    assert 0 < bucket_ttl <= 1000 * (1 / 2 + 1) + 1  # until one token is back, and a second
    await limits.count_call("org1", "person:a", None, None)
    today = datetime.now(UTC).date()
    org_key = f"one:calls:{today:%Y%m%d}:org1"
    assert await redis.get(org_key) == b"1"
    assert await redis.get(f"{org_key}:person:a") == b"1"
    end_of_day = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC)
    for key in (org_key, f"{org_key}:person:a"):
        expires = await redis.expiretime(key)
        assert expires == int((end_of_day + timedelta(hours=1)).timestamp())


async def test_when_redis_is_down_limits_fail_open_and_count_here(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limits = RateLimits.from_url(f"redis://:s3cret-pass@127.0.0.1:{free_port()}/0?password=x")
    caplog.set_level(logging.WARNING, logger="one.rate_limits")
    started = time.monotonic()
    try:
        assert [await limits.take("person:ada", SLOW, 2) for _ in range(2)] == [None, None]
        assert await limits.take("person:ada", SLOW, 2) is not None  # this replica's own brake
        assert await limits.count_call("org1", "person:a", 5, None) == 1
        assert await limits.used_today("org1") == 1
    finally:
        await limits.close()
    assert time.monotonic() - started < 3
    assert not limits.shared
    warnings = [r for r in caplog.records if r.name == "one.rate_limits"]
    assert len(warnings) == 1, "one warning, then quiet for a minute"
    assert "redis://127.0.0.1:" in caplog.text and "counting in this process" in caplog.text
    assert "s3cret" not in caplog.text and "password" not in caplog.text
