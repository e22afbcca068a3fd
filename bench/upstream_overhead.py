"""`make bench` (part 4): the gateway's overhead over its upstream calls, on the four-backend
query.

Runs the real WordPress the tests use and the Shopify and Notion emulators (threads of this
process, on loopback, as `tests/backends.py` sets them up), routes acme's blog posts, products
and documents to them on a fresh embedded store with the demo, and starts the gateway as
`one-gateway serve` does (one uvicorn worker, in a subprocess). Then it sends `ALL_FOUR`
(native courses, WordPress posts, Shopify products and Notion documents, each with its
connections' far ends) one request at a time, so that every upstream call belongs to exactly
one request. Requests are spaced so that the gateway's Notion limiter (3/s) never has to wait:
this measures latency, not how fast one integration may ask.

Per request:
- latency: end to end, as this client sees it (sending the request to reading its last byte);
- upstream calls: each one's interval as the gateway measures it for its histogram
  `one_upstream_request_seconds{provider}` (the upstream client's `_timed` step: build the
  request, send it, read the body; pacing, bulkhead waits and reading the answer into records
  count as the gateway's). The serving process records `(provider, start, end)` of each
  observation. `time.perf_counter` is CLOCK_MONOTONIC on Linux, one clock for both processes,
  so each call falls inside one request's window. At the end, the recorded calls must match
  the count and sum of the histogram on `/metrics`;
- upstream time: how long at least one upstream call was in flight (the union of the
  intervals). The calls of one request run concurrently (the lists together, the far ends as
  soon as their ids are known), so their sum would count the same wait twice or more;
- overhead = latency - upstream time: the time the client waited while no upstream was
  working for it, the gateway's "self time" as a trace viewer shows it: before the first call,
  between calls, after the last answer, and the HTTP between client and gateway. "Inside the
  app" puts the gateway's own `one_http_request_seconds` (read from `/metrics` after each
  request) in place of the latency. Gateway work that overlaps an upstream call is hidden by
  it and not counted: it costs the client nothing.
- for comparison, latency minus the longest chain of calls that do not overlap. It is
  pessimistic here: PHP's built-in server answers one request at a time, so the second
  WordPress call waits in WordPress's queue while the first is served; the two overlap, only
  one of them counts, and the time WordPress spent on the other is charged to the gateway;
- and the floor any request pays on this machine: `GET /healthz` end to end (uvicorn, the
  middleware, httpx on both ends), one after each query.

Reported: p50 and p99 over the requests, the upstream calls per request, and whether the p99
overhead is under the 10 ms target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import _free_port, _wait_ready  # noqa: E402
from gateway.app import create_app  # noqa: E402
from gateway.auth import Authenticator  # noqa: E402
from gateway.demo import seed_demo  # noqa: E402
from gateway.metrics import Metrics  # noqa: E402
from gateway.settings import load_settings  # noqa: E402
from gateway.store import started_store  # noqa: E402
from providers.records import Role  # noqa: E402
from tests.backends import ALL_FOUR, FLAT, Backends, four_backends, route_and_connect  # noqa: E402
from tests.wordpress import running_wordpress  # noqa: E402

TARGET_MS = 10.0
WARM_UP = 10
NOTION_PER_SECOND = 3.0  # the gateway's limiter, at most what Notion allows
Call = tuple[str, float, float]  # provider, start, end (perf_counter seconds)


def serve(data_dir: Path, port: int, calls: Path) -> None:
    """The gateway as `one-gateway serve` runs it, recording each upstream call's interval
    where it feeds the histogram; written to `calls` when the server stops."""
    import uvicorn

    recorded: list[Call] = []
    observe = Metrics.exchanged

    def exchanged(self: Metrics, provider: str, seconds: float) -> None:
        end = time.perf_counter()
        recorded.append((provider, end - seconds, end))
        observe(self, provider, seconds)

    # uvicorn stops on SIGTERM, then raises it again: exit through Python, not the default.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    settings = load_settings(data_dir=data_dir, port=port)
    try:
        with mock.patch.object(Metrics, "exchanged", exchanged):
            app = create_app(settings)
            uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    finally:
        calls.write_text(json.dumps(recorded))


async def setup(data_dir: Path, backends: Backends) -> str:
    """The demo, acme routed to the three upstreams; a token of acme's owner."""
    settings = load_settings(data_dir=data_dir)
    async with started_store(settings) as store:
        acme = (await seed_demo(store))["acme"]
        await route_and_connect(store, acme.org.id, backends)
    auth = Authenticator(
        settings.jwt_secret_value(),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=3600,
    )
    return auth.issue(person_id=acme.person_id, org_id=acme.org.id, role=Role.ORG_OWNER)


@dataclass
class Scrape:
    """What `/metrics` says so far: the gateway's time on /graphql, and per provider the
    upstream calls and their time."""

    graphql_seconds: float
    calls: dict[str, float]
    seconds: dict[str, float]


def _scrape(text: str) -> Scrape:
    graphql = re.search(r'^one_http_request_seconds_sum\{route="/graphql"\} (\S+)$', text, re.M)
    assert graphql, "no /graphql latency in /metrics"

    def per_provider(series: str) -> dict[str, float]:
        pattern = rf'^one_upstream_request_seconds_{series}\{{provider="(\w+)"\}} (\S+)$'
        return {p: float(v) for p, v in re.findall(pattern, text, re.M)}

    return Scrape(float(graphql.group(1)), per_provider("count"), per_provider("sum"))


@dataclass
class Request:
    started: float
    ended: float
    in_app: float  # the gateway's own measure of it (its MetricsMiddleware)
    healthz: float  # GET /healthz right after it


async def measure(url: str, token: str, requests: int) -> tuple[list[Request], Scrape, Scrape]:
    """`requests` four-backend queries, one at a time; also /metrics before and after."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:

        async def scrape() -> Scrape:
            return _scrape((await client.get("/metrics")).raise_for_status().text)

        async def query(text: str) -> tuple[float, float]:
            started = time.perf_counter()
            response = await client.post("/graphql", json={"query": text})
            ended = time.perf_counter()
            body = response.json()
            assert response.status_code == 200 and "errors" not in body, body
            return started, ended

        await query(FLAT)  # WordPress discovery, Shopify's calibration
        done: list[Request] = []
        first = previous = await scrape()
        for i in range(WARM_UP + requests):
            if i == WARM_UP:
                done, first = [], previous
            started, ended = await query(ALL_FOUR)
            now = await scrape()
            in_app = now.graphql_seconds - previous.graphql_seconds
            floor = time.perf_counter()
            (await client.get("/healthz")).raise_for_status()
            done.append(Request(started, ended, in_app, time.perf_counter() - floor))
            # Let the limiter refill before the next request, with some slack.
            notion = now.calls.get("notion", 0) - previous.calls.get("notion", 0)
            await asyncio.sleep(started + notion / NOTION_PER_SECOND + 0.05 - time.perf_counter())
            previous = now
        return done, first, previous


def in_flight(calls: list[Call]) -> float:
    """How long at least one of `calls` was in flight: the length of their intervals' union."""
    total, reach = 0.0, float("-inf")
    for _, start, end in sorted(calls, key=lambda c: c[1]):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def longest_chain(calls: list[Call]) -> float:
    """The largest total duration of calls that do not overlap in time."""
    ordered = sorted(calls, key=lambda c: c[2])
    best: list[float] = []  # best[i]: the longest chain that ends with ordered[i]
    for i, (_, start, end) in enumerate(ordered):
        before = (best[j] for j in range(i) if ordered[j][2] <= start)
        best.append(end - start + max(before, default=0.0))
    return max(best, default=0.0)


def _check_totals(calls: list[Call], first: Scrape, last: Scrape) -> tuple[int, float]:
    """The recorded calls are the histogram's: the same count and sum over the run."""
    count = sum(last.calls.values()) - sum(first.calls.values())
    seconds = sum(last.seconds.values()) - sum(first.seconds.values())
    assert len(calls) == round(count), (len(calls), count)
    assert abs(sum(end - start for _, start, end in calls) - seconds) < 1e-6 * len(calls) + 1e-6
    return len(calls), seconds


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99) - 1] * 1000


def report(requests: list[Request], calls: list[Call], totals: tuple[int, float]) -> None:
    per_request: list[list[Call]] = [[] for _ in requests]
    for call in calls:
        index = next(
            (i for i, r in enumerate(requests) if r.started <= call[1] and call[2] <= r.ended),
            None,
        )
        assert index is not None, f"an upstream call outside every request: {call}"
        per_request[index].append(call)
    assert all(per_request), "a request without upstream calls"
    latency = [r.ended - r.started for r in requests]
    upstream = [in_flight(c) for c in per_request]
    overhead = [a - b for a, b in zip(latency, upstream, strict=True)]
    counts = [len(c) for c in per_request]
    rows = {
        "gateway latency, end to end": latency,
        "upstream time (a call in flight)": upstream,
        "**overhead: latency - upstream time**": overhead,
        "of which before the first call": [
            min(s for _, s, _ in c) - r.started for r, c in zip(requests, per_request, strict=True)
        ],
        "of which after the last answer": [
            r.ended - max(e for _, _, e in c) for r, c in zip(requests, per_request, strict=True)
        ],
        "overhead inside the app (its own latency - upstream)": [
            r.in_app - u for r, u in zip(requests, upstream, strict=True)
        ],
        "overhead / upstream calls": [o / n for o, n in zip(overhead, counts, strict=True)],
        "latency - longest chain of calls (pessimistic)": [
            a - longest_chain(c) for a, c in zip(latency, per_request, strict=True)
        ],
        "for comparison: GET /healthz, end to end": [r.healthz for r in requests],
    }
    n = len(requests)
    by_provider = Counter(p for c in per_request for p, _, _ in c)
    shape = ", ".join(f"{p} {v / n:g}" for p, v in sorted(by_provider.items()))
    spread = f", from {min(counts)} to {max(counts)}" if min(counts) != max(counts) else ""
    print(
        f"\nThe four-backend query, one request at a time: {n} requests after {WARM_UP} to "
        f"warm up.\nUpstream calls per request: {statistics.mean(counts):g} ({shape}{spread})"
    )
    print("| per request | p50 ms | p99 ms |")
    print("|---|---|---|")
    for label, values in rows.items():
        p50, p99 = _percentiles(values)
        print(f"| {label} | {p50:.2f} | {p99:.2f} |")
    p99 = _percentiles(overhead)[1]
    verdict = "under" if p99 < TARGET_MS else "OVER"
    print(f"\np99 overhead {p99:.2f} ms: {verdict} the {TARGET_MS:g} ms target.")
    print(f"(The recorded calls are /metrics' histogram: {totals[0]} calls, {totals[1]:.3f} s.)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.data_dir, args.port, args.calls)
        return

    began = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="one-bench-upstreams-"))
    (tmp / "wordpress").mkdir()
    try:
        with running_wordpress(tmp / "wordpress") as wp, four_backends(wp) as backends:
            token = asyncio.run(setup(tmp / "data", backends))
            port = _free_port()
            command = ["--serve", "--data-dir", str(tmp / "data"), "--port", str(port)]
            server = subprocess.Popen(
                [sys.executable, __file__, *command, "--calls", str(tmp / "calls.json")],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            url = f"http://127.0.0.1:{port}"
            try:
                _wait_ready(url)
                requests, first, last = asyncio.run(measure(url, token, args.requests))
            finally:
                server.terminate()
                server.wait(timeout=15)
            assert backends.notion.rate_limited == 0, "Notion's limit was hit: space the requests"
        saved = json.loads((tmp / "calls.json").read_text())
        recorded: list[Call] = [(p, s, e) for p, s, e in saved]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # The measured requests' calls, not the warm-up's.
    calls = [c for c in recorded if c[1] >= requests[0].started]
    report(requests, calls, _check_totals(calls, first, last))
    print(f"({time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main()
