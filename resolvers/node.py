"""The `Node` interface, and resolving any global id to the object it names."""

from __future__ import annotations

import strawberry

from providers.errors import NotFoundError
from providers.records import Kind
from providers.refs import Ref
from providers.validation import excerpt
from resolvers.context import Info
from resolvers.permissions import hidden_event_types


@strawberry.interface(description="Anything with a global id: `node(id:)` fetches it.")
class Node:
    id: strawberry.ID


async def load_node(info: Info, ref: Ref) -> Node:
    """The object `ref` names, if the actor's organization can see it; else `NotFoundError`,
    the same for what does not exist and what belongs to someone else."""
    found = await _load(info, ref)
    if found is None:
        raise NotFoundError(
            f"nothing with id '{excerpt(str(ref))}' in your organization", id=str(ref)
        )
    return found


async def _load(info: Info, ref: Ref) -> Node | None:
    from resolvers.connections import Connection
    from resolvers.events import Event
    from resolvers.knowledge import Knowledge
    from resolvers.organizations import Organization, visible
    from resolvers.people import Person
    from resolvers.things import thing_from_record, wants_detail

    if ref.kind is Kind.THING:
        thing = await info.context.things.get(ref, detail=wants_detail(info))
        return thing_from_record(thing) if thing else None
    # Only things live outside the native store (`Ref.parse` refuses other ids).
    record = await info.context.loaders.by_id(ref.kind).load(ref.local_id)
    if record is None:
        return None
    match ref.kind:
        case Kind.ORGANIZATION:
            return Organization.from_record(record) if visible(info, record) else None
        case Kind.PERSON:
            return Person.from_record(record)
        case Kind.CONNECTION:
            return Connection.from_record(record)
        case Kind.EVENT:
            hidden = record.type in hidden_event_types(info.context.actor)
            return None if hidden else Event.from_record(record)
        case Kind.KNOWLEDGE:
            return Knowledge.from_record(record)


async def node(info: Info, id: strawberry.ID) -> Node | None:
    """Any object by its global id; `null` with a NOT_FOUND error when it does not exist or
    is not yours to see."""
    info.context.actor  # noqa: B018 - authentication before anything else
    return await load_node(info, Ref.parse(id))
