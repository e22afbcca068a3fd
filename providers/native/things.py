"""The things dimension: typed entities with a lifecycle that only runs forward."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from providers import thing_events, validation
from providers.engine import Cond, Engine, Order, Row, Transaction, Where
from providers.errors import InvalidInputError, NotFoundError
from providers.lifecycle import require_changeable, require_creatable, require_transition
from providers.native.events import record_event
from providers.native.rows import (
    decode_cursor,
    encode_cursor,
    fetch_page,
    in_order,
    page_size,
    to_row,
    to_thing,
)
from providers.native.scope import require_quota
from providers.provider import Hit, ListQuery, SearchQuery
from providers.records import Connection, Kind, Page, Thing, ThingStatus, utcnow
from providers.refs import native_ref, new_local_id
from providers.thing_events import ThingEvent

ThingQuery = ListQuery  # what the store reads of it: type (None: any), status, search, ...


class Things:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def get_many(self, org_id: str, ids: Sequence[str]) -> list[Thing | None]:
        """Things of `org_id` by id, in the order asked; one query for the whole batch."""
        where: Where = [Cond("org_id", "eq", org_id), Cond("id", "in", set(ids))]
        return in_order(ids, map(to_thing, await self._engine.find("things", where)))

    async def page(self, org_id: str, query: ThingQuery) -> Page[Thing]:
        """Things of `org_id`, oldest first (stable under inserts)."""
        where: Where = [Cond("org_id", "eq", org_id)]
        if query.type is not None:
            where.append(Cond("type", "eq", validation.thing_type(query.type)))
        if query.status is not None:
            where.append(Cond("status", "eq", query.status.value))
        if query.search:
            where.append(Cond("name", "contains", query.search))
        if query.modified_after is not None:
            where.append(Cond("updated_at", "gt", query.modified_after))
        order = Order("created_at", after=decode_cursor(query.after))
        rows, has_next, total = await fetch_page(self._engine, "things", where, order, query.first)
        items = [to_thing(r) for r in rows]
        return Page(items, [encode_cursor(t.created_at, t.id) for t in items], has_next, total)

    async def search(self, org_id: str, query: SearchQuery) -> Page[Hit]:
        """Things of `org_id` whose name or text holds every word of the query, best match
        first (BM25); the cursor is a position in that order."""
        offset = _offset(query.after)
        where: Where = [Cond("org_id", "eq", org_id)]
        if query.types is not None:
            if not query.types:
                return Page([], [], False, 0)
            where.append(Cond("type", "in", set(query.types)))
        found = await self._engine.search_text(
            "things", where, query.text, limit=page_size(query.first) + 1, offset=offset
        )
        hits = [Hit(to_thing(h.row), h.snippet) for h in found[: query.first]]
        cursors = [str(offset + i + 1) for i in range(len(hits))]
        return Page(hits, cursors, len(found) > query.first, None)

    async def count(self, org_id: str) -> int:
        return await self._engine.count("things", [Cond("org_id", "eq", org_id)])

    async def create(
        self,
        org_id: str,
        *,
        actor_ref: str | None,
        type: str,
        name: str,
        properties: Any = None,
        status: ThingStatus = ThingStatus.DRAFT,
    ) -> Thing:
        """Create a thing; when the actor is a person, that person `owns` it."""
        require_creatable(status)
        now = utcnow()
        thing = Thing(
            id=new_local_id(),
            org_id=org_id,
            type=validation.thing_type(type),
            name=validation.name(name),
            status=status,
            properties=validation.json_object(properties, "properties"),
            created_at=now,
            updated_at=now,
        )
        thing_ref = native_ref(Kind.THING, thing.id)
        async with self._engine.transaction() as tx:
            used = await tx.count("things", [Cond("org_id", "eq", org_id)])
            await require_quota(tx, org_id, "things", used)
            await tx.insert("things", to_row(thing))
            if actor_ref is not None and actor_ref.startswith(f"{Kind.PERSON.value}."):
                owns = Connection(
                    id=new_local_id(),
                    org_id=org_id,
                    from_ref=actor_ref,
                    to_ref=thing_ref,
                    relationship_type="owns",
                    valid_from=now,
                    created_at=now,
                )
                await tx.insert("connections", to_row(owns))
            await _record(tx, org_id, actor_ref, thing_events.created(thing))
        return thing

    async def update(
        self,
        org_id: str,
        id: str,
        *,
        actor_ref: str | None,
        name: str | None = None,
        properties: Any = None,
        merge_properties: bool = True,
    ) -> Thing:
        """Rename a thing or change its properties (merged into the old ones by default)."""
        changes: Row = {}
        if name is not None:
            changes["name"] = validation.name(name)
        new_properties = (
            validation.json_object(properties, "properties") if properties is not None else None
        )
        if not changes and new_properties is None:
            raise InvalidInputError("nothing to update: give a name or properties")
        async with self._engine.transaction() as tx:
            current = await _for_update(tx, org_id, id)
            require_changeable(current.status)
            if new_properties is not None:
                merged = {**current.properties, **new_properties}
                changes["properties"] = validation.json_object(
                    merged if merge_properties else new_properties, "properties"
                )
            fields = sorted(changes)
            changes["updated_at"] = utcnow()
            await tx.update("things", id, changes)
            updated = replace(current, **changes)
            await _record(tx, org_id, actor_ref, thing_events.updated(updated, fields))
        return updated

    async def change_status(
        self, org_id: str, id: str, *, actor_ref: str | None, status: ThingStatus
    ) -> Thing:
        """Move a thing along its lifecycle; a step the lifecycle forbids is refused."""
        async with self._engine.transaction() as tx:
            current = await _for_update(tx, org_id, id)
            require_transition(current.status, status)
            changed = replace(current, status=status, updated_at=utcnow())
            await tx.update(
                "things", id, {"status": status.value, "updated_at": changed.updated_at}
            )
            event = thing_events.status_changed(changed, current.status)
            await _record(tx, org_id, actor_ref, event)
        return changed


async def _record(tx: Transaction, org_id: str, actor_ref: str | None, event: ThingEvent) -> None:
    await record_event(
        tx,
        org_id,
        event.type,
        actor_ref=actor_ref,
        target_ref=event.target_ref,
        metadata=event.metadata,
    )


async def _for_update(tx: Transaction, org_id: str, id: str) -> Thing:
    rows = await tx.find("things", [Cond("org_id", "eq", org_id), Cond("id", "eq", id)])
    if not rows:
        raise NotFoundError("thing not found", field="id")
    return to_thing(rows[0])


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit() or len(cursor) > 9:
        raise InvalidInputError("'after' is not a cursor of this search", field="after")
    return int(cursor)
