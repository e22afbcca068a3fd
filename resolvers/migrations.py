"""Migrations through GraphQL, for owners only: `migrations`, `migration`, `startMigration`,
`setMigrationRollout`, `promoteMigration`, `abortMigration`, `resumeMigration`. See
`providers/migrations.py` for the steps and `providers/migrating.py` for how reads follow."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from providers import migrations as steps
from providers.migration_copy import Copier
from providers.migration_health import Thresholds
from providers.native.migrations import Migration as MigrationRecord
from resolvers.context import Info
from resolvers.enums import MigrationState
from resolvers.permissions import Action, require


@strawberry.type(description="Counts of the copy so far.")
class MigrationProgress:
    total: int | None = strawberry.field(
        description="things of the type in the source; null: not yet counted"
    )
    copied: int
    updated: int
    unchanged: int
    failed: int
    replayed: int = strawberry.field(description="source writes copied on after the first pass")
    would_copy: int = strawberry.field(description="a dry run: things it would copy")


@strawberry.type(description="A thing the copy could not make.")
class MigrationFailure:
    id: strawberry.ID
    name: str
    code: str
    message: str


@strawberry.type
class FieldMismatch:
    path: str = strawberry.field(description="e.g. name, status, properties.tags[1]")
    current: JSON | None = strawberry.field(description="what the current backend answered")
    candidate: JSON | None = strawberry.field(description="what the new backend answered")


@strawberry.type(description="One shadow read whose answers differed.")
class ShadowMismatch:
    id: strawberry.ID | None = strawberry.field(description="the thing, as the source names it")
    at: datetime
    fields: list[FieldMismatch]


@strawberry.type(description="Reads of the new backend: shadow reads and rollout reads.")
class ShadowStats:
    reads: int
    errors: int
    compared: int
    mismatches: int
    skipped: int = strawberry.field(description="samples skipped: too many shadow reads in flight")
    error_rate: float
    mismatch_rate: float
    recent_mismatches: list[ShadowMismatch] = strawberry.field(description="the newest 20")


@strawberry.type
class MigrationThresholds:
    error_rate: float
    mismatch_rate: float
    p99_ms: float
    window_seconds: float
    min_samples: int


@strawberry.input(description="Crossing one rolls the traffic back at once (the migration pauses).")
class MigrationThresholdsInput:
    error_rate: float | None = None
    mismatch_rate: float | None = None
    p99_ms: float | None = None
    window_seconds: float | None = None
    min_samples: int | None = None


@strawberry.type(description="Moving a thing type from one backend to another.")
class Migration:
    id: strawberry.ID
    type: str
    source: str = strawberry.field(description="the backend the type was routed to")
    target: str
    state: MigrationState
    dry_run: bool
    rollout_percent: int = strawberry.field(description="of actors reading the target")
    sample_percent: int = strawberry.field(description="of source reads repeated on the target")
    thresholds: MigrationThresholds
    progress: MigrationProgress
    failures: list[MigrationFailure]
    shadow: ShadowStats
    paused_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_record(cls, m: MigrationRecord) -> Migration:
        limits = Thresholds(**m.thresholds)
        p, s = m.progress, m.shadow
        reads, compared = int(s.get("reads", 0)), int(s.get("compared", 0))
        errors, mismatches = int(s.get("errors", 0)), int(s.get("mismatches", 0))
        return cls(
            id=strawberry.ID(m.id),
            type=m.type,
            source=m.source,
            target=m.target,
            state=m.state,
            dry_run=m.dry_run,
            rollout_percent=m.rollout_percent,
            sample_percent=m.sample_percent,
            thresholds=MigrationThresholds(
                error_rate=limits.error_rate,
                mismatch_rate=limits.mismatch_rate,
                p99_ms=limits.p99_ms,
                window_seconds=limits.window_seconds,
                min_samples=limits.min_samples,
            ),
            progress=MigrationProgress(
                total=p.get("total"),
                copied=int(p.get("copied", 0)),
                updated=int(p.get("updated", 0)),
                unchanged=int(p.get("unchanged", 0)),
                failed=len(m.failures),
                replayed=int(p.get("replayed", 0)),
                would_copy=int(p.get("would_copy", 0)),
            ),
            failures=[
                MigrationFailure(
                    id=strawberry.ID(f["id"]), name=f["name"], code=f["code"], message=f["message"]
                )
                for f in m.failures
            ],
            shadow=ShadowStats(
                reads=reads,
                errors=errors,
                compared=compared,
                mismatches=mismatches,
                skipped=int(s.get("skipped", 0)),
                error_rate=errors / reads if reads else 0.0,
                mismatch_rate=mismatches / compared if compared else 0.0,
                recent_mismatches=[
                    ShadowMismatch(
                        id=strawberry.ID(r["id"]) if r.get("id") else None,
                        at=datetime.fromisoformat(r["at"]),
                        fields=[
                            FieldMismatch(
                                path=f["path"], current=f["current"], candidate=f["candidate"]
                            )
                            for f in r["fields"]
                        ],
                    )
                    for r in reversed(s.get("recent", []))
                ],
            ),
            paused_reason=m.paused_reason,
            created_at=m.created_at,
            updated_at=m.updated_at,
        )


def _limits(given: MigrationThresholdsInput | None) -> dict[str, Any] | None:
    if given is None:
        return None
    return {
        "error_rate": given.error_rate,
        "mismatch_rate": given.mismatch_rate,
        "p99_ms": given.p99_ms,
        "window_seconds": given.window_seconds,
        "min_samples": given.min_samples,
    }


async def _flushed(info: Info) -> None:
    """This process's shadow tallies written first, so an owner sees them all."""
    if info.context.migration_monitor is not None:
        await info.context.migration_monitor.flush()


async def _get(info: Info, id: strawberry.ID) -> MigrationRecord:
    actor = require(info.context.actor, Action.MANAGE_PROVIDERS)
    return await info.context.store.migrations.get(actor.org_id, str(id))


async def migrations(info: Info) -> list[Migration]:
    """Your organization's migrations, newest first (owners only)."""
    actor = require(info.context.actor, Action.MANAGE_PROVIDERS)
    await _flushed(info)
    return [
        Migration.from_record(m) for m in await info.context.store.migrations.of_org(actor.org_id)
    ]


async def migration(info: Info, id: strawberry.ID) -> Migration:
    """One migration: its copy, rollout and shadow reads (owners only)."""
    await _flushed(info)
    return Migration.from_record(await _get(info, id))


async def start_migration(
    info: Info,
    type: str,
    to: str,
    dry_run: bool = False,
    sample_percent: int = 10,
    thresholds: MigrationThresholdsInput | None = None,
) -> Migration:
    """Move `type` from the backend it is routed to now to `to` (already configured with
    `configureProvider`): the copy starts in the background; `dryRun` only counts and checks.
    Reads stay on the current backend until `setMigrationRollout` and `promoteMigration`."""
    actor = require(info.context.actor, Action.MANAGE_PROVIDERS)
    started = await steps.start(
        info.context.store,
        info.context.router,
        org_id=actor.org_id,
        actor_ref=actor.ref,
        type=type,
        to=to,
        dry_run=dry_run,
        sample_percent=sample_percent,
        limits=_limits(thresholds),
    )
    if info.context.kick_migrations is not None:
        info.context.kick_migrations()
    return Migration.from_record(started)


async def set_migration_rollout(
    info: Info,
    id: strawberry.ID,
    percent: int,
    sample_percent: int | None = None,
    thresholds: MigrationThresholdsInput | None = None,
) -> Migration:
    """Send `percent` of actors' reads of the type to the new backend (the same actors
    while it does not go down; 0: shadow only). Takes effect at once, on every replica
    within a second."""
    actor = require(info.context.actor, Action.MANAGE_PROVIDERS)
    found = await _get(info, id)
    changed = await steps.set_rollout(
        info.context.store,
        found,
        percent,
        actor_ref=actor.ref,
        sample_percent=sample_percent,
        limits=_limits(thresholds),
    )
    return Migration.from_record(changed)


async def promote_migration(info: Info, id: strawberry.ID) -> Migration:
    """Make the new backend the type's route for everyone; old ids keep resolving."""
    actor = require(info.context.actor, Action.MANAGE_PROVIDERS)
    found = await _get(info, id)
    router = info.context.router
    copier = Copier(
        info.context.store,
        found,
        source=await router.named(found.source),
        target=await router.named(found.target),
        lock=info.context.migration_monitor.lock if info.context.migration_monitor else None,
    )
    promoted = await steps.promote(info.context.store, found, copier, actor_ref=actor.ref)
    return Migration.from_record(promoted)


async def abort_migration(info: Info, id: strawberry.ID) -> Migration:
    """Stop: every read back on the current backend for good (copies already made stay)."""
    actor = require(info.context.actor, Action.MANAGE_PROVIDERS)
    found = await _get(info, id)
    return Migration.from_record(await steps.abort(info.context.store, found, actor_ref=actor.ref))


async def resume_migration(info: Info, id: strawberry.ID) -> Migration:
    """Out of a pause (after an automatic rollback): back to shadow reads at 0%."""
    actor = require(info.context.actor, Action.MANAGE_PROVIDERS)
    found = await _get(info, id)
    resumed = await steps.resume(info.context.store, found, actor_ref=actor.ref)
    if info.context.migration_monitor is not None:
        info.context.migration_monitor.resumed(resumed)
    if info.context.kick_migrations is not None:
        info.context.kick_migrations()
    return Migration.from_record(resumed)
