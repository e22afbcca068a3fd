"""`make bench` (part 3): what the request-path protection costs on the `thing(id)` hot path.

Two gateways on copies of one data directory (the demo and 1,000 extra things, as in
`bench/run.py`), each one uvicorn worker started as `one-gateway serve` starts it:

(a) shipped: `create_app(settings)` as it is, with a rate bucket too large to ever refuse;
(b) bypassed: the same app (routes, middleware, store, authentication, response encoding),
    but its `/graphql` view only reads the JSON body, authenticates and executes, and its
    schema is `build_schema()` with Strawberry's stock `ParserCache` and `ValidationCache` in
    place of `RequestGuard`. So (b) leaves out: the method check and CSRF prevention; the
    body's size limit, media type and shape checks; automatic persisted queries; the
    document checker (size, tokens, depth, aliases: (b) still parses and validates, through
    Strawberry's caches, whose validation cache hashes the parsed document every time); the
    header size check; admission (the actor's rate bucket, the plan lookup and the daily
    call count); the cost budget lookup; the safelist; and the query cost that
    `RequestGuard` computes before execution. Authentication stays: `thing(id)` needs the
    actor's organization.

Both servers share one core (and one hash seed), the load generator (`bench/run.py`'s: httpx,
8 clients) has the others. After a warm-up, short blocks of requests alternate a b, b a, ...,
so that both servers see the same neighbours; a round's figures are over its blocks, and the
report is the median over the rounds of (a)/(b) for requests/s, p50, p99 and the server's
CPU time per request (all its threads, from /proc). The load generator spends more CPU per
request than the server, so requests/s and latency dilute the difference; the server's CPU
does not. `--control` serves (a) twice: what this machine reports between two equals.

Then, in this process: the request through the ASGI app (no sockets), (a) against (b); each
check alone in a hot loop (a floor: in a request the same code runs with colder caches); and
each step of (a) timed inside real requests, where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.types import Message  # noqa: E402
from strawberry.extensions import ParserCache, ValidationCache  # noqa: E402

from bench.run import ONE, _free_port, _wait_ready, seed  # noqa: E402
from gateway.admission import Admission  # noqa: E402
from gateway.app import create_app  # noqa: E402
from gateway.rate_limits import RateLimits  # noqa: E402
from gateway.requests import request_id  # noqa: E402
from gateway.settings import Settings, load_settings  # noqa: E402
from gateway.trusted import Safelists  # noqa: E402
from gateway.view import _OPERATIONS, OneGraphQL, _result  # noqa: E402
from providers.records import Role  # noqa: E402
from resolvers.context import Actor, Context  # noqa: E402
from resolvers.cost import QueryCost  # noqa: E402
from resolvers.documents import checker  # noqa: E402
from resolvers.schema import build_schema, schema  # noqa: E402

VARIANTS = ("shipped", "bypassed")
GENEROUS = {"actor_rate": 1e9, "actor_burst": 1_000_000_000}  # the bucket never refuses

unchecked_schema = build_schema()
unchecked_schema.extensions = (ParserCache, ValidationCache)


class Unprotected(OneGraphQL):
    """The view without its checks: authenticate, execute, answer."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.schema = unchecked_schema

    async def _serve(self, request: Request, media: str) -> Response:
        params = await self._read(request)
        actor = await self._actor(
            request.headers.get("authorization"),
            request.headers.get("x-api-key"),
            request.headers.get("x-one-organization"),
        )
        context = Context(
            api_calls_today=self.admission.calls_today,
            store=self.store,
            providers=self.providers,
            actor_or_error=actor,
            request=request,
            limits=self.limits,
            request_id=request_id(),
        )
        result = await self.schema.execute(
            params["query"],
            variable_values=params.get("variables"),
            context_value=context,
            operation_name=params.get("operationName"),
            allowed_operation_types=_OPERATIONS[request.method],
            operation_extensions=params.get("extensions"),
        )
        return _result(result, media)

    async def _read(self, request: Request) -> dict[str, Any]:  # a step, to time against _params
        params: dict[str, Any] = json.loads(await request.body())
        return params


def serve(variant: str, data_dir: Path, port: int, cpu: int | None) -> None:
    """One gateway, run as `one-gateway serve` runs it."""
    import uvicorn

    if cpu is not None:  # before the store's threads start: they inherit it
        os.sched_setaffinity(0, {cpu})
    settings = load_settings(data_dir=data_dir, port=port, **GENEROUS)
    if variant == "shipped":
        app = create_app(settings)
    else:
        with mock.patch("gateway.app.OneGraphQL", Unprotected):
            app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")


def _cpu_seconds(pid: int) -> float:
    """The CPU time of every thread of `pid` (the store's readers too), in seconds."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return sum(int((task / "schedstat").read_text().split()[0]) for task in tasks) / 1e9


async def _block(
    client: httpx.AsyncClient, pid: int, ids: list[str], requests: int, concurrency: int
) -> tuple[list[float], float, float, float]:
    """`requests` thing(id) requests from `concurrency` clients, as `bench/run.py` sends
    them: their latencies, the time they took, and the server's and this process's CPU."""
    latencies: list[float] = []
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            body = {"query": ONE, "variables": {"id": random.choice(ids)}}
            started = time.perf_counter()
            response = await client.post("/graphql", json=body)
            latencies.append(time.perf_counter() - started)
            answer = response.json()
            assert response.status_code == 200 and "errors" not in answer, answer

    cpu, client_cpu, started = _cpu_seconds(pid), time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return latencies, elapsed, _cpu_seconds(pid) - cpu, time.process_time() - client_cpu


async def _per_call(fn: Callable[[], Awaitable[object]], calls: int, repeats: int = 5) -> float:
    """CPU microseconds per call (this process, the store's threads too), the best of
    `repeats` runs: the least disturbed by the neighbours."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(calls):
            await fn()
        best = min(best, time.process_time() - started)
    return best / calls * 1e6


async def _per_call_each(
    shipped: Callable[[], Awaitable[object]],
    bypassed: Callable[[], Awaitable[object]],
    calls: int = 100,
    repeats: int = 30,
) -> tuple[float, float]:
    """`_per_call` of both, interleaved so that both see the same neighbours."""
    a, b = [], []
    for _ in range(repeats):
        a.append(await _per_call(shipped, calls, repeats=1))
        b.append(await _per_call(bypassed, calls, repeats=1))
    return min(a), min(b)


def _asgi_post(app: Starlette, body: bytes, token: str) -> Callable[[], Awaitable[object]]:
    """One POST /graphql straight into the app: no socket, no server, no client."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/graphql",
        "query_string": b"",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", f"Bearer {token}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def post() -> object:
        answer: list[bytes] = []

        async def send(message: Message) -> None:
            if message["type"] == "http.response.body":
                answer.append(message["body"])

        await app(dict(scope), receive, send)
        assert b'"errors"' not in answer[0], answer
        return answer

    return post


# The steps (a) adds, each timed inside real requests: (owner, method, label).
Steps = tuple[tuple[type, str, str], ...]
_STEPS: Steps = (
    (OneGraphQL, "_prevent_csrf", "CSRF prevention"),
    (OneGraphQL, "_params", "body limit, media type, parameters ((b) decodes the body too)"),
    (OneGraphQL, "_persisted", "persisted queries"),
    (OneGraphQL, "_check_document", "document checker (cached)"),
    (Admission, "admit", "Admission.admit: rate bucket and daily calls"),
    # Less _actor and Admission.admit: the header size check, the credential headers (which
    # (b) reads too) and the step itself.
    (OneGraphQL, "_admit", "rest of _admit: header size check, credential headers"),
    (OneGraphQL, "_actor", ""),
    (OneGraphQL, "_require_trusted", "safelist"),
    (Admission, "cost_budget", "cost budget"),
    (QueryCost, "requested", "QueryCost(...).requested()"),
)
_BYPASSED_STEPS: Steps = ((Unprotected, "_read", "(b) reads and decodes the body"),)


def _timed(owner: type, name: str, samples: dict[str, list[float]]) -> Any:
    original = getattr(owner, name)

    def record(started: float) -> None:
        samples[name].append(time.perf_counter() - started)

    async def awaited(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            record(started)

    def called(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            record(started)

    step = awaited if inspect.iscoroutinefunction(original) else called
    return mock.patch.object(owner, name, step)


async def _steps(
    post: Callable[[], Awaitable[object]], steps: Steps, requests: int = 2_000
) -> dict[str, float]:
    """Microseconds each step takes, the median over `requests` real requests (a median, so
    that a request preempted by a neighbour does not count)."""
    samples: dict[str, list[float]] = defaultdict(list)
    with ExitStack() as stack:
        for owner, name, _ in steps:
            stack.enter_context(_timed(owner, name, samples))
        for _ in range(requests):
            await post()
    if "_admit" in samples:  # one of each per request, in order: a difference per request
        samples["_admit"] = [
            whole - actor - admit
            for whole, actor, admit in zip(
                samples["_admit"], samples["_actor"], samples["admit"], strict=True
            )
        ]
    median = {name: statistics.median(times) * 1e6 for name, times in samples.items()}
    # a step a request no longer takes (e.g. a cost cached on its document) counts as 0
    return {label: median.get(name, 0.0) for _, name, label in steps if label}


@dataclass
class InProcess:
    checks: dict[str, float]  # each check alone, CPU µs per call
    both: tuple[float, float]  # the request through the ASGI app, (a) and (b), CPU µs
    steps: dict[str, float]  # (a)'s steps inside requests, then (b)'s body, µs


async def microbenchmarks(settings: Settings, token: str, thing_id: str) -> InProcess:
    """Each check alone, on the thing(id) request; the request in process, both ways; and
    (a)'s steps inside it."""
    shipped = create_app(settings)
    with mock.patch("gateway.app.OneGraphQL", Unprotected):
        bypassed = create_app(settings)
    async with shipped.router.lifespan_context(shipped), bypassed.router.lifespan_context(bypassed):
        store, auth = shipped.state.store, shipped.state.auth
        actor = await auth.authenticate(f"Bearer {token}", store, None)
        assert isinstance(actor, Actor) and actor.role is Role.ORG_OWNER
        admission = Admission(store, RateLimits(), settings)
        safelists = Safelists(store)
        view = OneGraphQL(store, auth, shipped.state.providers, admission, settings)
        documents = checker(schema._schema, view.limits)
        document = documents.check(ONE).document
        variables = {"id": thing_id}

        async def check() -> object:
            return documents.check(ONE)

        async def cost() -> object:
            return QueryCost(schema._schema, document, None, variables).requested()

        checks = {
            "DocumentChecker.check (cached)": await _per_call(check, 20_000),
            "QueryCost(...).requested()": await _per_call(cost, 5_000),
            "Admission.admit (local)": await _per_call(lambda: admission.admit(actor), 5_000),
            "Admission.cost_budget": await _per_call(lambda: admission.cost_budget(actor), 5_000),
            "Safelists.allows (no safelist)": await _per_call(
                lambda: safelists.allows(actor, ONE), 5_000
            ),
            "Authenticator.authenticate (kept in (b))": await _per_call(
                lambda: auth.authenticate(f"Bearer {token}", store, None), 2_000
            ),
        }
        body = json.dumps({"query": ONE, "variables": variables}).encode()
        post = _asgi_post(shipped, body, token)
        post_bypassed = _asgi_post(bypassed, body, token)
        both = await _per_call_each(post, post_bypassed)
        steps = await _steps(post, _STEPS)
        return InProcess(checks, both, steps | await _steps(post_bypassed, _BYPASSED_STEPS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--blocks", type=int, default=10, help="per round and variant")
    parser.add_argument("--block-requests", type=int, default=40)
    parser.add_argument(
        "--control",
        action="store_true",
        help="serve (a) in place of (b): the difference this machine shows between equals",
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--extra-things", type=int, default=1000)
    parser.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.data_dir, args.port, args.cpu)
        return

    started = time.monotonic()
    seeded = Path(tempfile.mkdtemp(prefix="one-bench-protection-"))
    token, ids = asyncio.run(seed(seeded / "seed", args.extra_things))
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    # Both servers on one core, the load generator on the others: each server then runs
    # where the other did, and neither competes with its own client.
    *client_cpus, server_cpu = sorted(os.sched_getaffinity(0))
    pinned = ["--cpu", str(server_cpu)] if client_cpus else []
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    try:
        for variant in VARIANTS:
            data_dir = seeded / variant
            shutil.copytree(seeded / "seed", data_dir)
            port = _free_port()
            served = VARIANTS[0] if args.control else variant
            command = ["--serve", served, "--data-dir", str(data_dir), "--port", str(port)]
            process = subprocess.Popen(
                [sys.executable, __file__, *command, *pinned],
                cwd=ROOT,
                env={**os.environ, "PYTHONHASHSEED": "0"},  # the same dictionaries in both
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            servers[variant] = process, f"http://127.0.0.1:{port}"
        for _, url in servers.values():
            _wait_ready(url)
        rounds = asyncio.run(_rounds(servers, token, ids, args))
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=15)
    try:
        in_process = asyncio.run(
            microbenchmarks(load_settings(data_dir=seeded / "seed", **GENEROUS), token, ids[0])
        )
    finally:
        shutil.rmtree(seeded, ignore_errors=True)
    _report(rounds, in_process, args, time.monotonic() - started)


async def _rounds(
    servers: dict[str, tuple[subprocess.Popen[bytes], str]],
    token: str,
    ids: list[str],
    args: argparse.Namespace,
) -> list[dict[str, dict[str, float]]]:
    """Short blocks, alternating (a b, b a, ...) so that both see the same neighbours; a
    round's figures are over its blocks."""
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    headers = {"Authorization": f"Bearer {token}"}
    async with AsyncExitStack() as stack:
        clients = {
            variant: await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, headers=headers, limits=limits)
            )
            for variant, (_, url) in servers.items()
        }

        async def block(variant: str, requests: int) -> tuple[list[float], float, float, float]:
            pid = servers[variant][0].pid
            return await _block(clients[variant], pid, ids, requests, args.concurrency)

        for variant in VARIANTS:  # warm-up: caches, connections, the allocator
            await block(variant, 300)
        rounds = []
        for _ in range(args.rounds):
            latencies: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
            sums = {variant: [0.0, 0.0, 0.0] for variant in VARIANTS}  # time, CPU, client CPU
            for i in range(args.blocks):
                for variant in VARIANTS if i % 2 == 0 else VARIANTS[::-1]:
                    times, *spent = await block(variant, args.block_requests)
                    latencies[variant] += times
                    sums[variant] = [a + b for a, b in zip(sums[variant], spent, strict=True)]
            rounds.append({v: _figures(latencies[v], *sums[v]) for v in VARIANTS})
    return rounds


def _figures(
    latencies: list[float], elapsed: float, cpu: float, client_cpu: float
) -> dict[str, float]:
    latencies = sorted(latencies)
    n = len(latencies)
    return {
        "rps": n / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(n * 0.99) - 1] * 1000,
        "cpu_us": cpu / n * 1e6,
        "client_cpu_us": client_cpu / n * 1e6,
    }


def _report(
    rounds: list[dict[str, dict[str, float]]],
    in_process: InProcess,
    args: argparse.Namespace,
    elapsed: float,
) -> None:
    print(
        f"\nthing(id) over HTTP, shipped (a) vs protection bypassed (b)"
        f"{' (--control: (a) both times)' if args.control else ''}: {args.rounds} rounds of "
        f"{args.blocks} blocks of {args.block_requests} requests each, alternating, "
        f"{args.concurrency} clients"
    )
    print("| measure | (a) median | (b) median | median of (a)/(b) | difference |")
    print("|---|---|---|---|---|")
    for key, label in (
        ("rps", "requests/s"),
        ("p50_ms", "p50 ms"),
        ("p99_ms", "p99 ms"),
        ("cpu_us", "server CPU µs/request"),
        ("client_cpu_us", "load generator CPU µs/request"),
    ):
        a = statistics.median(r["shipped"][key] for r in rounds)
        b = statistics.median(r["bypassed"][key] for r in rounds)
        ratio = statistics.median(r["shipped"][key] / r["bypassed"][key] for r in rounds)
        print(f"| {label} | {a:.2f} | {b:.2f} | {ratio:.3f} | {(ratio - 1) * 100:+.1f}% |")
    print()
    for key, label in (("rps", "requests/s"), ("cpu_us", "server CPU")):
        spread = " ".join(f"{r['shipped'][key] / r['bypassed'][key]:.2f}" for r in rounds)
        print(f"(a)/(b) {label}, round by round: {spread}")
    a, b = in_process.both
    server = statistics.median(r["bypassed"]["cpu_us"] for r in rounds)
    print(
        f"\nIn process, the request through the ASGI app (no sockets), CPU, the best of 30 "
        f"interleaved runs: (a) {a:.0f} µs, (b) {b:.0f} µs, (a)/(b) {a / b:.3f}. The protection "
        f"adds {a - b:.0f} µs: {(a - b) / server * 100:.1f}% of (b)'s server CPU per request "
        "over HTTP."
    )
    print("\nEach check alone, in process (best of 5 runs, a hot loop: a floor)")
    print("| step | CPU µs per call |")
    print("|---|---|")
    for name, micros in in_process.checks.items():
        print(f"| {name} | {micros:.1f} |")
    print("\nWhere (a)'s time goes: each step inside a real request (median of 2,000)")
    print("| step | µs |")
    print("|---|---|")
    *steps, (body_label, body) = in_process.steps.items()
    for name, micros in steps:
        print(f"| {name} | {micros:.1f} |")
    print(f"| total | {sum(micros for _, micros in steps):.1f} |")
    print(f"| for comparison: {body_label} | {body:.1f} |")
    print(f"\n({elapsed:.0f} s)")


if __name__ == "__main__":
    main()
