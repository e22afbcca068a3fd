"""The lifecycle of a thing, the same for every provider: draft -> active -> published -> archived.

It runs forward only, one live step at a time; any live status may be archived, and archived is
final (an archived thing's name and properties cannot change either). A backend may lack a live
step (Shopify has no 'active'): it declares the steps it has (`Capabilities.statuses`), its
things skip the missing ones, and asking for one is a clear BAD_USER_INPUT.
"""

from __future__ import annotations

from providers.errors import InvalidTransitionError
from providers.records import ThingStatus

LIVE = (ThingStatus.DRAFT, ThingStatus.ACTIVE, ThingStatus.PUBLISHED)
EVERY_STATUS: frozenset[ThingStatus] = frozenset(ThingStatus)


def next_statuses(
    current: ThingStatus, steps: frozenset[ThingStatus] = EVERY_STATUS
) -> frozenset[ThingStatus]:
    """Where a `current` thing may go: the backend's next live step, or archived."""
    if current is ThingStatus.ARCHIVED:
        return frozenset()
    later = [s for s in LIVE[LIVE.index(current) + 1 :] if s in steps]
    return frozenset({*later[:1], ThingStatus.ARCHIVED})


def require_status(
    status: ThingStatus, steps: frozenset[ThingStatus] = EVERY_STATUS, provider: str = ""
) -> None:
    """Refuse a status the backend does not have."""
    if status not in steps:
        path = " -> ".join(s.value for s in (*LIVE, ThingStatus.ARCHIVED) if s in steps)
        raise InvalidTransitionError(
            f"{provider or 'this provider'} has no '{status.value}' step: its things go {path}",
            field="status",
            statuses=sorted(s.value for s in steps),
        )


def require_creatable(
    status: ThingStatus, steps: frozenset[ThingStatus] = EVERY_STATUS, provider: str = ""
) -> None:
    if status is ThingStatus.ARCHIVED:
        raise InvalidTransitionError("a thing cannot be created archived", field="status")
    require_status(status, steps, provider)


def require_transition(
    current: ThingStatus,
    target: ThingStatus,
    steps: frozenset[ThingStatus] = EVERY_STATUS,
    provider: str = "",
) -> None:
    """Refuse a step the lifecycle does not allow, saying which ones it does."""
    if current is not ThingStatus.ARCHIVED:  # else, whatever the target: archived is final
        require_status(target, steps, provider)
    allowed = next_statuses(current, steps)
    if target not in allowed:
        hint = ", ".join(sorted(s.value for s in allowed)) or "none, archived is final"
        raise InvalidTransitionError(
            f"a {current.value} thing cannot become {target.value} (allowed next: {hint})",
            field="status",
            current=current.value,
        )


def require_changeable(status: ThingStatus) -> None:
    """Archived is final: an archived thing's name and properties cannot change either."""
    if status is ThingStatus.ARCHIVED:
        raise InvalidTransitionError("an archived thing cannot be changed", field="id")
