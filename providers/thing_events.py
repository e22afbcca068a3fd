"""The events that tell of a thing's changes: one shape for every provider.

The native store commits each in the transaction of its change; the thing service appends the
others' once their upstream has accepted the write (an upstream cannot share a transaction).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from providers.records import Event, JSONObject, Kind, Thing, ThingStatus
from providers.refs import Ref


@dataclass(frozen=True, slots=True)
class ThingEvent:
    type: str
    target_ref: str
    metadata: JSONObject


def created(thing: Thing) -> ThingEvent:
    return _event("entity_created", thing, {"thing_type": thing.type, "status": thing.status.value})


def updated(thing: Thing, fields: Iterable[str]) -> ThingEvent:
    return _event("entity_updated", thing, {"fields": sorted(fields)})


def status_changed(thing: Thing, before: ThingStatus) -> ThingEvent:
    archived = thing.status is ThingStatus.ARCHIVED
    return _event(
        "entity_archived" if archived else "entity_updated",
        thing,
        {"fields": ["status"], "from": before.value, "to": thing.status.value},
    )


def _event(type: str, thing: Thing, metadata: JSONObject) -> ThingEvent:
    # `thing_type` lets subscribers filter without loading the thing; `version` (the thing's
    # updated_at) lets change detection recognise the echo of the gateway's own write.
    target = str(Ref(Kind.THING, thing.provider, thing.id))
    return ThingEvent(
        type,
        target,
        {
            "thing_type": thing.type,
            **metadata,
            "provider": thing.provider,
            "version": thing.updated_at.isoformat(),
        },
    )


def same_version(newest: Sequence[Event], version: datetime | None) -> bool:
    """Whether a thing's newest recorded event (`newest[0]`, if any) holds `version` as its
    `version`, as the same instant: a change detected upstream that is already recorded,
    such as the echo of the gateway's own write."""
    recorded = instant(newest[0].metadata.get("version")) if newest else None
    return recorded is not None and version is not None and recorded == instant_of(version)


def instant(value: Any) -> datetime | None:
    """An ISO 8601 moment in UTC (one without a zone taken as UTC), or None for anything
    else."""
    if not isinstance(value, str):
        return None
    try:
        return instant_of(datetime.fromisoformat(value))
    except ValueError:
        return None


def instant_of(moment: datetime) -> datetime:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
