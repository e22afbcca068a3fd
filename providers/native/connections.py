"""The connections dimension: typed, temporal edges between any two entities."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

from providers import validation
from providers.engine import AnyOf, Cond, Engine, Order, Where
from providers.errors import InvalidInputError, NotFoundError
from providers.native.events import record_event
from providers.native.rows import in_order, to_row
from providers.native.scope import exists_in_org, valid_at
from providers.records import Connection, Kind, utcnow
from providers.refs import Ref, native_ref, new_local_id

Direction = Literal["out", "in", "both"]
_SIDES: dict[Direction, tuple[str, ...]] = {
    "out": ("from_ref",),
    "in": ("to_ref",),
    "both": ("from_ref", "to_ref"),
}


class Connections:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def get_many(self, org_id: str, ids: Sequence[str]) -> list[Connection | None]:
        where: Where = [Cond("org_id", "eq", org_id), Cond("id", "in", set(ids))]
        rows = await self._engine.find("connections", where)
        return in_order(ids, (Connection(**r) for r in rows))

    async def of(
        self,
        org_id: str,
        refs: Sequence[str],
        *,
        direction: Direction = "both",
        relationship_type: str | None = None,
        at: datetime | None = None,
    ) -> dict[str, list[Connection]]:
        """The connections touching each of `refs`, in force at `at` (default: now), oldest
        first; one query for the whole batch."""
        ends = set(refs)
        where: Where = [
            Cond("org_id", "eq", org_id),
            AnyOf(tuple(Cond(side, "in", ends) for side in _SIDES[direction])),
            *valid_at(at or utcnow()),
        ]
        if relationship_type is not None:
            where.append(Cond("relationship_type", "eq", relationship_type))
        rows = await self._engine.find("connections", where, order=Order("created_at"))
        found: dict[str, list[Connection]] = defaultdict(list)
        for connection in (Connection(**r) for r in rows):
            if direction != "in" and connection.from_ref in ends:
                found[connection.from_ref].append(connection)
            if direction != "out" and connection.to_ref in ends:
                found[connection.to_ref].append(connection)
        return {ref: found.get(ref, []) for ref in refs}

    async def create(
        self,
        org_id: str,
        *,
        actor_ref: str | None,
        from_ref: str,
        to_ref: str,
        relationship_type: str,
        metadata: Any = None,
        valid_from: datetime | None = None,
        valid_to: datetime | None = None,
    ) -> Connection:
        """Connect two entities. Native ends must exist in `org_id`."""
        now = utcnow()
        valid_from = valid_from or now
        if valid_to is not None and valid_to <= valid_from:
            raise InvalidInputError("'validTo' must be later than 'validFrom'", field="validTo")
        if from_ref == to_ref:
            raise InvalidInputError("a connection needs two different ends", field="toId")
        if relationship_type == "member_of":
            raise InvalidInputError("members are added with addMember", field="relationshipType")
        connection = Connection(
            id=new_local_id(),
            org_id=org_id,
            from_ref=from_ref,
            to_ref=to_ref,
            relationship_type=validation.relationship_type(relationship_type),
            metadata=validation.json_object(metadata, "metadata"),
            valid_from=valid_from,
            valid_to=valid_to,
            created_at=now,
        )
        async with self._engine.transaction() as tx:
            for ref, field in ((from_ref, "fromId"), (to_ref, "toId")):
                if not await exists_in_org(tx, org_id, Ref.parse(ref, field=field), now):
                    raise NotFoundError(
                        f"'{field}' names nothing in this organization", field=field
                    )
            await tx.insert("connections", to_row(connection))
            await record_event(
                tx,
                org_id,
                "connection_created",
                actor_ref=actor_ref,
                target_ref=native_ref(Kind.CONNECTION, connection.id),
                metadata={"relationship_type": relationship_type, "from": from_ref, "to": to_ref},
            )
        return connection

    async def end(self, org_id: str, id: str, *, actor_ref: str | None) -> Connection:
        """End a connection now. It stays in the history: asking `at` a past time finds it."""
        now = utcnow()
        async with self._engine.transaction() as tx:
            where: Where = [Cond("org_id", "eq", org_id), Cond("id", "eq", id), *valid_at(now)]
            rows = await tx.find("connections", where)
            if not rows:
                raise NotFoundError("connection not found, or already ended", field="id")
            current = Connection(**rows[0])
            if current.relationship_type == "member_of":
                raise InvalidInputError("a membership is not ended by deleteConnection", field="id")
            await tx.update("connections", id, {"valid_to": now})
            await record_event(
                tx,
                org_id,
                "connection_deleted",
                actor_ref=actor_ref,
                target_ref=native_ref(Kind.CONNECTION, id),
                metadata={"relationship_type": current.relationship_type},
            )
        return replace(current, valid_to=now)
