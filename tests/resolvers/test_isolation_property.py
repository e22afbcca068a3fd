"""Property: whatever organizations, people, roles, things and connections exist, one
organization's actor reads and changes nothing of another's; a platform owner sees the other
organization itself, and still nothing in it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from providers.records import Kind, Role
from providers.refs import native_ref
from tests.conftest import Api

TYPES = ["blog_post", "product", "document", "course", "task"]


@dataclass
class World:
    orgs: dict[str, str] = field(default_factory=dict)  # slug -> org id
    ids: dict[str, set[str]] = field(default_factory=dict)  # slug -> global ids of its things
    people: dict[str, list[tuple[str, Role]]] = field(default_factory=dict)


# Control and format characters are refused in names (providers.validation).
_VISIBLE = st.characters(exclude_categories=("Cc", "Cf", "Cs"))
org_spec = st.fixed_dictionaries(
    {
        "roles": st.lists(st.sampled_from(list(Role)), min_size=1, max_size=3),
        "things": st.lists(
            st.tuples(st.sampled_from(TYPES), st.text(_VISIBLE, min_size=1, max_size=12)),
            max_size=4,
        ),
        "edges": st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), max_size=3),
    }
)


async def build(api: Api, specs: list[dict[str, Any]]) -> World:
    world = World()
    store = api.store
    for spec in specs:
        slug = f"o{secrets.token_hex(4)}"
        org = await store.organizations.create(
            actor_ref=None, name=slug, slug=slug, plan="enterprise"
        )
        world.orgs[slug], world.ids[slug], world.people[slug] = org.id, set(), []
        for i, role in enumerate(spec["roles"]):
            person, _ = await store.people.add_member(
                org.id, actor_ref=None, email=f"p{i}@{slug}.test", name=f"P{i}", role=role
            )
            world.people[slug].append((person.id, role))
            world.ids[slug].add(native_ref(Kind.PERSON, person.id))
        actor = native_ref(Kind.PERSON, world.people[slug][0][0])
        things = []
        for type, name in spec["things"]:
            name = name.strip() or "x"
            thing = await store.things.create(org.id, actor_ref=actor, type=type, name=name)
            things.append(native_ref(Kind.THING, thing.id))
        world.ids[slug].update(things)
        for a, b in spec["edges"]:
            if a < len(things) and b < len(things) and a != b:
                edge = await store.connections.create(
                    org.id,
                    actor_ref=actor,
                    from_ref=things[a],
                    to_ref=things[b],
                    relationship_type="references",
                )
                world.ids[slug].add(native_ref(Kind.CONNECTION, edge.id))
        world.ids[slug].add(native_ref(Kind.ORGANIZATION, org.id))
    return world


def token_for(api: Api, world: World, slug: str, index: int) -> tuple[str, Role]:
    person_id, role = world.people[slug][index % len(world.people[slug])]
    auth = api.client.app.state.auth  # type: ignore[attr-defined]
    return auth.issue(person_id=person_id, org_id=world.orgs[slug], role=role), role


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    specs=st.lists(org_spec, min_size=2, max_size=3),
    who=st.integers(0, 2),
    guess=st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
)
def test_no_actor_sees_or_changes_another_organizations_data(
    api: Api, specs: list[dict[str, Any]], who: int, guess: str
) -> None:
    world: World = api.run(build, api, specs)
    mine, *others = list(world.orgs)
    token, role = token_for(api, world, mine, who)
    foreign = set().union(*(world.ids[o] for o in others))
    foreign_orgs = {native_ref(Kind.ORGANIZATION, world.orgs[o]) for o in others}

    listing = api.post(
        """{ things(first: 100) { edges { node { id connections { id from { id }
      to { id } } owner { id } } } } events(first: 100) { edges { node { id target { id }
      actor { id } } } } organization { members { person { id } } } organizations { id } }""",
        token=token,
    )
    said = str(listing)
    assert not any(ref in said for ref in foreign - foreign_orgs), "a listing leaked"
    if role is not Role.PLATFORM_OWNER:
        assert not any(ref in said for ref in foreign_orgs)

    for ref in [*sorted(foreign), f"thing.native.{guess}"]:
        body = api.post("query($id: ID!) { node(id: $id) { id } }", {"id": ref}, token=token)
        if ref in foreign_orgs and role is Role.PLATFORM_OWNER:
            assert body["data"]["node"] == {"id": ref}
        else:
            assert body["data"]["node"] is None
            assert {e["extensions"]["code"] for e in body["errors"]} == {"NOT_FOUND"}
        related = api.post(
            """query($id: ID!) { connections(thingId: $id) { id }
          events(targetId: $id) { totalCount } }""",
            {"id": ref},
            token=token,
        )
        if "errors" not in related:
            assert related["data"]["connections"] == []
            assert related["data"]["events"]["totalCount"] == 0
        if ref.startswith("thing."):
            changed = api.post(
                'mutation($id: ID!) { updateThing(id: $id, input: {name: "pwned"}) { id } }',
                {"id": ref},
                token=token,
            )
            assert changed["data"] is None
            assert {e["extensions"]["code"] for e in changed["errors"]} <= {
                "NOT_FOUND",
                "FORBIDDEN",
            }
