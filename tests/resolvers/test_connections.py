"""Connections end to end: create, query by direction and type, temporal, delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Api

CREATE = """mutation($input: CreateConnectionInput!) { createConnection(input: $input) {
  id relationshipType metadata validFrom validTo from { id } to { id } } }"""
DELETE = "mutation($id: ID!) { deleteConnection(id: $id) { id validTo } }"
OF = """query($id: ID!, $type: String, $dir: ConnectionDirection!, $at: DateTime) {
  connections(thingId: $id, relationshipType: $type, direction: $dir, at: $at) {
  id relationshipType from { id } to { id } } }"""


def ids(api: Api, type: str) -> list[str]:
    query = "query($t: String) { things(type: $t) { edges { node { id } } } }"
    return [e["node"]["id"] for e in api.data(query, {"t": type})["things"]["edges"]]


def connections(api: Api, id: str, direction: str = "BOTH", **kw: Any) -> list[dict[str, Any]]:
    variables = {"id": id, "dir": direction, **kw}
    result: list[dict[str, Any]] = api.data(OF, variables)["connections"]
    return result


def test_create_connection_and_query_both_directions(api: Api) -> None:
    post, product = ids(api, "blog_post")[2], ids(api, "product")[1]
    made = api.data(
        CREATE,
        {
            "input": {
                "fromId": post,
                "toId": product,
                "relationshipType": "references",
                "metadata": {"note": "see"},
            }
        },
    )["createConnection"]
    assert made["from"]["id"] == post and made["to"]["id"] == product
    assert made["metadata"] == {"note": "see"} and made["validTo"] is None
    outgoing = connections(api, post, "OUT", type="references")
    assert [c["id"] for c in outgoing] == [made["id"]]
    incoming = connections(api, product, "IN", type="references")
    assert [c["id"] for c in incoming] == [made["id"]]
    assert connections(api, product, "OUT", type="references") == []
    node = api.data(
        "query($id: ID!) { node(id: $id) { ... on Connection { relationshipType } } }",
        {"id": made["id"]},
    )
    assert node["node"] == {"relationshipType": "references"}
    event = api.data("""{ events(type: "connection_created", first: 1) { edges { node {
      target { id } metadata } } } }""")["events"]["edges"][0]["node"]
    assert event["target"]["id"] == made["id"]
    assert event["metadata"] == {"relationship_type": "references", "from": post, "to": product}


def test_connections_of_a_person_and_an_organization(api: Api) -> None:
    me = api.data(
        "{ me { person { id } organization { id } } }", role=None, token=api.token("acme")
    )["me"]
    owned = connections(api, me["person"]["id"], "OUT", type="owns")
    assert len(owned) == 3  # the products and the document Olivia made in the demo
    members = connections(api, me["organization"]["id"], "IN", type="member_of")
    assert len(members) == 4


def test_delete_ends_a_connection_but_keeps_its_history(api: Api) -> None:
    lesson, course = ids(api, "lesson")[0], ids(api, "course")[0]
    start = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    made = api.data(
        CREATE,
        {
            "input": {
                "fromId": lesson,
                "toId": course,
                "relationshipType": "references",
                "validFrom": start,
            }
        },
    )["createConnection"]
    ended = api.data(DELETE, {"id": made["id"]})["deleteConnection"]
    assert ended["validTo"] is not None
    assert connections(api, lesson, "OUT", type="references") == []
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    past = connections(api, lesson, "OUT", type="references", at=yesterday)
    assert [c["id"] for c in past] == [made["id"]]
    error = api.error(DELETE, {"id": made["id"]})
    assert error["extensions"]["code"] == "NOT_FOUND"
    types = api.data("{ events(first: 2) { edges { node { type } } } }")["events"]["edges"]
    assert [t["node"]["type"] for t in types] == ["connection_deleted", "connection_created"]


def test_expired_and_future_connections_are_left_out_unless_asked(api: Api) -> None:
    lesson, course = ids(api, "lesson")[1], ids(api, "course")[0]
    now = datetime.now(UTC)
    window = {
        "validFrom": (now - timedelta(days=10)).isoformat(),
        "validTo": (now - timedelta(days=5)).isoformat(),
    }
    api.data(
        CREATE,
        {"input": {"fromId": lesson, "toId": course, "relationshipType": "completed", **window}},
    )
    assert connections(api, lesson, "OUT", type="completed") == []
    inside = (now - timedelta(days=7)).isoformat()
    assert len(connections(api, lesson, "OUT", type="completed", at=inside)) == 1


def test_connection_bad_input(api: Api) -> None:
    post, product = ids(api, "blog_post")[0], ids(api, "product")[0]
    globex_thing = api.data("{ things(first: 1) { edges { node { id } } } }", org="globex")[
        "things"
    ]["edges"][0]["node"]["id"]
    base = {"fromId": post, "toId": product, "relationshipType": "references"}
    cases = [
        ({**base, "relationshipType": "befriends"}, "BAD_USER_INPUT"),
        ({**base, "relationshipType": "member_of"}, "BAD_USER_INPUT"),
        ({**base, "toId": post}, "BAD_USER_INPUT"),
        ({**base, "toId": "nonsense"}, "BAD_USER_INPUT"),
        ({**base, "toId": globex_thing}, "NOT_FOUND"),
        ({**base, "metadata": "text"}, "BAD_USER_INPUT"),
        (
            {**base, "validFrom": "2026-01-02T00:00:00Z", "validTo": "2026-01-01T00:00:00Z"},
            "BAD_USER_INPUT",
        ),
        ({**base, "validFrom": "yesterday"}, "BAD_USER_INPUT"),
    ]
    for input, code in cases:
        assert api.error(CREATE, {"input": input})["extensions"]["code"] == code, input
    assert api.error(DELETE, {"id": post})["extensions"]["code"] == "BAD_USER_INPUT"
    membership = connections(
        api, api.data("{ organization { id } }")["organization"]["id"], "IN", type="member_of"
    )[0]["id"]
    assert api.error(DELETE, {"id": membership})["extensions"]["code"] == "BAD_USER_INPUT"
