"""Things: the `Thing` interface, its concrete types, and the thing queries and mutations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from providers.provider import ListQuery
from providers.records import Kind, Page
from providers.records import Thing as ThingRecord
from providers.refs import Ref
from resolvers.connections import Connection, ConnectionDirection, connections_of
from resolvers.context import Info
from resolvers.enums import ThingStatus
from resolvers.events import Event, PageInfo
from resolvers.ids import parse_id
from resolvers.knowledge import Knowledge
from resolvers.node import Node
from resolvers.organizations import Organization
from resolvers.people import Person
from resolvers.permissions import Action, hidden_event_types, require
from resolvers.planning import (
    KNOWLEDGE,
    ORGANIZATION,
    OWNER,
    Plan,
    below,
    below_path,
    connections_key,
    events_key,
    plan_things,
    resolved,
)
from resolvers.planning import wants_detail as selection_wants_detail


@strawberry.federation.interface(
    keys=["id"], description="An entity of the ontology, from whichever provider owns it."
)
class Thing(Node):
    type: str
    name: str
    status: ThingStatus
    properties: JSON
    provider: str
    external_id: str | None
    created_at: datetime
    updated_at: datetime
    record: strawberry.Private[ThingRecord]

    plan: strawberry.Private[Plan | None] = None  # see resolvers/planning.py

    @strawberry.field(description="The person who owns this thing (an `owns` connection).")
    def owner(self, info: Info) -> Person | None:
        return resolved(self.plan, OWNER, lambda: self._owner(info))

    async def _owner(self, info: Info) -> Person | None:
        loader = info.context.loaders.connections("in", "owns", None)
        owners = [Ref.parse(c.from_ref) for c in await loader.load(self.ref)]
        people = [r for r in owners if r.kind is Kind.PERSON]  # people live in the store
        if not people:
            return None
        record = await info.context.loaders.by_id(Kind.PERSON).load(people[0].local_id)
        return Person.from_record(record) if record else None

    @strawberry.field
    def organization(self, info: Info) -> Organization | None:
        return resolved(self.plan, ORGANIZATION, lambda: self._organization(info))

    async def _organization(self, info: Info) -> Organization | None:
        record = await info.context.loaders.by_id(Kind.ORGANIZATION).load(self.record.org_id)
        return Organization.from_record(record) if record else None

    @strawberry.field
    def connections(
        self,
        info: Info,
        relationship_type: str | None = None,
        direction: ConnectionDirection = ConnectionDirection.BOTH,
        at: datetime | None = None,
    ) -> list[Connection]:
        plan = self.plan if at is None else None
        return resolved(
            plan,
            connections_key(direction.value, relationship_type),
            lambda: connections_of(info, self.ref, direction, relationship_type, at),
        )

    @strawberry.field(description="The newest events about this thing.")
    def events(self, info: Info, first: int = 10) -> list[Event]:
        return resolved(self.plan, events_key(first), lambda: self._events(info, first))

    async def _events(self, info: Info, first: int) -> list[Event]:
        found = await info.context.loaders.events(min(max(first, 0), 100)).load(self.ref)
        # Configuration events are about organizations, not things: this only keeps it so.
        hidden = hidden_event_types(info.context.actor)
        return [Event.from_record(e) for e in found if e.type not in hidden]

    @strawberry.field
    def knowledge(self, info: Info) -> list[Knowledge]:
        return resolved(self.plan, KNOWLEDGE, lambda: self._knowledge(info))

    async def _knowledge(self, info: Info) -> list[Knowledge]:
        return [
            Knowledge.from_record(k) for k in await info.context.loaders.knowledge().load(self.ref)
        ]

    @property
    def ref(self) -> str:
        return str(self.id)


def _text(properties: dict[str, Any], key: str) -> str | None:
    value = properties.get(key)
    return value if isinstance(value, str) else None


def _number(properties: dict[str, Any], key: str) -> float | None:
    value = properties.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@strawberry.federation.type(
    keys=["id"], description="An article: from the native store or from WordPress."
)
class BlogPost(Thing):
    @strawberry.field
    def content(self) -> str | None:
        return _text(self.record.properties, "content")

    @strawberry.field
    def excerpt(self) -> str | None:
        return _text(self.record.properties, "excerpt")


@strawberry.federation.type(
    keys=["id"], description="Something for sale: from the native store or from Shopify."
)
class Product(Thing):
    @strawberry.field
    def price(self) -> float | None:
        return _number(self.record.properties, "price")

    @strawberry.field
    def currency(self) -> str | None:
        return _text(self.record.properties, "currency")

    @strawberry.field
    def sku(self) -> str | None:
        return _text(self.record.properties, "sku")


@strawberry.federation.type(
    keys=["id"], description="A document: from the native store or from Notion."
)
class Document(Thing):
    @strawberry.field
    def content(self) -> str | None:
        return _text(self.record.properties, "content")

    @strawberry.field
    def url(self) -> str | None:
        return _text(self.record.properties, "url")


@strawberry.federation.type(
    keys=["id"], description="Any other thing type (course, lesson, task, ...): see `type`."
)
class GenericThing(Thing):
    pass


_TYPES: dict[str, type[Thing]] = {
    "blog_post": BlogPost,
    "product": Product,
    "document": Document,
}


def thing_from_record(record: ThingRecord) -> Thing:
    cls = _TYPES.get(record.type, GenericThing)
    return cls(
        id=strawberry.ID(str(Ref(Kind.THING, record.provider, record.id))),
        type=record.type,
        name=record.name,
        status=record.status,
        properties=JSON(record.properties),
        provider=record.provider,
        external_id=record.external_id,
        created_at=record.created_at,
        updated_at=record.updated_at,
        record=record,
    )


@strawberry.type
class ThingEdge:
    cursor: str
    node: Thing


@strawberry.type(description="A page of things (native ones oldest first).")
class ThingPage:
    edges: list[ThingEdge]
    page_info: PageInfo
    total_count: int | None = strawberry.field(
        description="null where the backend cannot count (Notion)."
    )


def wants_detail(info: Info, path: tuple[str, ...] = ()) -> bool:
    """Whether the selection asks for a thing's heavy fields (bodies), through fragments too,
    at `path` below this field (e.g. `("edges", "node")` for a page): a provider may then
    leave them out of its upstream request."""
    return selection_wants_detail(below_path(below(info), path))


async def thing(info: Info, id: strawberry.ID) -> Thing | None:
    """A thing by id, from any provider; `null` with a NOT_FOUND error when it does not exist
    or is not yours to see."""
    info.context.actor  # noqa: B018 - authentication before anything else
    ref = parse_id(id, Kind.THING)
    selections = below(info)
    record = await info.context.things.require(ref, detail=selection_wants_detail(selections))
    found = thing_from_record(record)
    await plan_things(info.context, [found], selections)
    return found


def _page(page: Page[ThingRecord]) -> ThingPage:
    return ThingPage(
        edges=[
            ThingEdge(cursor=c, node=thing_from_record(t))
            for t, c in zip(page.items, page.cursors, strict=True)
        ],
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            end_cursor=page.cursors[-1] if page.cursors else None,
        ),
        total_count=page.total_count,
    )


async def things(
    info: Info,
    type: str | None = None,
    status: ThingStatus | None = None,
    search: str | None = None,
    modified_after: datetime | None = None,
    first: int = 20,
    after: str | None = None,
) -> ThingPage | None:
    """Your organization's things of a type, from the provider that type is routed to
    (without a type: every thing in the native store). `first` is at most 100."""
    info.context.actor  # noqa: B018 - authentication before anything else
    nodes = below_path(below(info), ("edges", "node"))
    query = ListQuery(
        type=type,
        status=status,
        search=search,
        modified_after=modified_after,
        first=first,
        after=after,
        detail=selection_wants_detail(nodes),
    )
    page = _page(await info.context.things.page(query))
    await plan_things(info.context, [e.node for e in page.edges], nodes)
    return page


@strawberry.input
class CreateThingInput:
    type: str = strawberry.field(description="A thing type of the ontology, e.g. blog_post.")
    name: str
    properties: JSON | None = None
    status: ThingStatus = ThingStatus.DRAFT


@strawberry.input
class UpdateThingInput:
    name: str | None = None
    properties: JSON | None = None
    merge_properties: bool = strawberry.field(
        default=True, description="Merge into the current properties (default) or replace them."
    )


async def create_thing(info: Info, input: CreateThingInput) -> Thing:
    """Create a thing in the provider its type is routed to; you own native ones."""
    require(info.context.actor, Action.WRITE)
    record = await info.context.things.create(
        type=input.type, name=input.name, status=input.status, properties=input.properties
    )
    return thing_from_record(record)


async def update_thing(info: Info, id: strawberry.ID, input: UpdateThingInput) -> Thing:
    """Rename a thing or change its properties, merged into the current ones or replacing
    them, in whichever provider holds it."""
    require(info.context.actor, Action.WRITE)
    record = await info.context.things.update(
        parse_id(id, Kind.THING),
        name=input.name,
        properties=input.properties,
        merge=input.merge_properties,
    )
    return thing_from_record(record)


async def change_thing_status(info: Info, id: strawberry.ID, status: ThingStatus) -> Thing:
    """Move a thing along its lifecycle: draft -> active -> published -> archived (a
    provider may lack a step: Shopify has no active one)."""
    require(info.context.actor, Action.PUBLISH)
    record = await info.context.things.change_status(parse_id(id, Kind.THING), status)
    return thing_from_record(record)


async def archive_thing(info: Info, id: strawberry.ID) -> Thing:
    """Archive a thing (final)."""
    return await change_thing_status(info, id, ThingStatus.ARCHIVED)
