"""Trusted documents and the safelist mode through GraphQL: owners only, scoped, idempotent."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from providers.records import Role
from tests.conftest import Api

QUERY = "query Things { things { totalCount } }"
MUTATION = 'mutation Make { createThing(input: {type: "task", name: "x"}) { id } }'

REGISTER = """mutation($documents: [TrustedDocumentInput!]!, $apiKeyId: ID) {
  registerTrustedDocuments(documents: $documents, apiKeyId: $apiKeyId) {
    sha256 name apiKeyId createdAt document } }"""
LIST = """query($first: Int, $after: String) { safelistMode
  trustedDocuments(first: $first, after: $after) {
    edges { cursor node { sha256 name apiKeyId } } pageInfo { hasNextPage endCursor }
    totalCount } }"""
REMOVE = "mutation($sha256: [String!]!) { removeTrustedDocuments(sha256: $sha256) }"
SET_MODE = "mutation($mode: SafelistMode!) { setSafelistMode(mode: $mode) }"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def register(api: Api, *documents: tuple[str | None, str], **kw: Any) -> Any:
    variables = {"documents": [{"name": n, "document": d} for n, d in documents]}
    if "api_key_id" in kw:
        variables["apiKeyId"] = kw.pop("api_key_id")
    return api.data(REGISTER, variables, **kw)["registerTrustedDocuments"]


def create_key(api: Api, org: str = "acme", role: str = "ORG_USER") -> dict[str, Any]:
    created: dict[str, Any] = api.data(
        'mutation($role: Role!) { createApiKey(name: "partner", role: $role) '
        "{ secret apiKey { id } } }",
        {"role": role},
        org=org,
    )["createApiKey"]
    return created


def test_owner_registers_lists_removes_and_sets_the_mode(api: Api) -> None:
    key = create_key(api)["apiKey"]["id"]
    registered = register(api, ("Things", QUERY), (None, MUTATION))
    assert [(d["sha256"], d["name"], d["apiKeyId"]) for d in registered] == [
        (sha(QUERY), "Things", None),
        (sha(MUTATION), None, None),
    ]
    assert registered[0]["document"] == QUERY and registered[0]["createdAt"]
    [scoped] = register(api, ("Things", QUERY), api_key_id=key)
    assert scoped["apiKeyId"] == key and scoped["sha256"] == sha(QUERY)

    listed = api.data(LIST, {"first": 2})
    assert listed["safelistMode"] == "OFF"
    page = listed["trustedDocuments"]
    assert page["totalCount"] == 3 and page["pageInfo"]["hasNextPage"]
    rest = api.data(LIST, {"first": 2, "after": page["pageInfo"]["endCursor"]})
    nodes = [e["node"] for e in page["edges"] + rest["trustedDocuments"]["edges"]]
    assert sorted((n["sha256"], n["apiKeyId"] or "") for n in nodes) == sorted(
        [(sha(QUERY), ""), (sha(QUERY), key), (sha(MUTATION), "")]
    )

    assert api.data(REMOVE, {"sha256": [sha(QUERY)]})["removeTrustedDocuments"] == 2
    assert api.data(REMOVE, {"sha256": [sha(QUERY)]})["removeTrustedDocuments"] == 0
    page = api.data(LIST)["trustedDocuments"]
    assert [e["node"]["sha256"] for e in page["edges"]] == [sha(MUTATION)]

    assert api.data(SET_MODE, {"mode": "API_KEYS"})["setSafelistMode"] == "API_KEYS"
    assert api.data("{ safelistMode }")["safelistMode"] == "API_KEYS"
    assert api.data("{ safelistMode }", org="globex")["safelistMode"] == "OFF"
    assert api.data(SET_MODE, {"mode": "ALL"}, role=Role.PLATFORM_OWNER)["setSafelistMode"] == "ALL"

    types = ["trusted_documents_registered", "trusted_documents_removed", "safelist_mode_changed"]
    seen = {}
    for type in types:
        events = api.data(
            "query($type: String) { events(type: $type) { totalCount edges { node { metadata "
            "actor { id } } } } }",
            {"type": type},
        )["events"]
        seen[type] = [e["node"]["metadata"] for e in events["edges"]]
        assert all(e["node"]["actor"] for e in events["edges"])
    assert [m["count"] for m in seen["trusted_documents_registered"]] == [1, 2]
    assert seen["trusted_documents_registered"][0]["scope"] == "api_key"
    assert seen["trusted_documents_removed"] == [{"count": 2, "hashes": [sha(QUERY)]}]
    assert seen["safelist_mode_changed"] == [
        {"from": "api_keys", "to": "all"},
        {"from": "off", "to": "api_keys"},
    ]
    assert QUERY not in str(seen)


def test_registering_again_changes_nothing(api: Api) -> None:
    [first] = register(api, ("Things", QUERY))
    [again] = register(api, ("Other name", QUERY))
    assert again == first
    assert api.data(LIST)["trustedDocuments"]["totalCount"] == 1
    events = api.data('{ events(type: "trusted_documents_registered") { totalCount } }')
    assert events["events"]["totalCount"] == 1


@pytest.mark.parametrize("role", [Role.ORG_USER, Role.CUSTOMER])
def test_only_owners_manage_trusted_documents(api: Api, role: Role) -> None:
    for query, variables in [
        (REGISTER, {"documents": [{"document": QUERY}]}),
        (LIST, {}),
        ("{ safelistMode }", {}),
        (REMOVE, {"sha256": [sha(QUERY)]}),
        (SET_MODE, {"mode": "ALL"}),
    ]:
        assert api.error(query, variables, role=role)["extensions"]["code"] == "FORBIDDEN"


def test_api_keys_cannot_manage_trusted_documents(api: Api) -> None:
    # Not even an owner's key: a leaked key must not widen what keys may run.
    secret = create_key(api, role="ORG_OWNER")["secret"]
    for query in (
        'mutation { registerTrustedDocuments(documents: [{document: "{ me { role } }"}]) '
        "{ sha256 } }",
        "mutation { setSafelistMode(mode: OFF) }",
        "{ trustedDocuments { totalCount } }",
    ):
        response = api.client.post("/graphql", json={"query": query}, headers={"X-API-Key": secret})
        assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_bad_documents_and_foreign_keys_are_refused(api: Api) -> None:
    variables = {"documents": [{"document": QUERY}, {"document": "query {"}]}
    error = api.error(REGISTER, variables)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["index"] == 1 and "document 1" in error["message"]
    many = [{"document": QUERY}] * 101
    assert api.error(REGISTER, {"documents": many})["extensions"]["code"] == "BAD_USER_INPUT"
    huge = [{"document": "{ me { role } }" + " " * 64 * 1024}]
    assert api.error(REGISTER, {"documents": huge})["extensions"]["code"] == "BAD_USER_INPUT"

    theirs = create_key(api, org="globex")["apiKey"]["id"]
    error = api.error(REGISTER, {"documents": [{"document": QUERY}], "apiKeyId": theirs})
    assert error["extensions"]["code"] == "NOT_FOUND"
    error = api.error(REGISTER, {"documents": [{"document": QUERY}], "apiKeyId": "nope"})
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "apiKeyId"}
    assert api.error(REMOVE, {"sha256": ["xyz"]})["extensions"]["code"] == "BAD_USER_INPUT"
    assert api.data(LIST)["trustedDocuments"]["totalCount"] == 0


def test_another_organization_sees_none_of_them(api: Api) -> None:
    register(api, ("Things", QUERY))
    assert api.data(LIST, org="globex")["trustedDocuments"]["totalCount"] == 0
    assert api.data(REMOVE, {"sha256": [sha(QUERY)]}, org="globex")["removeTrustedDocuments"] == 0
    assert api.data(LIST)["trustedDocuments"]["totalCount"] == 1
