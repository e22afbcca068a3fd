"""The hot path: what one request costs, and that what it keeps between requests is never
trusted past a change of access or configuration (at once in the process that made it,
within a second in any other)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from gateway.access import Access
from gateway.expiring import SharedReads
from gateway.rate_limits import RateLimits
from providers.engine import Row
from providers.errors import QuotaExceededError, RateLimitedError, UnauthenticatedError
from providers.records import Role
from resolvers.context import Actor
from tests.conftest import Api
from tests.gateway.test_api_keys import CREATE as CREATE_KEY
from tests.gateway.test_api_keys import with_key
from tests.processes import Gateway, seed, token
from tests.resolvers.test_organizations import ADD_MEMBER
from tests.resolvers.test_provider_settings import configure
from tests.wordpress import WordPress

ME = "{ me { role } }"
MEMBERS = "{ organization { members { role person { id email } } } }"
REMOVE = "mutation($id: ID!) { removeMember(personId: $id) }"
REVOKE = "mutation($id: ID!) { revokeApiKey(id: $id) { id } }"
ONE = "query($id: ID!) { thing(id: $id) { id name status properties } }"


def _code(body: dict[str, Any]) -> str | None:
    errors = body.get("errors") or [{}]
    code: str | None = errors[0].get("extensions", {}).get("code")
    return code


def _person(api: Api, email: str) -> str:
    members = api.data(MEMBERS)["organization"]["members"]
    return str(next(m["person"]["id"] for m in members if m["person"]["email"] == email))


# -- in this process: at once --------------------------------------------------------------


def test_a_removed_member_is_refused_on_the_next_request(api: Api) -> None:
    uma = api.token(role=Role.ORG_USER)
    assert api.data(ME, token=uma)["me"]["role"] == "ORG_USER"  # now kept for a second
    api.data(REMOVE, {"id": _person(api, "uma@acme.example")})
    assert _code(api.post(ME, token=uma)) == "UNAUTHENTICATED"


def test_a_role_change_takes_effect_on_the_next_request(api: Api) -> None:
    uma = api.token(role=Role.ORG_USER)
    assert api.data(ME, token=uma)["me"]["role"] == "ORG_USER"
    api.data(REMOVE, {"id": _person(api, "uma@acme.example")})
    assert _code(api.post(ME, token=uma)) == "UNAUTHENTICATED"  # the refusal is kept too ...
    member = {"email": "uma@acme.example", "name": "Uma", "role": "CUSTOMER"}
    api.data(ADD_MEMBER, {"input": member})
    assert api.data(ME, token=uma)["me"]["role"] == "CUSTOMER"  # ... and forgotten as well


def test_a_revoked_key_is_refused_on_the_next_request(api: Api) -> None:
    created = api.data(CREATE_KEY, {"name": "Partner", "role": "ORG_USER"})["createApiKey"]
    assert with_key(api, ME, created["secret"])["data"]["me"]["role"] == "ORG_USER"
    api.data(REVOKE, {"id": created["apiKey"]["id"]})
    assert _code(with_key(api, ME, created["secret"])) == "UNAUTHENTICATED"


def test_configure_provider_routes_the_next_request(api: Api, wordpress: WordPress) -> None:
    posts = '{ things(type: "blog_post") { totalCount } }'
    assert api.data(posts)["things"]["totalCount"] == 3  # native, and its routes now kept
    assert "errors" not in configure(api, wordpress)
    assert api.data(posts)["things"]["totalCount"] >= 60  # WordPress's


# -- what a request costs ------------------------------------------------------------------


def _store_queries(api: Api) -> float:
    metrics = api.client.get("/metrics").text
    match = re.search(r"^one_store_queries_total\{[^}]*\} ([0-9.e+]+)$", metrics, re.M)
    assert match, "no store query counter in /metrics"
    return float(match.group(1))


def test_thing_by_id_costs_one_store_query(api: Api) -> None:
    edges = api.data("{ things(first: 20) { edges { node { id } } } }")["things"]["edges"]
    ids = [e["node"]["id"] for e in edges]
    api.data(ONE, {"id": ids[0]})
    before = _store_queries(api)
    for id in ids:
        assert api.data(ONE, {"id": id})["thing"]["id"] == id
    # The thing itself; its actor and the organization's plan are kept (it was 2: the
    # membership was read on every request).
    assert _store_queries(api) - before <= len(ids)


def test_routes_are_read_once_for_a_burst(api: Api) -> None:
    page = '{ things(type: "course", first: 2) { totalCount edges { node { name } } } }'
    api.data(page)
    before = _store_queries(api)
    for _ in range(10):
        api.data(page)
    # The page and its count; the routes at most once more (their second may end meanwhile).
    assert _store_queries(api) - before <= 10 * 2 + 1


# -- another process: within a second ------------------------------------------------------


def _refused_within(gateway: Gateway, ask: Callable[[], dict[str, Any]]) -> float:
    started = time.monotonic()
    while _code(ask()) != "UNAUTHENTICATED":
        assert time.monotonic() - started < 5, "still accepted after 5 s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_another_process_refuses_within_a_second(tmp_path: Path, redis_url: str) -> None:
    seed(tmp_path)
    owner, uma = token(tmp_path), token(tmp_path, role="org_user")
    one, other = Gateway(tmp_path, redis_url), Gateway(tmp_path, redis_url)
    one.start()
    try:
        other.start()
        members = one.graphql(owner, MEMBERS)["data"]["organization"]["members"]  # type: ignore[index]
        person = next(m["person"]["id"] for m in members if m["role"] == "ORG_USER")
        created = one.graphql(owner, CREATE_KEY, {"name": "Partner", "role": "ORG_USER"})
        key = created["data"]["createApiKey"]  # type: ignore[index]

        def with_other_key() -> dict[str, Any]:
            answer = httpx.post(
                f"{other.url}/graphql", json={"query": ME}, headers={"X-API-Key": key["secret"]}
            )
            body: dict[str, Any] = answer.json()
            return body

        # Both credentials checked, and so kept, by the other process.
        assert other.graphql(uma, ME)["data"] == {"me": {"role": "ORG_USER"}}
        assert with_other_key()["data"] == {"me": {"role": "ORG_USER"}}

        assert one.graphql(owner, REMOVE, {"id": person})["data"] == {"removeMember": True}
        assert _code(one.graphql(uma, ME)) == "UNAUTHENTICATED"  # here at once
        assert _refused_within(other, lambda: other.graphql(uma, ME)) < 1.5

        member = {"email": "uma@acme.example", "name": "Uma", "role": "CUSTOMER"}
        assert "errors" not in one.graphql(owner, ADD_MEMBER, {"input": member})
        started = time.monotonic()
        while other.graphql(uma, ME).get("data") != {"me": {"role": "CUSTOMER"}}:
            assert time.monotonic() - started < 1.5, "the role change did not arrive"
            time.sleep(0.05)

        assert "errors" not in one.graphql(owner, REVOKE, {"id": key["apiKey"]["id"]})
        assert _refused_within(other, with_other_key) < 1.5
    finally:
        one.stop()
        other.stop()


# -- the pieces ----------------------------------------------------------------------------


class _Auth:
    """Stands in for the Authenticator: counts its checks, answers what it is told."""

    def __init__(self) -> None:
        self.checks = 0
        self.answer: tuple[Actor | UnauthenticatedError, float] = (
            Actor(org_id="o", role=Role.ORG_USER, person_id="p"),
            time.time() + 3600,
        )
        self.gate: asyncio.Event | None = None

    async def identify(self, *_: Any) -> tuple[Actor | UnauthenticatedError, float]:
        self.checks += 1
        if self.gate is not None:
            await self.gate.wait()
        return self.answer


class _Engine:
    def __init__(self) -> None:
        self.listeners: list[Callable[[Row], None]] = []

    def on_commit(self, table: str, listener: Callable[[Row], None]) -> None:
        self.listeners.append(listener)

    def commit(self, type: str) -> None:
        for listener in self.listeners:
            listener({"type": type, "org_id": "o"})


def _access(auth: _Auth, ttl: float = 60.0) -> tuple[Access, _Engine]:
    engine = _Engine()
    return Access(auth, SimpleNamespace(engine=engine), ttl=ttl), engine  # type: ignore[arg-type]


CREDENTIALS = ("Bearer t", None, None)


async def test_one_check_serves_a_burst_and_an_access_event_forgets_it() -> None:
    auth = _Auth()
    auth.gate = asyncio.Event()
    access, engine = _access(auth)
    burst = [asyncio.ensure_future(access.actor(CREDENTIALS)) for _ in range(20)]
    await asyncio.sleep(0)
    auth.gate.set()
    assert {(await a) for a in burst} == {auth.answer[0]} and auth.checks == 1
    engine.commit("thing_created")  # not about access
    await access.actor(CREDENTIALS)
    assert auth.checks == 1
    engine.commit("user_left_org")
    await access.actor(CREDENTIALS)
    assert auth.checks == 2
    await access.actor(CREDENTIALS, since=7)  # a subscriber told of access event 7
    await access.actor(CREDENTIALS, since=7)
    assert auth.checks == 3


async def test_answers_are_kept_for_the_ttl_only() -> None:
    auth = _Auth()
    access, _ = _access(auth, ttl=0.05)
    await access.actor(CREDENTIALS)
    await access.actor(CREDENTIALS)
    await asyncio.sleep(0.06)
    await access.actor(CREDENTIALS)
    assert auth.checks == 2


async def test_a_kept_actor_is_refused_once_its_token_expires() -> None:
    auth = _Auth()
    auth.answer = (auth.answer[0], time.time() + 0.05)
    access, _ = _access(auth)
    assert isinstance(await access.actor(CREDENTIALS), Actor)
    await asyncio.sleep(0.06)
    expired = await access.actor(CREDENTIALS)
    assert isinstance(expired, UnauthenticatedError) and auth.checks == 1


async def test_each_request_gets_its_own_refusal() -> None:
    auth = _Auth()
    auth.answer = (UnauthenticatedError("no"), float("inf"))
    access, _ = _access(auth)
    first, second = await access.actor(CREDENTIALS), await access.actor(CREDENTIALS)
    assert isinstance(first, UnauthenticatedError) and first is not second
    assert first.message == second.message == "no" and auth.checks == 1


async def test_a_failed_read_is_not_kept_and_a_gone_caller_cancels_nothing() -> None:
    reads: SharedReads[str, int] = SharedReads(ttl=60)
    calls = 0

    async def failing() -> int:
        nonlocal calls
        calls += 1
        raise ConnectionError("the store is away")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            await reads.get("k", failing)
    assert calls == 2

    gate = asyncio.Event()

    async def slow() -> int:
        await gate.wait()
        return 42

    gone = asyncio.ensure_future(reads.get("k", slow))
    stays = asyncio.ensure_future(reads.get("k", slow))
    await asyncio.sleep(0)
    gone.cancel()
    gate.set()
    assert await stays == 42


# -- a request's token and call, in one step ------------------------------------------------


@pytest.fixture(params=["local", "redis"])
async def limits(request: pytest.FixtureRequest) -> AsyncIterator[RateLimits]:
    if request.param == "local":
        yield RateLimits.from_url(None)
        return
    redis = Redis.from_url(request.getfixturevalue("redis_url"))
    await redis.flushdb()
    shared = RateLimits(redis)
    yield shared
    await shared.close()
    assert shared.shared, "Redis failed during the test, so it ran on the local fallback"


async def test_admit_counts_the_calls_it_lets_through(limits: RateLimits) -> None:
    assert [await limits.admit("person:a", 0.001, 3, "org1", 10, 5) for _ in range(3)] == [1, 2, 3]
    with pytest.raises(RateLimitedError) as refused:
        await limits.admit("person:a", 0.001, 3, "org1", 10, 5)
    assert refused.value.extensions["retryAfter"] >= 1
    assert await limits.used_today("org1") == 3  # the request refused for its rate: not counted


async def test_admit_refuses_past_a_quota_without_counting(limits: RateLimits) -> None:
    await limits.admit("person:a", 1000, 100, "org1", 3, 1)
    with pytest.raises(QuotaExceededError) as refused:
        await limits.admit("person:a", 1000, 100, "org1", 3, 1)
    assert refused.value.extensions["quota"] == "api_calls_per_day_per_actor"
    await limits.admit("person:b", 1000, 100, "org1", 3, 1)
    await limits.admit("person:c", 1000, 100, "org1", 3, 1)
    with pytest.raises(QuotaExceededError) as refused:
        await limits.admit("person:d", 1000, 100, "org1", 3, 1)
    assert refused.value.extensions["quota"] == "api_calls_per_day"
    assert await limits.used_today("org1") == 3
