"""Moving a thing type between backends over GraphQL: copy, shadow reads, rollout, promotion,
automatic rollback, with the real WordPress and the Notion and Shopify emulators."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.cli import _configure
from gateway.demo import seed_demo
from gateway.store import started_store
from providers.native import NativeStore, ThingQuery
from providers.native.migrations import Migration
from providers.records import Role, Thing, ThingStatus
from providers.refs import Ref
from tests.conftest import Api, app_settings, seeded_api
from tests.emulators import serve
from tests.emulators.notion import NotionEmulator
from tests.emulators.shopify import ShopifyEmulator
from tests.faults import Fault
from tests.wordpress import WordPress

MIGRATION = """
fragment M on Migration {
  id type source target state dryRun rolloutPercent samplePercent pausedReason
  progress { total copied updated unchanged failed replayed wouldCopy }
  failures { id name code message }
  shadow { reads errors compared mismatches errorRate mismatchRate
           recentMismatches { id fields { path current candidate } } }
  thresholds { errorRate mismatchRate p99Ms windowSeconds minSamples }
}
"""
START = (
    MIGRATION
    + """
mutation($type: String!, $to: String!, $dry: Boolean! = false, $sample: Int! = 100,
         $thresholds: MigrationThresholdsInput) {
  startMigration(type: $type, to: $to, dryRun: $dry, samplePercent: $sample,
                 thresholds: $thresholds) { ...M }
}"""
)
GET = MIGRATION + "query($id: ID!) { migration(id: $id) { ...M } }"
ROLLOUT = (
    MIGRATION
    + "mutation($id: ID!, $p: Int!) { setMigrationRollout(id: $id, percent: $p) { ...M } }"
)
PROMOTE = MIGRATION + "mutation($id: ID!) { promoteMigration(id: $id) { ...M } }"
ABORT = MIGRATION + "mutation($id: ID!) { abortMigration(id: $id) { ...M } }"
RESUME = MIGRATION + "mutation($id: ID!) { resumeMigration(id: $id) { ...M } }"
CONFIGURE = """
mutation($provider: String!, $routes: [String!]!, $config: JSON!) {
  configureProvider(input: {provider: $provider, routes: $routes, config: $config}) {
    provider routes
  }
}"""
PROVIDERS = "{ providers { provider routes } }"
POSTS = """
query { things(type: "blog_post", first: 100) {
  totalCount edges { node { id name status ... on BlogPost { content } } } } }"""


@pytest.fixture
def mig_api(tmp_path: Path) -> Iterator[Api]:
    app = create_app(app_settings(tmp_path, migration_poll_seconds=0.2, migration_flush_seconds=0))
    with seeded_api(app) as api:
        yield api


def settle(api: Api) -> None:
    """The shadow reads in flight done and their tallies written."""
    monitor = api.client.app.state.migrations.monitor  # type: ignore[attr-defined]
    api.run(monitor.drain)


def wait_for(api: Api, id: str, *states: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, Any] = api.data(GET, {"id": id})["migration"]
        if found["state"] in states:
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.1)


def posts(api: Api, **kw: Any) -> dict[str, dict[str, Any]]:
    edges = api.data(POSTS, **kw)["things"]["edges"]
    return {e["node"]["name"]: e["node"] for e in edges}


def test_blog_posts_move_to_wordpress_and_back_keeping_ids_connections_and_events(
    mig_api: Api, wordpress: WordPress
) -> None:
    with wordpress.restored():
        moved_there_and_back(mig_api, wordpress)


def moved_there_and_back(api: Api, wordpress: WordPress) -> None:
    api.data(CONFIGURE, {"provider": "wordpress", "routes": [], "config": wordpress.config()})
    before = posts(api)
    assert len(before) == 3 and all(p["id"].startswith("thing.native.") for p in before.values())
    spring = before["Launching our spring collection"]["id"]
    connections_before = api.data(
        "query($id: ID!) { thing(id: $id) { connections { relationshipType } } }",
        {"id": spring},
    )["thing"]
    edges = sorted(c["relationshipType"] for c in connections_before["connections"])
    assert {"authored", "references"} <= set(edges)

    started = api.data(START, {"type": "blog_post", "to": "wordpress"})["startMigration"]
    assert (started["source"], started["target"], started["state"]) == (
        "native",
        "wordpress",
        "COPYING",
    )
    copied = wait_for(api, started["id"], "SHADOW")
    assert copied["progress"]["total"] == 3 and copied["progress"]["copied"] == 3
    assert copied["failures"] == []

    # Shadow: served by the native store, repeated on WordPress and compared: all equal.
    assert posts(api) == before
    settle(api)
    shadow = api.data(GET, {"id": started["id"]})["migration"]["shadow"]
    assert shadow["compared"] >= 3 and shadow["mismatches"] == 0, shadow

    # Everyone on WordPress: the same posts, WordPress's ids.
    api.data(ROLLOUT, {"id": started["id"], "p": 100})
    served = posts(api)  # the shared site holds other tests' posts too
    assert set(before) <= set(served)
    assert all(p["id"].startswith("thing.wordpress.") for p in served.values())
    assert served["Launching our spring collection"]["status"] == "PUBLISHED"
    assert "Spring is here." in served["Launching our spring collection"]["content"]

    promoted = api.data(PROMOTE, {"id": started["id"]})["promoteMigration"]
    assert promoted["state"] == "PROMOTED"
    routes = {
        p["provider"]: p["routes"]
        for p in api.data("{ providers { provider routes } }")["providers"]
    }
    assert routes["wordpress"] == ["blog_post"]

    # The old id resolves to the copy, with the original's connections and events.
    old = api.data(
        "query($id: ID!) { thing(id: $id) { id name connections { relationshipType } "
        "events(first: 50) { type } } node(id: $id) { id } }",
        {"id": spring},
    )
    moved = served["Launching our spring collection"]["id"]
    assert old["thing"]["id"] == moved and old["node"]["id"] == moved
    assert sorted(c["relationshipType"] for c in old["thing"]["connections"]) == edges
    assert {"type": "entity_created"} in old["thing"]["events"]

    # And back: WordPress's posts (this test's and any other's on the shared site) to native.
    back = api.data(START, {"type": "blog_post", "to": "native"})["startMigration"]
    assert (back["source"], back["target"]) == ("wordpress", "native")
    home = wait_for(api, back["id"], "SHADOW", timeout=120)
    assert home["failures"] == []
    progress = home["progress"]
    assert progress["updated"] == 3  # our 3 posts: their native originals, brought up to date
    assert progress["copied"] + progress["updated"] == progress["total"]
    api.data(PROMOTE, {"id": back["id"]})
    returned = posts(api)
    assert set(before) <= set(returned)
    # The originals are brought up to date rather than copied again: the first ids are back.
    again = returned["Launching our spring collection"]["id"]
    assert again == spring
    for old_id in (spring, moved):
        found = api.data(
            "query($id: ID!) { thing(id: $id) { id connections { relationshipType } } }",
            {"id": old_id},
        )["thing"]
        assert found["id"] == again
        assert sorted(c["relationshipType"] for c in found["connections"]) == edges
    routes = {
        p["provider"]: p["routes"]
        for p in api.data("{ providers { provider routes } }")["providers"]
    }
    assert routes["wordpress"] == []


def test_only_owners_may_see_or_start_migrations(mig_api: Api) -> None:
    for role in (Role.ORG_USER, Role.CUSTOMER):
        error = mig_api.error(START, {"type": "blog_post", "to": "native"}, role=role)
        assert error["extensions"]["code"] == "FORBIDDEN"
        error = mig_api.error("{ migrations { id } }", role=role)
        assert error["extensions"]["code"] == "FORBIDDEN"


# -- a divergent backend, rollout, rollback ----------------------------------------------------

SHOPIFY_TOKEN = "shpat_migrations"
NOTION_TOKEN = "secret_migrations"


def configure_shopify(api: Api, url: str, **changes: Any) -> None:
    config = {
        "shop_url": url,
        "access_token": SHOPIFY_TOKEN,
        "api_version": "2025-04",
        "max_retries": 0,
        **changes,
    }
    api.data(CONFIGURE, {"provider": "shopify", "routes": [], "config": config})


def test_shadow_reads_report_the_exact_fields_a_divergent_backend_changed(mig_api: Api) -> None:
    api = mig_api
    notion = NotionEmulator(token=NOTION_TOKEN, rate=1000, burst=1000)
    database = notion.add_database("Docs")
    api.data(
        'mutation { createThing(input: {type: "document", name: "Supplier handbook", '
        'properties: {content: "Terms and contacts."}}) { id } }'
    )
    with serve(notion.app) as url:
        config = {"token": NOTION_TOKEN, "database_id": database, "base_url": url}
        api.data(CONFIGURE, {"provider": "notion", "routes": [], "config": config})
        started = api.data(START, {"type": "document", "to": "notion"})["startMigration"]
        copied = wait_for(api, started["id"], "SHADOW")
        assert copied["failures"] == [], copied["failures"]
        assert copied["progress"]["copied"] == 2, copied["progress"]

        # Served by the native store; every read repeated on Notion. The demo's brand
        # document has a `url` property, which Notion computes itself (the page's address):
        # the copy could not keep it, and the shadow read says exactly that.
        api.data(DOCS_QUERY)
        settle(api)
        shadow = api.data(GET, {"id": started["id"]})["migration"]["shadow"]
        assert (shadow["compared"], shadow["mismatches"]) == (2, 1), shadow
        (url,) = shadow["recentMismatches"][0]["fields"]
        assert url["path"] == "properties.url"
        assert url["current"] == "https://acme.example/brand"
        assert url["candidate"].startswith("https://www.notion.so/")

        # Someone edits a copy in Notion, behind the gateway's back.
        page = next(p for p in notion.pages.values() if _title(p) == "Brand guidelines")
        notion.rename_page(page["id"], "Brand guidelines (draft)")
        served = api.data(DOCS_QUERY)["things"]["edges"]
        assert {e["node"]["name"] for e in served} == {"Brand guidelines", "Supplier handbook"}
        settle(api)
        found = api.data(GET, {"id": started["id"]})["migration"]
    shadow = found["shadow"]
    assert (shadow["compared"], shadow["mismatches"]) == (4, 2), shadow
    assert shadow["mismatchRate"] == 0.5
    newest = shadow["recentMismatches"][0]
    assert newest["fields"] == [
        {"path": "name", "current": "Brand guidelines", "candidate": "Brand guidelines (draft)"},
        url,
    ]
    assert newest["id"].startswith("thing.native.")
    # Written as an event too (owners see configuration events).
    events = api.data(
        '{ events(type: "communication_event", first: 20) { edges { node { metadata } } } }'
    )
    reports = [
        e["node"]["metadata"]
        for e in events["events"]["edges"]
        if e["node"]["metadata"].get("migration") == started["id"]
    ]
    assert [r["paths"] for r in reports] == [["name", "properties.url"], ["properties.url"]]


DOCS_QUERY = '{ things(type: "document") { edges { node { id name } } } }'


def _title(page: dict[str, Any]) -> str:
    for value in page["properties"].values():
        if value.get("type") == "title":
            return "".join(t["plain_text"] for t in value["title"])
    return ""


def members(api: Api, count: int) -> list[str]:
    """`count` new members of acme, and a token for each."""

    async def add() -> list[str]:
        org = await api.store.organizations.get_by_slug("acme")
        assert org is not None
        auth = api.client.app.state.auth  # type: ignore[attr-defined]
        tokens = []
        for i in range(count):
            person, _ = await api.store.people.add_member(
                org.id,
                actor_ref=None,
                email=f"reader{i}@acme.test",
                name=f"Reader {i}",
                role=Role.ORG_USER,
            )
            tokens.append(auth.issue(person_id=person.id, org_id=org.id, role=Role.ORG_USER))
        return tokens

    result: list[str] = api.run(add)
    return result


PRODUCTS = '{ things(type: "product", first: 5) { edges { node { id } } } }'


def on_target(api: Api, tokens: list[str]) -> set[int]:
    """Which of the actors read products from Shopify."""
    chosen = set()
    for i, token in enumerate(tokens):
        edges = api.data(PRODUCTS, token=token)["things"]["edges"]
        assert edges
        if edges[0]["node"]["id"].startswith("thing.shopify."):
            chosen.add(i)
    return chosen


def test_a_rollout_sends_that_share_of_actors_and_always_the_same_ones(mig_api: Api) -> None:
    api = mig_api
    shopify = ShopifyEmulator(token=SHOPIFY_TOKEN)
    tokens = members(api, 90)
    with serve(shopify.app) as url:
        configure_shopify(api, url)
        started = api.data(START, {"type": "product", "to": "shopify", "sample": 0})[
            "startMigration"
        ]
        wait_for(api, started["id"], "SHADOW")
        assert on_target(api, tokens[:10]) == set()  # shadow: nobody

        api.data(ROLLOUT, {"id": started["id"], "p": 30})
        thirty = on_target(api, tokens)
        assert 13 <= len(thirty) <= 41, len(thirty)  # 27 +- more than 3 standard deviations
        assert on_target(api, tokens) == thirty  # the same actors, every time

        api.data(ROLLOUT, {"id": started["id"], "p": 60})
        sixty = on_target(api, tokens)
        assert thirty < sixty and 39 <= len(sixty) <= 69
        shadow = api.data(GET, {"id": started["id"]})["migration"]["shadow"]
        assert shadow["reads"] >= len(thirty) * 2 + len(sixty) and shadow["errors"] == 0

        api.data(ROLLOUT, {"id": started["id"], "p": 0})
        assert on_target(api, tokens[:20]) == set()
    metrics = api.client.get("/metrics").text
    served = f'one_migration_reads_total{{kind="served",migration="{started["id"]}",outcome="ok"}}'
    assert served in metrics


def test_errors_above_the_threshold_roll_the_traffic_back_within_one_window(
    mig_api: Api,
) -> None:
    api = mig_api
    shopify = ShopifyEmulator(token=SHOPIFY_TOKEN)
    with serve(shopify.app) as url:
        configure_shopify(api, url)
        limits = {"errorRate": 0.2, "minSamples": 5, "windowSeconds": 30}
        started = api.data(
            START, {"type": "product", "to": "shopify", "sample": 0, "thresholds": limits}
        )["startMigration"]
        wait_for(api, started["id"], "SHADOW")
        api.data(ROLLOUT, {"id": started["id"], "p": 100})
        assert api.data(PRODUCTS)["things"]["edges"][0]["node"]["id"].startswith("thing.shopify.")

        shopify.fault = Fault(status=500, body=b'{"errors": "Internal error"}')
        began = time.monotonic()
        failed = 0
        while True:
            body = api.post(PRODUCTS)
            if "errors" not in body:
                break
            failed += 1
            assert failed <= 10, body
        took = time.monotonic() - began
    assert took < limits["windowSeconds"]
    # Back on the native store for everyone, at once; paused for an owner, with the reason.
    ids = [e["node"]["id"] for e in body["data"]["things"]["edges"]]
    assert ids and all(i.startswith("thing.native.") for i in ids)
    found = api.data(GET, {"id": started["id"]})["migration"]
    assert found["state"] == "PAUSED" and found["rolloutPercent"] == 0
    assert found["pausedReason"].startswith("error rate"), found["pausedReason"]
    assert failed == 4  # with the one good read before: 5 reads, 80% failed: back at once
    events = api.data(
        '{ events(type: "settings_updated", first: 5) { edges { node { metadata } } } }'
    )["events"]["edges"]
    rolled = next(e["node"] for e in events if e["node"]["metadata"].get("step") == "rolled_back")
    assert rolled["metadata"]["reason"] == found["pausedReason"]

    # An owner looks, and resumes: shadow again, at 0%.
    resumed = api.data(RESUME, {"id": started["id"]})["resumeMigration"]
    assert (resumed["state"], resumed["rolloutPercent"], resumed["pausedReason"]) == (
        "SHADOW",
        0,
        None,
    )


def test_bad_migration_requests_are_clear_errors(mig_api: Api) -> None:
    api = mig_api
    cases = [
        ({"type": "blog_post", "to": "native"}, "BAD_USER_INPUT"),  # already there
        ({"type": "blog_post", "to": "shopify"}, "NOT_FOUND"),  # not configured
        ({"type": "nonsense", "to": "wordpress"}, "BAD_USER_INPUT"),
        ({"type": "blog_post", "to": "wordpress", "sample": 101}, "BAD_USER_INPUT"),
        (
            {"type": "blog_post", "to": "native", "thresholds": {"errorRate": 2}},
            "BAD_USER_INPUT",
        ),
    ]
    for variables, code in cases:
        error = api.error(START, variables)
        assert error["extensions"]["code"] == code, (variables, error)
    error = api.error(GET, {"id": "nope"})
    assert error["extensions"]["code"] == "NOT_FOUND"


def test_writes_to_the_old_backend_during_a_migration_reach_the_new_one(mig_api: Api) -> None:
    api = mig_api
    shopify = ShopifyEmulator(token=SHOPIFY_TOKEN)
    with serve(shopify.app) as url:
        configure_shopify(api, url)
        started = api.data(START, {"type": "product", "to": "shopify", "sample": 0})[
            "startMigration"
        ]
        wait_for(api, started["id"], "SHADOW")
        titles = lambda: sorted(p["title"] for p in shopify.products.values())  # noqa: E731
        before = titles()

        # Through the gateway: written to the native store (the route), copied on at once.
        mug = next(
            e["node"]
            for e in api.data(PRODUCT_NAMES)["things"]["edges"]
            if e["node"]["name"] == "Enamel mug"
        )
        api.data(RENAME, {"id": mug["id"], "name": "Enamel mug, blue"})
        api.data(
            'mutation { createThing(input: {type: "product", name: "Linen apron", '
            "status: PUBLISHED}) { id } }"
        )
        expected = [t if t != "Enamel mug" else "Enamel mug, blue" for t in before]
        assert titles() == sorted([*expected, "Linen apron"])

        # Behind the thing service (as a webhook or another process would): the runner
        # replays the event stream.
        async def rename_in_store() -> None:
            org = await api.store.organizations.get_by_slug("acme")
            assert org is not None
            await api.store.things.update(
                org.id, Ref.parse(mug["id"]).local_id, actor_ref=None, name="Enamel mug, green"
            )

        api.run(rename_in_store)
        deadline = time.monotonic() + 10
        while "Enamel mug, green" not in titles():
            assert time.monotonic() < deadline, titles()
            time.sleep(0.05)

        # An actor reading Shopify writes through Shopify's id: the write goes to the native
        # store all the same (it is the route until promotion) and comes back copied.
        api.data(ROLLOUT, {"id": started["id"], "p": 100})
        served = next(
            e["node"]
            for e in api.data(PRODUCT_NAMES)["things"]["edges"]
            if e["node"]["name"] == "Enamel mug, green"
        )
        assert served["id"].startswith("thing.shopify.")
        renamed = api.data(RENAME, {"id": served["id"], "name": "Enamel mug, red"})
        assert renamed["updateThing"]["id"] == mug["id"]  # the native original was written
        again = api.data("query($id: ID!) { thing(id: $id) { id name } }", {"id": served["id"]})
        assert again["thing"] == {"id": served["id"], "name": "Enamel mug, red"}
        found = api.data(GET, {"id": started["id"]})["migration"]
    assert found["progress"]["replayed"] >= 1 and found["failures"] == []


def test_a_dry_run_counts_and_checks_without_writing(mig_api: Api) -> None:
    api = mig_api
    shopify = ShopifyEmulator(token=SHOPIFY_TOKEN)
    api.data(
        'mutation { createThing(input: {type: "product", name: "Odd chair", '
        'properties: {colour: "teal"}}) { id } }'
    )
    with serve(shopify.app) as url:
        configure_shopify(api, url)
        started = api.data(START, {"type": "product", "to": "shopify", "dry": True})[
            "startMigration"
        ]
        assert (started["state"], started["dryRun"]) == ("PLANNED", True)
        deadline = time.monotonic() + 30
        while True:
            found = api.data(GET, {"id": started["id"]})["migration"]
            if found["progress"]["total"] is not None and (
                found["progress"]["wouldCopy"] + found["progress"]["failed"]
                == found["progress"]["total"]
            ):
                break
            assert time.monotonic() < deadline, found
            time.sleep(0.1)
        assert shopify.products == {}  # nothing written
    assert found["progress"]["total"] == 3 and found["progress"]["wouldCopy"] == 2
    (failure,) = found["failures"]
    assert failure["name"] == "Odd chair" and failure["code"] == "BAD_USER_INPUT"
    assert "colour" in failure["message"]
    # A dry run does not block a real one, and reads never follow it.
    assert api.data(PRODUCTS)["things"]["edges"][0]["node"]["id"].startswith("thing.native.")


PRODUCT_NAMES = '{ things(type: "product", first: 50) { edges { node { id name } } } }'
RENAME = """mutation($id: ID!, $name: String!) {
  updateThing(id: $id, input: {name: $name}) { id name } }"""


# -- a copy killed half-way --------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


async def _prepare(data_dir: Path, shop_url: str, count: int) -> int:
    """The demo, Shopify configured beside the native store, and `count` more products;
    returns how many products the native store holds."""
    settings = app_settings(data_dir)
    async with started_store(settings) as store:
        await seed_demo(store)
        org = await store.organizations.get_by_slug("acme")
        assert org is not None
        for i in range(count):
            await store.things.create(
                org.id,
                actor_ref=None,
                type="product",
                name=f"Crate {i:03}",
                properties={"vendor": "Acme", "tags": ["crate", f"size-{i % 3}"]},
                status=ThingStatus.PUBLISHED,
            )
    config = {"shop_url": shop_url, "access_token": SHOPIFY_TOKEN, "api_version": "2025-04"}
    await _configure(settings, "acme", "shopify", [], json.dumps(config))
    async with started_store(settings) as store:
        return len(await _products(store, org.id))


def migrate(data_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "migrate",
            "--org",
            "acme",
            "--type",
            "product",
            "--to",
            "shopify",
            "--data-dir",
            str(data_dir),
        ],
        env={**os.environ, "ONE_ENV": "development"},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_copy_killed_half_way_resumes_without_duplicates(tmp_path: Path) -> None:
    shopify = ShopifyEmulator(token=SHOPIFY_TOKEN)
    count = 80
    with serve(shopify.app) as url:
        native = asyncio.run(_prepare(tmp_path, url, count))
        first = migrate(tmp_path)
        deadline = time.monotonic() + 60
        while len(shopify.products) < 20:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.005)
        first.send_signal(signal.SIGKILL)
        first.wait()
        made = len(shopify.products)
        assert 20 <= made < native
        # Whether or not the kill fell between making a copy and recording it, make it so
        # for one more product: its copy exists, its alias is only pending.
        asyncio.run(_crash_after_making_a_copy(tmp_path, shopify))

        second = migrate(tmp_path)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        assert "resuming product native -> shopify" in err  # the progress bar's label
        assert "shadow" in out

    titles = [p["title"] for p in shopify.products.values()]
    assert len(titles) == native and len(set(titles)) == native  # every one, once
    found = asyncio.run(_migration_of(tmp_path))
    assert found.progress["total"] == native
    assert found.state.value == "shadow" and found.failures == []
    # Each thing counted once: the batch the kill interrupted was counted when done again.
    counted = ("copied", "updated", "unchanged")
    assert sum(found.progress.get(k, 0) for k in counted) == native


async def _crash_after_making_a_copy(data_dir: Path, shopify: ShopifyEmulator) -> None:
    async with started_store(app_settings(data_dir)) as store:
        org = await store.organizations.get_by_slug("acme")
        assert org is not None
        (migration,) = await store.migrations.of_org(org.id)
        refs = {f"thing.native.{t.id}": t for t in await _products(store, org.id)}
        copied = await store.migrations.forward(org.id, list(refs))
        left = [ref for ref, aliases in copied.items() if not aliases]
        await store.migrations.mark_pending(migration, left[-1])
        shopify.add_product(refs[left[-1]].name, status="ACTIVE", vendor="Acme")


async def _migration_of(data_dir: Path) -> Migration:
    async with started_store(app_settings(data_dir)) as store:
        org = await store.organizations.get_by_slug("acme")
        assert org is not None
        (found,) = await store.migrations.of_org(org.id)
        aliases = await store.migrations.forward(
            org.id, [f"thing.native.{t.id}" for t in (await _products(store, org.id))]
        )
        assert all(len(a) == 1 for a in aliases.values()), aliases
        return found


async def _products(store: NativeStore, org_id: str) -> list[Thing]:
    page = await store.things.page(org_id, ThingQuery(type="product", first=100))
    return list(page.items)
