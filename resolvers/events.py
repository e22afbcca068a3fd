"""Events: the append-only log every change writes, newest first. Who sees which events, and
how much of their metadata, is `resolvers.permissions`' to say; the hidden types are left out
by the store query itself, so counts and pages hold only what the actor may see."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from providers.native import EventQuery
from providers.records import Event as EventRecord
from providers.records import Kind
from providers.refs import Ref
from resolvers.context import Info
from resolvers.ids import global_id, parse_id
from resolvers.node import Node, load_node
from resolvers.people import Person
from resolvers.permissions import event_metadata, hidden_event_types
from resolvers.planning import ACTOR, TARGET, Plan, below, below_path, plan_links, resolved


@strawberry.type(description="Something that happened: who did what to which entity, and when.")
class Event(Node):
    type: str
    timestamp: datetime
    record: strawberry.Private[EventRecord]
    plan: strawberry.Private[Plan | None] = None  # see resolvers/planning.py

    @strawberry.field(
        description="Its place in the organization's event stream: pass as `after:` to "
        "`eventAdded` or `thingChanged` to resume after it."
    )
    def cursor(self) -> str | None:
        return str(self.record.seq) if self.record.seq is not None else None

    @strawberry.field(description="Details of the event; configuration details for owners only.")
    def metadata(self, info: Info) -> JSON:
        return JSON(event_metadata(info.context.actor, self.record.type, self.record.metadata))

    @strawberry.field(description="The person who acted; null for the system or an API key.")
    def actor(self, info: Info) -> Person | None:
        return resolved(self.plan, ACTOR, lambda: self._actor(info))

    async def _actor(self, info: Info) -> Person | None:
        if self.record.actor_ref is None:
            return None
        ref = Ref.parse(self.record.actor_ref)
        if ref.kind is not Kind.PERSON:
            return None
        record = await info.context.loaders.by_id(Kind.PERSON).load(ref.local_id)
        return Person.from_record(record) if record else None

    @strawberry.field(description="What the event is about.")
    def target(self, info: Info) -> Node | None:
        return resolved(self.plan, TARGET, lambda: self._target(info))

    async def _target(self, info: Info) -> Node | None:
        if self.record.target_ref is None:
            return None
        return await load_node(info, Ref.parse(self.record.target_ref))

    @classmethod
    def from_record(cls, record: EventRecord) -> Event:
        return cls(
            id=global_id(Kind.EVENT, record.id),
            type=record.type,
            timestamp=record.timestamp,
            record=record,
        )


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class EventEdge:
    cursor: str
    node: Event


@strawberry.type(description="A page of events, newest first.")
class EventPage:
    edges: list[EventEdge]
    page_info: PageInfo
    total_count: int


async def events(
    info: Info,
    target_id: strawberry.ID | None = None,
    actor_id: strawberry.ID | None = None,
    type: str | None = None,
    first: int = 20,
    after: str | None = None,
) -> EventPage:
    """Your organization's events, newest first, optionally about one target or by one actor."""
    actor = info.context.actor
    query = EventQuery(
        target_ref=str(parse_id(target_id, field="targetId")) if target_id else None,
        actor_ref=str(parse_id(actor_id, Kind.PERSON, "actorId")) if actor_id else None,
        type=type,
        hidden_types=hidden_event_types(actor),
        first=first,
        after=after,
    )
    page = await info.context.store.events.page(actor.org_id, query)
    result = EventPage(
        edges=[
            EventEdge(cursor=c, node=Event.from_record(e))
            for e, c in zip(page.items, page.cursors, strict=True)
        ],
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            end_cursor=page.cursors[-1] if page.cursors else None,
        ),
        total_count=page.total_count or 0,
    )
    nodes = [e.node for e in result.edges]
    await plan_links(info.context, nodes, below_path(below(info), ("edges", "node")))
    return result
