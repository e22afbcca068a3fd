"""The `Node` interface, and resolving any global id to the object it names."""

from __future__ import annotations

import strawberry

from providers.errors import NotFoundError
from providers.records import Kind
from providers.refs import Ref
from resolvers.context import Info


@strawberry.interface(description="Anything with a global id: `node(id:)` fetches it.")
class Node:
    id: strawberry.ID


async def load_node(info: Info, ref: Ref) -> Node | None:
    """The object `ref` names, if the actor's organization can see it; else `None`."""
    from resolvers.connections import Connection
    from resolvers.events import Event
    from resolvers.knowledge import Knowledge
    from resolvers.organizations import Organization, visible
    from resolvers.people import Person
    from resolvers.things import thing_from_record

    if ref.provider != "native":
        raise NotFoundError(
            f"no '{ref.provider}' provider is configured for this organization",
            provider=ref.provider,
        )
    record = await info.context.loaders.by_id(ref.kind).load(ref.local_id)
    if record is None:
        return None
    match ref.kind:
        case Kind.ORGANIZATION:
            return Organization.from_record(record) if visible(info, record) else None
        case Kind.PERSON:
            return Person.from_record(record)
        case Kind.THING:
            return thing_from_record(record)
        case Kind.CONNECTION:
            return Connection.from_record(record)
        case Kind.EVENT:
            return Event.from_record(record)
        case Kind.KNOWLEDGE:
            return Knowledge.from_record(record)


async def node(info: Info, id: strawberry.ID) -> Node | None:
    """Any object by its global id; `null` when it does not exist or is not yours to see."""
    info.context.actor  # noqa: B018 - authentication before anything else
    return await load_node(info, Ref.parse(id))
