"""Where change detection stands for an organization's provider that cannot push changes.

One row per (organization, provider), id `<org id>:<provider>`: the high-water mark (the
newest change time taken in), the ids of things seen changed at that very time (upstreams
count time in whole seconds and compare it strictly, so the mark's own second is read again
and these are what was already taken from it), and every id known to exist (what a deletion
is found against). The row's `known_ids` holds the last two: `{"known": [...], "at_mark":
[...]}`. The mark moves in the transaction that records the events it took in, so a restart
neither loses nor repeats a change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from providers.engine import Cond, Engine, Row, Transaction
from providers.native.events import record_event
from providers.records import utcnow
from providers.thing_events import ThingEvent

_TABLE = "change_watermarks"


@dataclass(frozen=True, slots=True)
class ChangeWatermark:
    org_id: str
    provider: str
    mark: datetime | None  # None: nothing has changed yet (an empty site)
    at_mark: frozenset[str]
    known: frozenset[str]

    @property
    def id(self) -> str:
        return f"{self.org_id}:{self.provider}"


def _watermark(row: Row) -> ChangeWatermark:
    ids = row.get("known_ids") or {}
    mark = row.get("watermark")
    return ChangeWatermark(
        org_id=row["org_id"],
        provider=row["provider"],
        mark=datetime.fromisoformat(mark) if mark else None,
        at_mark=frozenset(ids.get("at_mark", ())),
        known=frozenset(ids.get("known", ())),
    )


class ChangeWatermarks:
    """Each site's mark, moved in the transaction of the events it took in.

    Example:
        marks = ChangeWatermarks(store.engine)
        mark = await marks.get(org_id, "wordpress")  # None before the first poll
        await marks.advance(replace(mark, mark=newest), events)
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def get(self, org_id: str, provider: str) -> ChangeWatermark | None:
        rows = await self._engine.find(_TABLE, [Cond("id", "eq", f"{org_id}:{provider}")])
        return _watermark(rows[0]) if rows else None

    async def advance(self, watermark: ChangeWatermark, events: Sequence[ThingEvent] = ()) -> None:
        """Record `events` (no actor: they happened upstream) and save `watermark`, together."""
        async with self._engine.transaction() as tx:
            for event in events:
                await record_event(
                    tx,
                    watermark.org_id,
                    event.type,
                    actor_ref=None,
                    target_ref=event.target_ref,
                    metadata=event.metadata,
                )
            await _save(tx, watermark)


async def _save(tx: Transaction, watermark: ChangeWatermark) -> None:
    fields: Row = {
        "watermark": watermark.mark.isoformat() if watermark.mark else None,
        "known_ids": {"known": sorted(watermark.known), "at_mark": sorted(watermark.at_mark)},
        "updated_at": utcnow(),
    }
    if await tx.find(_TABLE, [Cond("id", "eq", watermark.id)]):
        await tx.update(_TABLE, watermark.id, fields)
    else:
        row = {"id": watermark.id, "org_id": watermark.org_id, "provider": watermark.provider}
        await tx.insert(_TABLE, {**row, **fields})
