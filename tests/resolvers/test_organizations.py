"""Organizations, people and memberships end to end."""

from __future__ import annotations

from providers.records import Role
from tests.conftest import Api

ADD_MEMBER = """mutation($input: AddMemberInput!) { addMember(input: $input) {
  person { id email name membership { role } } membership { role organization { slug } } } }"""
CREATE_ORG = """mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) {
  id name slug plan limits parent { slug } members { role person { email } } } }"""


def test_me_names_the_actor(api: Api) -> None:
    me = api.data(
        "{ me { role person { email membership { role } } organization { slug } } }",
        role=Role.ORG_USER,
    )["me"]
    assert me == {
        "role": "ORG_USER",
        "person": {"email": "uma@acme.example", "membership": {"role": "ORG_USER"}},
        "organization": {"slug": "acme"},
    }


def test_organization_members_usage_and_plan(api: Api) -> None:
    org = api.data("""{ organization { slug plan limits usage { things members }
      members { role person { email } } parent { slug } children { slug } } }""")["organization"]
    assert org["slug"] == "acme" and org["plan"] == "growth" and org["limits"]["members"] == 100
    assert org["usage"] == {"things": 9, "members": 4}
    assert {m["role"] for m in org["members"]} == {
        "ORG_OWNER",
        "PLATFORM_OWNER",
        "ORG_USER",
        "CUSTOMER",
    }
    assert org["parent"] is None and org["children"] == []


def test_add_member_creates_person_and_writes_event(api: Api) -> None:
    added = api.data(
        ADD_MEMBER, {"input": {"email": "New@Acme.example", "name": "Nina", "role": "ORG_USER"}}
    )["addMember"]
    assert added["person"]["email"] == "new@acme.example"
    assert added["membership"] == {"role": "ORG_USER", "organization": {"slug": "acme"}}
    events = api.data("""{ events(type: "user_joined_org", first: 1) { edges { node {
      metadata actor { email } target { id } } } } }""")["events"]["edges"]
    event = events[0]["node"]
    assert event["target"]["id"] == added["person"]["id"]
    assert event["actor"]["email"] == "olivia@acme.example"
    assert event["metadata"]["role"] == "org_user"
    usage = api.data("{ organization { usage { members } } }")["organization"]["usage"]
    assert usage["members"] == 5


def test_add_member_bad_input_and_permissions(api: Api) -> None:
    base = {"email": "x@acme.example", "name": "X", "role": "ORG_USER"}
    cases = [
        ({**base, "email": "not-an-email"}, Role.ORG_OWNER, "BAD_USER_INPUT"),
        ({**base, "email": "uma@acme.example"}, Role.ORG_OWNER, "CONFLICT"),
        ({**base, "role": "PLATFORM_OWNER"}, Role.ORG_OWNER, "FORBIDDEN"),
        (base, Role.ORG_USER, "FORBIDDEN"),
        (base, Role.CUSTOMER, "FORBIDDEN"),
        ({**base, "organizationId": "org.native.ffff"}, Role.ORG_OWNER, "NOT_FOUND"),
        ({**base, "organizationId": "thing.native.ffff"}, Role.ORG_OWNER, "BAD_USER_INPUT"),
    ]
    for input, role, code in cases:
        assert api.error(ADD_MEMBER, {"input": input}, role=role)["extensions"]["code"] == code
    assert (
        api.data("{ organization { usage { members } } }")["organization"]["usage"]["members"] == 4
    )


def test_org_owner_creates_a_child_and_owns_it(api: Api) -> None:
    child = api.data(CREATE_ORG, {"input": {"name": "Acme Labs", "slug": "acme-labs"}})[
        "createOrganization"
    ]
    assert child["parent"] == {"slug": "acme"} and child["plan"] == "starter"
    assert child["members"] == [{"role": "ORG_OWNER", "person": {"email": "olivia@acme.example"}}]
    orgs = api.data("{ organizations { slug } organization { children { slug } } }")
    assert [o["slug"] for o in orgs["organizations"]] == ["acme", "acme-labs"]
    assert orgs["organization"]["children"] == [{"slug": "acme-labs"}]
    # A parent's member sees the child listed, but not its members or usage.
    error = api.error(
        "query($id: ID!) { organization(id: $id) { slug usage { things } } }",
        {"id": child["id"]},
        role=Role.ORG_USER,
    )
    assert error["extensions"]["code"] == "FORBIDDEN"
    event = api.data("""{ events(type: "organization_created") { totalCount } }""")
    assert event["events"]["totalCount"] == 1  # in acme's log: its own creation


def test_create_organization_rules(api: Api) -> None:
    top = {"name": "Top", "slug": "top", "parentId": None}
    assert api.error(CREATE_ORG, {"input": top})["extensions"]["code"] == "FORBIDDEN"
    made = api.data(CREATE_ORG, {"input": top}, role=Role.PLATFORM_OWNER)["createOrganization"]
    assert made["parent"] is None
    assert (
        len(api.data("{ organizations { slug } }", role=Role.PLATFORM_OWNER)["organizations"]) == 3
    )
    duplicate = {"name": "Again", "slug": "acme"}
    assert api.error(CREATE_ORG, {"input": duplicate})["extensions"]["code"] == "CONFLICT"
    bad = [
        ({"name": "Bad", "slug": "Bad Slug"}, "BAD_USER_INPUT"),
        ({"name": "Bad", "slug": "bad", "plan": "gold"}, "BAD_USER_INPUT"),
        ({"name": " ", "slug": "blank"}, "BAD_USER_INPUT"),
    ]
    for input, code in bad:
        assert api.error(CREATE_ORG, {"input": input})["extensions"]["code"] == code
    globex = api.data("{ organization { id } }", org="globex")["organization"]["id"]
    foreign = {"name": "Sneaky", "slug": "sneaky", "parentId": globex}
    assert api.error(CREATE_ORG, {"input": foreign})["extensions"]["code"] == "FORBIDDEN"
    error = api.error(CREATE_ORG, {"input": {"name": "C", "slug": "cust"}}, role=Role.CUSTOMER)
    assert error["extensions"]["code"] == "FORBIDDEN"


def test_memberships_are_yours_in_full_and_others_only_here(api: Api) -> None:
    # Uma joins globex too; she sees both memberships, acme's owner sees only acme's.
    api.data(
        ADD_MEMBER,
        {"input": {"email": "uma@acme.example", "name": "Uma", "role": "CUSTOMER"}},
        org="globex",
    )
    query = "{ me { person { memberships { role organization { slug } } } } }"
    mine = api.data(query, role=Role.ORG_USER)["me"]["person"]["memberships"]
    assert [(m["role"], m["organization"]["slug"]) for m in mine] == [
        ("ORG_USER", "acme"),
        ("CUSTOMER", "globex"),
    ]
    members = api.data("""{ organization { members { person { email memberships {
      organization { slug } } } } } }""")["organization"]["members"]
    uma = next(m["person"] for m in members if m["person"]["email"] == "uma@acme.example")
    assert uma["memberships"] == [{"organization": {"slug": "acme"}}]
