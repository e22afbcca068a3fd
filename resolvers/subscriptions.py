"""Subscriptions: the organization's events as they commit, and the things they change.

Every event is checked against what the subscriber may see *now*: their credentials are
checked again at most a second apart (at once when an event about memberships or keys
arrives, and every few seconds when nothing does), so a revoked member or key stops
receiving and is told why. A subscription may resume after the `cursor` of the last event
it saw (`after:`, or `Last-Event-ID` over SSE) and misses nothing in between.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from enum import Enum

import strawberry

from providers import validation
from providers.errors import (
    InvalidInputError,
    OneError,
    TooManySubscriptionsError,
    UnauthenticatedError,
)
from providers.records import Event as EventRecord
from providers.records import Kind
from providers.refs import Ref
from resolvers.context import Info
from resolvers.events import Event
from resolvers.ids import parse_id
from resolvers.permissions import hidden_event_types
from resolvers.things import Thing, thing_from_record, wants_detail

# Events that may change what the subscriber may see: check their access at once.
_ACCESS_EVENTS = frozenset({"user_left_org", "user_joined_org", "api_key_revoked"})


@strawberry.enum(description="How a thing changed.")
class ChangeType(Enum):
    CREATED = "entity_created"
    UPDATED = "entity_updated"
    ARCHIVED = "entity_archived"
    DELETED = "entity_deleted"


@strawberry.type(description="A thing after a change, and the event that tells of it.")
class ThingChange:
    change_type: ChangeType
    id: strawberry.ID = strawberry.field(description="The changed thing's id.")
    event: Event
    cursor: str = strawberry.field(description="Pass as `after:` to resume after this change.")
    ref: strawberry.Private[Ref]

    @strawberry.field(description="The thing as its provider has it now; null once deleted.")
    async def thing(self, info: Info) -> Thing | None:
        if self.change_type is ChangeType.DELETED:
            return None
        record = await info.context.things.get(self.ref, detail=wants_detail(info, ("thing",)))
        return thing_from_record(record) if record else None


async def event_added(
    info: Info,
    types: list[str] | None = None,
    target_id: strawberry.ID | None = None,
    actor_id: strawberry.ID | None = None,
    after: str | None = None,
) -> AsyncGenerator[Event, None]:
    """Your organization's events as they happen, optionally of some types, about one target
    or by one actor; `after:` a cursor resumes after it."""
    wanted = {validation.event_type(t) for t in types} if types else None
    target = str(parse_id(target_id, field="targetId")) if target_id else None
    actor_ref = str(parse_id(actor_id, Kind.PERSON, "actorId")) if actor_id else None
    async for record in _visible_events(info, after):
        if isinstance(record, OneError):
            yield record  # type: ignore[misc]  # graphql-core sends it as the event's error
            return
        if (
            (wanted is None or record.type in wanted)
            and (target is None or record.target_ref == target)
            and (actor_ref is None or record.actor_ref == actor_ref)
        ):
            yield Event.from_record(record)


async def thing_changed(
    info: Info,
    id: strawberry.ID | None = None,
    type: str | None = None,
    after: str | None = None,
) -> AsyncGenerator[ThingChange, None]:
    """Things of your organization as they change, on any backend: one thing (`id`), or
    every thing of a `type`, or all; `after:` a cursor resumes after it."""
    ref = str(parse_id(id, Kind.THING)) if id else None
    thing_type = validation.thing_type(type) if type else None
    changes = {c.value: c for c in ChangeType}
    async for record in _visible_events(info, after):
        if isinstance(record, OneError):
            yield record  # type: ignore[misc]  # graphql-core sends it as the event's error
            return
        change = changes.get(record.type)
        if (
            change is None
            or record.target_ref is None
            or not record.target_ref.startswith("thing.")
        ):
            continue
        if (ref is not None and record.target_ref != ref) or (
            thing_type is not None and record.metadata.get("thing_type") != thing_type
        ):
            continue
        yield ThingChange(
            change_type=change,
            id=strawberry.ID(record.target_ref),
            event=Event.from_record(record),
            cursor=str(record.seq),
            ref=Ref.parse(record.target_ref),
        )


async def _visible_events(
    info: Info, after: str | None
) -> AsyncGenerator[EventRecord | OneError, None]:
    """The events the subscriber may see, each with the context renewed for it; ends with
    the error that stops the subscription, if one does."""
    context = info.context
    live = context.live
    if live is None:
        yield UnauthenticatedError("subscriptions need a WebSocket or an SSE stream")
        return
    try:
        actor = context.actor
        start = _cursor(after if after is not None else live.resume_after)
    except OneError as exc:
        yield exc
        return
    if live.open_subscriptions >= live.max_subscriptions:
        yield TooManySubscriptionsError(
            f"a connection may hold {live.max_subscriptions} subscriptions at once; "
            "complete one first or open another connection"
        )
        return
    live.open_subscriptions += 1
    try:
        async with live.feed.follow(actor.org_id, start) as events:
            async for event in events:
                # After an event about access, only a check made since then will do.
                since = 0
                if event is not None and event.type in _ACCESS_EVENTS:
                    since = event.seq or 0
                now = await live.current_actor(since)
                if isinstance(now, OneError):
                    yield _ended(now)
                    return
                if event is None or event.type in hidden_event_types(now):
                    continue
                context.renew(now)
                live.position = str(event.seq)
                yield event
    except OneError as exc:
        yield exc
    finally:
        live.open_subscriptions -= 1


def _ended(reason: OneError) -> OneError:
    # A new error: `reason` is cached for every subscription holding the same credentials.
    return type(reason)(f"this subscription ended: {reason.message}", **reason.extensions)


def _cursor(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 18:
        raise InvalidInputError("'after' is not a cursor this gateway gave", field="after")
    return int(value)
