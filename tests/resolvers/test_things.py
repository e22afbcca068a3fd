"""Things end to end: queries, pagination, mutations, the lifecycle and its events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from providers.records import Role
from tests.conftest import Api

THING_FIELDS = "id __typename type name status properties provider createdAt updatedAt"
CREATE = f"""mutation($input: CreateThingInput!) {{ createThing(input: $input) {{ {THING_FIELDS}
  owner {{ email }} }} }}"""
STATUS = """mutation($id: ID!, $status: ThingStatus!) {
  changeThingStatus(id: $id, status: $status) { id status } }"""


def create(api: Api, **input: Any) -> dict[str, Any]:
    input.setdefault("type", "course")
    input.setdefault("name", "A course")
    thing: dict[str, Any] = api.data(CREATE, {"input": input})["createThing"]
    return thing


def events_of(api: Api, target: str) -> list[dict[str, Any]]:
    query = """query($t: ID!) { events(targetId: $t, first: 50) { edges { node {
      type metadata actor { email } target { id } } } } }"""
    return [e["node"] for e in api.data(query, {"t": target})["events"]["edges"]]


def test_create_thing_returns_concrete_type_owner_and_writes_event(api: Api) -> None:
    thing = create(api, type="blog_post", name="Hello", properties={"content": "<p>Hi</p>"})
    assert thing["__typename"] == "BlogPost" and thing["status"] == "DRAFT"
    assert thing["owner"] == {"email": "olivia@acme.example"}
    assert thing["provider"] == "native" and thing["id"].startswith("thing.native.")
    [event] = events_of(api, thing["id"])
    assert event["type"] == "entity_created" and event["actor"]["email"] == "olivia@acme.example"
    assert event["target"]["id"] == thing["id"]
    version = event["metadata"].pop("version")
    assert event["metadata"] == {"thing_type": "blog_post", "status": "draft", "provider": "native"}
    assert datetime.fromisoformat(version).tzinfo is not None
    fetched = api.data(
        """query($id: ID!) { thing(id: $id) { id ... on BlogPost { content } } }""",
        {"id": thing["id"]},
    )
    assert fetched["thing"] == {"id": thing["id"], "content": "<p>Hi</p>"}


@pytest.mark.parametrize(
    ("type", "typename"),
    [
        ("blog_post", "BlogPost"),
        ("product", "Product"),
        ("document", "Document"),
        ("course", "GenericThing"),
        ("lesson", "GenericThing"),
    ],
)
def test_each_thing_type_resolves_to_its_graphql_type(api: Api, type: str, typename: str) -> None:
    thing = create(api, type=type, properties={"price": 3, "currency": "EUR", "url": "u"})
    node = api.data(
        """query($id: ID!) { node(id: $id) { __typename ... on Thing { type } ... on Product {
        price currency } ... on Document { url } } }""",
        {"id": thing["id"]},
    )["node"]
    assert node["__typename"] == typename and node["type"] == type
    if type == "product":
        assert (node["price"], node["currency"]) == (3.0, "EUR")


def test_things_pages_to_the_end_in_a_stable_order(api: Api) -> None:
    made = [create(api, type="task", name=f"Task {i}")["id"] for i in range(25)]
    query = """query($after: String) { things(type: "task", first: 10, after: $after) {
      totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }"""
    seen, after, pages = [], None, 0
    while True:
        page = api.data(query, {"after": after})["things"]
        pages += 1
        assert page["totalCount"] == 25
        seen += [e["node"]["id"] for e in page["edges"]]
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == made and pages == 3


def test_things_filters_by_type_and_status(api: Api) -> None:
    data = api.data("""{ published: things(status: PUBLISHED, first: 100) { edges { node {
      status } } } posts: things(type: "blog_post") { totalCount } }""")
    assert {e["node"]["status"] for e in data["published"]["edges"]} == {"PUBLISHED"}
    assert data["posts"]["totalCount"] == 3


def test_update_thing_merges_properties_and_writes_event(api: Api) -> None:
    thing = create(api, type="product", properties={"price": 5, "sku": "A"})
    update = """mutation($id: ID!, $input: UpdateThingInput!) { updateThing(id: $id, input:
      $input) { name properties updatedAt } }"""
    updated = api.data(
        update, {"id": thing["id"], "input": {"name": "Renamed", "properties": {"price": 7}}}
    )
    assert updated["updateThing"]["name"] == "Renamed"
    assert updated["updateThing"]["properties"] == {"price": 7, "sku": "A"}
    assert updated["updateThing"]["updatedAt"] >= thing["updatedAt"]
    replaced = api.data(
        update, {"id": thing["id"], "input": {"properties": {"x": 1}, "mergeProperties": False}}
    )
    assert replaced["updateThing"]["properties"] == {"x": 1}
    types = [e["type"] for e in events_of(api, thing["id"])]
    assert types == ["entity_updated", "entity_updated", "entity_created"]


def test_lifecycle_forward_then_archived_is_final(api: Api) -> None:
    thing = create(api)
    error = api.error(STATUS, {"id": thing["id"], "status": "PUBLISHED"})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "draft thing cannot become published" in error["message"]
    for status in ("ACTIVE", "PUBLISHED"):
        assert (
            api.data(STATUS, {"id": thing["id"], "status": status})["changeThingStatus"]["status"]
            == status
        )
    archive = "mutation($id: ID!) { archiveThing(id: $id) { status } }"
    assert api.data(archive, {"id": thing["id"]})["archiveThing"]["status"] == "ARCHIVED"
    for status in ("DRAFT", "ACTIVE", "PUBLISHED", "ARCHIVED"):
        error = api.error(STATUS, {"id": thing["id"], "status": status})
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "archived is final" in error["message"]
    error = api.error(
        """mutation($id: ID!) { updateThing(id: $id, input: {name: "x"}) { id } }""",
        {"id": thing["id"]},
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    events = events_of(api, thing["id"])
    assert [e["type"] for e in events] == [
        "entity_archived",
        "entity_updated",
        "entity_updated",
        "entity_created",
    ]
    assert events[0]["metadata"] == {
        "thing_type": "course",
        "fields": ["status"],
        "from": "published",
        "to": "archived",
        "provider": "native",
        "version": events[0]["metadata"]["version"],
    }


def test_thing_fields_resolve_connections_events_knowledge(api: Api) -> None:
    data = api.data("""{ things(type: "document") { edges { node { name owner { name }
      organization { slug } connections(direction: OUT) { relationshipType to { ... on Thing {
      name } } } events(first: 1) { type } knowledge { kind text } } } } }""")
    node = data["things"]["edges"][0]["node"]
    assert node["owner"]["name"] == "Olivia Owner" and node["organization"]["slug"] == "acme"
    assert node["connections"] == [
        {"relationshipType": "references", "to": {"name": "Screen printing 101"}}
    ]
    assert node["events"] == [{"type": "entity_updated"}]
    assert node["knowledge"] == [{"kind": "chunk", "text": "Use the logo with care."}]


@pytest.mark.parametrize(
    ("input", "field", "fragment"),
    [
        ({"type": "spaceship", "name": "x"}, "type", "unknown thing type"),
        ({"type": "course", "name": ""}, "name", "must not be empty"),
        ({"type": "course", "name": "x" * 201}, "name", "at most 200"),
        ({"type": "course", "name": "x", "properties": [1, 2]}, "properties", "JSON object"),
        ({"type": "course", "name": "x", "properties": "{not json"}, "properties", "JSON object"),
        ({"type": "course", "name": "x", "properties": {"a": "b" * 70000}}, "properties", "bytes"),
        ({"type": "course", "name": "x", "status": "ARCHIVED"}, "status", "archived"),
    ],
)
def test_create_thing_bad_input(api: Api, input: dict[str, Any], field: str, fragment: str) -> None:
    before = api.data("{ things { totalCount } }")["things"]["totalCount"]
    error = api.error(CREATE, {"input": input})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == field and fragment in error["message"]
    assert api.data("{ things { totalCount } }")["things"]["totalCount"] == before


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ("query($id: ID!) { thing(id: $id) { id } }", {"id": "garbage"}, "BAD_USER_INPUT"),
        (
            "query($id: ID!) { thing(id: $id) { id } }",
            {"id": "thing.native.../../x"},
            "BAD_USER_INPUT",
        ),
        (
            "query($id: ID!) { thing(id: $id) { id } }",
            {"id": "person.native.abc"},
            "BAD_USER_INPUT",
        ),
        ("query($id: ID!) { node(id: $id) { id } }", {"id": "thing.mystery.1"}, "BAD_USER_INPUT"),
        ("query($id: ID!) { thing(id: $id) { id } }", {"id": "thing.wordpress.12"}, "NOT_FOUND"),
        ("{ things(first: 101) { totalCount } }", None, "BAD_USER_INPUT"),
        ('{ things(after: "bogus") { totalCount } }', None, "BAD_USER_INPUT"),
        ('{ things(type: "nope") { totalCount } }', None, "BAD_USER_INPUT"),
        ("{ things(status: NOPE) { totalCount } }", None, "GRAPHQL_VALIDATION_FAILED"),
        (
            "query($s: ThingStatus) { things(status: $s) { totalCount } }",
            {"s": "NOPE"},
            "BAD_USER_INPUT",
        ),
        (
            "mutation($id: ID!) { archiveThing(id: $id) { id } }",
            {"id": "thing.native.0123456789abcdef"},
            "NOT_FOUND",
        ),
    ],
)
def test_bad_ids_and_arguments(
    api: Api, query: str, variables: dict[str, Any] | None, code: str
) -> None:
    assert api.error(query, variables)["extensions"]["code"] == code


def test_missing_thing_is_null_with_not_found_on_that_field_only(api: Api) -> None:
    query = "query($id: ID!) { thing(id: $id) { id } node(id: $id) { id } me { role } }"
    body = api.post(query, {"id": "thing.native.0123456789abcdef0123456789abcdef"})
    assert body["data"] == {"thing": None, "node": None, "me": {"role": "ORG_OWNER"}}
    assert sorted((e["path"][0], e["extensions"]["code"]) for e in body["errors"]) == [
        ("node", "NOT_FOUND"),
        ("thing", "NOT_FOUND"),
    ]


@pytest.mark.parametrize("role", [Role.ORG_USER, Role.PLATFORM_OWNER, Role.ORG_OWNER])
def test_members_who_may_write_can_create(api: Api, role: Role) -> None:
    result = api.data(CREATE, {"input": {"type": "task", "name": "x"}}, role=role)
    assert result["createThing"]["status"] == "DRAFT"


def test_customers_read_but_cannot_write(api: Api) -> None:
    assert api.data("{ things { totalCount } }", role=Role.CUSTOMER)["things"]["totalCount"] == 9
    error = api.error(CREATE, {"input": {"type": "task", "name": "x"}}, role=Role.CUSTOMER)
    assert error["extensions"]["code"] == "FORBIDDEN"
    thing_id = api.data("{ things(first: 1) { edges { node { id } } } }")["things"]["edges"][0][
        "node"
    ]["id"]
    error = api.error(STATUS, {"id": thing_id, "status": "ARCHIVED"}, role=Role.CUSTOMER)
    assert error["extensions"]["code"] == "FORBIDDEN"
