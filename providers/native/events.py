"""The events dimension: append-only, written by every native mutation in its transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from providers import validation
from providers.engine import Cond, Engine, Order, Transaction, Where
from providers.native.rows import decode_cursor, encode_cursor, fetch_page, in_order, to_row
from providers.records import EVENT_TYPES, Event, JSONObject, Page
from providers.refs import new_local_id


@dataclass(frozen=True, slots=True)
class EventQuery:
    target_ref: str | None = None
    actor_ref: str | None = None
    type: str | None = None
    hidden_types: frozenset[str] = frozenset()  # left out of the page and of its count
    first: int = 20
    after: str | None = None


async def record_event(
    tx: Transaction,
    org_id: str,
    type: str,
    *,
    actor_ref: str | None,
    target_ref: str | None,
    metadata: JSONObject,
) -> Event:
    """Append an event inside `tx`, so it commits with the change it tells of, numbered in
    its organization's stream in commit order (the relay publishes it once committed)."""
    event = Event(
        id=new_local_id(),
        org_id=org_id,
        type=type,
        actor_ref=actor_ref,
        target_ref=target_ref,
        metadata=metadata,
        seq=await tx.increment("event_streams", org_id, "last_seq"),
    )
    await tx.insert("events", to_row(event))
    return event


class Events:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def get_many(self, org_id: str, ids: Sequence[str]) -> list[Event | None]:
        where: Where = [Cond("org_id", "eq", org_id), Cond("id", "in", set(ids))]
        rows = await self._engine.find("events", where)
        return in_order(ids, (Event(**r) for r in rows))

    async def page(self, org_id: str, query: EventQuery) -> Page[Event]:
        """Events of `org_id`, newest first."""
        where: Where = [Cond("org_id", "eq", org_id)]
        if query.target_ref is not None:
            where.append(Cond("target_ref", "eq", query.target_ref))
        if query.actor_ref is not None:
            where.append(Cond("actor_ref", "eq", query.actor_ref))
        if query.type is not None:
            where.append(Cond("type", "eq", validation.event_type(query.type)))
        if query.hidden_types:
            # Named as the types still shown, so a type unknown to EVENT_TYPES stays hidden.
            where.append(Cond("type", "in", EVENT_TYPES - query.hidden_types))
        order = Order("timestamp", descending=True, after=decode_cursor(query.after))
        rows, has_next, total = await fetch_page(self._engine, "events", where, order, query.first)
        items = [Event(**r) for r in rows]
        return Page(items, [encode_cursor(e.timestamp, e.id) for e in items], has_next, total)

    async def append(
        self,
        org_id: str,
        type: str,
        *,
        actor_ref: str | None,
        target_ref: str | None,
        metadata: JSONObject,
    ) -> Event:
        """Append an event on its own: for changes made elsewhere (an upstream write), which
        cannot share a transaction with the store."""
        async with self._engine.transaction() as tx:
            return await record_event(
                tx, org_id, type, actor_ref=actor_ref, target_ref=target_ref, metadata=metadata
            )

    async def of_targets(
        self, org_id: str, target_refs: Sequence[str], *, limit: int
    ) -> dict[str, list[Event]]:
        """The newest `limit` events of each target; one query for the batch, which reads
        no more than `limit` events of any target however long its history."""
        where: Where = [Cond("org_id", "eq", org_id), Cond("target_ref", "in", set(target_refs))]
        order = Order("timestamp", descending=True)
        rows = await self._engine.find_top(
            "events", where, per="target_ref", order=order, limit=limit
        )
        found: dict[str, list[Event]] = defaultdict(list)
        for event in (Event(**r) for r in rows):
            found[event.target_ref or ""].append(event)
        return {ref: found.get(ref, []) for ref in target_refs}

    # The organization's event stream, in `seq` order: what the relay publishes and what a
    # subscriber resumes from (gateway/relay.py, gateway/live_events.py).

    async def in_stream(
        self, org_id: str, *, after: int, until: int | None = None, limit: int = 500
    ) -> list[Event]:
        """Events with `after < seq <= until`, in stream order, at most `limit` of them."""
        where: Where = [Cond("org_id", "eq", org_id), Cond("seq", "gt", after)]
        if until is not None:
            where.append(Cond("seq", "le", until))
        rows = await self._engine.find("events", where, order=Order("seq"), limit=limit)
        return [Event(**r) for r in rows]

    async def stream_heads(self) -> list[StreamHead]:
        """Each organization's last numbered event and last one known to be published."""
        rows = await self._engine.find("event_streams", [])
        return [
            StreamHead(r["id"], int(r["last_seq"] or 0), int(r["published_seq"] or 0)) for r in rows
        ]

    async def last_seq(self, org_id: str) -> int:
        rows = await self._engine.find("event_streams", [Cond("id", "eq", org_id)], limit=1)
        return int(rows[0]["last_seq"] or 0) if rows else 0

    async def mark_published(self, org_id: str, seq: int) -> None:
        await self._engine.raise_to("event_streams", org_id, "published_seq", seq)


@dataclass(frozen=True, slots=True)
class StreamHead:
    org_id: str
    last_seq: int
    published_seq: int
