"""The `Node` interface, and resolving any global id to the object it names."""

from __future__ import annotations

from typing import Any

import strawberry

from providers.records import Kind
from providers.refs import Ref
from resolvers.context import Context, Info
from resolvers.permissions import hidden_event_types
from resolvers.planning import below, plan_nodes


@strawberry.interface(description="Anything with a global id: `node(id:)` fetches it.")
class Node:
    id: strawberry.ID


async def load_node(info: Info, ref: Ref) -> Node:
    """The object `ref` names, if the actor's organization can see it; else `NotFoundError`,
    the same for what does not exist and what belongs to someone else."""
    from resolvers.planning import not_found
    from resolvers.things import wants_detail

    context = info.context
    if ref.kind is Kind.THING:
        record = await context.things.get(ref, detail=wants_detail(info))
    else:  # only things live outside the native store (`Ref.parse` refuses other ids)
        record = await context.loaders.by_id(ref.kind).load(ref.local_id)
    found = from_record(ref.kind, record, context) if record is not None else None
    if found is None:
        raise not_found(ref)
    return found


def from_record(kind: Kind, record: Any, context: Context) -> Node | None:
    """The object of a record of `kind`, None when the actor may not see it."""
    from resolvers.connections import Connection
    from resolvers.events import Event
    from resolvers.knowledge import Knowledge
    from resolvers.organizations import Organization, visible_to
    from resolvers.people import Person
    from resolvers.things import thing_from_record

    match kind:
        case Kind.THING:
            return thing_from_record(record)
        case Kind.ORGANIZATION:
            return Organization.from_record(record) if visible_to(context.actor, record) else None
        case Kind.PERSON:
            return Person.from_record(record)
        case Kind.CONNECTION:
            return Connection.from_record(record)
        case Kind.EVENT:
            hidden = record.type in hidden_event_types(context.actor)
            return None if hidden else Event.from_record(record)
        case Kind.KNOWLEDGE:
            return Knowledge.from_record(record)
    return None


async def node(info: Info, id: strawberry.ID) -> Node | None:
    """Any object by its global id; `null` with a NOT_FOUND error when it does not exist or
    is not yours to see."""
    info.context.actor  # noqa: B018 - authentication before anything else
    found = await load_node(info, Ref.parse(id))
    await plan_nodes(info.context, [found], below(info))
    return found
