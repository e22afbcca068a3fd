"""`make bench` (part 5): live events over WebSockets, end to end (issue 10).

Real gateway processes (`one-gateway serve`, as `tests/processes.py` starts them) on a fresh
demo data directory, and real clients: `--subscribers` WebSocket connections
(graphql-transport-ws, the `websockets` client, spread over `--client-processes` processes),
each subscribed to `eventAdded(types: ["entity_created"]) { cursor timestamp }`, while this
process sends `createThing` mutations over HTTP (httpx) at a fixed rate, open loop: each one
leaves at its time whether or not the previous ones were answered.

(A) one gateway, embedded SQLite store, in-process bus;
(B) two gateways over one data directory and one Redis (a redis-server of our own, on a free
    port, nothing saved): subscribers split evenly, mutations sent to both in turn, so half
    of each subscriber's events were committed by the other process and crossed Redis.

Before measuring, every subscriber has its `connection_ack` and has received a warm-up
mutation's event (one through each gateway). Then, for each mutation that succeeded, every
subscriber must receive its event exactly once: lost = mutations x subscribers - received.
Latency is the client's receive time (time.time()) less the event's `timestamp` (the store's
stamp, in the transaction, at millisecond precision) and less the mutation's send time, all
on this machine's clock. The gateways' RSS (/proc/<pid>/status) is read before the
subscribers connect, once they have, and twice a second over the run; their CPU time too.

The clients share this machine's cores with the gateways, so latency is a ceiling and
throughput a floor. Targets: 0 lost, p99 from commit < 250 ms at 50 mutations/s, memory flat
(RSS at the end of the run within 5% of its start). The exit status is 1 if an event was lost
or duplicated (or a subscriber failed), whatever the latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.processes import Gateway, free_port, seed, token  # noqa: E402

SUBSCRIPTION = 'subscription { eventAdded(types: ["entity_created"]) { cursor timestamp } }'
# The thing's newest event is its `entity_created`: its cursor ties the mutation to the event.
MUTATION = """mutation($name: String!) { createThing(input: {type: "course", name: $name}) {
  id events(first: 1) { cursor type } } }"""
P99_TARGET_MS = 250.0
FLAT_SHARE = 0.05  # RSS growth over the run, as a share of its start, still called flat
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the subscribers (in their own processes) -----------------------------------------------


@dataclass(eq=False)
class _Subscriber:
    url: str
    cursors: array[int] = field(default_factory=lambda: array("q"))
    received: array[float] = field(default_factory=lambda: array("d"))
    last: int = 0
    ws: Any = None
    ended: str | None = None  # why it stopped before we closed it


def _subscriber_process(
    conn: Connection, urls: list[str], bearer: str, count: int, first: int, deflate: bool
) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_subscribers(conn, urls, bearer, count, first, deflate))


async def _subscribers(
    conn: Connection, urls: list[str], bearer: str, count: int, first: int, deflate: bool
) -> None:
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    subs = [
        _Subscriber(urls[(first + i) % len(urls)].replace("http://", "ws://") + "/graphql")
        for i in range(count)
    ]
    stamps: dict[int, str] = {}  # cursor -> the event's timestamp, as first received
    gate = asyncio.Semaphore(25)  # connections being opened at once
    closing = False
    init = json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {bearer}"}})
    subscribe = json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})

    async def run(sub: _Subscriber) -> None:
        try:
            async with gate:
                ws = await connect(
                    sub.url,
                    subprotocols=[Subprotocol("graphql-transport-ws")],
                    compression="deflate" if deflate else None,
                    open_timeout=60,
                    ping_interval=None,  # the server pings at the GraphQL level
                    max_size=None,
                )
                await ws.send(init)
                ack = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if ack.get("type") != "connection_ack":
                    raise RuntimeError(f"no connection_ack: {ack}")
                await ws.send(subscribe)
            sub.ws = ws
            append_c, append_t = sub.cursors.append, sub.received.append
            async for raw in ws:
                now = time.time()
                message = json.loads(raw)
                kind = message["type"]
                if kind == "next":
                    data = message["payload"].get("data")
                    if not data:
                        sub.ended = "error: " + json.dumps(message["payload"].get("errors"))[:300]
                        continue
                    event = data["eventAdded"]
                    cursor = int(event["cursor"])
                    append_c(cursor)
                    append_t(now)
                    if cursor > sub.last:
                        sub.last = cursor
                    if cursor not in stamps:
                        stamps[cursor] = event["timestamp"]
                elif kind == "ping":
                    await ws.send('{"type":"pong"}')
                elif kind in ("error", "complete"):
                    sub.ended = sub.ended or f"{kind}: {json.dumps(message)[:300]}"
            if not closing:
                sub.ended = sub.ended or f"closed by the server ({ws.close_code})"
        except Exception as exc:  # noqa: BLE001 - reported, counted as a failed subscriber
            if not closing:
                sub.ended = sub.ended or f"{type(exc).__name__}: {exc}"[:300]

    tasks = [asyncio.create_task(run(sub)) for sub in subs]
    while sum(1 for s in subs if s.ws is not None or s.ended) < count:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    failed = [s.ended for s in subs if s.ended]
    conn.send(("connected", count - len(failed), failed[:5]))

    loop = asyncio.get_running_loop()
    while True:
        try:
            command = await loop.run_in_executor(None, conn.recv)
        except EOFError:  # the parent is gone
            return
        if command[0] == "warmup":  # every subscriber has seen this cursor (or failed)
            cursor, timeout = command[1], command[2]
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if all(s.last >= cursor or s.ended for s in subs):
                    break
                await asyncio.sleep(0.05)
            waiting = sum(1 for s in subs if s.last < cursor and not s.ended)
            conn.send(("warm", waiting, [s.ended for s in subs if s.ended][:5]))
        elif command[0] == "drain":
            after, sent, idle, cap = command[1], command[2], command[3], command[4]
            conn.send(("result", await _drain(subs, stamps, after, sent, idle, cap)))
        elif command[0] == "close":
            closing = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    asyncio.gather(
                        *(s.ws.close() for s in subs if s.ws is not None), return_exceptions=True
                    ),
                    15,
                )
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            conn.send(("closed",))
            return


async def _drain(
    subs: list[_Subscriber],
    stamps: dict[int, str],
    after: int,
    sent: dict[int, float],
    idle: float,
    cap: float,
) -> dict[str, Any]:
    """Wait until every subscriber has the last expected event (or nothing arrives for `idle`
    seconds), then count and time what each received after `after`."""
    top = max(sent) if sent else after
    started = last_progress = time.monotonic()
    total = sum(len(s.cursors) for s in subs)
    while time.monotonic() - started < cap:
        if all(s.last >= top or s.ended for s in subs):
            break
        await asyncio.sleep(0.1)
        now_total = sum(len(s.cursors) for s in subs)
        if now_total != total:
            total, last_progress = now_total, time.monotonic()
        elif time.monotonic() - last_progress > idle:
            break
    drained = time.monotonic() - started
    commit = {c: datetime.fromisoformat(t).timestamp() for c, t in stamps.items() if c in sent}
    from_commit, from_send = array("d"), array("d")
    received = duplicates = unexpected = out_of_order = 0
    for sub in subs:
        seen: set[int] = set()
        previous = 0
        for cursor, at in zip(sub.cursors, sub.received, strict=True):
            if cursor <= after:
                continue
            if cursor < previous:
                out_of_order += 1
            previous = max(previous, cursor)
            if cursor not in sent:
                unexpected += 1
                continue
            if cursor in seen:
                duplicates += 1
                continue
            seen.add(cursor)
            received += 1
            from_commit.append(at - commit[cursor])
            from_send.append(at - sent[cursor])
    return {
        "received": received,
        "duplicates": duplicates,
        "unexpected": unexpected,
        "out_of_order": out_of_order,
        "ended": [s.ended for s in subs if s.ended],
        "drain_seconds": drained,
        "from_commit": from_commit.tobytes(),
        "from_send": from_send.tobytes(),
        "cpu_seconds": time.process_time(),
    }


# --- this process: gateways, Redis, mutations, memory ---------------------------------------


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime, all threads


@contextlib.contextmanager
def _redis(workdir: Path) -> Any:
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    server = subprocess.Popen(
        [
            *(binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)),
            *("--save", "", "--appendonly", "no", "--logfile", str(workdir / "redis.log")),
        ]
    )
    try:
        client = Redis(port=port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 15
        while True:
            try:
                if client.ping():
                    break
            except RedisConnectionError as exc:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        f"redis-server did not start; see {workdir}/redis.log"
                    ) from exc
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0", server.pid
    finally:
        server.terminate()
        server.wait(timeout=10)


async def _mutate(
    http: httpx.AsyncClient, url: str, name: str, gate: asyncio.Semaphore | None = None
) -> tuple[int, float, float, float]:
    """(the event's cursor, when the mutation was due (time.time()), its HTTP round trip,
    when it was answered (perf_counter)). Waiting for `gate` counts in the latency."""
    sent = time.time()
    async with gate or contextlib.nullcontext():
        started = time.perf_counter()
        response = await http.post(
            f"{url}/graphql", json={"query": MUTATION, "variables": {"name": name}}
        )
    answered = time.perf_counter()
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"createThing failed ({response.status_code}): {str(body)[:300]}")
    events = body["data"]["createThing"]["events"]
    assert events and events[0]["type"] == "entity_created", events
    return int(events[0]["cursor"]), sent, answered - started, answered


@dataclass
class _Sent:
    done: list[tuple[int, float, float, float]]
    failed: list[str]
    unanswered: int  # still waiting when we stopped waiting (cancelled)
    in_flight: int  # not answered yet when the last one was sent: the backlog
    sending_rate: float  # mutations sent a second
    answered_rate: float  # mutations answered a second, first send to last answer


async def _send_at_rate(
    http: httpx.AsyncClient,
    urls: list[str],
    rate: float,
    seconds: float,
    wait: float,
    in_flight: int,
) -> _Sent:
    """Open loop: mutation i is due at start + i / rate, answered or not the ones before; at
    most `in_flight` are on the wire, the others wait here (their latency counts from when
    they were due). Without the cap, thousands of requests queued in httpx's pool cost this
    process more CPU than the gateway."""
    count = round(rate * seconds)
    gate = asyncio.Semaphore(in_flight)
    start = time.perf_counter() + 0.05
    tasks: list[asyncio.Task[tuple[int, float, float, float]]] = []
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_mutate(http, urls[i % len(urls)], f"bench {i}", gate)))
    sending = time.perf_counter() - start
    in_flight = sum(1 for t in tasks if not t.done())
    _, pending = await asyncio.wait(tasks, timeout=wait) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    done = [r for r in results if isinstance(r, tuple)]
    failed = [
        repr(r)[:300]
        for r in results
        if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
    ]
    last = max((r[3] for r in done), default=start)
    return _Sent(
        done=done,
        failed=failed,
        unanswered=len(pending),
        in_flight=in_flight,
        sending_rate=count / sending if sending > 0 else float("inf"),
        answered_rate=len(done) / (last - start) if last > start else float("nan"),
    )


async def _ask(conn: Connection, command: tuple[Any, ...] | None, seconds: float) -> Any:
    if command is not None:
        conn.send(command)
    loop = asyncio.get_running_loop()
    ready = await loop.run_in_executor(None, conn.poll, seconds)
    if not ready:
        raise SystemExit(f"a subscriber process did not answer within {seconds:.0f} s")
    return conn.recv()


async def _sample(pids: list[int], samples: list[tuple[float, list[float]]]) -> None:
    while True:
        samples.append((time.monotonic(), [_rss_mb(pid) for pid in pids]))
        await asyncio.sleep(0.5)


async def _measure(
    name: str, gateways: list[Gateway], bearer: str, args: argparse.Namespace
) -> dict[str, Any]:
    urls = [g.url for g in gateways]
    pids = [g.process.pid for g in gateways if g.process is not None]
    result: dict[str, Any] = {"scenario": name, "gateways": len(gateways)}
    result["rss_idle"] = [_rss_mb(pid) for pid in pids]

    context = mp.get_context("spawn")
    shares = [args.subscribers // args.client_processes] * args.client_processes
    for i in range(args.subscribers % args.client_processes):
        shares[i] += 1
    conns, workers, first = [], [], 0
    for share in shares:
        mine, theirs = context.Pipe()
        worker = context.Process(
            target=_subscriber_process,
            args=(theirs, urls, bearer, share, first, args.deflate),
            daemon=True,
        )
        worker.start()
        conns.append(mine)
        workers.append(worker)
        first += share
    try:
        connecting = time.perf_counter()
        answers = [await _ask(conn, None, 180) for conn in conns]
        result["connect_seconds"] = time.perf_counter() - connecting
        result["connected"] = sum(a[1] for a in answers)
        result["connect_failures"] = [f for a in answers for f in a[2]]
        await asyncio.sleep(1.0)
        result["rss_connected"] = [_rss_mb(pid) for pid in pids]

        headers = {"Authorization": f"Bearer {bearer}"}
        limits = httpx.Limits(
            max_connections=args.in_flight, max_keepalive_connections=args.in_flight
        )
        timeout = httpx.Timeout(args.seconds + args.drain_cap + 60, connect=30)
        async with httpx.AsyncClient(headers=headers, limits=limits, timeout=timeout) as http:
            # One warm-up event through each gateway: every subscription is live on each.
            warm = [await _mutate(http, url, "warm-up") for url in urls]
            after = max(w[0] for w in warm)
            waiting = time.perf_counter()
            answers = [await _ask(conn, ("warmup", after, 60.0), 90) for conn in conns]
            result["warmup_seconds"] = time.perf_counter() - waiting
            result["warmup_missing"] = sum(a[1] for a in answers)
            if result["warmup_missing"]:
                print(f"  {result['warmup_missing']} subscribers never saw the warm-up event")

            samples: list[tuple[float, list[float]]] = []
            sampler = asyncio.create_task(_sample(pids, samples))
            await asyncio.sleep(0.1)
            cpu = [_cpu_seconds(pid) for pid in pids]
            client_cpu = [_cpu_seconds(w.pid) for w in workers if w.pid is not None]
            started = time.perf_counter()
            mutations = await _send_at_rate(
                http, urls, args.rate, args.seconds, args.drain_cap, args.in_flight
            )
            sent = {cursor: at for cursor, at, _, _ in mutations.done}
            answers = [
                await _ask(conn, ("drain", after, sent, args.idle, args.drain_cap), 300)
                for conn in conns
            ]
            wall = time.perf_counter() - started
            result["gateway_cpu"] = [
                (_cpu_seconds(pid) - c) / wall for pid, c in zip(pids, cpu, strict=True)
            ]
            result["client_cpu"] = (
                sum(
                    _cpu_seconds(w.pid) - c
                    for w, c in zip(workers, client_cpu, strict=True)
                    if w.pid is not None
                )
                / wall
            )
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            samples.append((time.monotonic(), [_rss_mb(pid) for pid in pids]))
        result["rss_start"] = samples[0][1]
        result["rss_end"] = samples[-1][1]
        result["rss_max"] = [max(s[1][i] for s in samples) for i in range(len(pids))]
        result["rss_slope_mb_per_min"] = [_slope(samples, i) for i in range(len(pids))]

        for conn in conns:
            with contextlib.suppress(Exception):
                await _ask(conn, ("close",), 30)
    finally:
        for worker in workers:
            worker.join(5)
            if worker.is_alive():
                worker.terminate()
                worker.join(5)

    from_commit, from_send = array("d"), array("d")
    for _, answer in answers:
        from_commit.frombytes(answer["from_commit"])
        from_send.frombytes(answer["from_send"])
    http_seconds = array("d", (r[2] for r in mutations.done))
    expected = len(sent) * args.subscribers
    received = sum(a["received"] for _, a in answers)
    result |= {
        "mutations": len(sent),
        "mutation_failures": mutations.failed,
        "unanswered": mutations.unanswered,
        "in_flight": mutations.in_flight,
        "sending_rate": mutations.sending_rate,
        "answered_rate": mutations.answered_rate,
        "subscribers": args.subscribers,
        "expected": expected,
        "received": received,
        "lost": expected - received,
        "duplicates": sum(a["duplicates"] for _, a in answers),
        "unexpected": sum(a["unexpected"] for _, a in answers),
        "out_of_order": sum(a["out_of_order"] for _, a in answers),
        "ended": [e for _, a in answers for e in a["ended"]],
        "drain_seconds": max(a["drain_seconds"] for _, a in answers),
        "commit": _percentiles(from_commit),
        "send": _percentiles(from_send),
        "http": _percentiles(http_seconds),
        "wall": wall,
    }
    return result


def _slope(samples: list[tuple[float, list[float]]], i: int) -> float:
    """Least-squares RSS growth, MB a minute."""
    if len(samples) < 3:
        return 0.0
    xs = [s[0] for s in samples]
    ys = [s[1][i] for s in samples]
    return statistics.linear_regression(xs, ys).slope * 60


def _percentiles(seconds: array[float]) -> dict[str, float]:
    if not seconds:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    ms = sorted(x * 1000 for x in seconds)
    return {
        "p50": ms[len(ms) // 2],
        "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        "max": ms[-1],
    }


def _scenario_a(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="one-bench-realtime-a-"))
    try:
        seed(data_dir)
        bearer = token(data_dir)
        gateway = Gateway(data_dir).start()
        try:
            return asyncio.run(_measure("A: 1 gateway, in-process bus", [gateway], bearer, args))
        finally:
            gateway.stop()
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


def _scenario_b(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="one-bench-realtime-b-"))
    try:
        seed(data_dir)
        bearer = token(data_dir)
        with _redis(data_dir) as (redis_url, redis_pid):
            gateways: list[Gateway] = []
            try:
                for _ in range(2):
                    gateways.append(Gateway(data_dir, redis_url=redis_url).start())
                result = asyncio.run(
                    _measure("B: 2 gateways, Redis Streams", gateways, bearer, args)
                )
                result["redis_rss"] = _rss_mb(redis_pid)
                return result
            finally:
                for gateway in gateways:
                    gateway.stop()
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


def _mb(values: list[float]) -> str:
    return " / ".join(f"{v:.1f}" for v in values)


def _flat(r: dict[str, Any]) -> bool:
    return all(
        end - start <= FLAT_SHARE * start
        for start, end in zip(r["rss_start"], r["rss_end"], strict=True)
    )


def _ok(flag: bool) -> str:
    return "met" if flag else "MISSED"


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    per = " (per process)" if r["gateways"] > 1 else ""
    lost_ok = r["lost"] == 0 and r["duplicates"] == 0
    rows = [
        ("subscribers connected", f"{r['connected']} of {r['subscribers']}", ""),
        ("connect + ack, all (s)", f"{r['connect_seconds']:.1f}", ""),
        ("warm-up event reached all (s)", f"{r['warmup_seconds']:.2f}", ""),
        (
            "mutations answered (sent/s, answered/s)",
            f"{r['mutations']} ({r['sending_rate']:.1f}/s, {r['answered_rate']:.1f}/s)"
            + (f", {len(r['mutation_failures'])} failed" if r["mutation_failures"] else "")
            + (f", {r['unanswered']} unanswered" if r["unanswered"] else ""),
            "",
        ),
        ("mutations unanswered when the last was due", f"{r['in_flight']}", ""),
        ("events expected", f"{r['expected']:,}", ""),
        ("events received", f"{r['received']:,}", ""),
        ("lost", f"{r['lost']:,}", f"0: {_ok(r['lost'] == 0)}"),
        ("duplicates", f"{r['duplicates']:,}", f"0: {_ok(r['duplicates'] == 0)}"),
        (
            "out of order / events of unanswered mutations",
            f"{r['out_of_order']} / {r['unexpected']}",
            "",
        ),
        ("subscribers ended by the server", f"{len(r['ended'])}", ""),
        (
            "latency from commit p50 / p99 / max (ms)",
            f"{r['commit']['p50']:.1f} / {r['commit']['p99']:.1f} / {r['commit']['max']:.0f}",
            f"p99 < {P99_TARGET_MS:.0f}: {_ok(r['commit']['p99'] < P99_TARGET_MS)}",
        ),
        (
            "latency from send p50 / p99 / max (ms)",
            f"{r['send']['p50']:.1f} / {r['send']['p99']:.1f} / {r['send']['max']:.0f}",
            "",
        ),
        (
            "mutation HTTP round trip p50 / p99 (ms)",
            f"{r['http']['p50']:.1f} / {r['http']['p99']:.1f}",
            "",
        ),
        ("drain after the last send (s)", f"{r['drain_seconds']:.1f}", ""),
        (f"gateway RSS idle{per} (MB)", _mb(r["rss_idle"]), ""),
        (f"gateway RSS subscribers connected{per} (MB)", _mb(r["rss_connected"]), ""),
        (f"gateway RSS run start{per} (MB)", _mb(r["rss_start"]), ""),
        (
            f"gateway RSS run end{per} (MB)",
            _mb(r["rss_end"]),
            f"within {FLAT_SHARE:.0%} of start: {_ok(_flat(r))}",
        ),
        (f"gateway RSS run max{per} (MB)", _mb(r["rss_max"]), ""),
        (f"gateway RSS trend{per} (MB/min)", _mb(r["rss_slope_mb_per_min"]), ""),
        (f"gateway CPU{per} (cores)", " / ".join(f"{c:.2f}" for c in r["gateway_cpu"]), ""),
        ("subscriber clients CPU, all (cores)", f"{r['client_cpu']:.2f}", ""),
    ]
    if "redis_rss" in r:
        rows.append(("redis-server RSS at the end (MB)", f"{r['redis_rss']:.1f}", ""))
    print(
        f"\n### {r['scenario']}: {r['subscribers']} subscribers, {args.rate:g} mutations/s "
        f"for {args.seconds:g} s ({os.cpu_count()} cores shared with the clients)\n"
    )
    print("| measure | value | target |")
    print("|---|---|---|")
    for measure, value, target in rows:
        print(f"| {measure} | {value} | {target} |")
    for why in r["ended"][:3] + r["mutation_failures"][:3] + r["connect_failures"][:3]:
        print(f"  - {why}")
    if not lost_ok:
        print("  events were lost or repeated")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="mutations a second")
    parser.add_argument("--seconds", type=float, default=60.0, help="of mutations")
    parser.add_argument("--quick", action="store_true", help="100 subscribers for 10 s")
    parser.add_argument("--scenario", choices=("a", "b", "both"), default="both")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--idle", type=float, default=5.0, help="drain: s without progress")
    parser.add_argument(
        "--drain-cap", type=float, default=60.0, help="s to wait for answers, then for events"
    )
    parser.add_argument("--in-flight", type=int, default=32, help="mutations on the wire")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the gateways on the way
    if args.quick:
        args.subscribers, args.seconds = 100, 10.0
    redis = shutil.which("redis-server") or os.access("/usr/bin/redis-server", os.X_OK)
    if not redis and args.scenario != "a":
        raise SystemExit("scenario B needs redis-server (make system-deps)")

    results = []
    if args.scenario in ("a", "both"):
        results.append(_scenario_a(args))
        report(results[-1], args)
    if args.scenario in ("b", "both"):
        results.append(_scenario_b(args))
        report(results[-1], args)

    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "realtime.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    bad = [r for r in results if r["lost"] or r["duplicates"] or r["ended"]]
    if len(results) == 2:
        a, b = results
        print(
            f"\nB / A: p50 from commit x{b['commit']['p50'] / a['commit']['p50']:.2f}, "
            f"p99 x{b['commit']['p99'] / a['commit']['p99']:.2f}"
        )
    print(
        "\nevents lost or repeated: " + (", ".join(r["scenario"] for r in bad) if bad else "none")
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
