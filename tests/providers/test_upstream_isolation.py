"""Two tenants, one gateway: acme's WordPress hangs under 100 concurrent requests while
globex's answers as fast as before.

The gateway runs in its own process (`one-gateway serve`), asked over real HTTP, so that the
test's own threads (the client, the two upstreams) do not share its interpreter lock. Both
windows are measured the same way, back to back. The shared outbound pool is smaller
than acme's load (40 connections for 100 requests), as it was with the single pool of 200
that 210 requests exhausted: without a bulkhead, globex would wait for a connection acme's
hanging requests hold. With one (20 per organization and provider), acme's requests beyond
its 20 wait for their own slots and fail at their deadline, and globex is untouched. The
breaker is set out of reach, so that the bulkhead alone is measured.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.auth import authenticator
from gateway.demo import seed_demo
from gateway.settings import Settings, load_settings
from gateway.store import open_store
from providers.records import Role
from providers.registry import validate_config
from tests.conftest import JWT_SECRET
from tests.faults import Fault, FaultServer, dead_url, fault_server

LOAD = 100
SAMPLES = 200
DEADLINE = 8.0
BULKHEAD = 20
HANG = DEADLINE + 1
QUEUEING = 2.5
SETTLE = 2.0  # after acme's bulkhead is full: time for the other 80 to reach their wait
QUERY = '{ things(type: "blog_post", first: 5) { totalCount edges { node { id name } } } }'


@dataclass
class Tenants:
    url: str
    tokens: dict[str, str]
    hanging: FaultServer
    healthy: FaultServer


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


@pytest.fixture
def tenants(tmp_path: Path) -> Iterator[Tenants]:
    values = {
        "env": "test",
        "data_dir": str(tmp_path),
        "jwt_secret": JWT_SECRET,
        "host": "127.0.0.1",
        "port": str(int(dead_url().rsplit(":", 1)[1])),
        "actor_rate": "10000",
        "actor_burst": "10000",
        "health_check_seconds": "0",
        "upstream_deadline_seconds": str(DEADLINE),
        "upstream_concurrency": str(BULKHEAD),
        "upstream_max_connections": str(2 * BULKHEAD),
        "upstream_breaker_failures": "10000",
        "upstream_breaker_min_calls": "10000",
    }
    settings = load_settings(**values)
    post = b'[{"id": 7, "type": "post", "title": {"rendered": "Hello"}, "status": "publish"}]'
    with (
        fault_server(Fault(delay=HANG)) as hanging,
        fault_server(Fault(body=post, headers={"X-WP-Total": "1"})) as healthy,
    ):
        tokens = asyncio.run(_seed(settings, {"acme": hanging.url, "globex": healthy.url}))
        env = {**os.environ, **{f"ONE_{k.upper()}": v for k, v in values.items()}}
        with _gateway_process(env, f"http://127.0.0.1:{settings.port}") as url:
            yield Tenants(url, tokens, hanging, healthy)


@contextmanager
def _gateway_process(env: dict[str, str], url: str) -> Iterator[str]:
    gateway = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise RuntimeError("the gateway did not start")
        yield url
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)


async def _seed(settings: Settings, sites: dict[str, str]) -> dict[str, str]:
    store = open_store(settings)
    await store.start()
    auth = authenticator(settings)
    tokens = {}
    try:
        await seed_demo(store)
        for slug, site in sites.items():
            org = await store.organizations.get_by_slug(slug)
            assert org is not None
            config = {"base_url": site, "timeout_seconds": DEADLINE * 2}
            await store.provider_configs.save(
                org.id,
                actor_ref=None,
                provider="wordpress",
                config=validate_config("wordpress", config, ["blog_post"]),
                routes=["blog_post"],
            )
            owner = next(m for m in await store.people.members(org.id) if m.role is Role.ORG_OWNER)
            tokens[slug] = auth.issue(person_id=owner.person_id, org_id=org.id, role=Role.ORG_OWNER)
    finally:
        await store.close()
    return tokens


async def test_a_hanging_tenant_leaves_the_other_untouched(tenants: Tenants) -> None:
    globex = {"Authorization": f"Bearer {tenants.tokens['globex']}"}
    acme = {"Authorization": f"Bearer {tenants.tokens['acme']}"}
    limits = httpx.Limits(max_connections=LOAD + 10)
    async with httpx.AsyncClient(base_url=tenants.url, timeout=30, limits=limits) as client:

        async def timed(headers: dict[str, str]) -> tuple[float, dict[str, object]]:
            started = time.perf_counter()
            response = await client.post("/graphql", json={"query": QUERY}, headers=headers)
            assert response.status_code == 200
            return time.perf_counter() - started, response.json()

        async def globex_latencies() -> list[float]:
            latencies = []
            for _ in range(SAMPLES):
                seconds, body = await timed(globex)
                assert "errors" not in body, body
                latencies.append(seconds)
            return latencies

        for _ in range(5):
            await timed(globex)  # warm: discovery, connections, the router
        baseline = await globex_latencies()

        load = [asyncio.create_task(timed(acme)) for _ in range(LOAD)]
        for _ in range(250):  # until acme's slots are all taken
            if tenants.hanging.api_requests() >= BULKHEAD:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(SETTLE)  # the other 80 reach their wait for a slot
        under_load = await globex_latencies()
        assert not any(task.done() for task in load)  # measured while acme hung throughout
        at_once = tenants.hanging.most_at_once
        answers = await asyncio.gather(*load)

    base, loaded = p99(baseline), p99(under_load)
    print(
        f"\nglobex p99: {base * 1000:.1f} ms alone, {loaded * 1000:.1f} ms with acme hanging "
        f"under {LOAD} requests (p50 {statistics.median(baseline) * 1000:.1f} -> "
        f"{statistics.median(under_load) * 1000:.1f} ms)"
    )
    assert loaded <= 2 * base, (base, loaded)
    # acme: every request answered, typed, within its deadline; its upstream saw no more
    # calls at once than its bulkhead allows (a waiter that got a slot late, with some of
    # its deadline left, may still have tried).
    assert at_once == BULKHEAD
    for seconds, body in answers:
        # Timed from the client: a hundred requests arriving at once queue in the gateway
        # before each one's deadline starts.
        assert seconds < DEADLINE + QUEUEING, seconds
        errors = body["errors"]
        assert (
            isinstance(errors, list) and errors[0]["extensions"]["code"] == "PROVIDER_UNAVAILABLE"
        )
