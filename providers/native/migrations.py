"""Migrations of a thing type between backends, and the id aliases they leave behind.

A migration row holds everything a restarted gateway needs to carry on: its state, the copy's
checkpoint (the source listing's cursor, and the event stream's position up to which the
source's writes were replayed), its counters, the rollout and the shadow reads' tallies. An
alias row maps a copied thing's old global id to its copy's, one row per (old id, target):
copying a thing again finds its row, so a resumed or repeated copy never makes a second copy.
A row is first written `pending` (no new id yet) before the copy is made, so a crash between
making the copy and recording it leaves a trace to adopt the copy by (see `gateway/migrations.py`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from providers.engine import Cond, Engine, Order, Row, Where
from providers.errors import ConflictError, NotFoundError
from providers.native.events import record_event
from providers.records import JSONObject, Kind, utcnow
from providers.refs import native_ref, new_local_id

MAX_FAILURES = 50  # copy failures kept on a migration (the newest)
MAX_MISMATCHES = 20  # recent shadow mismatches kept on a migration


class MigrationState(Enum):
    PLANNED = "planned"  # a dry run: counted and checked, nothing written
    COPYING = "copying"  # the copy runs (or waits to be resumed)
    SHADOW = "shadow"  # copied; reads served by the source, a sample repeated on the target
    ROLLOUT = "rollout"  # `rollout_percent` of actors read from the target
    PAUSED = "paused"  # rolled back on its own (or a copy that failed): for an owner to look at
    PROMOTED = "promoted"  # the target owns the type
    ABORTED = "aborted"  # back to the source for good

    @property
    def live(self) -> bool:
        """Still following the source's writes: copied things must not fall behind."""
        return self in (
            MigrationState.COPYING,
            MigrationState.SHADOW,
            MigrationState.ROLLOUT,
            MigrationState.PAUSED,
        )


@dataclass(frozen=True, slots=True)
class Migration:
    id: str
    org_id: str
    type: str
    source: str  # provider names ("native" for the store)
    target: str
    state: MigrationState
    dry_run: bool = False
    rollout_percent: int = 0
    sample_percent: int = 10  # of the source's reads repeated on the target while shadowing
    thresholds: JSONObject = field(default_factory=dict)
    # total, copied, updated, unchanged, failed, replayed
    progress: JSONObject = field(default_factory=dict)
    # after (the source listing's cursor), start_seq, replayed_seq, done (the copy's pass)
    checkpoint: JSONObject = field(default_factory=dict)
    failures: list[JSONObject] = field(default_factory=list)
    # reads, errors, compared, mismatches, latency; recent (the newest mismatches)
    shadow: JSONObject = field(default_factory=dict)
    paused_reason: str | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    created_by: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


def _migration(row: Row) -> Migration:
    return Migration(
        **{
            **row,
            "state": MigrationState(row["state"]),
            "dry_run": bool(row.get("dry_run")),
            "rollout_percent": int(row.get("rollout_percent") or 0),
            "sample_percent": int(row.get("sample_percent") or 0),
            "thresholds": row.get("thresholds") or {},
            "progress": row.get("progress") or {},
            "checkpoint": row.get("checkpoint") or {},
            "failures": row.get("failures") or [],
            "shadow": row.get("shadow") or {},
        }
    )


@dataclass(frozen=True, slots=True)
class Alias:
    old_ref: str
    new_ref: str | None  # None: pending, the copy may or may not have been made
    migration_id: str
    source_updated_at: str | None  # the source's version the copy was made from
    created_at: datetime


def alias_id(org_id: str, old_ref: str, target: str) -> str:
    return hashlib.sha256(f"{org_id}\0{old_ref}\0{target}".encode()).hexdigest()[:32]


class Migrations:
    """Example:
    migration = await store.migrations.create(org_id, type="blog_post", source="native",
                                              target="wordpress", actor_ref=me)
    await store.migrations.set_alias(migration, "thing.native.ab12", "thing.wordpress.7", v)
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- migrations ----------------------------------------------------------------------

    async def create(
        self,
        org_id: str,
        *,
        type: str,
        source: str,
        target: str,
        dry_run: bool,
        actor_ref: str | None,
        thresholds: JSONObject,
        sample_percent: int,
        start_seq: int,
    ) -> Migration:
        """A new migration of `type`; one that is not dry may not run beside another live one
        of the same type (CONFLICT)."""
        migration = Migration(
            id=new_local_id(),
            org_id=org_id,
            type=type,
            source=source,
            target=target,
            state=MigrationState.PLANNED if dry_run else MigrationState.COPYING,
            dry_run=dry_run,
            sample_percent=sample_percent,
            thresholds=thresholds,
            checkpoint={"start_seq": start_seq, "replayed_seq": start_seq},
            created_by=actor_ref,
        )
        async with self._engine.transaction() as tx:
            if not dry_run:
                where: Where = [Cond("org_id", "eq", org_id), Cond("type", "eq", type)]
                for row in await tx.find("migrations", where):
                    if MigrationState(row["state"]).live:
                        raise ConflictError(
                            f"{type} is already being migrated (migration {row['id']}): "
                            f"promote or abort it first",
                            field="type",
                            migration=row["id"],
                        )
            await tx.insert("migrations", _row(migration))
            await _audit(tx, migration, "started", actor_ref, {"dry_run": dry_run})
        return migration

    async def get(self, org_id: str, id: str) -> Migration:
        where: Where = [Cond("org_id", "eq", org_id), Cond("id", "eq", id)]
        rows = await self._engine.find("migrations", where, limit=1)
        if not rows:
            raise NotFoundError("no such migration in your organization", field="id")
        return _migration(rows[0])

    async def of_org(self, org_id: str) -> list[Migration]:
        """Every migration of the organization, newest first."""
        where: Where = [Cond("org_id", "eq", org_id)]
        rows = await self._engine.find(
            "migrations", where, order=Order("created_at", descending=True)
        )
        return [_migration(r) for r in rows]

    async def live(self, org_id: str | None = None) -> list[Migration]:
        """The migrations still following their source: of one organization, or of all (the
        gateway's runner)."""
        states = {s.value for s in MigrationState if s.live}
        where: Where = [Cond("state", "in", states)]
        if org_id is not None:
            where.insert(0, Cond("org_id", "eq", org_id))
        rows = await self._engine.find("migrations", where, order=Order("created_at"))
        return [_migration(r) for r in rows]

    async def copying(self, migration: Migration) -> bool:
        """Whether `migration` is still one whose copy runs (an owner may have aborted it)."""
        where: Where = [Cond("id", "eq", migration.id)]
        rows = await self._engine.find("migrations", where, limit=1)
        return bool(rows) and MigrationState(rows[0]["state"]).live

    async def planned(self) -> list[Migration]:
        """Dry runs, of every organization (the runner counts the unfinished ones)."""
        where: Where = [Cond("state", "eq", MigrationState.PLANNED.value)]
        return [_migration(r) for r in await self._engine.find("migrations", where)]

    async def save_progress(self, migration: Migration, **fields: Any) -> Migration:
        """Counters and checkpoint (no event: the copy writes these after every batch); the
        migration as it is now (an owner may have aborted it meanwhile)."""
        async with self._engine.transaction() as tx:
            rows = await tx.find("migrations", [Cond("id", "eq", migration.id)], limit=1)
            now = utcnow()
            values = {k: _value(v) for k, v in fields.items()}
            await tx.update("migrations", migration.id, values)
        current = _migration(rows[0]) if rows else migration
        # The copy's own fields as it wrote them; state and rollout as the owner left them.
        return replace(current, **fields, updated_at=now)

    async def transition(
        self,
        migration: Migration,
        step: str,
        *,
        actor_ref: str | None,
        detail: JSONObject | None = None,
        expect: frozenset[MigrationState] | None = None,
        **fields: Any,
    ) -> Migration:
        """Change state, rollout or thresholds, with its audit event (`settings_updated`), in one
        transaction; `expect`: the states it may be in now (read again under the transaction),
        else CONFLICT."""
        async with self._engine.transaction() as tx:
            rows = await tx.find("migrations", [Cond("id", "eq", migration.id)], limit=1)
            current = _migration(rows[0])
            if expect is not None and current.state not in expect:
                raise ConflictError(
                    f"the migration is {current.state.value}: not possible now ({step})",
                    field="id",
                    state=current.state.value,
                )
            changed = replace(current, **fields, updated_at=utcnow())
            values = {k: _value(getattr(changed, k)) for k in (*fields, "updated_at")}
            await tx.update("migrations", migration.id, values)
            await _audit(tx, changed, step, actor_ref, detail or {})
        return changed

    async def claim(
        self,
        migration: Migration,
        owner: str,
        seconds: float,
        gone: Callable[[str], bool] = lambda owner: False,
    ) -> bool:
        """Take (or extend) the right to copy `migration` for `seconds`: False while another
        process holds it (and is not known to be `gone`)."""
        now = utcnow()
        async with self._engine.transaction() as tx:
            rows = await tx.find("migrations", [Cond("id", "eq", migration.id)], limit=1)
            if not rows:
                return False
            holder, until = rows[0].get("lease_owner"), rows[0].get("lease_until")
            held = holder not in (None, owner) and until is not None and until > now
            if held and not gone(str(holder)):
                return False
            await tx.update(
                "migrations",
                migration.id,
                {"lease_owner": owner, "lease_until": now + timedelta(seconds=seconds)},
            )
        return True

    async def release(self, migration: Migration, owner: str) -> None:
        async with self._engine.transaction() as tx:
            rows = await tx.find("migrations", [Cond("id", "eq", migration.id)], limit=1)
            if rows and rows[0].get("lease_owner") == owner:
                await tx.update(
                    "migrations", migration.id, {"lease_owner": None, "lease_until": None}
                )

    async def add_shadow(self, id: str, tally: JSONObject) -> None:
        """Add a process's shadow tallies to the migration's (each replica adds its own)."""
        async with self._engine.transaction() as tx:
            rows = await tx.find("migrations", [Cond("id", "eq", id)], limit=1)
            if not rows:
                return
            shadow = dict(rows[0].get("shadow") or {})
            for key in ("reads", "errors", "compared", "mismatches", "skipped"):
                shadow[key] = int(shadow.get(key, 0)) + int(tally.get(key, 0))
            shadow["recent"] = [*shadow.get("recent", []), *tally.get("recent", [])][
                -MAX_MISMATCHES:
            ]
            await tx.update("migrations", id, {"shadow": shadow, "updated_at": utcnow()})

    async def promote(self, migration: Migration, *, actor_ref: str | None) -> Migration:
        """Route the type to the target: the source's config stops routing it, the target's
        starts (the native store needs no config); the migration is promoted. One
        transaction, with its event."""
        async with self._engine.transaction() as tx:
            rows = await tx.find("migrations", [Cond("id", "eq", migration.id)], limit=1)
            current = _migration(rows[0])
            if current.state not in (MigrationState.SHADOW, MigrationState.ROLLOUT):
                raise ConflictError(
                    f"the migration is {current.state.value}: only a copied migration, "
                    f"shadowing or rolling out, can be promoted",
                    field="id",
                    state=current.state.value,
                )
            if current.failures:
                raise ConflictError(
                    f"{len(current.failures)} things could not be copied (see `failures`): "
                    f"correct them (a correction is copied on) or abort",
                    field="id",
                    failures=len(current.failures),
                )
            where: Where = [Cond("org_id", "eq", migration.org_id), Cond("status", "eq", "active")]
            now = utcnow()
            for config in await tx.find("provider_configs", where):
                routes = set(config["routes"] or [])
                if config["provider"] == migration.source:
                    routes.discard(migration.type)
                elif config["provider"] == migration.target:
                    routes.add(migration.type)
                else:
                    continue
                await tx.update(
                    "provider_configs", config["id"], {"routes": sorted(routes), "updated_at": now}
                )
            changed = replace(
                current, state=MigrationState.PROMOTED, rollout_percent=100, updated_at=now
            )
            await tx.update(
                "migrations",
                migration.id,
                {"state": changed.state.value, "rollout_percent": 100, "updated_at": now},
            )
            await _audit(tx, changed, "promoted", actor_ref, {})
        return changed

    # -- aliases -------------------------------------------------------------------------

    async def aliases(
        self, org_id: str, old_refs: Sequence[str], *, target: str
    ) -> dict[str, Alias]:
        """The aliases of `old_refs` towards `target`, by old reference."""
        ids = {alias_id(org_id, r, target) for r in old_refs}
        rows = await self._engine.find("id_aliases", [Cond("id", "in", ids)])
        return {r["old_ref"]: _alias(r) for r in rows if r["org_id"] == org_id}

    async def forward(self, org_id: str, old_refs: Sequence[str]) -> dict[str, list[Alias]]:
        """Every copy recorded of each of `old_refs` (any target)."""
        where: Where = [Cond("org_id", "eq", org_id), Cond("old_ref", "in", set(old_refs))]
        found: dict[str, list[Alias]] = {r: [] for r in old_refs}
        for row in await self._engine.find("id_aliases", where):
            if row.get("new_ref"):
                found[row["old_ref"]].append(_alias(row))
        return found

    async def backward(self, org_id: str, new_refs: Sequence[str]) -> dict[str, list[Alias]]:
        """The things each of `new_refs` is a copy of."""
        where: Where = [Cond("org_id", "eq", org_id), Cond("new_ref", "in", set(new_refs))]
        found: dict[str, list[Alias]] = {r: [] for r in new_refs}
        for row in await self._engine.find("id_aliases", where):
            found[row["new_ref"]].append(_alias(row))
        return found

    async def pending(self, migration: Migration) -> list[Alias]:
        where: Where = [
            Cond("org_id", "eq", migration.org_id),
            Cond("migration_id", "eq", migration.id),
            Cond("new_ref", "eq", None),
        ]
        return [_alias(r) for r in await self._engine.find("id_aliases", where)]

    async def mark_pending(self, migration: Migration, old_ref: str) -> None:
        """Before a copy is made: a crash after it leaves this row to find the copy by."""
        id = alias_id(migration.org_id, old_ref, migration.target)
        now = utcnow()
        async with self._engine.transaction() as tx:
            if await tx.find("id_aliases", [Cond("id", "eq", id)], limit=1):
                await tx.update("id_aliases", id, {"migration_id": migration.id, "updated_at": now})
                return
            await tx.insert(
                "id_aliases",
                {
                    "id": id,
                    "org_id": migration.org_id,
                    "old_ref": old_ref,
                    "new_ref": None,
                    "migration_id": migration.id,
                    "source_updated_at": None,
                    "created_at": now,
                    "updated_at": now,
                },
            )

    async def set_alias(
        self, migration: Migration, old_ref: str, new_ref: str, source_updated_at: str
    ) -> None:
        id = alias_id(migration.org_id, old_ref, migration.target)
        now = utcnow()
        values = {
            "new_ref": new_ref,
            "migration_id": migration.id,
            "source_updated_at": source_updated_at,
            "updated_at": now,
        }
        async with self._engine.transaction() as tx:
            if await tx.find("id_aliases", [Cond("id", "eq", id)], limit=1):
                await tx.update("id_aliases", id, values)
            else:
                await tx.insert(
                    "id_aliases",
                    {"id": id, "org_id": migration.org_id, "old_ref": old_ref, "created_at": now}
                    | values,
                )

    async def forget_alias(self, migration: Migration, old_ref: str) -> None:
        """A pending row whose copy was never made."""
        async with self._engine.transaction() as tx:
            await tx.delete("id_aliases", alias_id(migration.org_id, old_ref, migration.target))


def _alias(row: Row) -> Alias:
    return Alias(
        old_ref=row["old_ref"],
        new_ref=row.get("new_ref"),
        migration_id=row["migration_id"],
        source_updated_at=row.get("source_updated_at"),
        created_at=row["created_at"],
    )


def _value(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bool):
        return int(value)
    return value


def _row(migration: Migration) -> Row:
    return {f: _value(getattr(migration, f)) for f in Migration.__dataclass_fields__}


async def _audit(
    tx: Any, migration: Migration, step: str, actor_ref: str | None, detail: JSONObject
) -> None:
    """Every step of a migration is a `settings_updated` event of its organization (the
    gateway's route caches follow those), never holding a credential."""
    await record_event(
        tx,
        migration.org_id,
        "settings_updated",
        actor_ref=actor_ref,
        target_ref=native_ref(Kind.ORGANIZATION, migration.org_id),
        metadata={
            "migration": migration.id,
            "step": step,
            "type": migration.type,
            "from": migration.source,
            "to": migration.target,
            "state": migration.state.value,
            "rollout_percent": migration.rollout_percent,
            **detail,
        },
    )
