"""`make bench` (part 2): a nested 50-post query over a real WordPress, with and without
DataLoaders.

Provisions the stock WordPress the tests use (Debian package, PHP's server, MariaDB), routes
acme's blog posts to it, gives each post a native owner and a connection to a native course,
then runs the query through the gateway (in process, upstream over real HTTP) with the
per-request DataLoaders as they are, and with batching and caching switched off (one upstream
call per lookup, what resolvers without loaders would do). WordPress requests are counted by
WordPress's own server.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import resolvers.loaders  # noqa: E402
from gateway.app import create_app  # noqa: E402
from gateway.demo import seed_demo  # noqa: E402
from gateway.settings import load_settings  # noqa: E402
from providers.configuration import configure  # noqa: E402
from providers.native import EventQuery, ThingQuery  # noqa: E402
from providers.records import Kind, Role  # noqa: E402
from providers.refs import native_ref  # noqa: E402
from providers.registry import validate_config  # noqa: E402
from tests.backends import ALL_FOUR, FLAT, four_backends, route_and_connect  # noqa: E402
from tests.emulators import Fault  # noqa: E402
from tests.wordpress import WordPress, running_wordpress  # noqa: E402

QUERY = """{ things(type: "blog_post", first: 50, status: PUBLISHED) { edges { node { name
  owner { name } connections { relationshipType to { ... on Thing { name provider } } } } } } }"""
RUNS = 20


async def measure(wp: WordPress, batching: bool) -> dict[str, Any]:
    app = create_app(load_settings(data_dir=Path(tempfile.mkdtemp())))
    store = app.state.store
    async with app.router.lifespan_context(app):
        acme = (await seed_demo(store))["acme"]
        routes = ["blog_post", "page"]
        await store.provider_configs.save(
            acme.org.id,
            actor_ref=None,
            provider="wordpress",
            config=validate_config("wordpress", wp.config(), routes),
            routes=routes,
        )
        owner = native_ref(Kind.PERSON, acme.person_id)
        course = (await store.things.page(acme.org.id, ThingQuery(type="course"))).items[0]
        for wp_id in wp.seed["posts"]["publish"] + wp.seed["posts"]["private"]:
            post = f"thing.wordpress.post-{wp_id}"
            for a, b, kind in (
                (owner, post, "owns"),
                (post, native_ref(Kind.THING, course.id), "references"),
            ):
                await store.connections.create(
                    acme.org.id, actor_ref=None, from_ref=a, to_ref=b, relationship_type=kind
                )
        token = app.state.auth.issue(
            person_id=acme.person_id, org_id=acme.org.id, role=Role.ORG_OWNER
        )
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gw", headers=headers
        ) as client:
            await client.post("/graphql", json={"query": QUERY})  # discovery, warm-up
            latencies, requests, queries = [], [], []
            for _ in range(RUNS):
                before_wp, before_store = wp.requests(), store.engine.queries
                started = time.perf_counter()
                body = (await client.post("/graphql", json={"query": QUERY})).json()
                latencies.append(time.perf_counter() - started)
                assert "errors" not in body and len(body["data"]["things"]["edges"]) == 50, body
                requests.append(wp.requests() - before_wp)
                queries.append(store.engine.queries - before_store)
    return {
        "loaders": "on" if batching else "off",
        "wordpress_requests": statistics.median(requests),
        "store_queries": statistics.median(queries),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
    }


def _unbatched(self: Any, key: Any, fn: Any, max_batch: int = 1) -> Any:
    # What resolvers without DataLoaders do: every lookup its own call, nothing remembered.
    return resolvers.loaders.DataLoader(batch_load_fn=fn, batch=False, cache=False)


async def across_four(wp: WordPress) -> dict[str, Any]:
    """The four-backend query: latency with every upstream 50 ms slower, and requests."""
    app = create_app(load_settings(data_dir=Path(tempfile.mkdtemp())))
    store = app.state.store
    async with app.router.lifespan_context(app):
        acme = (await seed_demo(store))["acme"]
        with four_backends(wp) as backends:
            await route_and_connect(store, acme.org.id, backends)
            token = app.state.auth.issue(
                person_id=acme.person_id, org_id=acme.org.id, role=Role.ORG_OWNER
            )
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://gw",
                headers={"Authorization": f"Bearer {token}"},
            ) as client:

                async def run(query: str, runs: int = 9) -> tuple[float, dict[str, int]]:
                    await client.post("/graphql", json={"query": query})
                    latencies, spent = [], {}
                    for _ in range(runs):
                        # Spaced so that Notion's limiter (3/s) has refilled: this measures
                        # latency, not how fast one integration may ask.
                        await asyncio.sleep(0.7)
                        before = backends.requests()
                        started = time.perf_counter()
                        body = (await client.post("/graphql", json={"query": query})).json()
                        latencies.append(time.perf_counter() - started)
                        assert "errors" not in body, body
                        spent = {k: v - before[k] for k, v in backends.requests().items()}
                    return statistics.median(latencies) * 1000, spent

                base, _ = await run(FLAT)
                _, requests = await run(ALL_FOUR, runs=1)
                backends.shopify.fault = Fault(delay=0.05)
                backends.notion.fault = Fault(delay=0.05)
                with wp.delayed(50):
                    delayed, _ = await run(FLAT)
                    nested, _ = await run(ALL_FOUR, runs=3)
    return {
        "base_ms": round(base, 1),
        "delayed_ms": round(delayed, 1),
        "nested_delayed_ms": round(nested, 1),
        "requests": requests,
    }


async def switch(wp: WordPress, runs: int = 5) -> list[float]:
    """configureProvider's whole step (validate, connection test, seal, save, reroute), timed
    as its settings_updated event records it."""
    app = create_app(load_settings(data_dir=Path(tempfile.mkdtemp())))
    store = app.state.store
    async with app.router.lifespan_context(app):
        acme = (await seed_demo(store))["acme"]
        pool = app.state.providers
        durations = []
        for _ in range(runs):
            await configure(
                store,
                pool.client,
                pool.sealer,
                org_id=acme.org.id,
                actor_ref=None,
                provider="wordpress",
                config=wp.config(),
                routes=["blog_post", "page"],
            )
            events = await store.events.page(acme.org.id, EventQuery(type="settings_updated"))
            durations.append(float(events.items[0].metadata["duration_ms"]))
    return durations


async def main() -> None:
    with running_wordpress(Path(tempfile.mkdtemp())) as wp:
        switches = await switch(wp)
        with_loaders = await measure(wp, batching=True)
        with mock.patch.object(resolvers.loaders.Loaders, "_get", _unbatched):
            without = await measure(wp, batching=False)
        four = await across_four(wp)
    print(
        f"\nNested query: 50 WordPress posts, each with its native owner and connections "
        f"({RUNS} runs, median)"
    )
    print("| DataLoaders | WordPress requests | store queries | p50 ms | max ms |")
    print("|---|---|---|---|---|")
    for r in (with_loaders, without):
        print(
            f"| {r['loaders']} | {r['wordpress_requests']} | {r['store_queries']} | "
            f"{r['p50_ms']} | {r['max_ms']} |"
        )
    print(
        f"\nconfigureProvider (WordPress, connection test included), {len(switches)} runs: "
        f"median {statistics.median(switches):.0f} ms, max {max(switches):.0f} ms "
        "(the target: under 30 s)"
    )
    print("\nOne query across native, WordPress, Shopify and Notion (median)")
    print("| query | no delay ms | each upstream +50 ms | upstream requests per query |")
    print("|---|---|---|---|")
    print(f"| four lists | {four['base_ms']} | {four['delayed_ms']} | 1 per provider |")
    requests = ", ".join(f"{k} {v}" for k, v in four["requests"].items())
    print(f"| four lists + connections' far ends | | {four['nested_delayed_ms']} | {requests} |")


if __name__ == "__main__":
    asyncio.run(main())
