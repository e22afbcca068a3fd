"""`make bench` (its last part): search (issue 12), federated and over the knowledge store.

(1) Federated `search`: one organization on the four backends of `tests/backends.py` (native
    store, the real WordPress of the tests, the Shopify and Notion emulators), the search word
    in 10 native courses, 5 WordPress posts, 5 Shopify products and 5 Notion pages. Every
    upstream answers 50 ms slower (WordPress `delayed(50)`, `Fault(delay=0.05)` on both
    emulators). The GraphQL `search(query:, first: 20)` goes through the gateway in process
    (httpx.ASGITransport; the upstreams over real loopback HTTP), `--runs` times one after
    another after a warm-up. In the same rounds each upstream request the gateway made for
    the search (recorded on its HTTP client during the warm-up) is replayed directly, with
    a plain httpx client: the upstream's own latency; then each backend's requests at once,
    and all of them at once (until the last answer): what the upstreams deliver when asked
    together on this machine. Target: the search's p50 under 1.3x the slowest upstream
    request's p50. Also the native store alone (`types: ["course"]`), and the deadline case:
    Notion delayed past the search deadline (`--deadline`, 1 s here; the gateway's default
    is 3 s), where the partial answer (the other backends' hits, Notion in `failures`)
    should come at about the deadline. Rounds are spaced (`--pause`) so that Notion's 3
    requests/s is never what is measured, and the Shopify emulator's bucket refills as a
    Shopify Plus store's (1,000 points/s) for the same reason. WordPress runs PHP's built-in
    server with 4 workers (PHP_CLI_SERVER_WORKERS), as any real WordPress serves requests
    concurrently. The emulators run in this process (threads, as in bench/federation.py);
    WordPress and MariaDB share the machine's cores with it.

(2) Knowledge search over `--chunks` chunks (default 100,000) in the embedded store: SQLite
    in a temporary directory, the rows inserted straight through the engine in batched
    transactions. The text is synthetic: words drawn Zipf-like from a vocabulary of
    `--vocabulary` words (made-up words, and the words of the embeddings emulator's synonym
    groups); each chunk's embedding is the embeddings emulator's own vector of its text
    (tests/emulators/embeddings.py: its per-word vectors summed a batch at a time, checked
    equal to `embedding()` on the first chunks; no HTTP; 256 dimensions), so a semantic query
    means something. `--queries` queries (the three rarest words of a random chunk; every
    other one a paraphrase: its third word a synonym of a word of the chunk) run through
    `KnowledgeBase.search` in LEXICAL, SEMANTIC and HYBRID modes (the query's vector from
    `embedding()`), and `Engine.nearest` approximate; the first `--exact-queries` of them
    also exact (a scan of every vector, the slowest step): recall@10 of the approximate
    search against the exact one (target >= 0.95), and the p50/p99 of each. Also, for each
    mode, how often the chunk a query came from is among its 10 hits.

(3) A Markdown summary of the numbers and targets, to paste into the README.

Nothing is written into the repository: every data directory is temporary and removed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.app import create_app  # noqa: E402
from gateway.demo import seed_demo  # noqa: E402
from gateway.settings import load_settings  # noqa: E402
from providers.records import Role, ThingStatus  # noqa: E402
from providers.wordpress import WordPressConfig, WordPressProvider  # noqa: E402
from tests.backends import Backends, four_backends, route_and_connect  # noqa: E402
from tests.emulators import Fault  # noqa: E402
from tests.emulators.shopify import admin_schema  # noqa: E402
from tests.wordpress import WordPress, running_wordpress  # noqa: E402

SEARCH = """query($q: String!, $first: Int!, $types: [String!]) {
  search(query: $q, first: $first, types: $types) {
    edges { node { provider score snippet thing { id name type provider } } }
    failures { provider source code }
  }
}"""
TERM = "teak"
UPSTREAM_DELAY_MS = 50
NAMES = {"wordpress": "WordPress", "shopify": "Shopify", "notion": "Notion"}
GAP = 0.05  # s between the requests of one round (each alone on the machine)
FEDERATED_TARGET = 1.3  # the search's p50 / the slowest upstream request's p50
RECALL_TARGET = 0.95


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(seconds: list[float]) -> dict[str, float]:
    values = [s * 1000 for s in seconds]
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else float("nan"),
        "n": len(values),
    }


def ok(flag: bool) -> str:
    return "met" if flag else "MISSED"


# --- (1) federated search -------------------------------------------------------------------


@dataclass
class Recorded:
    """One upstream request the gateway made for a search, to replay directly."""

    provider: str
    label: str
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    latencies: list[float] = field(default_factory=list)


def _provider_of(url: str, backends: Backends) -> str:
    origins = {
        urlsplit(backends.wordpress.url).netloc: "wordpress",
        urlsplit(backends.shopify_url).netloc: "shopify",
        urlsplit(backends.notion_url).netloc: "notion",
    }
    return origins.get(urlsplit(url).netloc, urlsplit(url).netloc)


def _label(provider: str, request: httpx.Request) -> str:
    if provider == "wordpress":
        route = request.url.params.get("rest_route") or request.url.path
        return f"WordPress GET {route.split('?')[0]}?search="
    if provider == "shopify":
        body = request.content.decode(errors="replace")
        kind = "orders" if "orders(" in body else "products"
        return f"Shopify POST graphql.json ({kind} search)"
    return f"Notion {request.method} {request.url.path}"


async def _searches(
    wp: WordPress, args: argparse.Namespace
) -> tuple[dict[str, Any], list[Recorded], dict[str, Any]]:
    """The federated search, the native store alone, and the deadline case."""
    data_dir = Path(tempfile.mkdtemp(prefix="one-bench-search-"))
    try:
        settings = load_settings(data_dir=data_dir, search_deadline_seconds=args.deadline)
        app = create_app(settings)
        store = app.state.store
        async with app.router.lifespan_context(app):
            acme = (await seed_demo(store))["acme"]
            with four_backends(wp) as backends:
                await route_and_connect(store, acme.org.id, backends)
                expected = await _data(store, acme.org.id, backends)
                token = app.state.auth.issue(
                    person_id=acme.person_id, org_id=acme.org.id, role=Role.ORG_OWNER
                )
                headers = {"Authorization": f"Bearer {token}", "Cache-Control": "no-store"}
                async with (
                    httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=app),
                        base_url="http://gw",
                        headers=headers,
                        timeout=60,
                    ) as gateway,
                    httpx.AsyncClient(trust_env=False, timeout=60) as direct,
                ):
                    return await _measure_searches(
                        app, gateway, direct, wp, backends, expected, args
                    )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


async def _data(store: Any, org_id: str, backends: Backends) -> dict[str, int]:
    """The search word in 10 native courses, 5 posts, 5 products and 5 Notion pages."""
    for i in range(10):
        await store.things.create(
            org_id,
            actor_ref=None,
            type="course",
            name=f"Joinery {i}",
            properties={"content": f"Working {TERM} by hand, lesson {i}. " * (i % 3 + 1)},
        )
    async with httpx.AsyncClient() as client:
        config = WordPressConfig.model_validate(backends.wordpress.config())
        provider = WordPressProvider(org_id, config, client)
        for i in range(5):
            await provider.create(
                type="blog_post",
                name=f"{TERM.title()} bench {i}",
                status=ThingStatus.PUBLISHED,
                properties={"content": f"<p>A {TERM} bench, oiled twice a year ({i}).</p>"},
            )
    for i in range(5):
        backends.shopify.add_product(f"{TERM.title()} chair {i}", prices=("99.00",))
    for i in range(5):
        backends.notion.add_page(
            backends.notion_database, f"{TERM} oil {i}", paragraphs=[f"Oil the {TERM} ({i})."]
        )
    return {"native": 10, "wordpress": 5, "shopify": 5, "notion": 5}


async def _measure_searches(
    app: Any,
    gateway: httpx.AsyncClient,
    direct: httpx.AsyncClient,
    wp: WordPress,
    backends: Backends,
    expected: dict[str, int],
    args: argparse.Namespace,
) -> tuple[dict[str, Any], list[Recorded], dict[str, Any]]:
    async def search(types: list[str] | None = None) -> tuple[float, dict[str, Any]]:
        variables = {"q": TERM, "first": 20, "types": types}
        started = time.perf_counter()
        response = await gateway.post("/graphql", json={"query": SEARCH, "variables": variables})
        elapsed = time.perf_counter() - started
        return elapsed, response.json()

    # Every upstream request of one search, as the gateway sent it.
    recorded: list[Recorded] = []
    recording = True

    async def record(request: httpx.Request) -> None:
        if recording:
            body = await request.aread()
            provider = _provider_of(str(request.url), backends)
            skip = {"host", "content-length", "traceparent", "tracestate"}
            recorded.append(
                Recorded(
                    provider,
                    _label(provider, request),
                    request.method,
                    str(request.url),
                    {k: v for k, v in request.headers.items() if k.lower() not in skip},
                    body,
                )
            )

    # The Shopify emulator builds its Admin schema on its first request (seconds): not
    # Shopify's latency, nor the gateway's.
    admin_schema()
    # Shopify's cost bucket refills as a Shopify Plus store's does (1,000 points a second):
    # each round asks Shopify's two searches four times; its pacing is not what is measured.
    backends.shopify.restore_rate = 1000.0
    client: httpx.AsyncClient = app.state.providers.client
    for attempt in range(5):  # discovery, connections, Shopify's first report of its bucket
        elapsed, body = await search()
        if not (body.get("data") or {}).get("search", {}).get("failures"):
            break
        print(f"  warm-up search {attempt + 1}: {elapsed:.2f} s, {body.get('errors')}")
        await asyncio.sleep(args.pause)
    _check(body, expected)
    await asyncio.sleep(args.pause)
    client.event_hooks["request"].append(record)
    _check((await search())[1], expected)
    recording = False
    client.event_hooks["request"].remove(record)
    if not recorded:
        raise SystemExit("the search made no upstream request: is every backend configured?")

    backends.shopify.fault = Fault(delay=UPSTREAM_DELAY_MS / 1000)
    backends.notion.fault = Fault(delay=UPSTREAM_DELAY_MS / 1000)
    # The requests at once, as the gateway sends them (until the last answer): each backend's,
    # where it is asked more than once, and all of them.
    groups: dict[str, list[Recorded]] = {}
    for request in recorded:
        groups.setdefault(request.provider, []).append(request)
    together = {_group(p, len(rs)): rs for p, rs in groups.items() if len(rs) > 1}
    together[f"all {len(recorded)} at once"] = recorded
    at_once: dict[str, list[float]] = {name: [] for name in together}
    federated: list[float] = []
    native: list[float] = []
    with wp.delayed(UPSTREAM_DELAY_MS):
        for i in range(args.warmup + args.runs):
            await asyncio.sleep(args.pause)
            elapsed, body = await search()
            _check(body, expected)
            await asyncio.sleep(GAP)
            native_elapsed, native_body = await search(["course"])
            _check(native_body, {"native": expected["native"]})
            for request in recorded:
                await asyncio.sleep(GAP)
                took = await _replay(direct, request)
                if i >= args.warmup:
                    request.latencies.append(took)
            for name, requests in together.items():
                await asyncio.sleep(GAP)
                started = time.perf_counter()
                await asyncio.gather(*(_replay(direct, r) for r in requests))
                if i >= args.warmup:
                    at_once[name].append(time.perf_counter() - started)
            if i >= args.warmup:
                federated.append(elapsed)
                native.append(native_elapsed)

        # Notion past the deadline: the others' hits at about the deadline, Notion in failures.
        backends.notion.fault = Fault(delay=args.deadline + 1.0)
        late: list[float] = []
        codes: set[str] = set()
        partial = {k: v for k, v in expected.items() if k != "notion"}
        for i in range(1 + args.deadline_runs):
            await asyncio.sleep(args.pause)
            elapsed, body = await search()
            _check(body, partial)
            codes |= {f"{f['provider']} {f['code']}" for f in body["data"]["search"]["failures"]}
            if i >= 1:
                late.append(elapsed)
        backends.shopify.fault = backends.notion.fault = None
    return (
        {
            "federated": ms(federated),
            "native": ms(native),
            "at_once": {name: ms(latencies) for name, latencies in at_once.items()},
            "shopify_throttled": backends.shopify.throttled,
            "notion_rate_limited": backends.notion.rate_limited,
        },
        recorded,
        {"latency": ms(late), "failures": sorted(codes)},
    )


def _group(provider: str, requests: int) -> str:
    return f"{NAMES.get(provider, provider)}'s {requests} at once"


async def _replay(client: httpx.AsyncClient, request: Recorded) -> float:
    started = time.perf_counter()
    answer = await client.request(
        request.method, request.url, headers=request.headers, content=request.body
    )
    took = time.perf_counter() - started
    if answer.status_code != 200 or b'"THROTTLED"' in answer.content:
        raise SystemExit(f"{request.label}: HTTP {answer.status_code} {answer.text[:500]}")
    return took


def _check(body: dict[str, Any], expected: dict[str, int]) -> None:
    """The hits are those of every expected backend and no other, as many as asked for."""
    page = (body.get("data") or {}).get("search")
    if not page:
        raise SystemExit(f"the search failed: {body}")
    found: dict[str, int] = {}
    for edge in page["edges"]:
        provider = edge["node"]["provider"]
        found[provider] = found.get(provider, 0) + 1
    if set(found) != set(expected) or sum(found.values()) != min(20, sum(expected.values())):
        raise SystemExit(f"the search found {found}, of {expected}: {body}")


def federated_report(
    searches: dict[str, Any], recorded: list[Recorded], late: dict[str, Any], deadline: float
) -> dict[str, Any]:
    upstream = [(r, ms(r.latencies)) for r in recorded]
    slowest, slowest_ms = max(upstream, key=lambda u: u[1]["p50"])
    federated = searches["federated"]
    ratio = federated["p50"] / slowest_ms["p50"]
    print(
        f'\n### Federated search: `search(query: "{TERM}", first: 20)`, every upstream '
        f"+{UPSTREAM_DELAY_MS} ms ({federated['n']} runs each, in process)\n"
    )
    print("| request | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|")
    for r, m in upstream:
        print(f"| direct: {r.label} | {m['p50']:.1f} | {m['p95']:.1f} | {m['max']:.1f} |")
    for name, m in (
        *((f"direct: {name}, until the last answer", m) for name, m in searches["at_once"].items()),
        ('gateway: `search`, native only (`types: ["course"]`)', searches["native"]),
        ("gateway: `search`, all four backends (6 sources)", federated),
    ):
        print(f"| {name} | {m['p50']:.1f} | {m['p95']:.1f} | {m['max']:.1f} |")
    together = searches["at_once"][f"all {len(recorded)} at once"]["p50"]
    # Each backend as the search asks it: its requests at once (WordPress: posts and pages).
    backends: dict[str, tuple[str, float]] = {}
    for r, m in upstream:
        name = _group(r.provider, sum(1 for x in recorded if x.provider == r.provider))
        if name in searches["at_once"]:
            backends[r.provider] = (name, searches["at_once"][name]["p50"])
        else:
            backends[r.provider] = (r.label, m["p50"])
    slowest_backend = max(backends.values(), key=lambda b: b[1])
    print(
        f"\nfederated p50 / slowest upstream p50 ({slowest.label}): {ratio:.2f}x "
        f"(target < {FEDERATED_TARGET}x: {ok(ratio < FEDERATED_TARGET)}); "
        f"/ the slowest backend asked as the search asks it ({slowest_backend[0]}): "
        f"{federated['p50'] / slowest_backend[1]:.2f}x; "
        f"/ the {len(recorded)} direct requests at once: {federated['p50'] / together:.2f}x. "
        f"Throttled by Shopify: {searches['shopify_throttled']}, rate-limited by Notion: "
        f"{searches['notion_rate_limited']}"
    )
    lm = late["latency"]
    print(
        f"Notion {deadline + 1:g} s late, search deadline {deadline:g} s ({lm['n']} runs): "
        f"p50 {lm['p50']:.0f} ms, max {lm['max']:.0f} ms, {lm['p50'] / 1000 / deadline:.2f}x "
        f"the deadline; failures: {', '.join(late['failures']) or 'none'}"
    )
    return {
        "slowest": slowest.label,
        "slowest_p50": slowest_ms["p50"],
        "federated": federated,
        "native": searches["native"],
        "ratio": ratio,
        "together": together,
        "slowest_backend": slowest_backend,
        "requests": len(recorded),
        "late": lm,
        "late_failures": late["failures"],
        "deadline": deadline,
    }


class _Disconnects(logging.Filter):
    """Leaves out the emulators' tracebacks of a request whose client went away: the gateway
    gives up on Notion at the deadline, which is the point of that case."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return type(error).__name__ != "ClientDisconnect"


async def federated(args: argparse.Namespace) -> dict[str, Any]:
    logging.getLogger("uvicorn.error").addFilter(_Disconnects())
    # A real WordPress answers requests concurrently; PHP's built-in server needs telling.
    os.environ.setdefault("PHP_CLI_SERVER_WORKERS", "4")
    with (
        tempfile.TemporaryDirectory(prefix="one-bench-search-wp-") as tmp,
        running_wordpress(Path(tmp)) as wp,
    ):
        searches, recorded, late = await _searches(wp, args)
    load = os.getloadavg()[0]
    print(f"(load average over the last minute: {load:.2f} on {os.cpu_count()} cores)")
    return federated_report(searches, recorded, late, args.deadline)


# --- (2) knowledge search -------------------------------------------------------------------


ORG = "bench-knowledge"
K = 10  # hits asked of each search, and the k of recall@k


def _vocabulary(size: int, rng: Any) -> list[str]:
    """`size` words: every word of the embeddings emulator's synonym groups, and made-up
    ones (consonant-vowel syllables, none ending in "s", which the emulator reads as a
    plural), in a random order: a word's place is its rank in the Zipf draw."""
    from tests.emulators.embeddings import CONCEPT, STOP_WORDS

    words = list(CONCEPT)
    taken = set(words) | STOP_WORDS | {"and", "or", "not", "near"}
    onsets, vowels, codas = "bcdfghjklmnprtvwz", "aeiou", ["", "", "n", "r", "l", "k", "m"]
    while len(words) < size:
        syllables = rng.integers(2, 4, endpoint=True)
        word = "".join(
            onsets[rng.integers(len(onsets))]
            + vowels[rng.integers(len(vowels))]
            + codas[rng.integers(len(codas))]
            for _ in range(syllables)
        )
        if word not in taken:
            taken.add(word)
            words.append(word)
    order = rng.permutation(len(words))
    return [words[i] for i in order]


def _text(ranks: Any, vocabulary: list[str]) -> str:
    """Words as sentences of about a dozen, each capitalised and ended with a full stop."""
    words = [vocabulary[r] for r in ranks]
    sentences = [words[i : i + 12] for i in range(0, len(words), 12)]
    return " ".join(" ".join(s).capitalize() + "." for s in sentences)


def _word_vectors(vocabulary: list[str]) -> Any:
    """Each word's part of a text's vector, as the embeddings emulator makes it: the start
    of its concept's unit vector (the model's full size, cut to DIMENSIONS). A text's vector
    is the sum of its words', normalised: `embedding(text)`, a batch at a time."""
    import numpy as np

    from tests.emulators.embeddings import DEFAULT_MODEL, DIMENSIONS, MODELS, _unit, concepts

    size = max(DIMENSIONS, MODELS[DEFAULT_MODEL].size)
    return np.stack([_unit(DEFAULT_MODEL, concepts(w)[0], size)[:DIMENSIONS] for w in vocabulary])


@dataclass
class Query:
    text: str
    origin: str  # the id of the chunk its words came from
    paraphrased: bool  # one of its words is not the chunk's but a synonym of one
    vector: list[float] = field(default_factory=list)


async def _fill(engine: Any, args: argparse.Namespace) -> tuple[list[Query], dict[str, float]]:
    """`--chunks` rows of kind chunk, in transactions of `--batch`; the queries."""
    import numpy as np

    from providers.engine import TABLES
    from providers.records import utcnow
    from providers.refs import new_local_id
    from tests.emulators.embeddings import DEFAULT_MODEL, SYNONYMS, embedding

    rng = np.random.default_rng(args.seed)
    vocabulary = _vocabulary(args.vocabulary, rng)
    head = {v: k for k, words in SYNONYMS.items() for v in words}
    weights = 1.0 / np.power(np.arange(len(vocabulary)) + 2.7, 1.0)  # Zipf-Mandelbrot
    weights /= weights.sum()
    columns = TABLES["knowledge"].columns
    units = _word_vectors(vocabulary)
    asked = set(rng.choice(args.chunks, size=min(args.queries, args.chunks), replace=False))
    queries: list[Query] = []
    spent = {"text": 0.0, "embed": 0.0, "insert": 0.0}
    done = 0
    while done < args.chunks:
        size = min(args.batch, args.chunks - done)
        started = time.perf_counter()
        lengths = rng.integers(30, 60, size=size, endpoint=True)
        drawn = rng.choice(len(vocabulary), size=int(lengths.sum()), p=weights)
        rows: list[dict[str, Any]] = []
        at = 0
        for i, length in enumerate(lengths):
            ranks = drawn[at : at + length]
            at += length
            rows.append({"text": _text(ranks, vocabulary), "ranks": ranks, "n": done + i})
        spent["text"] += time.perf_counter() - started
        started = time.perf_counter()
        # Each chunk's word counts times the words' vectors: the sum of its words' vectors.
        owner = np.repeat(np.arange(size), lengths)
        counts = np.bincount(owner * len(vocabulary) + drawn, minlength=size * len(vocabulary))
        sums = counts.reshape(size, len(vocabulary)).astype(np.float64) @ units
        vectors = sums / np.linalg.norm(sums, axis=1, keepdims=True)
        for row, vector in zip(rows, vectors, strict=True):
            row["embedding"] = vector.tolist()
        if done == 0:  # the emulator's own vectors, a word at a time
            for row in rows[:50]:
                gap = np.abs(np.asarray(embedding(row["text"])) - row["embedding"]).max()
                assert gap < 1e-9, f"not the emulator's vector: {gap}"
        spent["embed"] += time.perf_counter() - started
        started = time.perf_counter()
        now = utcnow()
        records = []
        for row in rows:
            record: dict[str, Any] = {
                "id": new_local_id(),
                "org_id": ORG,
                "kind": "chunk",
                "text": row["text"],
                "labels": ["type:note", f"tag:t{row['n'] % 10}"],
                "embedding": row["embedding"],
                "embedding_model": DEFAULT_MODEL,
                "source_ref": f"thing.native.doc{row['n'] // 8:08d}",
                "position": row["n"] % 8,
                "created_at": now,
            }
            records.append({k: v for k, v in record.items() if k in columns})
            if row["n"] in asked:
                # Its three rarest words; or, every other query, its two rarest and a word
                # of a synonym group it holds said with another of the group: a paraphrase,
                # which only SEMANTIC can tell means the same.
                rarest = [vocabulary[r] for r in sorted(set(row["ranks"].tolist()))[::-1]]
                words = rarest[:3]
                grouped = [w for w in rarest[2:] if w in head]
                paraphrased = len(queries) % 2 == 1 and bool(grouped)
                if paraphrased:
                    others = [w for w in SYNONYMS[head[grouped[0]]] if w != grouped[0]]
                    words[2] = others[int(rng.integers(len(others)))]
                queries.append(Query(" ".join(words), record["id"], paraphrased))
        await _insert(engine, records)
        spent["insert"] += time.perf_counter() - started
        done += size
        if sys.stdout.isatty():
            print(f"\r  {done:,} of {args.chunks:,} chunks", end="", flush=True)
    if sys.stdout.isatty():
        print()
    for query in queries:
        query.vector = embedding(query.text)
    queries = [queries[i] for i in rng.permutation(len(queries))]
    return queries, spent


async def _insert(engine: Any, rows: list[dict[str, Any]]) -> None:
    """One transaction: the engine's bulk insert if it has one, else a row at a time."""
    async with engine.transaction() as tx:
        many = getattr(tx, "insert_many", None)
        if many is not None:
            await many("knowledge", rows)
            return
        for row in rows:
            await tx.insert("knowledge", row)


def _megabytes(directory: Path) -> float:
    return sum(f.stat().st_size for f in directory.iterdir()) / 1e6


async def knowledge(args: argparse.Namespace) -> dict[str, Any]:
    from providers.engine import Cond, Where
    from providers.native.knowledge import MODES, KnowledgeBase
    from providers.sqlite import SQLiteEngine
    from tests.emulators.embeddings import DEFAULT_MODEL, DIMENSIONS

    data_dir = Path(tempfile.mkdtemp(prefix="one-bench-knowledge-"))
    engine = SQLiteEngine(data_dir / "one.db")
    try:
        await engine.start()
        started = time.perf_counter()
        queries, spent = await _fill(engine, args)
        loading = time.perf_counter() - started
        finish = getattr(engine, "optimize", None)  # an index built after the load, if any
        if finish is not None:
            started = time.perf_counter()
            await finish()
            spent["finish"] = time.perf_counter() - started
        size = _megabytes(data_dir)
        kb = KnowledgeBase(engine)
        where: Where = [Cond("org_id", "eq", ORG), Cond("kind", "in", {"label", "chunk"})]

        async def timed(call: Awaitable[Any]) -> tuple[float, Any]:
            began = time.perf_counter()
            result = await call
            return time.perf_counter() - began, result

        latency: dict[str, list[float]] = {
            m: [] for m in ("LEXICAL", "SEMANTIC", "HYBRID", "exact", "approximate")
        }
        found = {(m, p): 0 for m in MODES for p in (False, True)}
        answered: set[str] = set()
        recalls: list[float] = []
        for warm in queries[:5]:  # the page cache, the indexes' first reads
            await kb.search(
                ORG, warm.text, mode="HYBRID", first=K, vector=warm.vector, model=DEFAULT_MODEL
            )
        for n, query in enumerate(queries):
            for mode in MODES:
                took, (hits, answered_mode) = await timed(
                    kb.search(
                        ORG,
                        query.text,
                        mode=mode,
                        first=K,
                        vector=query.vector,
                        model=DEFAULT_MODEL,
                    )
                )
                answered.add(f"{mode}->{answered_mode}")
                latency[mode].append(took)
                found[mode, query.paraphrased] += any(item.id == query.origin for item, _ in hits)
            took, approximate = await timed(
                engine.nearest("knowledge", where, query.vector, model=DEFAULT_MODEL, limit=K)
            )
            latency["approximate"].append(took)
            if n >= args.exact_queries:  # a scan of every vector: the slowest step by far
                continue
            took, exact = await timed(
                engine.nearest(
                    "knowledge", where, query.vector, model=DEFAULT_MODEL, limit=K, exact=True
                )
            )
            latency["exact"].append(took)
            truth = {h.row["id"] for h in exact}
            recalls.append(len(truth & {h.row["id"] for h in approximate}) / max(len(truth), 1))
    finally:
        with contextlib.suppress(Exception):
            await engine.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    paraphrased = sum(q.paraphrased for q in queries)
    shares: dict[str, tuple[float, float]] = {
        mode: (
            found[mode, False] / max(len(queries) - paraphrased, 1),
            found[mode, True] / max(paraphrased, 1),
        )
        for mode in MODES
    }
    counts = (len(queries) - paraphrased, paraphrased)
    return knowledge_report(
        args, loading, spent, size, latency, shares, counts, recalls, DIMENSIONS, answered
    )


def knowledge_report(
    args: argparse.Namespace,
    loading: float,
    spent: dict[str, float],
    size: float,
    latency: dict[str, list[float]],
    shares: dict[str, tuple[float, float]],
    counts: tuple[int, int],
    recalls: list[float],
    dimensions: int,
    answered: set[str],
) -> dict[str, Any]:
    recall = statistics.fmean(recalls) if recalls else float("nan")
    print(
        f"\n### Knowledge search: {args.chunks:,} chunks, {dimensions}-dimension vectors, "
        f"embedded SQLite ({sum(counts)} queries, first: {K})\n"
    )
    print(
        f"load: {loading:.1f} s in all = text {spent['text']:.1f} s + embeddings "
        f"{spent['embed']:.1f} s + insert {spent['insert']:.1f} s "
        f"({args.chunks / spent['insert']:,.0f} chunks/s, transactions of {args.batch:,})"
        + (f"; index build after the load {spent['finish']:.1f} s" if "finish" in spent else "")
        + f"; database {size:,.0f} MB"
    )
    print(
        f"\n| search | p50 ms | p99 ms | max ms | the chunk the query came from in the top "
        f"{K}: {counts[0]} queries of its words / {counts[1]} paraphrased |"
    )
    print("|---|---|---|---|---|")
    rows = {}
    for name, label in (
        ("LEXICAL", "`KnowledgeBase.search` LEXICAL (BM25)"),
        ("SEMANTIC", "`KnowledgeBase.search` SEMANTIC"),
        ("HYBRID", "`KnowledgeBase.search` HYBRID (RRF)"),
        ("exact", "`engine.nearest` exact"),
        ("approximate", "`engine.nearest` approximate"),
    ):
        m = ms(latency[name])
        rows[name] = m
        share = f"{shares[name][0]:.0%} / {shares[name][1]:.0%}" if name in shares else ""
        print(f"| {label} | {m['p50']:.1f} | {m['p99']:.1f} | {m['max']:.1f} | {share} |")
    print(
        f"\nrecall@{K} of the approximate nearest against the exact ({len(recalls)} queries): "
        f"{recall:.3f} "
        f"(target >= {RECALL_TARGET}: {ok(recall >= RECALL_TARGET)}); modes answered: "
        f"{', '.join(sorted(answered))}"
    )
    summary_rows = [
        (
            f"knowledge: insert {args.chunks:,} chunks (embedded SQLite, transactions of "
            f"{args.batch:,})",
            f"{spent['insert']:.1f} s ({args.chunks / spent['insert']:,.0f}/s)",
            "",
        ),
    ]
    for name, label in (
        ("LEXICAL", "LEXICAL"),
        ("SEMANTIC", "SEMANTIC"),
        ("HYBRID", "HYBRID"),
        ("exact", "`nearest` exact"),
        ("approximate", "`nearest` approximate"),
    ):
        m = rows[name]
        summary_rows.append(
            (
                f"knowledge: {label} over {args.chunks:,} chunks: p50 / p99 (ms)",
                f"{m['p50']:.1f} / {m['p99']:.1f}",
                "",
            )
        )
    summary_rows.append(
        (
            f"knowledge: recall@{K}, approximate vs exact nearest",
            f"{recall:.3f}",
            f">= {RECALL_TARGET}: {ok(recall >= RECALL_TARGET)}",
        )
    )
    return {"recall": recall, "summary": summary_rows, "latency": rows}


# --- (3) summary ----------------------------------------------------------------------------


def summary(fed: dict[str, Any] | None, kb: dict[str, Any] | None) -> None:
    print("\n### Search: summary\n")
    print("| measure | value | target |")
    print("|---|---|---|")
    if fed is not None:
        f, n, late = fed["federated"], fed["native"], fed["late"]
        rows = [
            (
                f"federated `search`, 4 backends, each upstream +{UPSTREAM_DELAY_MS} ms: "
                "p50 / p95 (ms)",
                f"{f['p50']:.1f} / {f['p95']:.1f}",
                "",
            ),
            (
                f"slowest upstream request alone ({fed['slowest']}): p50 (ms)",
                f"{fed['slowest_p50']:.1f}",
                "",
            ),
            (
                "federated p50 / slowest upstream p50",
                f"{fed['ratio']:.2f}x",
                f"< {FEDERATED_TARGET}x: {ok(fed['ratio'] < FEDERATED_TARGET)}",
            ),
            (
                f"slowest backend as the search asks it ({fed['slowest_backend'][0]}): p50 (ms)",
                f"{fed['slowest_backend'][1]:.1f}",
                f"federated / this: {f['p50'] / fed['slowest_backend'][1]:.2f}x",
            ),
            (
                f"the same {fed['requests']} upstream requests sent directly at once: p50 (ms)",
                f"{fed['together']:.1f}",
                f"federated / this: {f['p50'] / fed['together']:.2f}x",
            ),
            ("native store alone: p50 / p95 (ms)", f"{n['p50']:.1f} / {n['p95']:.1f}", ""),
            (
                f"one upstream past the {fed['deadline']:g} s deadline: p50 / max (ms)",
                f"{late['p50']:.0f} / {late['max']:.0f}",
                f"about the deadline: {late['p50'] / 1000 / fed['deadline']:.2f}x",
            ),
        ]
        for row in rows:
            print("| " + " | ".join(row) + " |")
    if kb is not None:
        for row in kb["summary"]:
            print("| " + " | ".join(row) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("federated", "knowledge", "both"), default="both")
    parser.add_argument("--runs", type=int, default=30, help="federated searches measured")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--pause", type=float, default=0.4, help="s between rounds")
    parser.add_argument("--deadline", type=float, default=1.0, help="the search deadline, s")
    parser.add_argument("--deadline-runs", type=int, default=8)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--vocabulary", type=int, default=3000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--exact-queries", type=int, default=100, help="of them, also searched exactly (recall)"
    )
    parser.add_argument("--batch", type=int, default=2000, help="chunks per transaction")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()

    fed = kb = None
    took: dict[str, float] = {}
    if args.part in ("federated", "both"):
        started = time.perf_counter()
        fed = asyncio.run(federated(args))
        took["federated search"] = time.perf_counter() - started
    if args.part in ("knowledge", "both"):
        started = time.perf_counter()
        kb = asyncio.run(knowledge(args))
        took["knowledge search"] = time.perf_counter() - started
    summary(fed, kb)
    print("\n(" + ", ".join(f"{part}: {s:.0f} s" for part, s in took.items()) + ")")
    # A missed target is a number to read, not a failure: a wrong answer exits earlier, with 1.
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
