"""One conformance suite, run against every engine of the native store."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from providers.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    InvalidTransitionError,
    NotFoundError,
    QuotaExceededError,
)
from providers.native import EventQuery, NativeStore, ThingQuery
from providers.records import Kind, Organization, Role, ThingStatus, utcnow
from providers.refs import native_ref


async def make_org(store: NativeStore, slug: str = "acme") -> tuple[Organization, str]:
    org = await store.organizations.create(actor_ref=None, name=slug.title(), slug=slug)
    person, _ = await store.people.add_member(
        org.id, actor_ref=None, email=f"owner@{slug}.test", name="Owner", role=Role.ORG_OWNER
    )
    return org, native_ref(Kind.PERSON, person.id)


async def test_organization_hierarchy_and_event(store: NativeStore) -> None:
    parent, _ = await make_org(store, "parent")
    child = await store.organizations.create(
        actor_ref=None, name="Child", slug="child", parent_id=parent.id, plan="growth"
    )
    assert child.limits["members"] == 100
    assert [o.id for o in await store.organizations.all([parent.id])] == [child.id]
    assert await store.organizations.get_many([child.id, "missing"]) == [child, None]
    assert (await store.organizations.get_by_slug("child")) == child
    page = await store.events.page(child.id, EventQuery(type="organization_created"))
    assert [e.target_ref for e in page.items] == [native_ref(Kind.ORGANIZATION, child.id)]
    assert page.items[0].metadata["parent_id"] == parent.id


async def test_organization_bad_input(store: NativeStore) -> None:
    await make_org(store, "acme")
    with pytest.raises(ConflictError):
        await store.organizations.create(actor_ref=None, name="Again", slug="acme")
    with pytest.raises(InvalidInputError, match="slug"):
        await store.organizations.create(actor_ref=None, name="Bad", slug="Not A Slug")
    with pytest.raises(NotFoundError):
        await store.organizations.create(actor_ref=None, name="O", slug="orphan", parent_id="x")
    with pytest.raises(InvalidInputError, match="plan"):
        await store.organizations.create(actor_ref=None, name="P", slug="plan", plan="gold")


async def test_members_are_scoped_to_their_organization(store: NativeStore) -> None:
    acme, owner = await make_org(store, "acme")
    other, _ = await make_org(store, "other")
    person, membership = await store.people.add_member(
        acme.id, actor_ref=owner, email="Ann@Acme.test", name="Ann", role=Role.ORG_USER
    )
    assert person.email == "ann@acme.test" and membership.role is Role.ORG_USER
    assert await store.people.get_many(acme.id, [person.id]) == [person]
    assert await store.people.get_many(other.id, [person.id]) == [None]
    assert await store.people.get_by_email(other.id, "ann@acme.test") is None
    with pytest.raises(ConflictError, match="already a member"):
        await store.people.add_member(
            acme.id, actor_ref=owner, email="ann@acme.test", name="Ann", role=Role.CUSTOMER
        )
    # The same person may join a second organization, keeping one identity.
    again, _ = await store.people.add_member(
        other.id, actor_ref=None, email="ann@acme.test", name="Ann", role=Role.CUSTOMER
    )
    assert again.id == person.id
    assert {m.role for m in await store.people.members(acme.id)} == {Role.ORG_OWNER, Role.ORG_USER}
    assert await store.people.count_members(acme.id) == 2
    events = await store.events.page(acme.id, EventQuery(type="user_joined_org"))
    assert events.total_count == 2 and events.items[0].actor_ref == owner


async def test_create_thing_writes_owner_and_event(store: NativeStore) -> None:
    org, owner = await make_org(store)
    thing = await store.things.create(
        org.id, actor_ref=owner, type="blog_post", name=" Hello ", properties={"a": 1}
    )
    assert thing.name == "Hello" and thing.status is ThingStatus.DRAFT
    ref = native_ref(Kind.THING, thing.id)
    edges = (await store.connections.of(org.id, [ref], direction="in"))[ref]
    assert [(e.from_ref, e.relationship_type) for e in edges] == [(owner, "owns")]
    events = await store.events.page(org.id, EventQuery(target_ref=ref))
    assert [(e.type, e.actor_ref) for e in events.items] == [("entity_created", owner)]
    assert events.items[0].metadata == {
        "thing_type": "blog_post",
        "status": "draft",
        "provider": "native",
        "version": thing.updated_at.isoformat(),
    }
    # Numbered in the organization's stream, after the events of its set-up.
    assert events.items[0].seq == await store.events.last_seq(org.id)


async def test_get_many_is_one_query_in_key_order(store: NativeStore) -> None:
    org, owner = await make_org(store)
    other, other_owner = await make_org(store, "other")
    mine = [
        await store.things.create(org.id, actor_ref=owner, type="product", name=f"P{i}")
        for i in range(5)
    ]
    theirs = await store.things.create(other.id, actor_ref=other_owner, type="product", name="X")
    ids = [mine[3].id, "nope", theirs.id, mine[0].id, mine[3].id]
    before = store.engine.queries
    found = await store.things.get_many(org.id, ids)
    assert store.engine.queries - before == 1
    assert found == [mine[3], None, None, mine[0], mine[3]]


async def test_thing_pages_are_stable_and_filtered(store: NativeStore) -> None:
    org, owner = await make_org(store)
    made = []
    for i in range(7):
        kind = "course" if i % 2 else "document"
        made.append(await store.things.create(org.id, actor_ref=owner, type=kind, name=f"T{i}"))
    seen, after = [], None
    while True:
        page = await store.things.page(org.id, ThingQuery(first=3, after=after))
        assert page.total_count == 7
        seen += page.items
        if not page.has_next_page:
            break
        after = page.cursors[-1]
    assert [t.id for t in seen] == [t.id for t in made]
    courses = await store.things.page(org.id, ThingQuery(type="course", first=100))
    assert [t.name for t in courses.items] == ["T1", "T3", "T5"] and courses.total_count == 3
    await store.things.change_status(org.id, made[0].id, actor_ref=owner, status=ThingStatus.ACTIVE)
    active = await store.things.page(org.id, ThingQuery(status=ThingStatus.ACTIVE))
    assert [t.id for t in active.items] == [made[0].id]
    empty = await store.things.page(org.id, ThingQuery(first=0))
    assert empty.items == [] and empty.has_next_page and empty.total_count == 7


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (ThingQuery(type="spaceship"), "unknown thing type"),
        (ThingQuery(first=101), "between 0 and 100"),
        (ThingQuery(first=-1), "between 0 and 100"),
        (ThingQuery(after="%%%not-a-cursor"), "cursor"),
        (ThingQuery(after="bm90IGpzb24"), "cursor"),
    ],
)
async def test_thing_page_bad_input(store: NativeStore, query: ThingQuery, message: str) -> None:
    org, _ = await make_org(store)
    with pytest.raises(InvalidInputError, match=message):
        await store.things.page(org.id, query)


async def test_update_merges_properties_and_records_fields(store: NativeStore) -> None:
    org, owner = await make_org(store)
    thing = await store.things.create(
        org.id, actor_ref=owner, type="product", name="Mug", properties={"price": 9, "sku": "M"}
    )
    updated = await store.things.update(
        org.id, thing.id, actor_ref=owner, name="Big mug", properties={"price": 12}
    )
    assert updated.properties == {"price": 12, "sku": "M"} and updated.name == "Big mug"
    assert (await store.things.get_many(org.id, [thing.id]))[0] == updated
    replaced = await store.things.update(
        org.id, thing.id, actor_ref=owner, properties={"x": 1}, merge_properties=False
    )
    assert replaced.properties == {"x": 1}
    events = await store.events.page(org.id, EventQuery(type="entity_updated"))
    assert [e.metadata["fields"] for e in events.items] == [["properties"], ["name", "properties"]]


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({}, InvalidInputError),
        ({"name": "   "}, InvalidInputError),
        ({"name": "x" * 201}, InvalidInputError),
        ({"properties": ["not", "an", "object"]}, InvalidInputError),
        ({"properties": {"big": "x" * 70_000}}, InvalidInputError),
    ],
)
async def test_update_bad_input(
    store: NativeStore, changes: dict[str, Any], error: type[Exception]
) -> None:
    org, owner = await make_org(store)
    thing = await store.things.create(org.id, actor_ref=owner, type="product", name="Mug")
    with pytest.raises(error):
        await store.things.update(org.id, thing.id, actor_ref=owner, **changes)
    assert (await store.things.get_many(org.id, [thing.id]))[0] == thing


async def test_lifecycle_runs_forward_and_archived_is_final(store: NativeStore) -> None:
    org, owner = await make_org(store)
    thing = await store.things.create(org.id, actor_ref=owner, type="course", name="Course")
    with pytest.raises(InvalidTransitionError, match="draft thing cannot become published"):
        await store.things.change_status(
            org.id, thing.id, actor_ref=owner, status=ThingStatus.PUBLISHED
        )
    for status in (ThingStatus.ACTIVE, ThingStatus.PUBLISHED, ThingStatus.ARCHIVED):
        thing = await store.things.change_status(org.id, thing.id, actor_ref=owner, status=status)
        assert thing.status is status
    for status in ThingStatus:
        with pytest.raises(InvalidTransitionError, match="archived is final"):
            await store.things.change_status(org.id, thing.id, actor_ref=owner, status=status)
    with pytest.raises(InvalidTransitionError):
        await store.things.update(org.id, thing.id, actor_ref=owner, name="New")
    ref = native_ref(Kind.THING, thing.id)
    events = await store.events.page(org.id, EventQuery(target_ref=ref))
    assert [e.type for e in events.items] == [
        "entity_archived",
        "entity_updated",
        "entity_updated",
        "entity_created",
    ]
    assert events.items[0].metadata == {
        "thing_type": events.items[0].metadata["thing_type"],
        "fields": ["status"],
        "from": "published",
        "to": "archived",
        "provider": "native",
        "version": events.items[0].metadata["version"],
    }


async def test_a_failed_event_write_leaves_nothing_behind(
    store: NativeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    org, owner = await make_org(store)
    thing = await store.things.create(org.id, actor_ref=owner, type="product", name="Kept")
    before = await store.things.page(org.id, ThingQuery())

    async def broken_event(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    import providers.native.things as things_module

    monkeypatch.setattr(things_module, "record_event", broken_event)
    with pytest.raises(RuntimeError):
        await store.things.create(org.id, actor_ref=owner, type="product", name="Lost")
    with pytest.raises(RuntimeError):
        await store.things.update(org.id, thing.id, actor_ref=owner, name="Renamed")
    after = await store.things.page(org.id, ThingQuery())
    assert after.items == before.items
    ref = native_ref(Kind.PERSON, owner.split(".")[-1])
    owned = (await store.connections.of(org.id, [ref], relationship_type="owns"))[ref]
    assert [c.to_ref for c in owned] == [native_ref(Kind.THING, thing.id)]


async def test_connections_are_temporal_and_scoped(store: NativeStore) -> None:
    org, owner = await make_org(store)
    other, other_owner = await make_org(store, "other")
    post = await store.things.create(org.id, actor_ref=owner, type="blog_post", name="Post")
    course = await store.things.create(org.id, actor_ref=owner, type="course", name="Course")
    foreign = await store.things.create(other.id, actor_ref=other_owner, type="course", name="F")
    post_ref, course_ref = native_ref(Kind.THING, post.id), native_ref(Kind.THING, course.id)
    edge = await store.connections.create(
        org.id,
        actor_ref=owner,
        from_ref=post_ref,
        to_ref=course_ref,
        relationship_type="part_of",
        metadata={"order": 1},
        valid_from=utcnow() - timedelta(hours=1),
    )
    found = await store.connections.of(org.id, [post_ref, course_ref], relationship_type="part_of")
    assert found[post_ref] == [edge] and found[course_ref] == [edge]
    outgoing = await store.connections.of(org.id, [course_ref], direction="out")
    assert outgoing[course_ref] == []
    assert (await store.connections.of(other.id, [post_ref]))[post_ref] == []
    with pytest.raises(NotFoundError, match="toId"):
        await store.connections.create(
            org.id,
            actor_ref=owner,
            from_ref=post_ref,
            to_ref=native_ref(Kind.THING, foreign.id),
            relationship_type="references",
        )
    with pytest.raises(InvalidInputError, match="relationship type"):
        await store.connections.create(
            org.id, actor_ref=owner, from_ref=post_ref, to_ref=course_ref, relationship_type="x"
        )
    with pytest.raises(InvalidInputError, match="validTo"):
        await store.connections.create(
            org.id,
            actor_ref=owner,
            from_ref=post_ref,
            to_ref=course_ref,
            relationship_type="references",
            valid_from=utcnow(),
            valid_to=utcnow() - timedelta(days=1),
        )
    ended = await store.connections.end(org.id, edge.id, actor_ref=owner)
    assert ended.valid_to is not None
    assert (await store.connections.of(org.id, [post_ref], direction="out"))[post_ref] == []
    half_hour_ago = utcnow() - timedelta(minutes=30)
    past = await store.connections.of(org.id, [post_ref], direction="out", at=half_hour_ago)
    assert past[post_ref] == [ended]
    with pytest.raises(NotFoundError):
        await store.connections.end(org.id, edge.id, actor_ref=owner)
    with pytest.raises(NotFoundError):
        await store.connections.end(other.id, edge.id, actor_ref=other_owner)
    kinds = [e.type for e in (await store.events.page(org.id, EventQuery(first=2))).items]
    assert kinds == ["connection_deleted", "connection_created"]


async def test_future_connections_are_not_yet_in_force(store: NativeStore) -> None:
    org, owner = await make_org(store)
    a = await store.things.create(org.id, actor_ref=owner, type="course", name="A")
    b = await store.things.create(org.id, actor_ref=owner, type="lesson", name="B")
    a_ref = native_ref(Kind.THING, a.id)
    start = utcnow() + timedelta(days=1)
    await store.connections.create(
        org.id,
        actor_ref=owner,
        from_ref=native_ref(Kind.THING, b.id),
        to_ref=a_ref,
        relationship_type="part_of",
        valid_from=start,
        valid_to=start + timedelta(days=1),
    )

    def part_of(at: Any = None) -> Any:
        return store.connections.of(org.id, [a_ref], relationship_type="part_of", at=at)

    assert (await part_of())[a_ref] == []
    assert len((await part_of(start + timedelta(hours=1)))[a_ref]) == 1
    assert (await part_of(start + timedelta(days=2)))[a_ref] == []


async def test_event_pages_are_newest_first_and_filtered(store: NativeStore) -> None:
    org, owner = await make_org(store)
    for i in range(4):
        await store.things.create(org.id, actor_ref=owner, type="task", name=f"T{i}")
    first = await store.events.page(org.id, EventQuery(type="entity_created", first=3))
    rest = await store.events.page(
        org.id, EventQuery(type="entity_created", first=3, after=first.cursors[-1])
    )
    names = [e.timestamp for e in first.items + rest.items]
    assert names == sorted(names, reverse=True) and len(names) == 4
    assert first.has_next_page and not rest.has_next_page and first.total_count == 4
    by_actor = await store.events.page(org.id, EventQuery(actor_ref=owner, first=100))
    assert by_actor.total_count == 4
    with pytest.raises(InvalidInputError, match="event type"):
        await store.events.page(org.id, EventQuery(type="nope"))
    refs = [e.target_ref or "" for e in first.items]
    batched = await store.events.of_targets(org.id, refs, limit=5)
    assert [len(v) for v in batched.values()] == [1, 1, 1]


async def test_hidden_event_types_are_left_out_of_pages_and_counts(store: NativeStore) -> None:
    org, owner = await make_org(store)
    await store.api_keys.create(org.id, actor_ref=owner, name="K", role=Role.CUSTOMER)
    everything = await store.events.page(org.id, EventQuery(first=100))
    hidden = frozenset({"api_key_created"})
    shown = await store.events.page(org.id, EventQuery(hidden_types=hidden, first=100))
    assert "api_key_created" in {e.type for e in everything.items}
    assert [e for e in everything.items if e.type not in hidden] == shown.items
    assert shown.total_count == everything.total_count - 1
    none = await store.events.page(org.id, EventQuery(type="api_key_created", hidden_types=hidden))
    assert none.items == [] and none.total_count == 0


async def test_children_within_the_parent_plan(store: NativeStore) -> None:
    parent, _ = await make_org(store, "parent")  # starter: 3 children
    with pytest.raises(ForbiddenError):
        await store.organizations.create(
            actor_ref=None,
            name="G",
            slug="kid-g",
            parent_id=parent.id,
            plan="growth",
            within_parent=True,
        )
    for n in range(3):
        await store.organizations.create(
            actor_ref=None, name="K", slug=f"kid-{n}", parent_id=parent.id, within_parent=True
        )
    with pytest.raises(QuotaExceededError) as refused:
        await store.organizations.create(
            actor_ref=None, name="K", slug="kid-3", parent_id=parent.id, within_parent=True
        )
    assert refused.value.extensions["quota"] == "children"
    unbounded = await store.organizations.create(
        actor_ref=None, name="K", slug="kid-3", parent_id=parent.id, plan="enterprise"
    )
    assert unbounded.plan == "enterprise"


@pytest.mark.parametrize("bad", ["a@b.c\u0000", "\ufeffa@b.c", "a\u200bb@b.c"])
async def test_emails_with_invisible_characters_are_refused(store: NativeStore, bad: str) -> None:
    org, _ = await make_org(store)
    with pytest.raises(InvalidInputError, match="invisible"):
        await store.people.add_member(
            org.id, actor_ref=None, email=bad, name="A", role=Role.CUSTOMER
        )


async def test_knowledge_is_linked_and_searchable(store: NativeStore) -> None:
    org, owner = await make_org(store)
    other, _ = await make_org(store, "other")
    course = await store.things.create(org.id, actor_ref=owner, type="course", name="Python")
    ref = native_ref(Kind.THING, course.id)
    chunk = await store.knowledge.create(
        org.id,
        actor_ref=owner,
        kind="chunk",
        text="Async IO in Python",
        source_ref=ref,
        labels=["python"],
    )
    assert (await store.knowledge.of_sources(org.id, [ref]))[ref] == [chunk]
    found, mode = await store.knowledge.search(org.id, "async io", first=10)
    assert [k for k, _ in found] == [chunk] and mode == "LEXICAL"
    assert (await store.knowledge.search(other.id, "async io", first=10))[0] == []
    with pytest.raises(InvalidInputError):
        await store.knowledge.create(org.id, actor_ref=owner, kind="essay", text="x")
    with pytest.raises(NotFoundError):
        await store.knowledge.create(
            other.id, actor_ref=None, kind="label", text="x", source_ref=ref
        )


async def test_concurrent_writes_all_land_with_their_events(store: NativeStore) -> None:
    org, owner = await make_org(store)
    await asyncio.gather(
        *(
            store.things.create(org.id, actor_ref=owner, type="task", name=f"T{i}")
            for i in range(25)
        )
    )
    assert (await store.things.page(org.id, ThingQuery())).total_count == 25
    created = await store.events.page(org.id, EventQuery(type="entity_created"))
    assert created.total_count == 25


async def test_newest_events_per_target_read_no_more_than_asked(store: NativeStore) -> None:
    org, owner = await make_org(store)
    busy = await store.things.create(org.id, actor_ref=owner, type="task", name="busy")
    quiet = await store.things.create(org.id, actor_ref=owner, type="task", name="quiet")
    for i in range(12):
        await store.things.update(org.id, busy.id, actor_ref=owner, properties={"i": i})
    busy_ref, quiet_ref = native_ref(Kind.THING, busy.id), native_ref(Kind.THING, quiet.id)
    before = store.engine.queries
    found = await store.events.of_targets(org.id, [busy_ref, quiet_ref, "thing.native.x"], limit=3)
    assert store.engine.queries - before == 1
    assert [len(found[r]) for r in (busy_ref, quiet_ref, "thing.native.x")] == [3, 1, 0]
    newest = await store.events.page(org.id, EventQuery(target_ref=busy_ref, first=3))
    assert [e.id for e in found[busy_ref]] == [e.id for e in newest.items]
