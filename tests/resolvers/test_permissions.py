"""The permission matrix of the README, each role against each operation."""

from __future__ import annotations

from typing import Any

import pytest

from providers.records import Role
from tests.conftest import Api

PO, OO, OU, CU = Role.PLATFORM_OWNER, Role.ORG_OWNER, Role.ORG_USER, Role.CUSTOMER
DRAFT = "{ things(status: DRAFT, first: 1) { edges { node { id } } } }"

# operation -> (GraphQL, needs a draft thing's id, the roles allowed)
MATRIX: dict[str, tuple[str, bool, set[Role]]] = {
    "read": ("{ things { totalCount } events { totalCount } }", False, {PO, OO, OU, CU}),
    "create": (
        'mutation { createThing(input: {type: "task", name: "x"}) { id } }',
        False,
        {PO, OO, OU},
    ),
    "update": (
        'mutation($id: ID!) { updateThing(id: $id, input: {name: "y"}) { id } }',
        True,
        {PO, OO, OU},
    ),
    "publish": (
        "mutation($id: ID!) { changeThingStatus(id: $id, status: ACTIVE) { id } }",
        True,
        {PO, OO, OU},
    ),
    "archive": ("mutation($id: ID!) { archiveThing(id: $id) { id } }", True, {PO, OO, OU}),
    "connect": (
        "mutation($id: ID!) { createConnection(input: {fromId: $id, toId: $id, "
        'relationshipType: "references"}) { id } }',
        True,
        {PO, OO, OU},
    ),
    "manage members": (
        'mutation { addMember(input: {email: "m@acme.example", name: "M", '
        "role: CUSTOMER}) { person { id } } }",
        False,
        {PO, OO},
    ),
    "create organizations": (
        'mutation { createOrganization(input: {name: "Kid", slug: "kid"}) { id } }',
        False,
        {PO, OO},
    ),
    "manage providers": (
        'mutation { configureProvider(input: {provider: "wordpress", '
        'routes: ["blog_post"], config: {}}) { provider } }',
        False,
        {PO, OO},
    ),
    "provider health": (
        'mutation { testProviderConnection(provider: "wordpress") { status } }',
        False,
        {PO, OO},
    ),
    "see providers": ("{ providers { provider } }", False, {PO, OO, OU}),
    "manage API keys": ("{ apiKeys { id } }", False, {PO, OO}),
    "manage trusted documents": ("mutation { setSafelistMode(mode: OFF) }", False, {PO, OO}),
}


@pytest.mark.parametrize("operation", list(MATRIX))
@pytest.mark.parametrize("role", list(Role))
def test_permission_matrix(api: Api, role: Role, operation: str) -> None:
    query, needs_id, allowed = MATRIX[operation]
    variables: dict[str, Any] = {}
    if needs_id:
        variables["id"] = api.data(DRAFT)["things"]["edges"][0]["node"]["id"]
    body = api.post(query, variables, role=role)
    codes = {e["extensions"]["code"] for e in body.get("errors", [])}
    if role in allowed:
        assert "FORBIDDEN" not in codes, (role, operation, body)
    else:
        assert codes == {"FORBIDDEN"}, (role, operation, body)
