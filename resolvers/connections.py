"""Connections: typed, temporal edges between any two entities, across providers."""

from __future__ import annotations

import asyncio
import enum
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from providers.errors import NotFoundError
from providers.records import Connection as ConnectionRecord
from providers.records import Kind
from providers.refs import Ref
from resolvers.context import Info
from resolvers.ids import global_id, parse_id
from resolvers.node import Node, load_node
from resolvers.permissions import Action, require
from resolvers.planning import FROM, TO, Plan, below, plan_connections, resolved


@strawberry.enum(description="Which connections of an entity: from it, to it, or both.")
class ConnectionDirection(enum.Enum):
    OUT = "out"
    IN = "in"
    BOTH = "both"


@strawberry.type(description="A typed edge, in force from `validFrom` until `validTo`.")
class Connection(Node):
    relationship_type: str
    metadata: JSON
    valid_from: datetime
    valid_to: datetime | None
    created_at: datetime
    record: strawberry.Private[ConnectionRecord]
    plan: strawberry.Private[Plan | None] = None  # see resolvers/planning.py

    @strawberry.field(name="from")
    def from_(self, info: Info) -> Node | None:
        return resolved(self.plan, FROM, lambda: load_node(info, Ref.parse(self.record.from_ref)))

    @strawberry.field
    def to(self, info: Info) -> Node | None:
        return resolved(self.plan, TO, lambda: load_node(info, Ref.parse(self.record.to_ref)))

    @classmethod
    def from_record(cls, record: ConnectionRecord) -> Connection:
        return cls(
            id=global_id(Kind.CONNECTION, record.id),
            relationship_type=record.relationship_type,
            metadata=JSON(record.metadata),
            valid_from=record.valid_from,
            valid_to=record.valid_to,
            created_at=record.created_at,
            record=record,
        )


async def connections_of(
    info: Info,
    ref: str,
    direction: ConnectionDirection,
    relationship_type: str | None,
    at: datetime | None,
) -> list[Connection]:
    loader = info.context.loaders.connections(direction.value, relationship_type, at)
    return [Connection.from_record(c) for c in await loader.load(ref)]


async def connections(
    info: Info,
    thing_id: strawberry.ID,
    relationship_type: str | None = None,
    direction: ConnectionDirection = ConnectionDirection.BOTH,
    at: Annotated[
        datetime | None,
        strawberry.argument(
            description="In force at this instant (default: now); expired connections are "
            "left out unless `at` falls inside their validity."
        ),
    ] = None,
) -> list[Connection]:
    """The connections of any entity (a thing, a person, an organization)."""
    info.context.actor  # noqa: B018 - authentication before anything else
    ref = parse_id(thing_id, field="thingId")
    found = await connections_of(info, str(ref), direction, relationship_type, at)
    await plan_connections(info.context, found, below(info))
    return found


@strawberry.input
class CreateConnectionInput:
    from_id: strawberry.ID
    to_id: strawberry.ID
    relationship_type: str
    metadata: JSON | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None


async def _check_thing_end(info: Info, ref: Ref, field: str) -> None:
    # A thing is looked up wherever it lives; the store checks the other ends itself.
    if ref.kind is Kind.THING and await info.context.things.get(ref, detail=False) is None:
        raise NotFoundError(f"'{field}' names nothing in this organization", field=field)


async def create_connection(info: Info, input: CreateConnectionInput) -> Connection:
    """Connect two entities of your organization, in any providers (a person `authored` a
    WordPress post)."""
    actor = require(info.context.actor, Action.WRITE)
    ends = parse_id(input.from_id, field="fromId"), parse_id(input.to_id, field="toId")
    await asyncio.gather(
        _check_thing_end(info, ends[0], "fromId"), _check_thing_end(info, ends[1], "toId")
    )
    record = await info.context.store.connections.create(
        actor.org_id,
        actor_ref=actor.ref,
        from_ref=str(ends[0]),
        to_ref=str(ends[1]),
        relationship_type=input.relationship_type,
        metadata=input.metadata,
        valid_from=input.valid_from,
        valid_to=input.valid_to,
    )
    return Connection.from_record(record)


async def delete_connection(info: Info, id: strawberry.ID) -> Connection:
    """End a connection now; it stays in the history (see `connections(at:)`)."""
    actor = require(info.context.actor, Action.WRITE)
    local_id = parse_id(id, Kind.CONNECTION).local_id
    record = await info.context.store.connections.end(actor.org_id, local_id, actor_ref=actor.ref)
    return Connection.from_record(record)
