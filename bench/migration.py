"""`make bench` (its last part): moving a thing type between backends (issue 13).

One gateway in process (httpx.ASGITransport), on a fresh temporary data directory with the
demo data, and the real WordPress of the tests (`running_wordpress`: Debian's package, PHP's
built-in server with 4 workers, MariaDB; a fresh temporary install) as the target.
`--things` (default 200) native `blog_post`s are added to acme, the demo organization,
straight through the store: a title, three to five paragraphs of HTML `content` and an
`excerpt`, four in five published, the others drafts (with acme's 3 demo posts, the copy
moves `--things` + 3). The gateway's settings are its defaults but for three: generous
per-actor rate limits (this bench is one actor sending back to back), and neither the
knowledge indexer nor WordPress's change detection running in the background (neither is
what is measured; both would read and write meanwhile).

(1) Copy throughput. WordPress configured for acme (`configureProvider`, no routes), then
    `startMigration(type: "blog_post", to: "wordpress")` over GraphQL:
    the time from sending it until the migration's row says SHADOW (the store read every 50
    ms), i.e. the runner's count, its copy of every post (one WordPress `POST` each, the
    aliases written to the store around it) and the replay of the writes made meanwhile.
    Throughput: things copied / that time. The baseline: the same posts (the same JSON body
    the gateway sends: title, status, content, excerpt) created directly with a plain httpx
    client against WordPress's REST API (`POST .../wp/v2/posts`, the editor's Application
    Password, the API's address as the home page's `Link` header gives it), one after
    another, before the migration starts. The ratio is the copy's throughput over that.

(2) The latency a client sees on served reads while the type is shadowed: `things(type:
    "blog_post", first: 20) { edges { node { id name ... on BlogPost { content } } } }`,
    served by the native store (the source), in three arms:
      off      the migration in SHADOW at samplePercent 0: the same state and lookups, no
               shadow read (the baseline);
      shadow   at `--sample` percent (default 10, the gateway's default; each sampled
               read's 20 things read again from WordPress in the background and
               compared), the reads back to back: a read may run while the
               shadow reads of the ones before it (the aliases from the store, WordPress's
               answer parsed, the comparison: all in this process's event loop) still do.
               What a client sees; the targets are judged on this arm;
      alone    at `--sample` percent, each read sent once the previous one's shadow read is
               done (`monitor.drain()` between reads, untimed): the read's own path, and
               what of its own shadow read the event loop runs before the answer is out.
    The arms take turns in rounds of `--round` reads (each arm first, second and third in
    turn, so drift hits them alike), switched by `setMigrationRollout(percent: 0,
    samplePercent: --sample | 0)` outside the timing; `--reads` reads of each arm are measured
    after `--warmup` rounds of each. After every round the monitor is drained (untimed), so
    no backlog spills into the next round; how long that took after the back-to-back rounds
    is printed. Also each arm's CPU time of this process per read (`time.process_time`, the
    round's drains included: the shadow work is the read's). WordPress runs on the same 2
    cores as the gateway, where a production WordPress would not.
    Targets (the issue's): no measurable difference at p50 (a 95% bootstrap interval of the
    p50 difference that holds 0), under 5% at p99.

(3) The shadow comparisons made during (2) and the mismatches among them (a sanity line:
    the copies should equal their originals, 0 mismatches), from the migration's tallies.

Nothing is written into the repository: the data directory and WordPress are temporary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.search import ms, ok, percentile  # noqa: E402
from gateway.app import create_app  # noqa: E402
from gateway.demo import seed_demo  # noqa: E402
from gateway.settings import load_settings  # noqa: E402
from providers.migration_health import MAX_READS  # noqa: E402
from providers.records import Role, ThingStatus  # noqa: E402
from tests.wordpress import WordPress, running_wordpress  # noqa: E402

READ = """{ things(type: "blog_post", first: 20) {
  edges { node { id name ... on BlogPost { content } } } } }"""
CONFIGURE = """mutation($config: JSON!) {
  configureProvider(input: {provider: "wordpress", routes: [], config: $config}) { provider }
}"""
START = """mutation($sample: Int!) {
  startMigration(type: "blog_post", to: "wordpress", samplePercent: $sample) { id state }
}"""
SAMPLE = """mutation($id: ID!, $sample: Int!) {
  setMigrationRollout(id: $id, percent: 0, samplePercent: $sample) { state samplePercent }
}"""
MIGRATION = """query($id: ID!) { migration(id: $id) {
  state samplePercent pausedReason
  progress { total copied updated unchanged failed replayed }
  failures { id code message }
  shadow { reads errors compared mismatches skipped
           recentMismatches { id fields { path current candidate } } }
} }"""
P50_TARGET = "no measurable difference"
P99_TARGET = 1.05  # shadowed p99 / unshadowed p99
POLL = 0.05  # s between looks at the migration's state
BOOTSTRAP = 2000  # resamples for the p50 difference's interval

_WORDS = [
    *("garden", "bench", "teak", "oil", "season", "workshop", "joinery", "cedar", "chair"),
    *("table", "walnut", "finish", "grain", "spring", "summer", "autumn", "winter", "order"),
    *("customer", "delivery", "sanding", "varnish", "wax", "linseed", "weather", "rain"),
    *("sun", "shade", "porch", "deck", "patio", "timber", "plank", "joint", "dowel", "clamp"),
]


# --- the posts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Post:
    name: str
    status: ThingStatus
    content: str
    excerpt: str

    def wordpress_body(self) -> dict[str, Any]:
        """What the gateway's WordPress provider sends to create it."""
        status = "publish" if self.status is ThingStatus.PUBLISHED else "draft"
        return {
            "title": self.name,
            "status": status,
            "content": self.content,
            "excerpt": self.excerpt,
        }


def _sentence(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(8, 16))
    return " ".join(words).capitalize() + rng.choice([".", ".", ".", "!", "?"])


def posts(count: int, seed: int) -> list[Post]:
    """Blog posts of a few paragraphs, some with a link, emphasis, an apostrophe or an `&`."""
    # No "...", "--", " - " or "2x4": WordPress renders them as an ellipsis, dashes and a
    # times sign, which the shadow comparison counts as mismatches (enough pause a migration).
    rng = random.Random(seed)
    made = []
    for n in range(count):
        paragraphs = []
        for p in range(rng.randint(3, 5)):
            text = " ".join(_sentence(rng) for _ in range(rng.randint(3, 6)))
            if p == 1:
                text += ' See <a href="https://example.com/care">our care guide</a>.'
            if p == 2:
                text = (
                    f"<strong>Tip:</strong> it's worth waxing {rng.choice(_WORDS)} & cedar. {text}"
                )
            paragraphs.append(f"<p>{text}</p>")
        topic = " ".join(rng.choices(_WORDS, k=3)).capitalize()
        made.append(
            Post(
                name=f"{topic}: notes from the workshop ({n})",
                status=ThingStatus.DRAFT if n % 5 == 4 else ThingStatus.PUBLISHED,
                content="\n".join(paragraphs),
                excerpt=_sentence(rng),
            )
        )
    return made


# --- (1) copy throughput --------------------------------------------------------------------


async def _posts_url(client: httpx.AsyncClient, wp: WordPress) -> tuple[str, dict[str, str]]:
    """`wp/v2/posts` where the home page's `Link` says the REST API is (as the provider
    finds it): a `?rest_route=` parameter on a site without pretty permalinks."""
    home = await client.get(wp.url + "/")
    root = home.links.get("https://api.w.org/", {}).get("url") or f"{wp.url}/?rest_route=/"
    url = httpx.URL(root)
    if "rest_route" in url.params:
        return str(url.copy_with(query=None)), {"rest_route": "/wp/v2/posts"}
    return str(url).rstrip("/") + "/wp/v2/posts", {}


async def direct_creates(wp: WordPress, made: list[Post]) -> float:
    """Seconds to create `made` on WordPress one after another, with a plain httpx client."""
    auth = (wp.username, wp.application_password)
    async with httpx.AsyncClient(trust_env=False, timeout=60, auth=auth) as client:
        url, params = await _posts_url(client, wp)
        warm = await client.post(
            url, params=params, json=Post("Warm-up", ThingStatus.DRAFT, "", "").wordpress_body()
        )
        if warm.status_code != 201:
            raise SystemExit(f"WordPress refused a post: HTTP {warm.status_code} {warm.text[:300]}")
        started = time.perf_counter()
        for post in made:
            answer = await client.post(url, params=params, json=post.wordpress_body())
            if answer.status_code != 201:
                raise SystemExit(f"WordPress refused a post: HTTP {answer.status_code}")
        return time.perf_counter() - started


class Gateway:
    """The app in process, and its GraphQL as acme's owner sees it."""

    def __init__(self, app: Any, client: httpx.AsyncClient, posts: int) -> None:
        self.app = app
        self.client = client
        self.edges = min(20, posts)  # what a read must answer

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = (
            await self.client.post("/graphql", json={"query": query, "variables": variables})
        ).json()
        if body.get("errors"):
            raise SystemExit(f"GraphQL errors: {body['errors']}")
        data: dict[str, Any] = body["data"]
        return data

    async def read(self) -> float:
        started = time.perf_counter()
        response = await self.client.post("/graphql", json={"query": READ})
        elapsed = time.perf_counter() - started
        body = response.json()
        if body.get("errors") or len(body["data"]["things"]["edges"]) != self.edges:
            raise SystemExit(f"the read failed: {str(body)[:500]}")
        return elapsed


async def copy(gateway: Gateway, org_id: str, wp: WordPress) -> tuple[float, dict[str, Any]]:
    """Seconds from `startMigration` until the migration is in SHADOW; the migration then."""
    store = gateway.app.state.store
    await gateway.data(CONFIGURE, {"config": wp.config()})
    started = time.perf_counter()
    migration_id = (await gateway.data(START, {"sample": 100}))["startMigration"]["id"]
    while True:
        state = (await store.migrations.get(org_id, migration_id)).state.value
        if state == "shadow":
            break
        if state != "copying":
            raise SystemExit(f"the migration went {state}, not shadow")
        await asyncio.sleep(POLL)
    took = time.perf_counter() - started
    migration = (await gateway.data(MIGRATION, {"id": migration_id}))["migration"]
    return took, {"id": migration_id, **migration}


# --- (2) shadow reads' cost -----------------------------------------------------------------


ARMS = ("off", "shadow", "alone")  # see the module's docstring, (2)


async def shadow_latency(
    gateway: Gateway, migration_id: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Each arm's read latencies, in rotating rounds; its process CPU time per read (the
    shadow work drained after it included); the back-to-back rounds' drains."""
    monitor = gateway.app.state.migrations.monitor
    latencies: dict[str, list[float]] = {arm: [] for arm in ARMS}
    cpu: dict[str, list[float]] = {arm: [] for arm in ARMS}
    drains: list[float] = []
    rounds = len(ARMS) * (args.warmup + -(-args.reads // args.round))
    for n in range(rounds):
        # Each arm first, second and third in turn: drift hits them alike.
        arm = ARMS[(n + n // len(ARMS)) % len(ARMS)]
        sample = 0 if arm == "off" else args.sample
        await gateway.data(SAMPLE, {"id": migration_id, "sample": sample})
        taken = []
        cpu_started = time.process_time()
        for _ in range(args.round):
            taken.append(await gateway.read())
            if arm == "alone":
                await monitor.drain()
        started = time.perf_counter()
        await monitor.drain()
        if arm == "shadow":
            drains.append(time.perf_counter() - started)
        if n >= len(ARMS) * args.warmup:
            latencies[arm].extend(taken)
            cpu[arm].append((time.process_time() - cpu_started) / args.round)
    migration = (await gateway.data(MIGRATION, {"id": migration_id}))["migration"]
    return {
        "reads": {arm: values[: args.reads] for arm, values in latencies.items()},
        "cpu": {arm: sum(values) / len(values) for arm, values in cpu.items()},
        "drains": drains,
        "windows": monitor.windows(),
        "migration_after": migration,
    }


def p50_interval(a: list[float], b: list[float], seed: int) -> tuple[float, float]:
    """A 95% bootstrap interval of p50(a) - p50(b), in ms."""
    rng = random.Random(seed)
    diffs = sorted(
        percentile(rng.choices(a, k=len(a)), 50) - percentile(rng.choices(b, k=len(b)), 50)
        for _ in range(BOOTSTRAP)
    )
    return diffs[int(0.025 * BOOTSTRAP)] * 1000, diffs[int(0.975 * BOOTSTRAP) - 1] * 1000


# --- the run --------------------------------------------------------------------------------


async def measure(wp: WordPress, args: argparse.Namespace) -> dict[str, Any]:
    made = posts(args.things, args.seed)
    direct = await direct_creates(wp, made)
    with tempfile.TemporaryDirectory(prefix="one-bench-migration-") as data_dir:
        settings = load_settings(
            data_dir=Path(data_dir),
            actor_rate=1000,
            actor_burst=1000,
            knowledge_index_seconds=0,
            wordpress_poll_seconds=0,
        )
        app = create_app(settings)
        store = app.state.store
        async with app.router.lifespan_context(app):
            acme = (await seed_demo(store))["acme"]
            for post in made:
                await store.things.create(
                    acme.org.id,
                    actor_ref=None,
                    type="blog_post",
                    name=post.name,
                    status=post.status,
                    properties={"content": post.content, "excerpt": post.excerpt},
                )
            token = app.state.auth.issue(
                person_id=acme.person_id, org_id=acme.org.id, role=Role.ORG_OWNER
            )
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://gw",
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            ) as client:
                gateway = Gateway(app, client, posts=args.things + 3)
                took, migration = await copy(gateway, acme.org.id, wp)
                progress = migration["progress"]
                if migration["failures"] or progress["copied"] != args.things + 3:
                    raise SystemExit(f"the copy is not whole: {migration}")
                print(
                    f"copied {progress['copied']} posts in {took:.1f} s; now reading "
                    f"({args.reads} reads in each arm)",
                    flush=True,
                )
                reads = await shadow_latency(gateway, migration["id"], args)
    return {"direct": direct, "copy": took, "migration": migration, **reads}


LABELS = {
    "off": "shadow off (samplePercent 0)",
    "shadow": "shadowed (samplePercent {sample}), back to back",
    "alone": "shadowed, each read after the last one's shadow read",
}


def label(arm: str, args: argparse.Namespace) -> str:
    return LABELS[arm].format(sample=args.sample)


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    copied = result["migration"]["progress"]["copied"]
    copy_rate = copied / result["copy"]
    direct_rate = args.things / result["direct"]
    reads = {arm: ms(values) for arm, values in result["reads"].items()}
    off = reads["off"]
    final = result["migration_after"]
    tally = final["shadow"]
    print(
        f"\n### Migration: native -> WordPress, {copied} blog posts; `things(type: "
        f'"blog_post", first: 20)` served by the native store ({off["n"]} reads in each arm, '
        f"rounds of {args.round})\n"
    )
    print("| measure | value | target |")
    print("|---|---|---|")
    rows = [
        (
            f"copy native -> WordPress: `startMigration` until SHADOW, {copied} posts",
            f"{result['copy']:.1f} s ({copy_rate:.1f} things/s)",
            "",
        ),
        (
            f"WordPress alone: {args.things} posts created directly, one after another",
            f"{result['direct']:.1f} s ({direct_rate:.1f} posts/s)",
            "",
        ),
        ("copy throughput / direct sequential creates", f"{copy_rate / direct_rate:.2f}x", ""),
    ]
    for arm in ARMS:
        m = reads[arm]
        rows.append(
            (
                f"read, {label(arm, args)}: p50 / p99 / max (ms); process CPU per read",
                f"{m['p50']:.1f} / {m['p99']:.1f} / {m['max']:.1f}; "
                f"{result['cpu'][arm] * 1000:.1f} ms",
                "",
            )
        )
    for arm in ("shadow", "alone"):
        m = reads[arm]
        low, high = p50_interval(result["reads"][arm], result["reads"]["off"], args.seed)
        p99 = m["p99"] / off["p99"]
        rows += [
            (
                f"{label(arm, args)} / off at p50 (95% interval of the difference, ms)",
                f"{m['p50'] / off['p50']:.2f}x ({low:+.2f} .. {high:+.2f})",
                f"{P50_TARGET}: {ok(low <= 0 <= high)}",
            ),
            (
                f"{label(arm, args)} / off at p99",
                f"{p99:.2f}x",
                f"< {P99_TARGET:.2f}x: {ok(p99 < P99_TARGET)}",
            ),
        ]
    rows.append(
        (
            "shadow comparisons during the reads, warm-up included / mismatches "
            "(failed shadow reads, skipped)",
            f"{tally['compared']} / {tally['mismatches']} ({tally['errors']}, {tally['skipped']})",
            f"0 mismatches: {ok(tally['mismatches'] == 0)}",
        )
    )
    for row in rows:
        print("| " + " | ".join(row) + " |")
    drains = result["drains"]
    print(
        f"\nDrains after each back-to-back shadowed round ({len(drains)}, untimed): p50 "
        f"{percentile(drains, 50) * 1000:.0f} ms, max {max(drains) * 1000:.0f} ms (the "
        f"shadow reads still in flight when its last read was answered)."
    )
    for _, window in result["windows"]:
        print(
            f"The monitor's window (the last minute, at most {MAX_READS:,} requests): "
            f"{window.reads} shadow requests to WordPress, p99 {window.p99_ms:.0f} ms "
            f"(one request for each shadow read's posts)."
        )
    if final["state"] != "SHADOW":
        print(f"The migration ended {final['state']}: {final['pausedReason']}")
    for mismatch in tally["recentMismatches"][:3]:
        print(f"mismatch {mismatch['id']}: {mismatch['fields'][:3]}")
    load = os.getloadavg()[0]
    print(f"(load average over the last minute: {load:.2f} on {os.cpu_count()} cores)")


def stop_workers(delay_file: Path) -> None:
    """End the PHP workers (PHP_CLI_SERVER_WORKERS) `running_wordpress` leaves running: it
    stops the server's parent process only. Found by the delay file only this run's
    WordPress names in its environment."""
    marker = f"ONE_WP_DELAY_FILE={delay_file}".encode()
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        # A process may end meanwhile, or be another user's: either way not one to stop.
        with contextlib.suppress(OSError):
            if marker in (process / "environ").read_bytes().split(b"\0"):
                os.kill(int(process.name), signal.SIGTERM)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--things", type=int, default=200, help="native posts to migrate")
    parser.add_argument("--reads", type=int, default=300, help="measured reads in each arm")
    parser.add_argument("--round", type=int, default=20, help="reads in a round of one arm")
    parser.add_argument("--warmup", type=int, default=2, help="rounds of each arm not measured")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--sample",
        type=int,
        default=10,
        help="samplePercent of the shadowed arms (10: the gateway's default; 100: every read)",
    )
    args = parser.parse_args()

    started = time.perf_counter()
    # A real WordPress answers requests concurrently; PHP's built-in server needs telling.
    os.environ.setdefault("PHP_CLI_SERVER_WORKERS", "4")
    delay_file: Path | None = None
    try:
        with (
            tempfile.TemporaryDirectory(prefix="one-bench-migration-wp-") as tmp,
            running_wordpress(Path(tmp)) as wp,
        ):
            delay_file = wp.delay_file
            result = asyncio.run(measure(wp, args))
    finally:
        if delay_file is not None:
            stop_workers(delay_file)
    report(result, args)
    print(f"\n({time.perf_counter() - started:.0f} s)")
    # A missed target is a number to read, not a failure: a wrong answer exits earlier, with 1.
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
