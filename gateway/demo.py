"""Demo data: two organizations, people in every role, things of several types, connections
among them, and the events all of that writes. Made through the store's own API."""

from __future__ import annotations

from dataclasses import dataclass

from providers.native import NativeStore
from providers.records import Kind, Organization, Role, ThingStatus
from providers.refs import native_ref

DEMO_SLUGS = ("acme", "globex")

_PEOPLE: dict[str, list[tuple[str, str, Role]]] = {
    "acme": [
        ("olivia@acme.example", "Olivia Owner", Role.ORG_OWNER),
        ("ada@one.example", "Ada Platform", Role.PLATFORM_OWNER),
        ("uma@acme.example", "Uma User", Role.ORG_USER),
        ("carl@acme.example", "Carl Customer", Role.CUSTOMER),
    ],
    "globex": [
        ("grace@globex.example", "Grace Owner", Role.ORG_OWNER),
        ("gus@globex.example", "Gus User", Role.ORG_USER),
        ("cora@globex.example", "Cora Customer", Role.CUSTOMER),
    ],
}

_THINGS: dict[str, list[tuple[str, str, ThingStatus, dict[str, object]]]] = {
    "acme": [
        (
            "blog_post",
            "Launching our spring collection",
            ThingStatus.PUBLISHED,
            {"content": "<p>Spring is here.</p>", "excerpt": "Spring is here."},
        ),
        (
            "blog_post",
            "Behind the scenes",
            ThingStatus.ACTIVE,
            {"content": "<p>How we make things.</p>"},
        ),
        ("blog_post", "Ideas for next year", ThingStatus.DRAFT, {}),
        (
            "product",
            "Canvas tote",
            ThingStatus.PUBLISHED,
            {"price": 24.0, "currency": "EUR", "sku": "TOTE-1"},
        ),
        (
            "product",
            "Enamel mug",
            ThingStatus.ACTIVE,
            {"price": 12.5, "currency": "EUR", "sku": "MUG-1"},
        ),
        (
            "document",
            "Brand guidelines",
            ThingStatus.PUBLISHED,
            {"content": "Use the logo with care.", "url": "https://acme.example/brand"},
        ),
        ("course", "Screen printing 101", ThingStatus.PUBLISHED, {"level": "beginner"}),
        ("lesson", "Preparing the screen", ThingStatus.PUBLISHED, {"minutes": 12}),
        ("lesson", "Pulling the first print", ThingStatus.ACTIVE, {"minutes": 18}),
    ],
    "globex": [
        (
            "product",
            "Hammock",
            ThingStatus.PUBLISHED,
            {"price": 89.0, "currency": "USD", "sku": "HAM-1"},
        ),
        ("document", "Supplier handbook", ThingStatus.ACTIVE, {"content": "Terms and contacts."}),
        ("course", "Selling outdoors", ThingStatus.DRAFT, {}),
    ],
}

_STEPS = (ThingStatus.ACTIVE, ThingStatus.PUBLISHED)


@dataclass(frozen=True, slots=True)
class DemoOwner:
    org: Organization
    person_id: str


async def seed_demo(store: NativeStore) -> dict[str, DemoOwner]:
    """Seed the demo organizations; returns each one's owner. Skips any that exist."""
    owners: dict[str, DemoOwner] = {}
    for slug in DEMO_SLUGS:
        if await store.organizations.get_by_slug(slug) is not None:
            continue
        owners[slug] = await _seed_organization(store, slug)
    return owners


async def _seed_organization(store: NativeStore, slug: str) -> DemoOwner:
    org = await store.organizations.create(
        actor_ref=None, name=f"{slug.title()} Inc.", slug=slug, plan="growth"
    )
    people = {}
    for email, name, role in _PEOPLE[slug]:
        person, _ = await store.people.add_member(
            org.id, actor_ref=None, email=email, name=name, role=role
        )
        people[role] = native_ref(Kind.PERSON, person.id)
    owner, user = people[Role.ORG_OWNER], people[Role.ORG_USER]
    things: dict[str, list[str]] = {}
    for type, name, status, properties in _THINGS[slug]:
        author = owner if type in ("product", "document") else user
        thing = await store.things.create(
            org.id, actor_ref=author, type=type, name=name, properties=properties
        )
        for step in _STEPS[: _STEPS.index(status) + 1] if status is not ThingStatus.DRAFT else ():
            await store.things.change_status(org.id, thing.id, actor_ref=author, status=step)
        things.setdefault(type, []).append(native_ref(Kind.THING, thing.id))

    async def connect(from_ref: str, to_ref: str, relationship: str, **metadata: object) -> None:
        await store.connections.create(
            org.id,
            actor_ref=owner,
            from_ref=from_ref,
            to_ref=to_ref,
            relationship_type=relationship,
            metadata=metadata,
        )

    course = things["course"][0]
    for position, lesson in enumerate(things.get("lesson", []), start=1):
        await connect(lesson, course, "part_of", position=position)
    for post in things.get("blog_post", [])[:2]:
        await connect(user, post, "authored")
        await connect(post, things["product"][0], "references")
    await connect(people[Role.CUSTOMER], things["product"][0], "purchased", quantity=1)
    await connect(people[Role.CUSTOMER], course, "enrolled_in")
    await connect(things["document"][0], course, "references")
    await store.knowledge.create(
        org.id,
        actor_ref=owner,
        kind="chunk",
        source_ref=things["document"][0],
        text=str(_THINGS[slug][[t[0] for t in _THINGS[slug]].index("document")][3]["content"]),
        labels=["guide"],
    )
    return DemoOwner(org=org, person_id=owner.rsplit(".", 1)[-1])
