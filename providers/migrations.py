"""Moving a thing type from one backend to another without downtime: the steps an owner takes.

    start         a migration of `type` from the backend it is routed to now to `to`, which
                  must be configured (`configureProvider`, with no routes or others): its
                  credentials are sealed there, never passed here. The copy is the runner's
                  (`gateway/migrations.py`, or `one-gateway migrate`); a dry run only counts
                  and checks.
    set_rollout   0: shadow (reads served by the source, a sample repeated on the target);
                  1-100: that share of actors read the target
    promote       the last writes copied, then the type routed to the target
    abort         back to the source for good (the copies stay where they were made)
    resume        out of a pause (an automatic rollback), back to shadow at 0%
    roll_back     the automatic rollback: traffic back to the source at once, paused

Every step is one transaction with its `settings_updated` event (see
`providers/native/migrations.py`).
"""

from __future__ import annotations

from typing import Any, Protocol

from providers import validation
from providers.errors import ConflictError, InvalidInputError
from providers.migration_copy import Copier
from providers.migration_health import Thresholds
from providers.native import NativeStore
from providers.native.migrations import Migration, MigrationState
from providers.provider import Provider
from providers.records import NATIVE

SHADOW_OR_ROLLOUT = frozenset({MigrationState.SHADOW, MigrationState.ROLLOUT})


class Routes(Protocol):
    async def for_type(self, type: str | None) -> Provider: ...

    async def named(self, name: str) -> Provider: ...


def thresholds(values: dict[str, Any] | None) -> dict[str, Any]:
    """Validated thresholds, as stored (BAD_USER_INPUT naming a wrong one)."""
    given = {k: v for k, v in (values or {}).items() if v is not None}
    unknown = sorted(set(given) - set(Thresholds.__dataclass_fields__))
    if unknown:
        raise InvalidInputError(f"unknown thresholds: {', '.join(unknown)}", field="thresholds")
    try:
        checked = Thresholds(**given)
    except TypeError as exc:
        raise InvalidInputError(f"thresholds: {exc}", field="thresholds") from None
    return {k: getattr(checked, k) for k in given}


def percent(value: int, field: str) -> int:
    if not 0 <= value <= 100:
        raise InvalidInputError(f"'{field}' must be between 0 and 100, not {value}", field=field)
    return value


async def start(
    store: NativeStore,
    routes: Routes,
    *,
    org_id: str,
    actor_ref: str | None,
    type: str,
    to: str,
    dry_run: bool = False,
    sample_percent: int = 10,
    limits: dict[str, Any] | None = None,
) -> Migration:
    type = validation.thing_type(type)
    sample_percent = percent(sample_percent, "samplePercent")
    checked = thresholds(limits)
    source = await routes.for_type(type)
    if source.name == to:
        raise InvalidInputError(f"{type} already lives in {to}", field="to")
    target = await routes.named(to)  # NOT_FOUND naming it when it is not configured
    if to != NATIVE and type not in target.thing_types:
        raise InvalidInputError(
            f"{to} cannot hold {type}; it holds {', '.join(sorted(target.thing_types))}",
            field="to",
        )
    if not target.capabilities.write:
        raise InvalidInputError(f"{to} things are read-only here", field="to")
    return await store.migrations.create(
        org_id,
        type=type,
        source=source.name,
        target=to,
        dry_run=dry_run,
        actor_ref=actor_ref,
        thresholds=checked,
        sample_percent=sample_percent,
        start_seq=await store.events.last_seq(org_id),
    )


async def set_rollout(
    store: NativeStore,
    migration: Migration,
    rollout_percent: int,
    *,
    actor_ref: str | None,
    sample_percent: int | None = None,
    limits: dict[str, Any] | None = None,
) -> Migration:
    fields: dict[str, Any] = {
        "rollout_percent": percent(rollout_percent, "percent"),
        "state": MigrationState.ROLLOUT if rollout_percent > 0 else MigrationState.SHADOW,
    }
    if sample_percent is not None:
        fields["sample_percent"] = percent(sample_percent, "samplePercent")
    if limits is not None:
        fields["thresholds"] = {**migration.thresholds, **thresholds(limits)}
    return await store.migrations.transition(
        migration,
        "rollout",
        actor_ref=actor_ref,
        detail={"rollout_percent": rollout_percent},
        expect=SHADOW_OR_ROLLOUT,
        **fields,
    )


async def promote(
    store: NativeStore, migration: Migration, copier: Copier, *, actor_ref: str | None
) -> Migration:
    """The source's writes copied, the type routed to the target, then the writes that
    landed in between copied too (from then on, writes go to the target)."""
    if migration.state not in SHADOW_OR_ROLLOUT:
        raise ConflictError(
            f"the migration is {migration.state.value}: only a copied migration (shadow or "
            f"rollout) can be promoted",
            field="id",
            state=migration.state.value,
        )
    await copier.replay()
    promoted = await store.migrations.promote(migration, actor_ref=actor_ref)
    await copier.replay()
    return promoted


async def abort(store: NativeStore, migration: Migration, *, actor_ref: str | None) -> Migration:
    return await store.migrations.transition(
        migration,
        "aborted",
        actor_ref=actor_ref,
        expect=frozenset(s for s in MigrationState if s.live),
        state=MigrationState.ABORTED,
        rollout_percent=0,
    )


async def resume(store: NativeStore, migration: Migration, *, actor_ref: str | None) -> Migration:
    copied = bool(migration.checkpoint.get("done"))
    return await store.migrations.transition(
        migration,
        "resumed",
        actor_ref=actor_ref,
        expect=frozenset({MigrationState.PAUSED}),
        state=MigrationState.SHADOW if copied else MigrationState.COPYING,
        rollout_percent=0,
        paused_reason=None,
    )


async def roll_back(store: NativeStore, migration: Migration, reason: str) -> Migration:
    """Every actor back on the source at once; paused, with the reason, for an owner."""
    return await store.migrations.transition(
        migration,
        "rolled_back",
        actor_ref=None,
        detail={"reason": reason, "rolled_back_from": migration.rollout_percent},
        expect=SHADOW_OR_ROLLOUT,
        state=MigrationState.PAUSED,
        rollout_percent=0,
        paused_reason=reason,
    )
