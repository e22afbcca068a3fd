"""The events that tell of a thing's changes: one shape for every provider.

The native store commits each in the transaction of its change; the thing service appends the
others' once their upstream has accepted the write (an upstream cannot share a transaction).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from providers.records import JSONObject, Kind, Thing, ThingStatus
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
