"""The response cache (gateway/response_cache.py): a hit is the answer a fresh execution would
give, for the same asker only, and never after a write that changed it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.app import create_app
from providers.records import Role
from providers.registry import validate_config
from tests.conftest import Api, app_settings, seeded_api
from tests.emulators import serve
from tests.emulators.shopify import ShopifyEmulator
from tests.processes import Gateway, seed, token

# No ids anywhere: what a write changes must be seen without them.
THINGS = """{ things(first: 100) { totalCount edges { node { name status owner { name }
  connections { relationshipType to { ... on Thing { name } } } knowledge { text } } } } }"""
MEMBERS = "{ organization { usage { things members } members { role person { name } } } }"
SEARCH = '{ knowledgeSearch(query: "cache") { mode hits { knowledge { text } } } }'
THING = "query($id: ID!) { thing(id: $id) { name status owner { name } } }"
READS = (THINGS, MEMBERS, SEARCH)


@pytest.fixture
def cached(tmp_path: Path) -> Iterator[Api]:
    settings = app_settings(
        tmp_path,
        response_cache=True,
        debug=True,
        response_cache_upstream_seconds={"shopify": 2.0},
    )
    with seeded_api(create_app(settings)) as api:
        yield api


def ask(
    api: Api,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    org: str = "acme",
    role: Role = Role.ORG_OWNER,
    headers: dict[str, str] | None = None,
) -> tuple[dict[str, Any], str | None]:
    """The answer and what the cache said of it (HIT, MISS, or None when it was not asked)."""
    sent = {"Authorization": f"Bearer {api.token(org, role)}", **(headers or {})}
    if "X-API-Key" in sent:
        del sent["Authorization"]
    response = api.client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=sent
    )
    assert response.status_code == 200, response.text
    assert response.headers.get("cache-control", "").startswith("private"), response.text
    body: dict[str, Any] = response.json()
    outcome = body.pop("extensions", {}).pop("cache", None)
    return body, outcome


def fresh(api: Api, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
    """What an execution answers now (`no-store`: the cache neither answers nor keeps)."""
    body, outcome = ask(api, query, variables, headers={"Cache-Control": "no-store"}, **kw)
    assert outcome == "MISS"
    return body


def write(api: Api, mutation: str, variables: dict[str, Any] | None = None) -> Any:
    body, outcome = ask(api, mutation, variables)
    assert "errors" not in body, body
    assert outcome is None  # mutations pass by the cache
    return body["data"]


def ids(api: Api, type: str) -> list[str]:
    query = "query($t: String!) { things(type: $t, first: 100) { edges { node { id } } } }"
    return [e["node"]["id"] for e in fresh(api, query, {"t": type})["data"]["things"]["edges"]]


def person_id(api: Api, name: str) -> str:
    members = fresh(api, "{ organization { members { person { id name } } } }")
    return next(
        m["person"]["id"]
        for m in members["data"]["organization"]["members"]
        if m["person"]["name"] == name
    )


def test_a_query_misses_then_hits_with_the_same_answer(cached: Api) -> None:
    first, outcome = ask(cached, THINGS)
    assert outcome == "MISS" and first["data"]["things"]["totalCount"] > 0
    assert ask(cached, THINGS) == (first, "HIT")
    variables = {"id": ids(cached, "lesson")[0]}
    assert ask(cached, THING, variables)[1] == "MISS"
    assert ask(cached, THING, variables)[1] == "HIT"
    assert ask(cached, THING, {"id": ids(cached, "lesson")[1]})[1] == "MISS"  # other variables


def test_a_hit_runs_no_resolver(cached: Api) -> None:
    def queries(query: str) -> int:
        before = cached.store.engine.queries
        ask(cached, query)
        return int(cached.store.engine.queries - before)

    queries(THINGS)
    queries("{ __typename }")
    floor = queries("{ __typename }")  # credentials and admission only
    assert queries(THINGS) == floor


def test_organizations_roles_people_and_keys_never_share_an_answer(cached: Api) -> None:
    query = "{ me { role person { name } } things(first: 100) { totalCount } }"
    acme, _ = ask(cached, query)
    assert ask(cached, query) == (acme, "HIT")
    for org, role in (("globex", Role.ORG_OWNER), ("acme", Role.ORG_USER), ("acme", Role.CUSTOMER)):
        answer, outcome = ask(cached, query, org=org, role=role)
        assert outcome == "MISS" and answer != acme
        assert ask(cached, query, org=org, role=role) == (answer, "HIT")

    # Another person with the same role, in the same organization.
    add = """mutation { addMember(input: {email: "otto@acme.example", name: "Otto Owner",
      role: ORG_OWNER}) { person { id } } }"""
    otto = write(cached, add)["addMember"]["person"]["id"].rsplit(".", 1)[1]
    org = cached.run(cached.store.organizations.get_by_slug, "acme")
    auth = cached.client.app.state.auth  # type: ignore[attr-defined]
    other = auth.issue(person_id=otto, org_id=org.id, role=Role.ORG_OWNER)
    headers = {"Authorization": f"Bearer {other}"}
    answer, outcome = ask(cached, query, headers=headers)
    assert outcome == "MISS" and answer["data"]["me"]["person"]["name"] == "Otto Owner"
    assert ask(cached, query)[0]["data"]["me"]["person"]["name"] == "Olivia Owner"

    # An API key of the owner's organization and role.
    key = write(cached, 'mutation { createApiKey(name: "k", role: ORG_OWNER) { secret } }')
    headers = {"X-API-Key": key["createApiKey"]["secret"]}
    answer, outcome = ask(cached, query, headers=headers)
    assert outcome == "MISS" and answer["data"]["me"]["person"] is None
    assert ask(cached, query, headers=headers) == (answer, "HIT")

    # A platform owner, in their organization and acting for another.
    ada, _ = ask(cached, query, role=Role.PLATFORM_OWNER)
    globex = cached.run(cached.store.organizations.get_by_slug, "globex")
    acting = {"X-One-Organization": f"org.native.{globex.id}"}
    answer, outcome = ask(cached, query, role=Role.PLATFORM_OWNER, headers=acting)
    assert outcome == "MISS" and answer != ada
    assert answer["data"]["things"] == fresh(cached, query, org="globex")["data"]["things"]


CREATE = 'mutation { createThing(input: {type: "task", name: "Cache me"}) { id } }'
CONNECT = """mutation($a: ID!, $b: ID!, $t: String!, $from: DateTime, $to: DateTime) {
  createConnection(input: {fromId: $a, toId: $b, relationshipType: $t, validFrom: $from,
  validTo: $to}) { id } }"""


def _writes() -> dict[str, Callable[[Api], None]]:
    def create(api: Api) -> None:
        write(api, CREATE)

    def update(api: Api) -> None:
        update = 'mutation($id: ID!) { updateThing(id: $id, input: {name: "Renamed"}) { id } }'
        write(api, update, {"id": ids(api, "lesson")[0]})

    def status(api: Api) -> None:
        change = "mutation($id: ID!) { changeThingStatus(id: $id, status: PUBLISHED) { id } }"
        write(api, change, {"id": ids(api, "lesson")[1]})

    def archive(api: Api) -> None:
        write(
            api,
            "mutation($id: ID!) { archiveThing(id: $id) { id } }",
            {"id": ids(api, "lesson")[0]},
        )

    def connect(api: Api) -> None:
        task, course = ids(api, "lesson")[0], ids(api, "course")[0]
        write(api, CONNECT, {"a": task, "b": course, "t": "references"})

    def disown(api: Api) -> None:  # `owner { name }` becomes null: still no id in sight
        task = ids(api, "lesson")[0]
        query = 'query($id: ID!) { connections(thingId: $id, relationshipType: "owns") { id } }'
        [owns] = fresh(api, query, {"id": task})["data"]["connections"]
        write(api, "mutation($id: ID!) { deleteConnection(id: $id) { id } }", {"id": owns["id"]})

    def join(api: Api) -> None:
        add = """mutation { addMember(input: {email: "nia@acme.example", name: "Nia New",
          role: ORG_USER}) { person { id } } }"""
        write(api, add)

    def leave(api: Api) -> None:
        uma = person_id(api, "Uma User")
        write(api, "mutation($id: ID!) { removeMember(personId: $id) }", {"id": uma})

    def learn(api: Api) -> None:
        learn = """mutation($id: ID!) { createKnowledge(input: {kind: "chunk",
          text: "cache invalidation", sourceId: $id}) { id } }"""
        write(api, learn, {"id": ids(api, "lesson")[0]})

    return {
        "createThing": create,
        "updateThing": update,
        "changeThingStatus": status,
        "archiveThing": archive,
        "createConnection": connect,
        "deleteConnection": disown,
        "addMember": join,
        "removeMember": leave,
        "createKnowledge": learn,
    }


WRITES = _writes()


@pytest.mark.parametrize("name", WRITES)
def test_every_write_is_seen_by_the_next_read(cached: Api, name: str) -> None:
    lessons = ids(cached, "lesson")
    reads = [(query, None) for query in READS] + [(THING, {"id": id}) for id in lessons]
    before = {}
    for query, variables in reads:
        before[query] = ask(cached, query, variables)[0]
        assert ask(cached, query, variables)[1] == "HIT"
    WRITES[name](cached)
    changed = False
    for query, variables in reads:
        answer, outcome = ask(cached, query, variables)
        assert answer == fresh(cached, query, variables), (name, query)
        changed |= answer != before[query]
        assert outcome == "MISS" or answer == before[query]
    assert changed, f"{name} changed none of the reads"


def test_mutations_errors_and_uncacheable_fields_are_never_kept(cached: Api) -> None:
    made = {write(cached, CREATE)["createThing"]["id"] for _ in range(2)}
    assert len(made) == 2
    missing = '{ thing(id: "thing.native.00000000000000000000000000000000") { id } }'
    for _ in range(2):
        body, outcome = ask(cached, missing)
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND" and outcome == "MISS"
    calls = "{ organization { usage { apiCallsToday } } }"
    counts = []
    for _ in range(2):
        body, outcome = ask(cached, calls)
        assert outcome == "MISS"
        counts.append(body["data"]["organization"]["usage"]["apiCallsToday"])
    assert counts[1] > counts[0]
    response = cached.client.post(
        "/graphql",
        json={"query": THINGS, "extensions": {"cost": True}},
        headers={"Authorization": f"Bearer {cached.token()}"},
    )
    assert "cost" in response.json()["extensions"] and "cache" not in response.json()["extensions"]
    assert ask(cached, THINGS)[1] == "MISS"  # the cost request kept nothing


def test_cache_control_from_the_client(cached: Api) -> None:
    ask(cached, THINGS)
    assert ask(cached, THINGS)[1] == "HIT"
    assert ask(cached, THINGS, headers={"Cache-Control": "no-cache"})[1] == "MISS"
    assert ask(cached, THINGS, headers={"Cache-Control": "max-age=0"})[1] == "MISS"
    assert ask(cached, THINGS, headers={"Cache-Control": "max-age=600"})[1] == "HIT"
    assert ask(cached, MEMBERS, headers={"Cache-Control": "no-store"})[1] == "MISS"
    assert ask(cached, MEMBERS)[1] == "MISS"  # no-store kept nothing
    assert ask(cached, MEMBERS)[1] == "HIT"
    response = cached.client.post(
        "/graphql", json={"query": CREATE}, headers={"Authorization": f"Bearer {cached.token()}"}
    )
    assert response.headers["cache-control"] == "private, no-store"


def test_a_connection_that_starts_or_ends_later_changes_the_answer_then(cached: Api) -> None:
    task, course = ids(cached, "lesson")[0], ids(cached, "course")[0]
    soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    write(cached, CONNECT, {"a": task, "b": course, "t": "related_to", "to": soon})
    write(cached, CONNECT, {"a": task, "b": course, "t": "approved", "from": soon})
    query = """query($id: ID!) { thing(id: $id) { connections { relationshipType } } }"""
    types = lambda body: {c["relationshipType"] for c in body["data"]["thing"]["connections"]}  # noqa: E731
    before, _ = ask(cached, query, {"id": task})
    assert ask(cached, query, {"id": task}) == (before, "HIT")
    assert "related_to" in types(before) and "approved" not in types(before)
    time.sleep(1.7)
    after, outcome = ask(cached, query, {"id": task})
    assert outcome == "MISS" and after == fresh(cached, query, {"id": task})
    assert "related_to" not in types(after) and "approved" in types(after)


def test_upstream_answers_expire_after_the_providers_ttl(cached: Api) -> None:
    shop = ShopifyEmulator(token="shpat_cache")
    number = shop.add_product("Hammock")
    with serve(shop.app) as url:
        config = {"shop_url": url, "access_token": "shpat_cache", "api_version": "2025-04"}
        org = cached.run(cached.store.organizations.get_by_slug, "acme")
        cached.run(
            cached.store.provider_configs.save,
            org.id,
            actor_ref=None,
            provider="shopify",
            config=validate_config("shopify", config, ["product"]),
            routes=["product"],
        )
        query = '{ things(type: "product") { edges { node { name } } } }'
        fresh(cached, query)  # the emulator's first answer takes seconds: not part of this
        kept = time.monotonic()
        first, outcome = ask(cached, query)
        assert (
            outcome == "MISS" and first["data"]["things"]["edges"][0]["node"]["name"] == "Hammock"
        )
        shop.update_product(number, title="Hammock XL")  # no webhook: no event
        assert ask(cached, query) == (first, "HIT")  # within the TTL (2 s), by design
        time.sleep(max(0.0, kept + 2.1 - time.monotonic()))
        later, outcome = ask(cached, query)
        assert outcome == "MISS"
        assert later["data"]["things"]["edges"][0]["node"]["name"] == "Hammock XL"


def test_metrics_count_hits_and_misses(cached: Api) -> None:
    ask(cached, THINGS)
    ask(cached, THINGS)
    metrics = cached.client.get("/metrics").text
    assert "one_response_cache_hits_total 1.0" in metrics
    assert "one_response_cache_misses_total 1.0" in metrics
    assert "one_response_cache_entries 1.0" in metrics


QUERIES = st.sampled_from([*READS, THING])
ASKERS = st.sampled_from(
    [("acme", Role.ORG_OWNER), ("acme", Role.CUSTOMER), ("globex", Role.ORG_USER)]
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("write"), st.sampled_from(sorted(WRITES))), st.tuples(QUERIES, ASKERS)
        ),
        min_size=4,
        max_size=12,
    )
)
def test_interleaved_writes_and_reads_answer_as_without_a_cache(
    cached: Api, steps: list[tuple[Any, Any]]
) -> None:
    for first, second in steps:
        if first == "write":
            # A write with nothing left to change (a removed member, an archived lesson) fails.
            with contextlib.suppress(AssertionError, StopIteration, ValueError, IndexError):
                WRITES[second](cached)
            continue
        org, role = second
        variables = {"id": ids(cached, "lesson")[0]} if first == THING else None
        answer, _ = ask(cached, first, variables, org=org, role=role)
        assert answer == fresh(cached, first, variables, org=org, role=role)


def test_a_write_through_one_replica_is_seen_through_the_other(
    tmp_path: Path, redis_url: str
) -> None:
    seed(tmp_path)
    owner = token(tmp_path)
    on = {"response_cache": "true", "debug": "true"}
    a = Gateway(tmp_path, redis_url, settings=on).start()
    b = Gateway(tmp_path, redis_url, settings=on).start()
    create = 'mutation($n: String!) { createThing(input: {type: "task", name: $n}) { id } }'
    tasks = '{ things(type: "task", first: 100) { edges { node { name } } } }'
    try:
        for name, writer, reader in (("Via A", a, b), ("Via B", b, a)):
            for query in (tasks, MEMBERS):  # one organization's generation, and everyone's
                reader.graphql(owner, query)
                assert reader.graphql(owner, query)["extensions"] == {"cache": "HIT"}
            writer.graphql(owner, create, {"n": name})
            after = reader.graphql(owner, tasks)
            assert after["extensions"] == {"cache": "MISS"}
            assert {"node": {"name": name}} in after["data"]["things"]["edges"]  # type: ignore[index]
            usage = reader.graphql(owner, MEMBERS)
            assert usage["extensions"] == {"cache": "MISS"}
            assert usage["data"] == writer.graphql(owner, MEMBERS)["data"]
    finally:
        a.stop()
        b.stop()


def test_knowledge_indexed_after_a_write_is_not_served_stale(cached: Api) -> None:
    # Chunks are written by the indexer after the write's event, without an event of their
    # own: an answer kept in between must not outlive them.
    search = '{ knowledgeSearch(query: "zebrawood", mode: LEXICAL) { hits { snippet } } }'
    assert ask(cached, search) == ({"data": {"knowledgeSearch": {"hits": []}}}, "MISS")
    write(
        cached,
        """mutation { createThing(input: {type: "blog_post", name: "Woods",
          properties: {content: "Zebrawood is striped."}}) { id } }""",
    )
    assert ask(cached, search) == ({"data": {"knowledgeSearch": {"hits": []}}}, "MISS")
    assert ask(cached, search)[1] == "HIT"
    cached.run(cached.client.app.state.indexer.settle)  # type: ignore[attr-defined]
    body, outcome = ask(cached, search)
    assert outcome == "MISS"
    [hit] = body["data"]["knowledgeSearch"]["hits"]
    assert "<mark>Zebrawood</mark> is striped." in hit["snippet"]
    assert body == fresh(cached, search)
