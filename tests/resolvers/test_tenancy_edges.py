"""Tenancy edges from the security review: what one organization may learn of another, who
sees which events, how far an org owner may grow a hierarchy, what input is accepted, and who
may read the data files."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from providers.records import Kind, Role
from providers.refs import native_ref
from tests.conftest import Api
from tests.gateway.test_api_keys import create as create_key
from tests.gateway.test_api_keys import with_key
from tests.resolvers.test_quotas import set_limits

ADD_MEMBER = """mutation($input: AddMemberInput!) { addMember(input: $input) {
  person { id email name createdAt membership { role } memberships { organization { slug } } }
  membership { role organization { slug } } } }"""
CREATE_ORG = """mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) {
  id slug plan } }"""
EVENTS = """query($type: String, $first: Int = 100) { events(type: $type, first: $first) {
  totalCount pageInfo { hasNextPage } edges { node { id type metadata } } } }"""
CONFIG_TYPES = (
    "settings_updated",
    "api_key_created",
    "api_key_revoked",
    "security_alert",
    "communication_event",
)


# 1. addMember shows the caller what the caller wrote, nothing another organization stored.


def test_add_member_reveals_nothing_of_another_organizations_person(api: Api) -> None:
    globex_view = api.data(
        "{ me { person { id name createdAt } } }", org="globex", role=Role.ORG_USER
    )
    gus = globex_view["me"]["person"]
    added = api.data(
        ADD_MEMBER,
        {"input": {"email": "Gus@Globex.example", "name": "Anyone", "role": "CUSTOMER"}},
    )["addMember"]
    assert "Gus User" not in str(added) and "globex" not in str(added).replace(
        "gus@globex.example", ""
    )
    person = added["person"]
    assert person["id"] == gus["id"]  # one person per email: the design
    assert (person["email"], person["name"]) == ("gus@globex.example", "Anyone")
    assert person["createdAt"] > gus["createdAt"]  # when he joined acme, not when he came
    assert person["memberships"] == [{"organization": {"slug": "acme"}}]
    # Read back later, acme still sees the name it wrote; globex still sees its own.
    reads = api.data(
        """query($id: ID!) { node(id: $id) { ... on Person { name } }
        organization { members { person { name email } } }
        events(type: "user_joined_org", first: 1) { edges { node { metadata
          actor { name } target { ... on Person { name } } } } } }""",
        {"id": person["id"]},
    )
    assert "Gus User" not in str(reads)
    assert reads["node"]["name"] == "Anyone"
    assert {"name": "Anyone", "email": "gus@globex.example"} in [
        m["person"] for m in reads["organization"]["members"]
    ]
    assert "new_person" not in reads["events"]["edges"][0]["node"]["metadata"]
    again = api.data("{ me { person { name } } }", org="globex", role=Role.ORG_USER)
    assert again["me"]["person"]["name"] == "Gus User"


def test_adding_a_member_twice_is_a_conflict(api: Api) -> None:
    for email in ("uma@acme.example", "UMA@ACME.EXAMPLE", " uma@acme.example "):
        error = api.error(
            ADD_MEMBER, {"input": {"email": email, "name": "Uma", "role": "CUSTOMER"}}
        )
        assert error["extensions"]["code"] == "CONFLICT", error


# 2. Events: customers see no configuration, key, security or health events; org users see
# them without their details; owners see everything.


def _org_id(api: Api, slug: str = "acme") -> str:
    org = api.run(api.store.organizations.get_by_slug, slug)
    assert org is not None
    return str(org.id)


@pytest.fixture
def configuration_events(api: Api) -> Api:
    org_id = _org_id(api)
    api.run(
        lambda: api.store.provider_configs.save(
            org_id,
            actor_ref=None,
            provider="wordpress",
            config={"base_url": "https://wp.internal.acme.example"},
            routes=["blog_post"],
            duration_ms=12.5,
        )
    )
    key = create_key(api)
    api.data("mutation($id: ID!) { revokeApiKey(id: $id) { id } }", {"id": key["apiKey"]["id"]})
    target = native_ref(Kind.ORGANIZATION, org_id)
    for type, metadata in (
        ("communication_event", {"provider": "wordpress", "status": "offline", "detail": "wp"}),
        ("security_alert", {"provider": "wordpress", "config_id": "c1", "reason": "unsealed"}),
    ):
        api.run(
            lambda t=type, m=metadata: api.store.events.append(
                org_id, t, actor_ref=None, target_ref=target, metadata=m
            )
        )
    return api


def test_customers_see_no_configuration_events(configuration_events: Api) -> None:
    api = configuration_events
    everything = api.data(EVENTS)["events"]
    hidden = [e["node"] for e in everything["edges"] if e["node"]["type"] in CONFIG_TYPES]
    assert {e["type"] for e in hidden} == set(CONFIG_TYPES)
    seen = api.data(EVENTS, role=Role.CUSTOMER)["events"]
    assert not {e["node"]["type"] for e in seen["edges"]} & set(CONFIG_TYPES)
    assert seen["totalCount"] == everything["totalCount"] - len(hidden)
    assert "wordpress" not in str(seen) and "Partner shop" not in str(seen)
    for type in CONFIG_TYPES:
        page = api.data(EVENTS, {"type": type}, role=Role.CUSTOMER)["events"]
        assert page == {"totalCount": 0, "pageInfo": {"hasNextPage": False}, "edges": []}
    # Paging counts only what the customer may see.
    first = api.data(EVENTS, {"first": seen["totalCount"] - 1}, role=Role.CUSTOMER)["events"]
    assert first["pageInfo"]["hasNextPage"] is True
    exact = api.data(EVENTS, {"first": seen["totalCount"]}, role=Role.CUSTOMER)["events"]
    assert exact["pageInfo"]["hasNextPage"] is False
    # Nor by id.
    node = "query($id: ID!) { node(id: $id) { id } }"
    for event in hidden:
        error = api.error(node, {"id": event["id"]}, role=Role.CUSTOMER)
        assert error["extensions"]["code"] == "NOT_FOUND"


def test_org_users_see_configuration_events_without_details(configuration_events: Api) -> None:
    api = configuration_events
    seen = api.data(EVENTS, role=Role.ORG_USER)["events"]
    metadata = {e["node"]["type"]: e["node"]["metadata"] for e in seen["edges"]}
    assert set(CONFIG_TYPES) <= set(metadata)
    assert set(metadata["api_key_created"]) == {"key_id"}
    assert set(metadata["api_key_revoked"]) == {"key_id"}
    assert metadata["settings_updated"] == {
        "provider": "wordpress",
        "routes": ["blog_post"],
        "from": "native",
        "to": "wordpress",
    }
    assert metadata["communication_event"] == {"provider": "wordpress"}
    assert metadata["security_alert"] == {"provider": "wordpress"}
    assert "Partner shop" not in str(seen) and "one_" not in str(seen)
    assert seen["totalCount"] == api.data(EVENTS)["events"]["totalCount"]
    by_id = api.data(
        "query($id: ID!) { node(id: $id) { ... on Event { metadata } } }",
        {
            "id": next(
                e["node"]["id"] for e in seen["edges"] if e["node"]["type"] == "api_key_created"
            )
        },
        role=Role.ORG_USER,
    )
    assert set(by_id["node"]["metadata"]) == {"key_id"}


def test_owners_see_every_event_in_full(configuration_events: Api) -> None:
    api = configuration_events
    seen = api.data(EVENTS)["events"]
    metadata = {e["node"]["type"]: e["node"]["metadata"] for e in seen["edges"]}
    assert metadata["api_key_created"]["name"] == "Partner shop"
    assert metadata["api_key_created"]["prefix"].startswith("one_")
    assert metadata["settings_updated"]["duration_ms"] == 12.5
    assert metadata["communication_event"]["status"] == "offline"
    assert metadata["security_alert"]["reason"] == "unsealed"


# 3. Organizations: an org owner's children stay within the parent's plan and number.


def test_child_plans_are_no_higher_than_the_parents(api: Api) -> None:
    # acme is on growth.
    for plan in ("starter", "growth"):
        made = api.data(CREATE_ORG, {"input": {"name": plan, "slug": f"kid-{plan}", "plan": plan}})
        assert made["createOrganization"]["plan"] == plan
    higher = {"name": "Big", "slug": "kid-big", "plan": "enterprise"}
    error = api.error(CREATE_ORG, {"input": higher})
    assert error["extensions"]["code"] == "FORBIDDEN" and error["extensions"]["field"] == "plan"
    made = api.data(CREATE_ORG, {"input": higher}, role=Role.PLATFORM_OWNER)
    assert made["createOrganization"]["plan"] == "enterprise"


def test_children_past_the_plan_are_refused(api: Api) -> None:
    set_limits(api, "acme", children=2)
    for n in range(2):
        api.data(CREATE_ORG, {"input": {"name": f"Kid {n}", "slug": f"kid-{n}"}})
    error = api.error(CREATE_ORG, {"input": {"name": "Kid 2", "slug": "kid-2"}})
    assert error["extensions"] == {
        **error["extensions"],
        "code": "QUOTA_EXCEEDED",
        "quota": "children",
        "limit": 2,
        "used": 2,
    }
    made = api.data(
        CREATE_ORG, {"input": {"name": "Kid 2", "slug": "kid-2"}}, role=Role.PLATFORM_OWNER
    )
    assert made["createOrganization"]["slug"] == "kid-2"
    limits = api.data(CREATE_ORG, {"input": {"name": "L", "slug": "lim"}}, org="globex")
    assert limits["createOrganization"]["plan"] == "starter"
    starter = api.data("{ organizations { slug limits } }", org="globex")["organizations"]
    assert next(o for o in starter if o["slug"] == "lim")["limits"]["children"] == 3


def test_an_api_key_creates_no_organization_and_grants_no_owner_role(api: Api) -> None:
    secret = create_key(api, role="ORG_OWNER")["secret"]
    body = with_key(
        api, 'mutation { createOrganization(input: {name: "K", slug: "key-made"}) { id } }', secret
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    add = """mutation { addMember(input: {email: "k@acme.example", name: "K", role: %s}) {
      membership { role } } }"""
    for role in ("ORG_OWNER", "PLATFORM_OWNER"):
        body = with_key(api, add % role, secret)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    body = with_key(api, add % "CUSTOMER", secret)
    assert body["data"]["addMember"]["membership"]["role"] == "CUSTOMER", body


# 4. Input hygiene: names and emails normalized, invisible characters refused, echoes short.

CREATE_THING = """mutation($name: String!) { createThing(input: {type: "task", name: $name}) {
  name } }"""


@pytest.mark.parametrize(
    ("name", "stored"),
    [("  Cafe\u0301  ", "Caf\u00e9"), ("\u3000Tab\tinside\u3000", None), ("Zero\u200bwidth", None)],
)
def test_thing_names_are_nfc_trimmed_and_visible(api: Api, name: str, stored: str | None) -> None:
    body = api.post(CREATE_THING, {"name": name})
    if stored is not None:
        assert body["data"]["createThing"]["name"] == stored
        return
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "name"


@pytest.mark.parametrize("name", ["\u0000", "A\u0000", "\ufeffAcme", "Ac\u200dme", " \u3000 ", ""])
def test_bad_names_are_refused_everywhere(api: Api, name: str) -> None:
    org = api.error(CREATE_ORG, {"input": {"name": name, "slug": "hygiene"}})
    member = api.error(
        ADD_MEMBER, {"input": {"email": "h@acme.example", "name": name, "role": "CUSTOMER"}}
    )
    thing = api.error(CREATE_THING, {"name": name})
    for error in (org, member, thing):
        assert error["extensions"]["code"] == "BAD_USER_INPUT", error
        assert error["extensions"]["field"] == "name", error


def test_emails_with_invisible_characters_are_refused_not_new_people(api: Api) -> None:
    for email in ("a@b.c\u0000", "\ufeffa@b.c", "a\u200b@b.c", "a\u0085b@b.c"):
        error = api.error(ADD_MEMBER, {"input": {"email": email, "name": "A", "role": "CUSTOMER"}})
        assert error["extensions"]["code"] == "BAD_USER_INPUT", (email, error)
        assert error["extensions"]["field"] == "email"
    added = api.data(ADD_MEMBER, {"input": {"email": " A@B.C ", "name": "A", "role": "CUSTOMER"}})[
        "addMember"
    ]["person"]
    assert added["email"] == "a@b.c"
    composed = api.data(
        ADD_MEMBER,
        {"input": {"email": "Jose\u0301@b.c", "name": "J", "role": "CUSTOMER"}},
        org="globex",
    )["addMember"]["person"]
    assert composed["email"] == "jos\u00e9@b.c"
    again = api.error(
        ADD_MEMBER,
        {"input": {"email": "JOS\u00c9@B.C", "name": "J", "role": "CUSTOMER"}},
        org="globex",
    )
    assert again["extensions"]["code"] == "CONFLICT"


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ('mutation($v: String!) { createThing(input: {type: $v, name: "x"}) { id } }', {}),
        ("query($v: String!) { events(type: $v) { totalCount } }", {}),
        (
            'mutation($v: String!) { createOrganization(input: {name: "x", slug: "x-y", plan: $v}) '
            "{ id } }",
            {},
        ),
        ("mutation($v: String!) { testProviderConnection(provider: $v) { status } }", {}),
        ("query($v: ID!) { node(id: $v) { id } }", {"v": "thing.native." + "Z" * 90}),
        (
            'mutation($v: String!) { configureProvider(input: {provider: "wordpress", '
            "routes: [$v], config: {}}) { provider } }",
            {},
        ),
    ],
)
def test_errors_echo_a_short_prefix_of_user_input(
    api: Api, query: str, variables: dict[str, Any]
) -> None:
    value = variables.get("v", "Z" * 500)
    error = api.error(query, {"v": value})
    assert "Z" * 41 not in error["message"], error["message"]


# 5. The database and its WAL files are for the gateway's user alone.


def test_data_files_are_private(api: Api, tmp_path: Path) -> None:
    api.data(CREATE_THING, {"name": "written"})
    files = [tmp_path / name for name in ("one.db", "one.db-wal", "one.db-shm")]
    for path in files:
        assert path.exists(), path
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, (path, oct(path.stat().st_mode))
