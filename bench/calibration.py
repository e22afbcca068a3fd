"""`make bench` (calibration): the gateway against plain Strawberry and raw Starlette, one run.

Absolute requests per second say more about the machine than about the gateway, so this
script measures, in one run, with the same load generator (`wrk`, Debian's, which `make bench`
installs: `--concurrency` keep-alive connections for `--duration` seconds after 20 requests of
warm-up, each request's body picked from 200 made beforehand; `bench/wrk.py`. Without wrk, or
with `--httpx`, `bench/run.py`'s httpx clients on uvloop in this process, which cap the fast
scenarios at a few hundred requests a second) and the same server settings (one uvicorn
worker, uvloop, httptools; each server alone on the machine with the load generator), the apps
of `bench/calibration_apps.py` and the gateway:

1. plain Strawberry + aiodataloader, in-memory data, no parser or validation cache;
2. the same app with Strawberry's `ParserCache` and `ValidationCache`;
3. a raw Starlette JSON endpoint (the stack's ceiling);
4. ONE Gateway (`one-gateway serve`, embedded store, seeded as `bench/run.py` seeds it), with
   its response cache off;
5. the same gateway with its response cache on, asked the nested query again and again: a
   hit each time after the first.

The query shapes are `bench/run.py`'s (`thing(id)`, and the nested `things(first: 100)` with
owner and both connections with their far end) plus a trivial one for the plain apps (5
things, flat); the plain apps' schema and data mirror the gateway's, so the nested responses
have the same shape (checked before measuring). Each scenario is printed with req/s, p50,
p99, the server's CPU time per request (from /proc) and its req/s ratio to the plain
uncached Strawberry app on the same shape; then the ratios that issue 11 sets targets for.
Ratios are what to compare across runs and machines. `--rounds N` repeats the whole sequence
and reports each figure's median over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import wrk  # noqa: E402
from bench.calibration_apps import TASK_IDS  # noqa: E402
from bench.run import NESTED, ONE, _free_port, client, drive, seed, serving_gateway  # noqa: E402

TRIVIAL = 'query { things(type: "task", first: 5) { edges { node { id name status } } } }'

PLAIN = "plain Strawberry, no caches"
CACHED = "plain Strawberry + parser/validation caches"
STARLETTE = "raw Starlette JSON"
GATEWAY = "ONE Gateway"
GATEWAY_CACHED = "ONE Gateway, response cache hits"

# Shapes: the plain uncached app's scenario each one is compared with.
TRIVIAL_SHAPE = "trivial: things(first: 5) { id name status }"
ONE_SHAPE = "thing(id) { id name status properties }"
NESTED_SHAPE = "nested: things(first: 100) { owner connections { to } }"
CONSTANT_SHAPE = "POST a query, constant JSON answer"

TARGETS = (
    # (label, numerator, denominator, target)
    ("gateway nested ÷ plain uncached nested", (GATEWAY, NESTED_SHAPE), (PLAIN, NESTED_SHAPE), 2),
    (
        "gateway thing(id) ÷ plain uncached trivial",
        (GATEWAY, ONE_SHAPE),
        (PLAIN, TRIVIAL_SHAPE),
        2.7,
    ),
    (
        "nested response-cache hit ÷ raw Starlette",
        (GATEWAY_CACHED, NESTED_SHAPE),
        (STARLETTE, CONSTANT_SHAPE),
        0.25,
    ),
)


@dataclass
class App:
    name: str
    serve: Callable[[], AbstractContextManager[tuple[str, int]]]
    scenarios: list[tuple[str, Callable[[], dict[str, Any]]]]


def _ids_body(query: str, ids: list[str]) -> Callable[[], dict[str, Any]]:
    return lambda: {"query": query, "variables": {"id": random.choice(ids)}}


def _body(query: str) -> Callable[[], dict[str, Any]]:
    return lambda: {"query": query}


@contextmanager
def serving_uvicorn(app: str) -> Iterator[tuple[str, int]]:
    """`python -m uvicorn <app> --workers 1 --loop uvloop --http httptools`; yields its URL
    and process id once it answers HTTP."""
    port = _free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", app),
            *("--workers", "1", "--loop", "uvloop", "--http", "httptools"),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/graphql")
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{app} did not start") from None
                time.sleep(0.1)
        yield url, server.pid
    finally:
        server.terminate()
        server.wait(timeout=15)


@contextmanager
def serving_gateway_cached(data_dir: Path, *, response_cache: bool) -> Iterator[tuple[str, int]]:
    """`bench/run.py`'s gateway, with its response cache on or off."""
    os.environ["ONE_RESPONSE_CACHE"] = "true" if response_cache else "false"
    try:
        with serving_gateway(data_dir) as served:
            yield served
    finally:
        del os.environ["ONE_RESPONSE_CACHE"]


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of `pid` (all its threads), or 0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


async def _measure(
    url: str, pid: int, token: str, make_body: Callable[[], dict[str, Any]], args: Any
) -> dict[str, Any]:
    async with client(url, args.concurrency, token) as c:
        for _ in range(20):  # warm up
            (await c.post("/graphql", json=make_body())).raise_for_status()
    if wrk.available() and not args.httpx:
        return _measure_wrk(url, pid, token, make_body, args)
    async with client(url, args.concurrency, token) as c:
        cpu, own = _cpu_seconds(pid), _own_cpu_seconds()
        latencies, elapsed = await drive(
            c, make_body, concurrency=args.concurrency, duration=args.duration, warmup=0
        )
        cpu, own = _cpu_seconds(pid) - cpu, _own_cpu_seconds() - own
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1000,
        "server_cpu_ms": cpu * 1000 / len(latencies) if pid else None,
        "client_cpu_ms": own * 1000 / len(latencies),
    }


def _measure_wrk(
    url: str, pid: int, token: str, make_body: Callable[[], dict[str, Any]], args: Any
) -> dict[str, Any]:
    bodies = [make_body() for _ in range(200)]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    cpu = _cpu_seconds(pid)
    result = wrk.run(url, bodies, headers, concurrency=args.concurrency, duration=args.duration)
    cpu = _cpu_seconds(pid) - cpu
    if result.failed:
        raise SystemExit(f"{result.failed} of {result.requests} requests to {url} failed")
    return {
        "requests": result.requests,
        "rps": result.requests / result.seconds,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "server_cpu_ms": cpu * 1000 / result.requests if pid else None,
        "client_cpu_ms": result.cpu_seconds * 1000 / result.requests,
    }


def _shape(value: Any) -> Any:
    """`value` with every scalar replaced by its type: what two answers must share."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def _answer(url: str, token: str, query: str) -> Any:
    response = httpx.post(
        f"{url}/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}
    )
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--extra-things", type=int, default=1000)
    parser.add_argument(
        "--httpx",
        action="store_true",
        help="drive the load from Python (httpx) even where wrk is installed",
    )
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="one-bench-calibration-"))
    token, ids = asyncio.run(seed(data_dir, args.extra_things))
    plain_scenarios = [
        (TRIVIAL_SHAPE, _body(TRIVIAL)),
        (ONE_SHAPE, _ids_body(ONE, TASK_IDS)),
        (NESTED_SHAPE, _body(NESTED)),
    ]
    apps = [
        App(PLAIN, lambda: serving_uvicorn("bench.calibration_apps:plain"), plain_scenarios),
        App(CACHED, lambda: serving_uvicorn("bench.calibration_apps:cached"), plain_scenarios),
        App(
            STARLETTE,
            lambda: serving_uvicorn("bench.calibration_apps:starlette"),
            [(CONSTANT_SHAPE, _ids_body(ONE, TASK_IDS))],
        ),
        App(
            GATEWAY,
            lambda: serving_gateway_cached(data_dir, response_cache=False),
            [(ONE_SHAPE, _ids_body(ONE, ids)), (NESTED_SHAPE, _body(NESTED))],
        ),
        App(
            GATEWAY_CACHED,
            lambda: serving_gateway_cached(data_dir, response_cache=True),
            [(NESTED_SHAPE, _body(NESTED))],
        ),
    ]
    print(
        f"{args.concurrency} connections, {args.duration:g} s per scenario, "
        f"{args.rounds} round(s); one uvicorn worker each (uvloop, httptools)",
        file=sys.stderr,
    )
    shapes: dict[str, Any] = {}
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for round in range(args.rounds):
        for app in apps:
            with app.serve() as (url, pid):
                if app.name in (PLAIN, GATEWAY) and round == 0:
                    shapes[app.name] = _shape(_answer(url, token, NESTED))
                for shape, make_body in app.scenarios:
                    result = uvloop.run(_measure(url, pid, token, make_body, args))
                    runs.setdefault((app.name, shape), []).append(result)
                    print(
                        f"  round {round + 1}: {app.name}, {shape}: {result['rps']:.1f} req/s",
                        file=sys.stderr,
                    )
    same_shape = shapes[PLAIN] == shapes[GATEWAY]

    def median(key: tuple[str, str], field: str) -> float | None:
        values = [r[field] for r in runs[key] if r[field] is not None]
        return statistics.median(values) if values else None

    results = []
    for (app_name, shape), rounds in runs.items():
        rps = median((app_name, shape), "rps")
        base = runs.get((PLAIN, shape))
        ratio = rps / median((PLAIN, shape), "rps") if base and rps else None  # type: ignore[operator]
        results.append(
            {
                "app": app_name,
                "scenario": shape,
                "requests": sum(r["requests"] for r in rounds),
                "rps": rps,
                "p50_ms": median((app_name, shape), "p50_ms"),
                "p99_ms": median((app_name, shape), "p99_ms"),
                "server_cpu_ms_per_request": median((app_name, shape), "server_cpu_ms"),
                "client_cpu_ms_per_request": median((app_name, shape), "client_cpu_ms"),
                "ratio_to_plain": ratio,
            }
        )
    targets = []
    for label, numerator, denominator, target in TARGETS:
        value = by_cpu = None
        if numerator is not None:
            value = median(numerator, "rps") / median(denominator, "rps")  # type: ignore[operator]
            cpu = median(numerator, "server_cpu_ms"), median(denominator, "server_cpu_ms")
            by_cpu = cpu[1] / cpu[0] if cpu[0] and cpu[1] else None
        targets.append({"ratio": label, "value": value, "by_server_cpu": by_cpu, "target": target})

    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "calibration.json").write_text(
        json.dumps(
            {
                "settings": vars(args),
                "same_nested_shape": same_shape,
                "results": results,
                "targets": targets,
            },
            indent=2,
        )
        + "\n"
    )
    _print(args, results, targets, same_shape)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _print(
    args: Any, results: list[dict[str, Any]], targets: list[dict[str, Any]], same: bool
) -> None:
    print(
        f"\nCalibration: {args.concurrency} connections, {args.duration:g} s per scenario, "
        f"{args.rounds} round(s) (medians), one uvicorn worker each (uvloop, httptools)\n"
    )
    print(
        "| app | scenario | requests | req/s | p50 ms | p99 ms | server CPU ms/req "
        "| load generator CPU ms/req | req/s ÷ plain |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ratio = "-" if r["ratio_to_plain"] is None else f"{r['ratio_to_plain']:.2f}x"
        print(
            f"| {r['app']} | {r['scenario']} | {r['requests']} | {_fmt(r['rps'])} | "
            f"{_fmt(r['p50_ms'], 2)} | {_fmt(r['p99_ms'], 2)} | "
            f"{_fmt(r['server_cpu_ms_per_request'], 2)} | "
            f"{_fmt(r['client_cpu_ms_per_request'], 2)} | {ratio} |"
        )
    print("\n| ratio | req/s | target | inverse of server CPU/request |")
    print("|---|---|---|---|")
    for t in targets:
        value = "n/a (no response cache yet)" if t["value"] is None else f"{t['value']:.2f}x"
        mark = "" if t["value"] is None else (" met" if t["value"] >= t["target"] else " not met")
        by_cpu = "n/a" if t["by_server_cpu"] is None else f"{t['by_server_cpu']:.2f}x"
        print(f"| {t['ratio']} | {value} | ≥ {t['target']:g}x{mark} | {by_cpu} |")
    if args.httpx or not wrk.available():
        print(
            "\nreq/s is bounded by the load generator (httpx, in one Python process) where its "
            "CPU per request exceeds the server's: the raw Starlette ceiling and the fast "
            "scenarios are a floor; the server-CPU ratio does not depend on the load generator."
        )
    if not same:
        print("\nWARNING: the plain app's nested answer differs in shape from the gateway's")


if __name__ == "__main__":
    main()
