"""No organization's actor reads or changes another's data, whatever id it sends."""

from __future__ import annotations

from typing import Any

import pytest

from providers.records import Role
from tests.conftest import Api


@pytest.fixture
def globex(api: Api) -> dict[str, Any]:
    """Ids of every kind from globex, as acme's actors might guess or steal them."""
    data = api.data(
        """{ organization { id members { person { id } } }
      things(first: 100) { edges { node { id connections { id } events(first: 1) { id }
      knowledge { id } } } } }""",
        org="globex",
    )
    nodes = [e["node"] for e in data["things"]["edges"]]
    knowledge = api.data(
        """mutation($s: ID) { createKnowledge(input: {kind: "chunk",
      text: "globex secret", sourceId: $s}) { id } }""",
        {"s": nodes[0]["id"]},
        org="globex",
    )
    return {
        "org": data["organization"]["id"],
        "person": data["organization"]["members"][0]["person"]["id"],
        "thing": nodes[0]["id"],
        "connection": next(c["id"] for n in nodes for c in n["connections"]),
        "event": nodes[0]["events"][0]["id"],
        "knowledge": knowledge["createKnowledge"]["id"],
    }


@pytest.mark.parametrize("role", list(Role))
def test_node_and_thing_by_foreign_id_are_not_found(
    api: Api, globex: dict[str, Any], role: Role
) -> None:
    for kind, id in globex.items():
        body = api.post("query($id: ID!) { node(id: $id) { id } }", {"id": id}, role=role)
        if kind == "org" and role is Role.PLATFORM_OWNER:
            assert body == {"data": {"node": {"id": id}}}  # a platform owner sees every org
        else:
            # The same answer as for an id that does not exist: nothing leaks, not even that.
            assert body["data"] == {"node": None}, kind
            assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]
    body = api.post("query($id: ID!) { thing(id: $id) { id } }", {"id": globex["thing"]}, role=role)
    assert body["data"] == {"thing": None}
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


def test_lists_and_searches_hold_only_own_rows(api: Api, globex: dict[str, Any]) -> None:
    data = api.data(
        """query($t: ID!, $p: ID!) {
      things(first: 100) { edges { node { organization { slug } } } }
      events(first: 100) { edges { node { id } } }
      byTarget: events(targetId: $t) { totalCount }
      byActor: events(actorId: $p) { totalCount }
      connections(thingId: $t) { id }
      personConnections: connections(thingId: $p) { id }
      knowledgeSearch(query: "globex secret") { hits { knowledge { id } } } }""",
        {"t": globex["thing"], "p": globex["person"]},
    )
    assert {e["node"]["organization"]["slug"] for e in data["things"]["edges"]} == {"acme"}
    assert globex["event"] not in {e["node"]["id"] for e in data["events"]["edges"]}
    assert data["byTarget"]["totalCount"] == 0 and data["byActor"]["totalCount"] == 0
    assert data["connections"] == [] and data["personConnections"] == []
    assert data["knowledgeSearch"]["hits"] == []


def test_organizations_of_others_are_hidden(api: Api, globex: dict[str, Any]) -> None:
    query = "query($id: ID!) { organization(id: $id) { slug } }"
    assert api.data(query, {"id": globex["org"]})["organization"] is None
    assert [o["slug"] for o in api.data("{ organizations { slug } }")["organizations"]] == ["acme"]


def test_mutations_on_foreign_ids_change_nothing(api: Api, globex: dict[str, Any]) -> None:
    own = api.data("{ things(first: 1) { edges { node { id } } } }")["things"]["edges"][0]["node"][
        "id"
    ]
    attempts = [
        (
            'mutation($id: ID!) { updateThing(id: $id, input: {name: "pwned"}) { id } }',
            {"id": globex["thing"]},
            "NOT_FOUND",
        ),
        (
            "mutation($id: ID!) { archiveThing(id: $id) { id } }",
            {"id": globex["thing"]},
            "NOT_FOUND",
        ),
        (
            "mutation($id: ID!) { changeThingStatus(id: $id, status: ARCHIVED) { id } }",
            {"id": globex["thing"]},
            "NOT_FOUND",
        ),
        (
            "mutation($id: ID!) { deleteConnection(id: $id) { id } }",
            {"id": globex["connection"]},
            "NOT_FOUND",
        ),
        (
            """mutation($a: ID!, $b: ID!) { createConnection(input: {fromId: $a, toId: $b,
          relationshipType: "references"}) { id } }""",
            {"a": own, "b": globex["thing"]},
            "NOT_FOUND",
        ),
        (
            """mutation($a: ID!, $b: ID!) { createConnection(input: {fromId: $a, toId: $b,
          relationshipType: "following"}) { id } }""",
            {"a": own, "b": globex["person"]},
            "NOT_FOUND",
        ),
        (
            """mutation($s: ID!) { createKnowledge(input: {kind: "label", text: "x",
          sourceId: $s}) { id } }""",
            {"s": globex["thing"]},
            "NOT_FOUND",
        ),
        (
            """mutation($o: ID!) { addMember(input: {email: "spy@acme.example", name: "Spy",
          role: ORG_OWNER, organizationId: $o}) { person { id } } }""",
            {"o": globex["org"]},
            "NOT_FOUND",
        ),
    ]
    for query, variables, code in attempts:
        assert api.error(query, variables)["extensions"]["code"] == code, query
    thing = api.data(
        "query($id: ID!) { thing(id: $id) { name status } }", {"id": globex["thing"]}, org="globex"
    )["thing"]
    assert thing["name"] != "pwned" and thing["status"] != "ARCHIVED"
    members = api.data("{ organization { usage { members } } }", org="globex")
    assert members["organization"]["usage"]["members"] == 3
