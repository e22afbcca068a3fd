"""Planned execution: a resolver that returns objects looks ahead at the selection below
them and loads every level in bulk, so that the nested fields need no loader round each.

`things`, `thing`, `node`, `connections`, `events` and `knowledgeSearch` hand what they return
to the planner with the selection below it. The planner reads the selection (through
fragments and inline fragments whose type condition the object meets, honouring `@skip` and
`@include`) and loads it level by level, breadth first, through the request's loaders (so
nothing is fetched twice) in two rounds per level, each one batch per loader:

1. the lists hanging off things: `owner` (its `owns` connections), `organization`,
   `connections(direction, relationshipType)`, `events(first)`, `knowledge`;
2. every object named by reference at that level: owners, `Connection.from`/`to`,
   `Event.actor`/`target`, `Knowledge.source` (things through the thing service: one batch
   per provider, with their heavy fields when a selection below wants them).

Each object carries a `plan`: a field's key (its name and arguments) -> its value, or the
exception its unplanned resolver would raise (a failing upstream fails only the fields of its
own things). The resolvers of these fields are plain functions (`resolved`): with a planned
value they return it at once, or raise its error. Without one (`connections(at:)`, an
argument the planner does not model, a field below an object it did not plan) they return the
awaitable of the unplanned path, which graphql-core awaits as before. Both paths build their
answers with the same functions; `resolvers/fast_fields.py` then completes planned answers
without graphql-core's per-field steps. `ONE_PLANNED_EXECUTION=false` turns both off;
tests/resolvers/test_planned.py checks that answers, errors included, are the same either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from strawberry import UNSET
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

from providers.errors import NotFoundError
from providers.records import Kind
from providers.refs import Ref
from providers.validation import excerpt

if TYPE_CHECKING:
    from resolvers.context import Context, Info
    from resolvers.node import Node
    from resolvers.things import Thing

T = TypeVar("T")
Plan = dict[Hashable, Any]
Key = tuple[Hashable, ...]

OWNER: Key = ("owner",)
ORGANIZATION: Key = ("organization",)
KNOWLEDGE: Key = ("knowledge",)
FROM: Key = ("from",)
TO: Key = ("to",)
ACTOR: Key = ("actor",)
TARGET: Key = ("target",)
SOURCE: Key = ("source",)
DETAIL_FIELDS = frozenset({"content", "excerpt", "properties"})
_THING_INTERFACES = ("Node", "Thing")
_DIRECTIONS = {"OUT": "out", "IN": "in", "BOTH": "both"}


def resolved(plan: Plan | None, key: Key, unplanned: Callable[[], Awaitable[T]]) -> T:
    """The field's planned value (raising its planned error), else the awaitable of the
    unplanned path: graphql-core completes the first at once and awaits the second."""
    if plan is not None:
        try:
            value = plan[key]
        except KeyError:
            pass
        else:
            if isinstance(value, Exception):
                raise value
            return cast(T, value)
    return cast(T, unplanned())


def connections_key(direction: str, relationship_type: str | None) -> Key:
    return ("connections", direction, relationship_type)


def events_key(first: int) -> Key:
    return ("events", min(max(first, 0), 100))


# -- reading the selection ---------------------------------------------------------------


def below(info: Info) -> list[Selection]:
    """The selections below the field being resolved (of each of its merged nodes)."""
    return [s for field in info.selected_fields for s in field.selections]


def below_path(selections: list[Selection], path: tuple[str, ...]) -> list[Selection]:
    """The selections at `path` below `selections` (e.g. `("edges", "node")` of a page),
    through fragments of any type condition."""

    def fields(selections: list[Selection]) -> list[SelectedField]:
        found: list[SelectedField] = []
        for selection in selections:
            if isinstance(selection, SelectedField):
                found.append(selection)
            else:
                found += fields(selection.selections)
        return found

    for name in path:
        selections = [s for f in fields(selections) if f.name == name for s in f.selections]
    return selections


def _included(directives: dict[str, dict[str, Any]]) -> bool:
    if not directives:
        return True
    skip, include = directives.get("skip"), directives.get("include")
    if skip is not None and skip.get("if") is True:
        return False
    return not (include is not None and include.get("if") is not True)


def fields_for(
    selections: Iterable[Selection], typename: str, interfaces: Sequence[str]
) -> list[SelectedField]:
    """The fields a selection asks of an object of GraphQL type `typename` (which implements
    `interfaces`), through the fragments whose type condition it meets."""
    found: list[SelectedField] = []
    for selection in selections:
        if not _included(selection.directives):
            continue
        if isinstance(selection, SelectedField):
            found.append(selection)
        elif isinstance(selection, FragmentSpread | InlineFragment):
            condition = selection.type_condition
            if condition is None or condition == typename or condition in interfaces:
                found += fields_for(selection.selections, typename, interfaces)
    return found


def wants_detail(selections: Iterable[Selection]) -> bool:
    """Whether a selection asks for a thing's heavy fields, through any fragment."""
    for selection in selections:
        if isinstance(selection, SelectedField):
            if selection.name in DETAIL_FIELDS:
                return True
        elif wants_detail(selection.selections):
            return True
    return False


def _first(value: Any) -> int | None:
    if value is None or value is UNSET:
        return 10
    try:
        return int(value)  # a literal's text, or a variable's number
    except (TypeError, ValueError):
        return None


def planned_key(name: str, args: dict[str, Any]) -> Key | None:
    """The plan's key of a field the planner loads, from its arguments by their GraphQL
    names (as a selection gives them, or coerced by graphql-core); None for any other field
    or argument."""
    match name:
        case "owner" | "organization" | "knowledge" | "from" | "to" | "actor" | "target" | "source":
            return (name,) if not args else None
        case "events":
            first = _first(args.get("first")) if set(args) <= {"first"} else None
            return events_key(first) if first is not None else None
        case "connections":
            if args.get("at") is not None or not set(args) <= _CONNECTION_ARGUMENTS:
                return None
            raw = args.get("direction", "BOTH")
            raw = getattr(raw, "value", raw)  # an enum member
            direction = _DIRECTIONS.get(raw, raw) if isinstance(raw, str) else None
            relationship_type = args.get("relationshipType")
            if direction not in _DIRECTIONS.values() or not isinstance(
                relationship_type, str | None
            ):
                return None
            return connections_key(cast(str, direction), relationship_type)
    return None


_CONNECTION_ARGUMENTS = frozenset({"direction", "relationshipType", "at"})


def thing_key(field: SelectedField) -> Key | None:
    """The plan's key of a Thing field the planner loads, None for any other."""
    if field.name in ("from", "to", "actor", "target", "source"):
        return None
    return planned_key(field.name, field.arguments)


class _Wanted:
    """What a level asks of its objects: per key, the objects and the selections below the
    field (aliases of one field with the same arguments share a key, and their selections)."""

    def __init__(self) -> None:
        self.objects: dict[Key, list[Any]] = {}
        self.below: dict[Key, list[Selection]] = {}
        self._fields: set[tuple[Key, int]] = set()

    def add(self, key: Key, obj: Any, field: SelectedField) -> None:
        objects = self.objects.setdefault(key, [])
        if not objects or objects[-1] is not obj:
            objects.append(obj)
        if (key, id(field)) not in self._fields:
            self._fields.add((key, id(field)))
            self.below.setdefault(key, []).extend(field.selections)


# -- loading -----------------------------------------------------------------------------


async def _each(loader: Any, keys: Sequence[str]) -> dict[str, Any]:
    """Each key's value from a loader, or its error in its place."""
    unique = list(dict.fromkeys(keys))
    found = await asyncio.gather(*(loader.load(k) for k in unique), return_exceptions=True)
    return dict(zip(unique, found, strict=True))


def _plan_of(obj: Any) -> Plan:
    if obj.plan is None:
        obj.plan = {}
    return cast(Plan, obj.plan)


@dataclass
class _Link:
    """A field of `obj` that names one object by reference (`None`: names none)."""

    obj: Any
    key: Key
    ref: Ref | None
    below: list[Selection]
    # Only a person may be named, and one that cannot be found is null, not an error
    # (`Thing.owner`, `Event.actor`).
    person: bool = False


# The fields that name another object by reference: per GraphQL type, field -> attribute
# of the record holding the reference.
_LINKS: dict[str, dict[str, str]] = {
    "Connection": {"from": "from_ref", "to": "to_ref"},
    "Event": {"actor": "actor_ref", "target": "target_ref"},
    "Knowledge": {"source": "source_ref"},
}


async def plan_things(
    context: Context, things: Sequence[Thing], selections: list[Selection]
) -> None:
    """Load what `selections` asks of `things`, and below, into their plans."""
    await _plan_level(context, [(list(things), selections)])


async def plan_links(context: Context, objects: Sequence[Any], selections: list[Selection]) -> None:
    """Load what `selections` asks of connections, events or knowledge by reference (`from`,
    `to`, `actor`, `target`, `source`), and below, into their plans."""
    await _plan_level(context, [(list(objects), selections)])


async def plan_nodes(context: Context, nodes: Iterable[Node], selections: list[Selection]) -> None:
    """Plan below whichever of `nodes` the planner knows (things, connections, events,
    knowledge)."""
    await _plan_level(context, [(list(nodes), selections)])


plan_connections = plan_links


async def _plan_level(context: Context, groups: list[tuple[list[Any], list[Selection]]]) -> None:
    """One level of the selection, for groups of objects each with the selection below
    them, in two rounds of loads (the lists hanging off things, then every object named by
    reference), each round one batch per loader; then the next level."""
    if not context.planning:
        return
    from resolvers.things import Thing

    links: list[_Link] = []
    lists: list[Awaitable[list[_Link]]] = []
    for objects, selections in groups:
        unique = list({id(o): o for o in objects}.values())
        things = [o for o in unique if isinstance(o, Thing)]
        others = [o for o in unique if not isinstance(o, Thing)]
        if things:
            lists.append(_thing_fields(context, things, selections))
        links += _links_of(others, selections)
    for found in await asyncio.gather(*lists):
        links += found
    if links:
        await _follow(context, links)


async def _thing_fields(
    context: Context, things: list[Thing], selections: list[Selection]
) -> list[_Link]:
    """The first round for things: the lists their selection asks for (and the owners'
    connections), loaded and set in their plans; returns the links of what was made."""
    wanted = _Wanted()
    fields: dict[str, list[SelectedField]] = {}
    for thing in things:
        typename = type(thing).__name__  # the GraphQL type's name
        if typename not in fields:
            fields[typename] = fields_for(selections, typename, _THING_INTERFACES)
        for field in fields[typename]:
            key = thing_key(field)
            if key is not None:
                wanted.add(key, thing, field)
    made = await asyncio.gather(
        *(
            _thing_field(context, key, found, wanted.below[key])
            for key, found in wanted.objects.items()
        )
    )
    return [link for links in made for link in links]


async def _thing_field(
    context: Context, key: Key, things: list[Thing], below: list[Selection]
) -> list[_Link]:
    from resolvers.connections import Connection
    from resolvers.events import Event
    from resolvers.knowledge import Knowledge
    from resolvers.organizations import Organization
    from resolvers.permissions import hidden_event_types

    loaders = context.loaders
    refs = [t.ref for t in things]
    name = key[0]
    if name == "owner":  # the first person with an `owns` connection to the thing
        edges = await _each(loaders.connections("in", "owns", None), refs)
        links = []
        for thing in things:
            found = edges[thing.ref]
            if isinstance(found, Exception):
                _plan_of(thing)[key] = found
                continue
            people = [r for r in (Ref.parse(c.from_ref) for c in found) if r.kind is Kind.PERSON]
            owner = people[0] if people else None
            links.append(_Link(thing, key, owner, below, person=True))
        return links
    if name == "organization":
        orgs = await _each(loaders.by_id(Kind.ORGANIZATION), [t.record.org_id for t in things])
        for thing in things:
            record = orgs[thing.record.org_id]
            if not isinstance(record, Exception):
                record = Organization.from_record(record) if record else None
            _plan_of(thing)[key] = record
        return []  # nothing below an organization is planned
    made: list[Any] = []
    if name == "knowledge":
        found = await _each(loaders.knowledge(), refs)
        make: Callable[[list[Any]], list[Any]] = lambda records: [  # noqa: E731
            Knowledge.from_record(k) for k in records
        ]
    elif name == "events":
        found = await _each(loaders.events(cast(int, key[1])), refs)
        hidden = hidden_event_types(context.actor)
        make = lambda records: [  # noqa: E731
            Event.from_record(e) for e in records if e.type not in hidden
        ]
    else:  # connections
        _, direction, relationship_type = key
        loader = loaders.connections(
            cast(Any, direction), cast(str | None, relationship_type), None
        )
        found = await _each(loader, refs)
        make = lambda records: [Connection.from_record(c) for c in records]  # noqa: E731
    for thing in things:
        records = found[thing.ref]
        if isinstance(records, Exception):
            _plan_of(thing)[key] = records
            continue
        objects = make(records)
        _plan_of(thing)[key] = objects
        made += objects
    return _links_of(made, below)


def _links_of(objects: list[Any], selections: list[Selection]) -> list[_Link]:
    """The links `selections` asks of connections, events and knowledge."""
    links: list[_Link] = []
    by_type: dict[str, list[Any]] = {}
    for obj in objects:
        by_type.setdefault(type(obj).__name__, []).append(obj)
    for typename, found in by_type.items():
        attributes = _LINKS.get(typename)
        if attributes is None:
            continue
        wanted = _Wanted()
        for field in fields_for(selections, typename, ("Node",)):
            if field.name in attributes and not field.arguments:
                for obj in found:
                    wanted.add((field.name,), obj, field)
        for key, linked in wanted.objects.items():
            attribute, below = attributes[cast(str, key[0])], wanted.below[key]
            for obj in linked:
                raw = getattr(obj.record, attribute)
                ref = Ref.parse(raw) if raw is not None else None
                if key == ACTOR:  # only a person is an actor (null for an API key, the system)
                    links.append(
                        _Link(
                            obj,
                            key,
                            ref if ref and ref.kind is Kind.PERSON else None,
                            below,
                            person=True,
                        )
                    )
                else:
                    links.append(_Link(obj, key, ref, below))
    return links


async def _follow(context: Context, links: list[_Link]) -> None:
    """The second round: every object the links name, in one load per loader (things with
    their heavy fields when some selection below wants them), then the next level."""
    named = [link.ref for link in links if link.ref is not None]
    detailed = {str(link.ref): link.ref for link in links if link.ref and wants_detail(link.below)}
    plain = {str(ref): ref for ref in named if str(ref) not in detailed}
    found_detailed, found_plain = await asyncio.gather(
        load_nodes(context, list(detailed.values()), detail=True),
        load_nodes(context, list(plain.values()), detail=False),
    )
    nodes = {**found_plain, **found_detailed}
    below: dict[int, tuple[list[Selection], dict[int, Any]]] = {}
    for link in links:
        value: Any = nodes[str(link.ref)] if link.ref is not None else None
        if link.person and isinstance(value, NotFoundError):
            value = None  # a person who is gone is null, not an error
        _plan_of(link.obj)[link.key] = value
        if value is not None and not isinstance(value, Exception):
            below.setdefault(id(link.below), (link.below, {}))[1][id(value)] = value
    groups = [(list(values.values()), selections) for selections, values in below.values()]
    if groups:
        await _plan_level(context, groups)


def not_found(ref: Ref) -> NotFoundError:
    return NotFoundError(f"nothing with id '{excerpt(str(ref))}' in your organization", id=str(ref))


async def load_nodes(
    context: Context, refs: Sequence[Ref], *, detail: bool
) -> dict[str, Node | Exception]:
    """What each reference names, as `node(id:)` would answer it: the object, or the error
    (`NOT_FOUND` for what does not exist or is not the actor's organization's to see)."""
    unique = {str(r): r for r in refs}
    out: dict[str, Node | Exception] = {}
    things = [r for r in unique.values() if r.kind is Kind.THING]
    if things:
        found = await context.things.get_each(things, detail=detail)
        for ref, record in zip(things, found, strict=True):
            out[str(ref)] = _node_or_error(ref, record, context)
    by_kind: dict[Kind, list[Ref]] = {}
    for ref in unique.values():
        if ref.kind is not Kind.THING:
            by_kind.setdefault(ref.kind, []).append(ref)
    for kind, kind_refs in by_kind.items():
        records = await _each(context.loaders.by_id(kind), [r.local_id for r in kind_refs])
        for ref in kind_refs:
            out[str(ref)] = _node_or_error(ref, records[ref.local_id], context)
    return out


def _node_or_error(ref: Ref, record: Any, context: Context) -> Node | Exception:
    from resolvers.node import from_record

    if isinstance(record, Exception):
        return record
    node = from_record(ref.kind, record, context) if record is not None else None
    return node if node is not None else not_found(ref)
