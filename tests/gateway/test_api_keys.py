"""Partner API keys: created by owners, shown once, stored as a hash, scoped, revocable."""

from __future__ import annotations

from typing import Any

import pytest

from providers.native.api_keys import hash_key
from providers.records import Role
from tests.conftest import Api

CREATE = """mutation($name: String!, $role: Role!) { createApiKey(name: $name, role: $role) {
  secret apiKey { id name role prefix createdAt lastUsedAt revokedAt } } }"""


def create(api: Api, role: str = "ORG_USER", **kw: Any) -> dict[str, Any]:
    created: dict[str, Any] = api.data(CREATE, {"name": "Partner shop", "role": role}, **kw)[
        "createApiKey"
    ]
    return created


def with_key(api: Api, query: str, secret: str, header: str = "X-API-Key") -> dict[str, Any]:
    value = secret if header == "X-API-Key" else f"Bearer {secret}"
    response = api.client.post("/graphql", json={"query": query}, headers={header: value})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("header", ["X-API-Key", "Authorization"])
def test_a_key_acts_with_its_organization_and_role(api: Api, header: str) -> None:
    created = create(api)
    secret = created["secret"]
    assert secret.startswith("one_") and created["apiKey"]["prefix"] == secret[:10]
    body = with_key(
        api,
        "{ me { role person { id } organization { slug } } things { totalCount } }",
        secret,
        header,
    )
    assert body["data"]["me"] == {
        "role": "ORG_USER",
        "person": None,
        "organization": {"slug": "acme"},
    }
    assert body["data"]["things"]["totalCount"] == 9
    made = with_key(
        api,
        'mutation { createThing(input: {type: "task", name: "from a partner"}) { name } }',
        secret,
        header,
    )
    assert made["data"]["createThing"]["name"] == "from a partner"


def test_a_customer_key_reads_but_cannot_write(api: Api) -> None:
    secret = create(api, role="CUSTOMER")["secret"]
    body = with_key(
        api, 'mutation { createThing(input: {type: "task", name: "x"}) { id } }', secret
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert with_key(api, "{ things { totalCount } }", secret)["data"]["things"]["totalCount"] == 9


def test_only_a_hash_is_stored_and_the_secret_is_shown_once(api: Api) -> None:
    created = create(api)
    rows = api.run(api.store.engine.find, "api_keys", [])
    assert [r["key_hash"] for r in rows] == [hash_key(created["secret"])]
    assert created["secret"] not in str(rows)
    listed = api.data("{ apiKeys { id name role prefix lastUsedAt } }")["apiKeys"]
    assert created["secret"] not in str(listed) and listed[0]["lastUsedAt"] is None
    with_key(api, "{ me { role } }", created["secret"])
    assert api.data("{ apiKeys { lastUsedAt } }")["apiKeys"][0]["lastUsedAt"] is not None
    events = api.data('{ events(type: "api_key_created") { edges { node { metadata } } } }')
    assert created["secret"] not in str(events)
    assert events["events"]["edges"][0]["node"]["metadata"]["prefix"] == created["secret"][:10]


def test_revoked_keys_and_forged_keys_are_refused(api: Api) -> None:
    created = create(api)
    revoke = "mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }"
    assert api.data(revoke, {"id": created["apiKey"]["id"]})["revokeApiKey"]["revokedAt"]
    for secret in (created["secret"], "one_" + "x" * 43, "not-even-a-key"):
        body = with_key(api, "{ me { role } }", secret)
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    again = api.error(revoke, {"id": created["apiKey"]["id"]})
    assert again["extensions"]["code"] == "NOT_FOUND"
    assert api.error(revoke, {"id": "thing.native.abc"})["extensions"]["code"] == "BAD_USER_INPUT"


def test_keys_are_scoped_to_their_organization(api: Api) -> None:
    secret = create(api)["secret"]
    globex = api.data("{ things(first: 1) { edges { node { id } } } }", org="globex")["things"][
        "edges"
    ][0]["node"]["id"]
    body = with_key(api, f'{{ thing(id: "{globex}") {{ id }} }}', secret)
    assert body["data"]["thing"] is None
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    theirs = create(api, org="globex")
    revoke = "mutation($id: ID!) { revokeApiKey(id: $id) { id } }"
    assert api.error(revoke, {"id": theirs["apiKey"]["id"]})["extensions"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("role", [Role.ORG_USER, Role.CUSTOMER])
def test_only_owners_manage_keys(api: Api, role: Role) -> None:
    assert (
        api.error(CREATE, {"name": "x", "role": "ORG_USER"}, role=role)["extensions"]["code"]
        == "FORBIDDEN"
    )
    assert api.error("{ apiKeys { id } }", role=role)["extensions"]["code"] == "FORBIDDEN"
    error = api.error(CREATE, {"name": "x", "role": "PLATFORM_OWNER"})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    key = create(api)["secret"]
    # A key cannot mint keys, whatever role it has: only owners, as people, do.
    owner_key = create(api, role="ORG_OWNER")["secret"]
    body = with_key(api, 'mutation { createApiKey(name: "x", role: ORG_USER) { secret } }', key)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = with_key(
        api, 'mutation { createApiKey(name: "x", role: ORG_USER) { secret } }', owner_key
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
