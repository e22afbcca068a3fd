"""Federation through GraphQL: blog posts and pages routed to a real WordPress for acme."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest

from providers.records import Kind
from providers.refs import native_ref
from providers.registry import validate_config
from tests.conftest import Api
from tests.wordpress import WordPress

POSTS = """query($first: Int!, $after: String, $search: String, $status: ThingStatus) {
  things(type: "blog_post", first: $first, after: $after, search: $search, status: $status) {
  totalCount pageInfo { hasNextPage endCursor } edges { node { id __typename name status
  provider externalId ... on BlogPost { excerpt } } } } }"""


def route(api: Api, org: str = "acme", **config: Any) -> None:
    async def save() -> None:
        found = await api.store.organizations.get_by_slug(org)
        assert found is not None
        routes = ["blog_post", "page"]
        await api.store.provider_configs.save(
            found.id,
            actor_ref=None,
            provider="wordpress",
            config=validate_config("wordpress", config, routes),
            routes=routes,
        )

    api.run(save)


@pytest.fixture
def wp_api(api: Api, wordpress: WordPress) -> Api:
    route(api, **wordpress.config())
    return api


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_routed_type_reads_from_wordpress_and_pages_to_the_end(wp_api: Api) -> None:
    seen, after = [], None
    while True:
        page = wp_api.data(POSTS, {"first": 40, "after": after})["things"]
        seen += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == page["totalCount"] >= 60
    assert {n["provider"] for n in seen} == {"wordpress"}
    assert {n["__typename"] for n in seen} == {"BlogPost"}
    assert all(n["id"] == f"thing.wordpress.post-{n['externalId']}" for n in seen)
    assert {"DRAFT", "PUBLISHED"} <= {n["status"] for n in seen}
    found = wp_api.data(POSTS, {"first": 10, "search": "gardening"})["things"]
    assert found["totalCount"] == 6
    drafts = wp_api.data(POSTS, {"first": 10, "status": "DRAFT"})["things"]
    assert all(e["node"]["status"] == "DRAFT" for e in drafts["edges"])
    pages = wp_api.data('{ things(type: "page") { edges { node { name provider } } } }')
    assert {"About us", "Contact"} <= {e["node"]["name"] for e in pages["things"]["edges"]}


def test_other_organizations_and_types_are_untouched(wp_api: Api) -> None:
    globex = wp_api.data('{ things(type: "blog_post") { totalCount } }', org="globex")
    assert globex["things"]["totalCount"] == 0
    courses = wp_api.data('{ things(type: "course") { edges { node { provider } } } }')
    assert {e["node"]["provider"] for e in courses["things"]["edges"]} == {"native"}


def test_routing_changes_take_effect_on_the_next_request(api: Api, wordpress: WordPress) -> None:
    assert api.data('{ things(type: "blog_post") { totalCount } }')["things"]["totalCount"] == 3
    route(api, **wordpress.config())
    assert api.data('{ things(type: "blog_post") { totalCount } }')["things"]["totalCount"] >= 60


def test_thing_and_node_by_wordpress_id(wp_api: Api, wordpress: WordPress) -> None:
    wp_id = wordpress.seed["posts"]["publish"][3]
    query = """query($id: ID!) { thing(id: $id) { name status ... on BlogPost { content } }
      node(id: $id) { id ... on Thing { provider } } }"""
    data = wp_api.data(query, {"id": f"thing.wordpress.post-{wp_id}"})
    assert data["thing"]["content"].startswith("<p>Body of post")
    assert data["node"] == {"id": f"thing.wordpress.post-{wp_id}", "provider": "wordpress"}
    missing = wp_api.post(query, {"id": "thing.wordpress.post-99999999"})
    assert missing["data"] == {"thing": None, "node": None}
    assert {e["extensions"]["code"] for e in missing["errors"]} == {"NOT_FOUND"}
    error = wp_api.error(
        "query($id: ID!) { thing(id: $id) { id } }", {"id": "thing.wordpress.post-1"}, org="globex"
    )
    assert error["extensions"] == {
        **error["extensions"],
        "code": "NOT_FOUND",
        "provider": "wordpress",
    }


def test_writes_go_to_wordpress_and_write_events(wp_api: Api, wordpress: WordPress) -> None:
    create = """mutation($input: CreateThingInput!) { createThing(input: $input) { id name status
      provider ... on BlogPost { content } } }"""
    made = wp_api.data(
        create,
        {
            "input": {
                "type": "blog_post",
                "name": "Federated hello",
                "properties": {"content": "<p>Hello</p>"},
            }
        },
    )
    post = made["createThing"]
    assert post["provider"] == "wordpress" and post["status"] == "DRAFT"
    assert post["id"].startswith("thing.wordpress.post-")
    update = """mutation($id: ID!) { updateThing(id: $id, input: {name: "Federated, renamed"}) {
      name } }"""
    assert wp_api.data(update, {"id": post["id"]})["updateThing"]["name"] == "Federated, renamed"
    status = """mutation($id: ID!, $s: ThingStatus!) { changeThingStatus(id: $id, status: $s) {
      status } }"""
    error = wp_api.error(status, {"id": post["id"], "s": "PUBLISHED"})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    for step in ("ACTIVE", "PUBLISHED"):
        assert (
            wp_api.data(status, {"id": post["id"], "s": step})["changeThingStatus"]["status"]
            == step
        )
    archived = wp_api.data(
        "mutation($id: ID!) { archiveThing(id: $id) { status } }", {"id": post["id"]}
    )
    assert archived["archiveThing"]["status"] == "ARCHIVED"
    events = wp_api.data(
        """query($t: ID!) { events(targetId: $t) { edges { node { type metadata
      actor { email } } } } }""",
        {"t": post["id"]},
    )["events"]["edges"]
    assert [e["node"]["type"] for e in events] == [
        "entity_archived",
        "entity_updated",
        "entity_updated",
        "entity_updated",
        "entity_created",
    ]
    assert {e["node"]["metadata"]["provider"] for e in events} == {"wordpress"}
    assert events[0]["node"]["actor"]["email"] == "olivia@acme.example"


def test_wordpress_validation_errors_are_field_errors(wp_api: Api) -> None:
    create = """mutation($input: CreateThingInput!) { createThing(input: $input) { id } }"""
    error = wp_api.error(
        create, {"input": {"type": "blog_post", "name": "Bad", "properties": {"categories": ["x"]}}}
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "categories"
    assert error["extensions"]["provider"] == "wordpress"


def test_connections_between_native_and_wordpress_both_ways(
    wp_api: Api, wordpress: WordPress
) -> None:
    me = wp_api.data("{ me { person { id } } }")["me"]["person"]["id"]
    post = f"thing.wordpress.post-{wordpress.seed['posts']['publish'][7]}"
    course = wp_api.data('{ things(type: "course") { edges { node { id } } } }')["things"]["edges"][
        0
    ]["node"]["id"]
    create = """mutation($a: ID!, $b: ID!, $t: String!) { createConnection(input: {fromId: $a,
      toId: $b, relationshipType: $t}) { id from { id } to { ... on Thing { name provider } } } }"""
    authored = wp_api.data(create, {"a": me, "b": post, "t": "authored"})["createConnection"]
    assert authored["to"]["provider"] == "wordpress"
    wp_api.data(create, {"a": post, "b": course, "t": "references"})
    data = wp_api.data(
        """query($p: ID!, $me: ID!, $c: ID!) {
      post: thing(id: $p) { connections { relationshipType from { id } to { id } } }
      mine: connections(thingId: $me, relationshipType: "authored", direction: OUT) {
        to { ... on BlogPost { name provider } } }
      course: connections(thingId: $c, relationshipType: "references", direction: IN) {
        from { ... on Thing { provider } } } }""",
        {"p": post, "me": me, "c": course},
    )
    assert {c["relationshipType"] for c in data["post"]["connections"]} == {
        "authored",
        "references",
    }
    assert data["mine"][0]["to"]["provider"] == "wordpress"
    assert {c["from"]["provider"] for c in data["course"]} >= {"wordpress"}
    missing = wp_api.error(create, {"a": me, "b": "thing.wordpress.post-99999999", "t": "authored"})
    assert missing["extensions"]["code"] == "NOT_FOUND"


def test_fifty_posts_with_owners_and_connections_cost_two_wordpress_requests(
    wp_api: Api, wordpress: WordPress
) -> None:
    """The issue's counting test: WordPress requests and store queries do not grow with N."""
    listed = wp_api.data(
        '{ things(type: "blog_post", first: 50, status: PUBLISHED) { edges { node { id } } } }'
    )["things"]["edges"]
    posts = [e["node"]["id"] for e in listed]  # whatever other tests added, these are listed
    owner = wp_api.data("{ me { person { id } } }")["me"]["person"]["id"]
    course = wp_api.data('{ things(type: "course") { edges { node { id } } } }')["things"]["edges"][
        0
    ]["node"]["id"]

    async def connect() -> None:
        org = await wp_api.store.organizations.get_by_slug("acme")
        assert org is not None
        for ref in posts:
            for a, b, kind in ((owner, ref, "owns"), (ref, course, "references")):
                await wp_api.store.connections.create(
                    org.id, actor_ref=None, from_ref=a, to_ref=b, relationship_type=kind
                )

    wp_api.run(connect)
    query = """query($n: Int!) { things(type: "blog_post", first: $n, status: PUBLISHED) {
      edges { node { name owner { name } connections { relationshipType
      to { ... on Thing { name provider } } } } } } }"""
    counts = {}
    for n in (5, 50):
        wp_api.token()
        # Warm: what the gateway keeps for a second (who the token names, the routes) is
        # read again by the first request after it expires, whatever the page's size.
        wp_api.data(query, {"n": n})
        wordpress_before, store_before = wordpress.requests(), wp_api.store.engine.queries
        edges = wp_api.data(query, {"n": n})["things"]["edges"]
        counts[n] = (
            wordpress.requests() - wordpress_before,
            wp_api.store.engine.queries - store_before,
        )
        assert len(edges) == n
        assert all(e["node"]["owner"]["name"] == "Olivia Owner" for e in edges)
        assert all(
            any(c["to"]["provider"] == "native" for c in e["node"]["connections"]) for e in edges
        )
    assert counts[5][0] <= 2 and counts[50][0] <= 2
    assert counts[5][1] == counts[50][1]


def test_wordpress_down_still_returns_the_native_data(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    route(api, base_url=dead_url(), username="editor", application_password="s3cret-pass-1234")
    body = api.post("""{ courses: things(type: "course") { totalCount }
      posts: things(type: "blog_post") { totalCount } }""")
    assert body["data"]["courses"]["totalCount"] == 1 and body["data"]["posts"] is None
    [error] = body["errors"]
    assert error["path"] == ["posts"]
    assert error["extensions"] == {
        "code": "PROVIDER_UNAVAILABLE",
        "provider": "wordpress",
        "retryable": True,
    }
    everything = str(body) + caplog.text
    assert "s3cret-pass-1234" not in everything


def test_nested_wordpress_failure_nulls_only_that_field(api: Api, wordpress: WordPress) -> None:
    route(api, **wordpress.config())
    course = api.data('{ things(type: "course") { edges { node { id } } } }')["things"]["edges"][0][
        "node"
    ]["id"]
    post = f"thing.wordpress.post-{wordpress.seed['posts']['publish'][0]}"
    api.data(
        """mutation($a: ID!, $b: ID!) { createConnection(input: {fromId: $a, toId: $b,
      relationshipType: "references"}) { id } }""",
        {"a": post, "b": course},
    )
    route(
        api,
        base_url=wordpress.url,
        username="editor",
        application_password="wrong wrong wrong wrong",
    )
    body = api.post(
        """query($c: ID!) { thing(id: $c) { name connections(direction: IN,
      relationshipType: "references") { from { id } } } }""",
        {"c": course},
    )
    assert body["data"]["thing"]["name"] == "Screen printing 101"
    froms = [c["from"] for c in body["data"]["thing"]["connections"]]
    assert None in froms  # the WordPress end, which could not be read
    codes = {e["extensions"]["code"] for e in body["errors"]}
    assert codes == {"PROVIDER_UNAUTHORIZED"}
    assert "wrong wrong" not in str(body)


def test_unconfigured_provider_ids_are_not_found(api: Api) -> None:
    error = api.error('query { thing(id: "thing.wordpress.post-1") { id } }')
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert "no 'wordpress' provider is configured" in error["message"]


def test_log_lines_hold_no_credentials(
    wp_api: Api, wordpress: WordPress, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wp_api.data(POSTS, {"first": 5})
    assert wordpress.application_password not in caplog.text
    assert native_ref(Kind.THING, "x")  # the ids module stays importable here
