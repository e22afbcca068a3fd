"""`make bench`: the gateway over real HTTP on the embedded store.

Starts `one-gateway serve` (one uvicorn worker) on a fresh data directory seeded with the demo
and 1,000 extra things (each with an owner and a connection), then drives it from this process
with a fixed number of concurrent clients. Reports requests per second, p50/p99 latency and
store queries per request (read from `/metrics`). Both processes share this machine's cores,
so the numbers are a floor, comparable between runs on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.auth import Authenticator  # noqa: E402
from gateway.demo import seed_demo  # noqa: E402
from gateway.settings import load_settings  # noqa: E402
from gateway.store import started_store  # noqa: E402
from providers.records import Kind, Role  # noqa: E402
from providers.refs import native_ref  # noqa: E402

NESTED = """query { things(type: "task", first: 100) { totalCount edges { node { id name
  owner { name } connections { relationshipType to { id ... on Thing { name } } } } } } }"""
ONE = "query($id: ID!) { thing(id: $id) { id name status properties } }"


async def seed(data_dir: Path, extra: int) -> tuple[str, list[str]]:
    settings = load_settings(data_dir=data_dir)
    async with started_store(settings) as store:
        owners = await seed_demo(store)
        acme = owners["acme"]
        owner_ref = native_ref(Kind.PERSON, acme.person_id)
        course = (await store.things.page(acme.org.id, _query("course"))).items[0]
        ids = []
        for i in range(extra):
            thing = await store.things.create(
                acme.org.id,
                actor_ref=owner_ref,
                type="task",
                name=f"Task {i}",
                properties={"estimate": i % 8, "labels": ["bench"]},
            )
            await store.connections.create(
                acme.org.id,
                actor_ref=owner_ref,
                from_ref=native_ref(Kind.THING, thing.id),
                to_ref=native_ref(Kind.THING, course.id),
                relationship_type="part_of",
            )
            ids.append(native_ref(Kind.THING, thing.id))
        auth = Authenticator(
            settings.jwt_secret_value(),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=3600,
        )
        token = auth.issue(person_id=acme.person_id, org_id=acme.org.id, role=Role.ORG_OWNER)
        return token, ids


def _query(type: str) -> Any:
    from providers.native import ThingQuery

    return ThingQuery(type=type, first=1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _store_queries(metrics: str) -> float:
    match = re.search(r"^one_store_queries_total\{[^}]*\} ([0-9.e+]+)$", metrics, re.M)
    assert match, "no store query counter in /metrics"
    return float(match.group(1))


async def drive(
    client: httpx.AsyncClient,
    make_body: Any,
    *,
    concurrency: int,
    requests: int | None = None,
    duration: float | None = None,
    warmup: int = 20,
    path: str = "/graphql",
) -> tuple[list[float], float]:
    """The load generator: `concurrency` clients POST `make_body()` to `path` on `client`,
    back to back, until `requests` were sent or `duration` seconds passed (after `warmup`
    requests one at a time). Every answer must be 200 without `errors`. Returns the sorted
    latencies in seconds and the elapsed time."""
    assert (requests is None) != (duration is None), "requests or duration"
    for _ in range(warmup):
        (await client.post(path, json=make_body())).raise_for_status()
    latencies: list[float] = []
    remaining = requests if requests is not None else -1
    deadline = time.perf_counter() + duration if duration is not None else None

    async def worker() -> None:
        nonlocal remaining
        while remaining != 0 and (deadline is None or time.perf_counter() < deadline):
            remaining -= 1
            started = time.perf_counter()
            response = await client.post(path, json=make_body())
            latencies.append(time.perf_counter() - started)
            body = response.json()
            assert response.status_code == 200 and "errors" not in body, body

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return latencies, elapsed


def summary(name: str, latencies: list[float], elapsed: float, concurrency: int) -> dict[str, Any]:
    return {
        "scenario": name,
        "requests": len(latencies),
        "concurrency": concurrency,
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1000, 2),
    }


def client(url: str, concurrency: int, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=url, headers=headers, limits=limits)


async def scenario(
    url: str, token: str, name: str, make_body: Any, *, requests: int, concurrency: int
) -> dict[str, Any]:
    async with client(url, concurrency, token) as c:
        for _ in range(20):  # warm up
            (await c.post("/graphql", json=make_body())).raise_for_status()
        before = _store_queries((await c.get("/metrics")).text)
        latencies, elapsed = await drive(
            c, make_body, concurrency=concurrency, requests=requests, warmup=0
        )
        after = _store_queries((await c.get("/metrics")).text)
    return {
        **summary(name, latencies, elapsed, concurrency),
        "store_queries_per_request": round((after - before) / len(latencies), 2),
    }


@contextmanager
def serving_gateway(data_dir: Path) -> Iterator[tuple[str, int]]:
    """`one-gateway serve` (one uvicorn worker; uvloop and httptools, which uvicorn picks when
    they are installed) on `data_dir`, with an actor rate limit it never reaches; yields its
    URL and process id once it is ready."""
    port = _free_port()
    env = {
        **os.environ,
        "ONE_DATA_DIR": str(data_dir),
        "ONE_PORT": str(port),
        "ONE_ACTOR_RATE": "1e9",
        "ONE_ACTOR_BURST": "1000000000",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url)
        yield url, server.pid
    finally:
        server.terminate()
        server.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--extra-things", type=int, default=1000)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="one-bench-"))
    token, ids = asyncio.run(seed(data_dir, args.extra_things))
    with serving_gateway(data_dir) as (url, _):
        results = asyncio.run(_run(url, token, ids, args.requests, args.concurrency))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print("| scenario | requests | concurrency | req/s | p50 ms | p99 ms | store queries/request |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['scenario']} | {r['requests']} | {r['concurrency']} | {r['rps']} | "
            f"{r['p50_ms']} | {r['p99_ms']} | {r['store_queries_per_request']} |"
        )


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the gateway did not become ready")


async def _run(
    url: str, token: str, ids: list[str], requests: int, concurrency: int
) -> list[dict[str, Any]]:
    one = await scenario(
        url,
        token,
        "thing(id)",
        lambda: {"query": ONE, "variables": {"id": random.choice(ids)}},
        requests=requests,
        concurrency=concurrency,
    )
    nested = await scenario(
        url,
        token,
        "things(first: 100) + owner + connections",
        lambda: {"query": NESTED},
        requests=max(requests // 10, 50),
        concurrency=concurrency,
    )
    return [one, nested]


if __name__ == "__main__":
    main()
