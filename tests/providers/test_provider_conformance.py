"""One conformance suite, run against every provider behind the thing service: the native store
on SQLite and on the MongoDB engine, the real WordPress, and the Shopify and Notion emulators
(see `subjects.py`); and, for the three upstreams, the ways an upstream fails
(`upstreams.py`). A behaviour a backend cannot have is a capability it declares, and asking
for it is a clear error: nothing here is skipped."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from providers.errors import (
    InvalidInputError,
    InvalidTransitionError,
    NotFoundError,
    OneError,
    ProviderError,
)
from providers.native import EventQuery, NativeStore
from providers.provider import ListQuery
from providers.records import Event, ThingStatus
from providers.registry import factory
from providers.sqlite import SQLiteEngine
from providers.things import ThingService
from providers.upstream import UpstreamPolicy, Upstreams, deadline
from resolvers.loaders import Loaders
from tests.faults import fault_server
from tests.providers.subjects import (
    SUBJECTS,
    UPSTREAM_SUBJECTS,
    OneRoute,
    Subject,
    make_subject,
    organization,
)
from tests.providers.upstreams import CASES, MOST_REQUESTS, UPSTREAMS

DEADLINE = 1.0
SLACK = 0.5
STEPS = (ThingStatus.ACTIVE, ThingStatus.PUBLISHED, ThingStatus.ARCHIVED)


@pytest.fixture(params=SUBJECTS)
async def subject(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Subject]:
    async with httpx.AsyncClient() as client, AsyncExitStack() as stack:
        yield await make_subject(
            request.param, tmp_path, stack, client, lambda: request.getfixturevalue("wordpress")
        )


async def events_of(subject: Subject, id: str) -> list[Event]:
    """Newest first."""
    ref = str(subject.ref(id))
    return (await subject.store.events.of_targets(subject.org_id, [ref], limit=20))[ref]


async def test_create_then_get(subject: Subject) -> None:
    things = subject.service()
    first, _ = subject.properties
    made = await things.create(type=subject.thing_type, name="Conformance", properties=first)
    assert (made.name, made.type, made.status) == ("Conformance", subject.thing_type, "draft")
    assert made.provider == subject.provider.name and subject.view(made).items() >= first.items()
    found = await subject.service().require(subject.ref(made.id))
    assert (found.id, found.name, found.status) == (made.id, made.name, made.status)
    assert subject.view(found).items() >= first.items()
    [event] = await events_of(subject, made.id)
    assert (event.type, event.actor_ref) == ("entity_created", subject.actor_ref)
    assert event.metadata == {
        "thing_type": subject.thing_type,
        "status": "draft",
        "provider": subject.provider.name,
        "version": made.updated_at.isoformat(),
    }


async def test_health_is_online(subject: Subject) -> None:
    health = await subject.provider.health()
    assert health.status == "online" and health.response_ms >= 0


async def test_get_many_keeps_the_order_asked_with_none_for_missing_ids(subject: Subject) -> None:
    things = subject.service()
    a = await things.create(type=subject.thing_type, name="A")
    b = await things.create(type=subject.thing_type, name="B")
    refs = [subject.ref(i) for i in (b.id, subject.missing_id, a.id, b.id)]
    found = await subject.service().get_many(refs, detail=False)
    assert [t.name if t else None for t in found] == ["B", None, "A", "B"]


async def test_pages_through_everything_once_while_things_are_created(subject: Subject) -> None:
    things = subject.service()
    for i in range(3):
        await things.create(type=subject.thing_type, name=f"Paged {i}")
    everything = await subject.every_id()
    seen: list[str] = []
    after, pages, made_meanwhile = None, 0, None
    while True:
        page = await things.page(
            ListQuery(type=subject.thing_type, first=subject.page_size, after=after)
        )
        assert len(page.items) <= subject.page_size and len(page.cursors) == len(page.items)
        seen += [t.id for t in page.items]
        pages += 1
        if made_meanwhile is None:
            made_meanwhile = await things.create(type=subject.thing_type, name="Meanwhile")
        if not page.has_next_page:
            break
        after = page.cursors[-1]
    assert len(seen) == len(set(seen)), "an item was listed twice"
    assert set(seen) - {made_meanwhile.id} == everything, "an item was skipped"
    assert pages >= 2
    if page.total_count is not None:
        assert page.total_count >= len(everything)


async def test_a_cursor_resumes_right_after_its_item(subject: Subject) -> None:
    things = subject.service()
    for i in range(3):
        await things.create(type=subject.thing_type, name=f"Resumed {i}")
    page = await things.page(ListQuery(type=subject.thing_type, first=3))
    assert len(page.items) == 3
    for at in range(2):
        again = await things.page(
            ListQuery(type=subject.thing_type, first=1, after=page.cursors[at])
        )
        assert [t.id for t in again.items] == [page.items[at + 1].id]
    with pytest.raises(InvalidInputError) as bad:
        await things.page(ListQuery(type=subject.thing_type, after="not-a-cursor"))
    assert bad.value.extensions["field"] == "after"


async def test_update_merges_properties(subject: Subject) -> None:
    first, second = subject.properties
    made = await subject.service().create(type=subject.thing_type, name="Merged", properties=first)
    updated = await subject.service().update(
        subject.ref(made.id), name="Merged, renamed", properties=second, merge=True
    )
    found = await subject.service().require(subject.ref(made.id))
    for thing in (updated, found):
        assert thing.name == "Merged, renamed"
        assert subject.view(thing).items() >= {**first, **second}.items()
    event = (await events_of(subject, made.id))[0]
    assert event.type == "entity_updated" and event.metadata["fields"] == ["name", "properties"]


async def test_update_replaces_properties(subject: Subject) -> None:
    first, second = subject.properties
    made = await subject.service().create(
        type=subject.thing_type, name="Replaced", properties=first
    )
    updated = await subject.service().update(subject.ref(made.id), properties=second, merge=False)
    found = await subject.service().require(subject.ref(made.id))
    for thing in (updated, found):
        assert thing.name == "Replaced"
        view = subject.view(thing)
        assert view.items() >= second.items()
        assert all(view.get(k) != v for k, v in first.items()), view
    event = (await events_of(subject, made.id))[0]
    assert event.type == "entity_updated" and event.metadata["fields"] == ["properties"]


async def test_properties_a_backend_cannot_store_are_refused_not_dropped(subject: Subject) -> None:
    things = subject.service()
    strange = {"conformance_marker_property": 7}
    if subject.stores_any_property:
        made = await things.create(type=subject.thing_type, name="Odd", properties=strange)
        assert made.properties == strange
        return
    with pytest.raises(InvalidInputError) as refused:
        await things.create(type=subject.thing_type, name="Odd", properties=strange)
    assert "conformance_marker_property" in refused.value.message
    assert refused.value.extensions["provider"] == subject.provider.name


async def test_an_update_changes_something(subject: Subject) -> None:
    made = await subject.service().create(type=subject.thing_type, name="Plain")
    with pytest.raises(InvalidInputError, match="nothing to update"):
        await subject.service().update(subject.ref(made.id))


async def test_status_follows_the_lifecycle_within_the_backends_steps(subject: Subject) -> None:
    things = subject.service()
    steps = subject.provider.capabilities.statuses
    made = await things.create(type=subject.thing_type, name="Lifecycle")
    ref = subject.ref(made.id)
    if ThingStatus.ACTIVE in steps:
        # One live step at a time: a draft is not published before it is active.
        with pytest.raises(InvalidTransitionError, match="cannot become published"):
            await things.change_status(ref, ThingStatus.PUBLISHED)
    current = ThingStatus.DRAFT
    for step in STEPS:
        if step not in steps:
            with pytest.raises(InvalidTransitionError, match=f"has no '{step.value}' step") as e:
                await things.change_status(ref, step)
            assert e.value.code == "BAD_USER_INPUT" and e.value.extensions["field"] == "status"
            with pytest.raises(InvalidTransitionError, match=f"has no '{step.value}' step"):
                await things.create(type=subject.thing_type, name="Skipped", status=step)
            continue
        if step is ThingStatus.ARCHIVED:
            break
        changed = await things.change_status(ref, step)
        assert changed.status is step
        [event, *_] = await events_of(subject, made.id)
        assert (event.type, event.metadata["from"], event.metadata["to"]) == (
            "entity_updated",
            current.value,
            step.value,
        )
        current = step
    with pytest.raises(InvalidTransitionError, match="cannot become draft"):
        await things.change_status(ref, ThingStatus.DRAFT)  # never backwards
    found = await subject.service().require(ref)
    assert found.status is ThingStatus.PUBLISHED


async def test_archived_is_final(subject: Subject) -> None:
    made = await subject.service().create(type=subject.thing_type, name="Archived")
    ref = subject.ref(made.id)
    archived = await subject.service().archive(ref)
    assert archived.status is ThingStatus.ARCHIVED
    [event, _] = await events_of(subject, made.id)
    assert event.type == "entity_archived" and event.metadata["to"] == "archived"
    things = subject.service()
    assert (await things.require(ref)).status is ThingStatus.ARCHIVED
    for status in ThingStatus:
        with pytest.raises(InvalidTransitionError, match="archived is final"):
            await things.change_status(ref, status)
    with pytest.raises(InvalidTransitionError, match="archived thing cannot be changed"):
        await things.update(ref, name="Again")
    with pytest.raises(InvalidTransitionError, match="created archived"):
        await things.create(type=subject.thing_type, name="x", status=ThingStatus.ARCHIVED)
    assert len(await events_of(subject, made.id)) == 2


async def test_an_unknown_id_is_not_found(subject: Subject) -> None:
    things = subject.service()
    ref = subject.ref(subject.missing_id)
    assert await things.get(ref) is None
    writes = (
        lambda: things.update(ref, name="x"),
        lambda: things.change_status(ref, ThingStatus.ACTIVE),
        lambda: things.archive(ref),
    )
    for write in writes:
        with pytest.raises(NotFoundError) as missing:
            await write()
        assert missing.value.code == "NOT_FOUND" and missing.value.extensions["id"] == str(ref)
    assert await events_of(subject, subject.missing_id) == []


# -- faults: the upstreams only (the native store has no upstream to fail) -------------------

FAULTS = ["down", "hang", "429", "500", "garbage"]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[NativeStore]:
    store = NativeStore(SQLiteEngine(tmp_path / "one.db"))
    await store.start()
    yield store
    await store.close()


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("kind", UPSTREAM_SUBJECTS)
async def test_a_failing_upstream_is_a_typed_error_within_the_deadline(
    store: NativeStore, kind: str, fault: str
) -> None:
    case, code = CASES[fault]
    if case.delay:
        case = replace(case, delay=DEADLINE + 0.5)  # slow past the deadline, and no slower
    org_id, owner = await organization(store)
    async with httpx.AsyncClient() as client:
        with fault_server() as witness, UPSTREAMS[kind](case.down) as upstream:
            provider = _provider(kind, org_id, upstream.config, client)
            things = _service(provider, store, org_id, owner)
            upstream.inject(case, witness.url)
            before, started = upstream.requests(), time.perf_counter()
            with deadline(DEADLINE), pytest.raises(OneError) as failed:
                await things.page(ListQuery(type=provider_type(kind)))
            elapsed = time.perf_counter() - started
            asked = upstream.requests() - before
            if fault == "down":
                assert (await provider.health()).status == "offline"
    error = failed.value
    assert isinstance(error, ProviderError) and error.code == code, error
    assert error.extensions["provider"] == kind
    assert error.retryable is (code != "PROVIDER_BAD_RESPONSE")
    if fault == "429":
        assert error.extensions["retryAfter"] == 30
    assert elapsed < DEADLINE + SLACK, elapsed
    assert asked <= MOST_REQUESTS[fault], asked
    assert witness.received == []


@pytest.mark.parametrize("kind", UPSTREAM_SUBJECTS)
async def test_a_failed_write_is_sent_once_and_tells_of_nothing(
    store: NativeStore, kind: str
) -> None:
    case, _ = CASES["500"]
    org_id, owner = await organization(store)
    async with httpx.AsyncClient() as client:
        with fault_server() as witness, UPSTREAMS[kind](False) as upstream:
            provider = _provider(kind, org_id, upstream.config, client)
            things = _service(provider, store, org_id, owner)
            upstream.inject(case, witness.url)
            before = upstream.requests()
            with deadline(DEADLINE), pytest.raises(ProviderError) as failed:
                await things.create(type=provider_type(kind), name="Lost")
            asked = upstream.requests() - before
    assert failed.value.code == "PROVIDER_UNAVAILABLE"
    assert asked == 1  # a write is never retried: it may have been done
    told = await store.events.page(org_id, EventQuery(type="entity_created"))
    assert told.items == []


def provider_type(kind: str) -> str:
    return {"wordpress": "blog_post", "shopify": "product", "notion": "document"}[kind]


def _provider(kind: str, org_id: str, config: dict[str, Any], client: httpx.AsyncClient) -> Any:
    found = factory(kind)
    policy = UpstreamPolicy(deadline_seconds=DEADLINE, backoff_seconds=0.05)
    return found.create(
        org_id, found.config_model.model_validate(config), Upstreams(client, policy)
    )


def _service(provider: Any, store: NativeStore, org_id: str, owner: str) -> ThingService:
    return ThingService(
        OneRoute(provider), Loaders(store, org_id), store.events, org_id=org_id, actor_ref=owner
    )
