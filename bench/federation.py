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
from providers.native import ThingQuery  # noqa: E402
from providers.records import Kind, Role  # noqa: E402
from providers.refs import native_ref  # noqa: E402
from providers.registry import validate_config  # noqa: E402
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


async def main() -> None:
    with running_wordpress(Path(tempfile.mkdtemp())) as wp:
        with_loaders = await measure(wp, batching=True)
        with mock.patch.object(resolvers.loaders.Loaders, "_get", _unbatched):
            without = await measure(wp, batching=False)
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


if __name__ == "__main__":
    asyncio.run(main())
