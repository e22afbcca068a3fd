"""Hostile probes of migrations over HTTP: organization isolation, roles, secrets, bad input,
state-machine abuse, concurrency, and reads that cross backends during a rollout."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from providers import migrations as steps
from providers.records import Role
from tests.conftest import Api, app_settings, seeded_api
from tests.emulators import Fault, serve
from tests.emulators.notion import NotionEmulator
from tests.emulators.shopify import ShopifyEmulator
from tests.gateway.test_migrations import (
    ABORT,
    CONFIGURE,
    GET,
    MIGRATION,
    PROMOTE,
    RESUME,
    ROLLOUT,
    START,
    settle,
    wait_for,
)

SHOPIFY_TOKEN = "shpat_probe_0123456789abcdef"
NOTION_TOKEN = "secret_probe_0123456789abcdef"
SECRETS = (SHOPIFY_TOKEN, NOTION_TOKEN)
LIST = MIGRATION + "query { migrations { ...M } }"
PRODUCTS = """query($after: String, $status: ThingStatus) {
  things(type: "product", first: 2, after: $after, status: $status) {
    totalCount pageInfo { endCursor hasNextPage } edges { cursor node { id name } } } }"""
EVENTS = """query($type: String!) { events(type: $type, first: 100) {
  edges { node { type metadata } } } }"""
UNSAFE_CODES = {"INTERNAL_SERVER_ERROR"}


@pytest.fixture
def mig_api(tmp_path: Path) -> Iterator[Api]:
    # The runner looks only when kicked (startMigration, resumeMigration): a migration made
    # in the store stays where it is put.
    app = create_app(app_settings(tmp_path, migration_flush_seconds=0))
    with seeded_api(app) as api:
        yield api


@contextmanager
def shopify_for(api: Api, org: str = "acme", **changes: Any) -> Iterator[ShopifyEmulator]:
    shopify = ShopifyEmulator(token=SHOPIFY_TOKEN)
    with serve(shopify.app) as url:
        config = {
            "shop_url": url,
            "access_token": SHOPIFY_TOKEN,
            "api_version": "2025-04",
            "max_retries": 0,
            **changes,
        }
        api.data(CONFIGURE, {"provider": "shopify", "routes": [], "config": config}, org=org)
        yield shopify


def start_products(api: Api, **variables: Any) -> dict[str, Any]:
    """Products of acme moving to Shopify, copied (shadow)."""
    started = api.data(START, {"type": "product", "to": "shopify", "sample": 0, **variables})
    return wait_for(api, started["startMigration"]["id"], "SHADOW", timeout=20)


def routes(api: Api, org: str = "acme") -> dict[str, list[str]]:
    found = api.data("{ providers { provider routes } }", org=org)["providers"]
    return {p["provider"]: p["routes"] for p in found}


def state_of(api: Api, org: str = "acme") -> Any:
    """What an attack must leave as it was: every migration and the routes."""
    migrations = api.data(LIST, org=org)["migrations"]
    for m in migrations:
        m.pop("shadow")
    return migrations, routes(api, org)


def steps_of(api: Api, migration_id: str) -> list[str]:
    edges = api.data(EVENTS, {"type": "settings_updated"})["events"]["edges"]
    return [
        e["node"]["metadata"]["step"]
        for e in edges
        if e["node"]["metadata"].get("migration") == migration_id
    ]


def assert_clean_error(body: dict[str, Any], *codes: str) -> dict[str, Any]:
    text = json.dumps(body)
    assert "Traceback" not in text and 'File "' not in text, text
    assert body.get("errors"), body
    (error,) = body["errors"]
    assert isinstance(error, dict)
    code = error.get("extensions", {}).get("code")
    assert code not in UNSAFE_CODES, error
    if codes:
        assert code in codes, error
    return error


def post_raw(api: Api, text: str, *, token: str | None = None) -> dict[str, Any]:
    """A request body sent as is (JSON that Python reads but GraphQL has no value for)."""
    headers = {"content-type": "application/json"}
    headers["Authorization"] = f"Bearer {token or api.token()}"
    response = api.client.post("/graphql", content=text.encode(), headers=headers)
    assert response.status_code < 500, response.text
    body: dict[str, Any] = response.json()
    return body


# -- organization isolation --------------------------------------------------------------------


def test_another_organizations_owner_cannot_see_or_change_a_migration(mig_api: Api) -> None:
    api = mig_api
    with shopify_for(api):
        migration = start_products(api)
        id = migration["id"]
        before = state_of(api)
        attempts = [
            (GET, {"id": id}),
            (ROLLOUT, {"id": id, "p": 100}),
            (PROMOTE, {"id": id}),
            (ABORT, {"id": id}),
            (RESUME, {"id": id}),
        ]
        for query, variables in attempts:
            theirs = assert_clean_error(api.post(query, variables, org="globex"), "NOT_FOUND")
            # The same answer as an id nobody has: nothing tells the migration exists.
            nobody = assert_clean_error(api.post(query, {**variables, "id": "x" + id[1:]}))
            assert theirs == {**nobody, "path": theirs["path"]}, (theirs, nobody)
            assert id not in json.dumps(theirs)
        assert api.data(LIST, org="globex")["migrations"] == []
        assert state_of(api) == before
        assert steps_of(api, id) == ["copied", "started"]


THING_AND_NODE = "query($id: ID!) { thing(id: $id) { id } node(id: $id) { id } }"


def test_a_migration_never_changes_how_another_organization_reads(mig_api: Api) -> None:
    api = mig_api
    roles = (Role.ORG_OWNER, Role.ORG_USER, Role.CUSTOMER)
    theirs_before = api.data(PRODUCTS, org="globex")["things"]
    with shopify_for(api):
        old = {e["node"]["name"]: e["node"]["id"] for e in api.data(PRODUCTS)["things"]["edges"]}
        # Acme's ids asked by globex, before anything moved: not found.
        baseline = {
            (role, old_id): api.post(THING_AND_NODE, {"id": old_id}, org="globex", role=role)
            for role in roles
            for old_id in old.values()
        }
        for body in baseline.values():
            assert body["data"] == {"thing": None, "node": None}
            assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        migration = start_products(api)
        for step in (ROLLOUT, PROMOTE):
            api.data(step, {"id": migration["id"], "p": 100})
            assert api.data(PRODUCTS, org="globex")["things"] == theirs_before
            for (role, old_id), before in baseline.items():
                after = api.post(THING_AND_NODE, {"id": old_id}, org="globex", role=role)
                assert after == before
        # Acme's old ids do resolve to the copies, for acme.
        moved = api.data("query($id: ID!) { thing(id: $id) { id } }", {"id": old["Enamel mug"]})
        assert moved["thing"]["id"].startswith("thing.shopify.")
        # Globex's own products: its store's ids, unchanged, and its routes untouched.
        assert all(e["node"]["id"].startswith("thing.native.") for e in theirs_before["edges"])
        assert routes(api, "globex") == {}


def test_an_organization_migrates_only_its_own_things_to_its_own_backend(mig_api: Api) -> None:
    api = mig_api
    with shopify_for(api) as acme_shop:
        # Acme's Shopify is not globex's to migrate to.
        error = assert_clean_error(
            api.post(START, {"type": "product", "to": "shopify"}, org="globex"), "NOT_FOUND"
        )
        assert SHOPIFY_TOKEN not in json.dumps(error)
        assert api.data(LIST, org="globex")["migrations"] == []
        acme = start_products(api)
        # Acme's live migration of products does not block globex's (no CONFLICT across
        # organizations), and each copies its own things to its own shop.
        with shopify_for(api, org="globex") as globex_shop:
            started = api.data(
                START, {"type": "product", "to": "shopify", "sample": 0}, org="globex"
            )["startMigration"]
            deadline = time.monotonic() + 20
            while True:
                theirs = api.data(GET, {"id": started["id"]}, org="globex")["migration"]
                if theirs["state"] == "SHADOW":
                    break
                assert time.monotonic() < deadline, theirs
                time.sleep(0.1)
            assert [p["title"] for p in globex_shop.products.values()] == ["Hammock"]
            assert sorted(p["title"] for p in acme_shop.products.values()) == [
                "Canvas tote",
                "Enamel mug",
            ]
            assert [m["id"] for m in api.data(LIST, org="globex")["migrations"]] == [started["id"]]
            assert [m["id"] for m in api.data(LIST)["migrations"]] == [acme["id"]]


# -- roles -------------------------------------------------------------------------------------

ALL_STEPS: list[tuple[str, dict[str, Any]]] = [
    (LIST, {}),
    (GET, {"id": "ID"}),
    (START, {"type": "product", "to": "shopify"}),
    (ROLLOUT, {"id": "ID", "p": 100}),
    (PROMOTE, {"id": "ID"}),
    (ABORT, {"id": "ID"}),
    (RESUME, {"id": "ID"}),
]

SMALL_STEPS: list[tuple[str, dict[str, Any]]] = [
    ("{ migrations { id state } }", {}),
    ("query($id: ID!) { migration(id: $id) { id state } }", {"id": "ID"}),
    (
        'mutation { startMigration(type: "product", to: "shopify") { id } }',
        {},
    ),
    ("mutation($id: ID!) { setMigrationRollout(id: $id, percent: 100) { id } }", {"id": "ID"}),
    ("mutation($id: ID!) { promoteMigration(id: $id) { id } }", {"id": "ID"}),
    ("mutation($id: ID!) { abortMigration(id: $id) { id } }", {"id": "ID"}),
    ("mutation($id: ID!) { resumeMigration(id: $id) { id } }", {"id": "ID"}),
]


def _key(api: Api, role: str) -> str:
    created = api.data(
        'mutation($role: Role!) { createApiKey(name: "probe", role: $role) { secret } }',
        {"role": role},
    )
    secret: str = created["createApiKey"]["secret"]
    return secret


def test_only_owners_see_or_change_migrations_and_nobody_unauthenticated(mig_api: Api) -> None:
    api = mig_api
    with shopify_for(api):
        migration = start_products(api)
        before = state_of(api)
        keys = [_key(api, role) for role in ("ORG_USER", "CUSTOMER")]

        def tried(query: str, variables: dict[str, Any], **kw: Any) -> dict[str, Any]:
            variables = {k: migration["id"] if v == "ID" else v for k, v in variables.items()}
            return api.post(query, variables, **kw)

        for query, variables in ALL_STEPS:
            for role in (Role.ORG_USER, Role.CUSTOMER):
                body = tried(query, variables, role=role)
                assert_clean_error(body, "FORBIDDEN")
                assert body.get("data") is None
            for secret in keys:
                given = {k: migration["id"] if v == "ID" else v for k, v in variables.items()}
                response = api.client.post(
                    "/graphql",
                    json={"query": query, "variables": given},
                    headers={"X-API-Key": secret},
                )
                assert_clean_error(response.json(), "FORBIDDEN")
        # Unauthenticated (small selections: an anonymous request's cost budget is smaller).
        for query, variables in SMALL_STEPS:
            body = tried(query, variables, role=None)
            assert_clean_error(body, "UNAUTHENTICATED")
            assert migration["id"] not in json.dumps(body)
            body = tried(query, variables, role=None, token="not-a-token")
            assert_clean_error(body, "UNAUTHENTICATED")
        assert state_of(api) == before

        # The audit trail: org users see that a provider changed, not the migration's
        # details; customers see nothing of it.
        shown = {"provider", "routes", "from", "to", "rollback"}
        edges = api.data(EVENTS, {"type": "settings_updated"}, role=Role.ORG_USER)
        for e in edges["events"]["edges"]:
            assert set(e["node"]["metadata"]) <= shown
        body = api.post(EVENTS, {"type": "settings_updated"}, role=Role.CUSTOMER)
        assert migration["id"] not in json.dumps(body)


# -- secrets -----------------------------------------------------------------------------------


def _everything(api: Api, migration_id: str) -> str:
    """Every place a migration shows: the migration, the list, the events, /metrics."""
    texts = [
        json.dumps(api.post(GET, {"id": migration_id})),
        json.dumps(api.post(LIST)),
        json.dumps(api.post(EVENTS, {"type": "settings_updated"})),
        json.dumps(api.post(EVENTS, {"type": "communication_event"})),
        json.dumps(api.post(EVENTS, {"type": "settings_updated"}, role=Role.ORG_USER)),
        api.client.get("/metrics").text,
    ]
    return "\n".join(texts)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
        assert secret[6:] not in text  # nor without its prefix


def test_no_step_of_a_migration_shows_the_backends_credentials(mig_api: Api) -> None:
    api = mig_api
    with shopify_for(api) as shopify:
        # The copy fails (Shopify refuses the token): its failures say why.
        shopify.fault = Fault(status=401, body=b'{"errors": "[API] Invalid API key"}')
        limits = {"errorRate": 0.2, "mismatchRate": 1.0, "minSamples": 3, "windowSeconds": 30}
        started = api.post(
            START, {"type": "product", "to": "shopify", "sample": 100, "thresholds": limits}
        )
        assert_no_secret(json.dumps(started))
        id = started["data"]["startMigration"]["id"]
        copied = wait_for(api, id, "SHADOW", timeout=20)
        assert copied["failures"], copied
        assert_no_secret(_everything(api, id))
        shopify.fault = None
        rolled = api.post(ROLLOUT, {"id": id, "p": 100})
        assert_no_secret(json.dumps(rolled))
        shopify.fault = Fault(status=401, body=b'{"errors": "[API] Invalid API key"}')
        for _ in range(5):
            assert_no_secret(json.dumps(api.post(PRODUCTS)))
        settle(api)
        assert wait_for(api, id, "PAUSED", timeout=10)["pausedReason"]
        assert_no_secret(_everything(api, id))
        shopify.fault = None
        assert_no_secret(json.dumps(api.post(RESUME, {"id": id})))
        api.data(PRODUCTS)  # a shadow read
        settle(api)
        assert_no_secret(json.dumps(api.post(PROMOTE, {"id": id})))
        assert_no_secret(_everything(api, id))
        # Errors along the way: promoting again, aborting a promoted one.
        assert_no_secret(json.dumps(api.post(PROMOTE, {"id": id})))
        assert_no_secret(json.dumps(api.post(ABORT, {"id": id})))


def test_a_failed_copy_to_notion_shows_no_token(mig_api: Api) -> None:
    api = mig_api
    notion = NotionEmulator(token=NOTION_TOKEN, rate=1000, burst=1000)
    database = notion.add_database("Docs")
    with serve(notion.app) as url:
        config = {"token": NOTION_TOKEN, "database_id": database, "base_url": url}
        api.data(CONFIGURE, {"provider": "notion", "routes": [], "config": config})
        notion.fault = Fault(status=401, body=b'{"object": "error", "code": "unauthorized"}')
        started = api.data(START, {"type": "document", "to": "notion"})["startMigration"]
        found = wait_for(api, started["id"], "SHADOW", timeout=20)
        assert_no_secret(_everything(api, started["id"]))
        assert found["failures"], found  # the copy did fail, and said why
        notion.fault = None
        assert_no_secret(json.dumps(api.post(ABORT, {"id": started["id"]})))
        assert_no_secret(_everything(api, started["id"]))


# -- bad input ---------------------------------------------------------------------------------

START_SMALL = """mutation($type: String!, $to: String!, $sample: Int! = 0,
                 $thresholds: MigrationThresholdsInput) {
  startMigration(type: $type, to: $to, samplePercent: $sample, thresholds: $thresholds) { id }
}"""
ROLLOUT_FULL = """mutation($id: ID!, $p: Int!, $sample: Int,
                  $thresholds: MigrationThresholdsInput) {
  setMigrationRollout(id: $id, percent: $p, samplePercent: $sample, thresholds: $thresholds) {
    id } }"""


def test_bad_starts_are_clear_errors_and_change_nothing(mig_api: Api) -> None:
    api = mig_api
    with shopify_for(api):
        live = start_products(api)
        before = state_of(api)
        cases: list[tuple[dict[str, Any], tuple[str, ...]]] = [
            ({"type": "order", "to": "nope"}, ("NOT_FOUND",)),
            ({"type": "order", "to": ""}, ("NOT_FOUND", "BAD_USER_INPUT")),
            ({"type": "order", "to": "NATIVE"}, ("NOT_FOUND", "BAD_USER_INPUT")),
            ({"type": "order", "to": "shopify\u0000"}, ("NOT_FOUND", "BAD_USER_INPUT")),
            ({"type": "order", "to": "wordpress"}, ("NOT_FOUND",)),  # not configured
            ({"type": "order\u0000", "to": "shopify"}, ("BAD_USER_INPUT",)),
            ({"type": "../order", "to": "shopify"}, ("BAD_USER_INPUT",)),
            ({"type": "' OR 1=1 --", "to": "shopify"}, ("BAD_USER_INPUT",)),
            ({"type": "x" * 100_000, "to": "shopify"}, ("BAD_USER_INPUT",)),
            ({"type": "", "to": "shopify"}, ("BAD_USER_INPUT",)),
            ({"type": "ORDER", "to": "shopify"}, ("BAD_USER_INPUT",)),
            ({"type": "blog_post", "to": "shopify"}, ("BAD_USER_INPUT",)),  # cannot hold it
            ({"type": "order", "to": "native"}, ("BAD_USER_INPUT",)),  # already there
            ({"type": "product", "to": "shopify"}, ("CONFLICT",)),  # a second live one
            ({"type": "order", "to": "shopify", "sample": -1}, ("BAD_USER_INPUT",)),
            ({"type": "order", "to": "shopify", "sample": 101}, ("BAD_USER_INPUT",)),
            ({"type": "order", "to": "shopify", "sample": 2**31 - 1}, ("BAD_USER_INPUT",)),
            ({"type": "order", "to": "shopify", "sample": 2**31}, ("BAD_USER_INPUT",)),
            ({"type": "order", "to": "shopify", "sample": 2**80}, ("BAD_USER_INPUT",)),
            ({"type": "order", "to": "shopify", "sample": 1.5}, ("BAD_USER_INPUT",)),
            ({"type": "order", "to": "shopify", "sample": "10"}, ("BAD_USER_INPUT",)),
        ]
        thresholds: list[dict[str, Any]] = [
            {"errorRate": -0.1},
            {"errorRate": 1.01},
            {"errorRate": 1e308},
            {"mismatchRate": -1e-9},
            {"mismatchRate": 2},
            {"p99Ms": 0},
            {"p99Ms": -1},
            {"windowSeconds": 0},
            {"windowSeconds": -5},
            {"windowSeconds": 3601},
            {"windowSeconds": 1e308},
            {"minSamples": 0},
            {"minSamples": -1},
            {"minSamples": 2**31},
            {"minSamples": 2.5},
            {"errorRate": "NaN"},
            {"errorRate": "Infinity"},
            {"bogus": 1},
            {"error_rate": 0.1},  # the stored name, not the API's
        ]
        cases += [
            ({"type": "order", "to": "shopify", "thresholds": t}, ("BAD_USER_INPUT",))
            for t in thresholds
        ]
        cases.append(({"type": "order", "to": "shopify", "thresholds": []}, ("BAD_USER_INPUT",)))
        for variables, codes in cases:
            body = api.post(START_SMALL, {"sample": 0, **variables})
            error = assert_clean_error(body, *codes)
            assert len(error["message"]) < 2000, error
            if variables["type"] == "product":
                assert error["extensions"]["migration"] == live["id"]
        assert state_of(api) == before


def test_bad_rollouts_are_clear_errors_and_change_nothing(mig_api: Api) -> None:
    api = mig_api
    with shopify_for(api):
        migration = start_products(api)
        before = state_of(api)
        cases: list[dict[str, Any]] = [
            {"p": 101},
            {"p": -1},
            {"p": 2**31 - 1},
            {"p": -(2**31)},
            {"p": 2**31},
            {"p": 2**63},
            {"p": 50.5},
            {"p": None},
            {"p": 50, "sample": 101},
            {"p": 50, "sample": -3},
            {"p": 50, "thresholds": {"p99Ms": -1}},
            {"p": 50, "thresholds": {"minSamples": 0}},
            {"p": 50, "thresholds": {"errorRate": 7}},
            {"p": 50, "thresholds": {"windowSeconds": 86400}},
            {"p": 50, "thresholds": {"nope": 1}},
        ]
        for variables in cases:
            body = api.post(ROLLOUT_FULL, {"id": migration["id"], **variables})
            assert_clean_error(body, "BAD_USER_INPUT")
        assert state_of(api) == before
        assert steps_of(api, migration["id"]) == ["copied", "started"]


def test_malformed_migration_ids_are_not_found(mig_api: Api) -> None:
    api = mig_api
    with shopify_for(api):
        migration = start_products(api)
        before = state_of(api)
        ids = [
            "",
            " ",
            "x" * 5000,
            "' OR 1=1 --",
            '{"$ne": null}',
            "\u0000",
            "%",
            "*",
            "thing.native.abc",
            "../" + migration["id"],
            migration["id"].upper(),
            migration["id"] + " ",
            migration["id"][:-1],
            "12",
        ]
        for bad in ids:
            for query in (GET, ROLLOUT, PROMOTE, ABORT, RESUME):
                body = api.post(query, {"id": bad, "p": 100})
                error = assert_clean_error(body, "NOT_FOUND")
                assert error["message"] == "no such migration in your organization"
        # An ID may be sent as a number: still not found, not a crash.
        assert_clean_error(api.post(GET, {"id": 12}), "NOT_FOUND")
        assert state_of(api) == before


def test_non_finite_thresholds_are_refused_as_variables(mig_api: Api) -> None:
    api = mig_api
    with shopify_for(api):
        before = state_of(api)
        for raw in (
            '{"errorRate": NaN}',
            '{"errorRate": Infinity}',
            '{"mismatchRate": -Infinity}',
            '{"p99Ms": NaN}',
            '{"p99Ms": Infinity}',
            '{"p99Ms": 1e400}',
            '{"windowSeconds": NaN}',
            '{"windowSeconds": Infinity}',
            '{"minSamples": 1e400}',
            '{"minSamples": NaN}',
        ):
            variables = f'{{"type": "product", "to": "shopify", "thresholds": {raw}}}'
            text = f'{{"query": {json.dumps(START_SMALL)}, "variables": {variables}}}'
            assert_clean_error(post_raw(api, text), "BAD_USER_INPUT", "BAD_REQUEST")
        assert state_of(api) == before


INFINITE_P99 = """mutation { startMigration(type: "product", to: "shopify", samplePercent: 0,
  thresholds: {p99Ms: 1e400}) { id } }"""


def test_an_infinite_threshold_literal_is_refused(mig_api: Api) -> None:
    api = mig_api
    with shopify_for(api):
        before = state_of(api)
        body = api.post(INFINITE_P99)
        try:
            assert_clean_error(body, "BAD_USER_INPUT")
            assert state_of(api) == before
        finally:
            # Whatever happened, the owner can still list their migrations.
            listed = api.post(LIST)
            assert "errors" not in listed, listed


# -- the state machine -------------------------------------------------------------------------

REFUSED = ("CONFLICT", "BAD_USER_INPUT")


def refused(api: Api, query: str, id: str, *codes: str) -> None:
    before = state_of(api)
    assert_clean_error(api.post(query, {"id": id, "p": 50}), *(codes or REFUSED))
    assert state_of(api) == before


def _copying(api: Api) -> str:
    """A migration whose copy has not run yet (made in the store: nothing kicks the runner)."""

    async def make() -> str:
        org = await api.store.organizations.get_by_slug("acme")
        assert org is not None
        made = await api.store.migrations.create(
            org.id,
            type="order",
            source="native",
            target="shopify",
            dry_run=False,
            actor_ref=None,
            thresholds={},
            sample_percent=0,
            start_seq=await api.store.events.last_seq(org.id),
        )
        return made.id

    id: str = api.run(make)
    return id


def _pause(api: Api, id: str) -> None:
    """What the monitor does when a threshold is crossed."""

    async def pause() -> None:
        org = await api.store.organizations.get_by_slug("acme")
        assert org is not None
        await steps.roll_back(api.store, await api.store.migrations.get(org.id, id), "probe")

    api.run(pause)


def test_steps_out_of_order_are_refused_and_change_nothing(mig_api: Api) -> None:
    api = mig_api
    with shopify_for(api):
        copying = _copying(api)
        assert api.data(GET, {"id": copying})["migration"]["state"] == "COPYING"
        for query in (PROMOTE, ROLLOUT, RESUME):
            refused(api, query, copying)

        migration = start_products(api)["id"]
        refused(api, RESUME, migration)  # not paused
        _pause(api, migration)
        for query in (ROLLOUT, PROMOTE):
            refused(api, query, migration)
        # A paused migration is still live: no second one of the type beside it.
        before = state_of(api)
        assert_clean_error(api.post(START, {"type": "product", "to": "shopify"}), "CONFLICT")
        assert state_of(api) == before

        api.data(ABORT, {"id": migration})
        for query in (ABORT, PROMOTE, ROLLOUT, RESUME):
            refused(api, query, migration)
        assert routes(api)["shopify"] == []

        # Promoted: nothing more to do with it.
        again = start_products(api)["id"]
        api.data(PROMOTE, {"id": again})
        for query in (PROMOTE, ABORT, ROLLOUT, RESUME):
            refused(api, query, again)
        assert routes(api)["shopify"] == ["product"]
        assert steps_of(api, again) == ["promoted", "copied", "started"]

        # A dry run is not live: it cannot be rolled out, promoted, aborted or resumed.
        dry = api.data(START, {"type": "order", "to": "shopify", "dry": True})["startMigration"]
        deadline = time.monotonic() + 20
        while "planned" not in steps_of(api, dry["id"]):  # counted
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for query in (ABORT, PROMOTE, ROLLOUT, RESUME):
            refused(api, query, dry["id"])


# -- concurrency -------------------------------------------------------------------------------


def at_once(count: int, request: Any) -> list[dict[str, Any]]:
    """`count` requests sent together, each from its own thread."""
    results: list[dict[str, Any]] = [{} for _ in range(count)]
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = request(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_starts_and_promotes_take_effect_once(mig_api: Api) -> None:
    api = mig_api
    api.token()  # issued before the threads
    with shopify_for(api) as shopify:
        starts = at_once(
            4, lambda i: api.post(START, {"type": "product", "to": "shopify", "sample": 0})
        )
        won = [b for b in starts if b.get("data")]
        assert len(won) == 1, starts
        for body in starts:
            if not body.get("data"):
                assert_clean_error(body, "CONFLICT")
        (migration,) = api.data(LIST)["migrations"]
        wait_for(api, migration["id"], "SHADOW", timeout=20)

        promotes = at_once(4, lambda i: api.post(PROMOTE, {"id": migration["id"]}))
        assert sum(1 for b in promotes if b.get("data")) == 1, promotes
        for body in promotes:
            if not body.get("data"):
                assert_clean_error(body, *REFUSED)
        assert routes(api)["shopify"] == ["product"]
        assert steps_of(api, migration["id"]) == ["promoted", "copied", "started"]
        assert len(shopify.products) == 2


def test_abort_and_promote_at_once_leave_one_consistent_outcome(mig_api: Api) -> None:
    api = mig_api
    api.token()
    with shopify_for(api):
        migration = start_products(api)["id"]
        queries = [PROMOTE, ABORT, PROMOTE, ABORT]
        bodies = at_once(4, lambda i: api.post(queries[i], {"id": migration}))
        for body in bodies:
            if not body.get("data"):
                assert_clean_error(body, *REFUSED)
        winners = [b for b in bodies if b.get("data")]
        assert len(winners) == 1, bodies
        state = api.data(GET, {"id": migration})["migration"]["state"]
        expected_routes = ["product"] if state == "PROMOTED" else []
        assert routes(api)["shopify"] == expected_routes
        assert state in ("PROMOTED", "ABORTED")


# -- what the copy and the reads do ------------------------------------------------------------


def test_aborting_a_copy_stops_making_copies(mig_api: Api) -> None:
    api = mig_api
    for i in range(25):
        api.data(
            'mutation($n: String!) { createThing(input: {type: "product", name: $n}) { id } }',
            {"n": f"Crate {i:03}"},
        )
    with shopify_for(api) as shopify:
        shopify.fault = Fault(delay=0.02)  # each Shopify request a little slow
        started = api.data(START, {"type": "product", "to": "shopify", "sample": 0})
        id = started["startMigration"]["id"]
        deadline = time.monotonic() + 20
        while len(shopify.products) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        api.data(ABORT, {"id": id})
        at_abort = len(shopify.products)
        # Until Shopify stops receiving copies.
        last, still = -1, time.monotonic()
        while time.monotonic() - still < 0.6 and time.monotonic() < deadline:
            if len(shopify.products) != last:
                last, still = len(shopify.products), time.monotonic()
            time.sleep(0.05)
        assert len(shopify.products) <= at_abort + 1, (at_abort, len(shopify.products))
        assert api.data(GET, {"id": id})["migration"]["state"] == "ABORTED"


PAGE = """query($after: String) { things(type: "product", first: 1, after: $after) {
  pageInfo { endCursor } edges { node { id } } } }"""


def test_a_cursor_from_the_old_backend_does_not_roll_a_migration_back(mig_api: Api) -> None:
    api = mig_api
    with shopify_for(api):
        customer = api.token(role=Role.CUSTOMER)
        first = api.data(PAGE, token=customer)["things"]
        cursor = first["pageInfo"]["endCursor"]
        migration = start_products(api)["id"]
        api.data(ROLLOUT, {"id": migration, "p": 100})
        # The customer, now reading Shopify, pages on where they were (default thresholds).
        answer = api.post(PAGE, {"after": cursor}, token=customer)
        assert_clean_error(answer, "BAD_USER_INPUT")  # a clear error, fine
        for _ in range(24):
            api.post(PAGE, {"after": cursor}, token=customer)  # answered, whatever it says
        settle(api)
        found = api.data(GET, {"id": migration})["migration"]
        assert (found["state"], found["rolloutPercent"], found["pausedReason"]) == (
            "ROLLOUT",
            100,
            None,
        )


TOTAL = '{ things(type: "product", first: 50) { totalCount edges { node { id name } } } }'


def _there_and_back(api: Api) -> dict[str, str]:
    """Acme's products to Shopify and back to the store, both promoted; returns the original
    ids by name."""
    original = {e["node"]["name"]: e["node"]["id"] for e in api.data(TOTAL)["things"]["edges"]}
    there = start_products(api)["id"]
    api.data(PROMOTE, {"id": there})
    back = api.data(START, {"type": "product", "to": "native", "sample": 0})["startMigration"]
    wait_for(api, back["id"], "SHADOW", timeout=20)
    api.data(PROMOTE, {"id": back["id"]})
    return original


def test_moving_a_type_back_lists_each_thing_once(mig_api: Api) -> None:
    api = mig_api
    with shopify_for(api):
        original = _there_and_back(api)
        listed = api.data(TOTAL)["things"]
        names = [e["node"]["name"] for e in listed["edges"]]
        assert sorted(names) == sorted(original), names
        assert listed["totalCount"] == len(original)


def test_moving_a_type_there_back_and_there_again_keeps_old_ids_on_the_route(
    mig_api: Api,
) -> None:
    api = mig_api
    with shopify_for(api):
        original = _there_and_back(api)
        again = start_products(api)
        api.data(PROMOTE, {"id": again["id"]})
        assert routes(api)["shopify"] == ["product"]
        listed = {e["node"]["name"]: e["node"]["id"] for e in api.data(TOTAL)["things"]["edges"]}
        assert all(i.startswith("thing.shopify.") for i in listed.values())
        resolved = {
            name: api.data(THING_AND_NODE, {"id": old})["thing"]["id"]
            for name, old in original.items()
        }
        try:
            assert resolved == listed, (resolved, listed)
        finally:
            assert again["failures"] == [], again["failures"]
