"""Copying a migration's things from its source backend to its target, and keeping the copies
up to date with the source's writes until cut-over.

    run      one pass over the source's listing from the checkpoint (saved after every batch),
             then the replay; a restarted copy carries on from its checkpoint
    replay   the source's writes since the checkpoint's stream position (the `entity_*`
             events of its things of the type), each thing copied again
    sync     one thing: made on the target (status mapped onto the target's lifecycle), or its
             copy brought up to date; its alias recorded

Idempotent: a thing whose alias holds the version it was copied from is left alone, and a copy
is made only after a `pending` alias is written, so a crash between the two is repaired by
adopting the copy (the target's newest thing of the type with that name) rather than making
another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from providers.errors import ConflictError, OneError
from providers.migration_compare import map_status, same_status
from providers.native import NativeStore
from providers.native.migrations import MAX_FAILURES, Migration
from providers.provider import ListQuery, Provider
from providers.records import Kind, Thing, ThingStatus
from providers.refs import Ref
from providers.validation import json_object

log = logging.getLogger("one.migrations")

BATCH = 50
REPLAYED_TYPES = frozenset({"entity_created", "entity_updated", "entity_archived"})


@dataclass(frozen=True, slots=True)
class Outcome:
    result: str  # "copied" | "updated" | "unchanged" | "failed" | "would_copy"
    new_ref: str | None = None


class CopyStopped(Exception):
    """The migration left the states a copy runs in (aborted, promoted) meanwhile."""


class Copier:
    """Example:
    copier = Copier(store, migration, source=wordpress, target=native)
    migration = await copier.run()  # a pass from the checkpoint, then the replay
    """

    def __init__(
        self,
        store: NativeStore,
        migration: Migration,
        *,
        source: Provider,
        target: Provider,
        on_progress: Callable[[Migration], None] | None = None,
        batch: int = BATCH,
        lock: Callable[[str], asyncio.Lock] | None = None,
        renew: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._store = store
        self.migration = migration
        self._source = source
        self._target = target
        self._on_progress = on_progress
        self._batch = batch
        self._lock = lock or (lambda key: asyncio.Lock())
        self._renew = renew  # the lease on the copy, extended at every checkpoint

    async def run(self) -> Migration:
        """The copy's pass, from its checkpoint (once: a finished pass is not made again),
        then the replay of the source's writes made meanwhile."""
        if not self.migration.checkpoint.get("done"):
            await self._pass()
        if not self.migration.dry_run:
            await self.replay()
        return self.migration

    async def _pass(self) -> None:
        migration = self.migration
        if migration.progress.get("total") is None:
            total = (await self._source.page(ListQuery(type=migration.type, first=0))).total_count
            await self._save(progress={**migration.progress, "total": total})
        if not migration.dry_run:
            for alias in await self._store.migrations.pending(self.migration):
                await self._adopt(alias.old_ref, alias.created_at.isoformat())
        after = self.migration.checkpoint.get("after")
        while True:
            page = await self._source.page(
                ListQuery(type=migration.type, first=self._batch, after=after)
            )
            counts = dict(self.migration.progress)
            for thing in page.items:
                if not migration.dry_run and not await self._store.migrations.copying(migration):
                    raise CopyStopped("no longer copying")  # aborted meanwhile
                outcome = await self.sync(thing)
                counts[outcome.result] = int(counts.get(outcome.result, 0)) + 1
            after = page.cursors[-1] if page.cursors else after
            checkpoint = {**self.migration.checkpoint, "after": after}
            if not page.has_next_page:
                checkpoint["done"] = True
            await self._save(progress=counts, checkpoint=checkpoint)
            if not page.has_next_page:
                return
            if not (self.migration.state.live or self.migration.dry_run):
                raise CopyStopped(self.migration.state.value)  # aborted meanwhile

    async def replay(self) -> int:
        """Copy again each thing of the type the source wrote since the checkpoint's place in
        the organization's event stream; returns how many events were taken in."""
        migration = self.migration
        position = int(migration.checkpoint.get("replayed_seq") or 0)
        taken = 0
        while True:
            events = await self._store.events.in_stream(migration.org_id, after=position)
            if not events:
                break
            refs: dict[str, None] = {}
            for event in events:
                if event.type not in REPLAYED_TYPES or not event.target_ref:
                    continue
                if event.metadata.get("thing_type") != migration.type:
                    continue
                ref = Ref.parse(event.target_ref)
                if ref.provider == migration.source:
                    refs[ref.local_id] = None
            for found in await self._source.get_many(list(refs)):
                if found is not None:
                    await self.sync(found)
                    taken += 1
            position = events[-1].seq or position
            progress = {
                **self.migration.progress,
                "replayed": int(self.migration.progress.get("replayed", 0)) + len(refs),
            }
            await self._save(
                progress=progress,
                checkpoint={**self.migration.checkpoint, "replayed_seq": position},
            )
        return taken

    async def sync(self, thing: Thing) -> Outcome:
        """Bring `thing`'s copy on the target up to date (make it when there is none)."""
        old_ref = str(Ref(Kind.THING, self.migration.source, thing.id))
        async with self._lock(f"{self.migration.id}:{old_ref}"):
            return await self._sync(thing, old_ref)

    async def _sync(self, thing: Thing, old_ref: str) -> Outcome:
        migration = self.migration
        version = thing.updated_at.isoformat()
        try:
            if migration.dry_run:
                return await self._check(thing)
            alias = (
                await self._store.migrations.aliases(
                    migration.org_id, [old_ref], target=migration.target
                )
            ).get(old_ref)
            if alias is not None and not alias.new_ref:
                await self._adopt(old_ref, alias.created_at.isoformat())
                alias = (
                    await self._store.migrations.aliases(
                        migration.org_id, [old_ref], target=migration.target
                    )
                ).get(old_ref)
            if alias is not None and alias.new_ref:
                if alias.source_updated_at == version:
                    return Outcome("unchanged", alias.new_ref)
                copy = (await self._target.get_many([Ref.parse(alias.new_ref).local_id]))[0]
                if copy is not None:
                    await self._update(copy, thing)
                    await self._store.migrations.set_alias(
                        migration, old_ref, alias.new_ref, version
                    )
                    return await self._succeeded(old_ref, Outcome("updated", alias.new_ref))
            original = await self._original(old_ref)
            if original is not None:  # moving back: the thing this one was copied from
                await self._update(original, thing)
                new_ref = str(Ref(Kind.THING, self._target.name, original.id))
                await self._store.migrations.set_alias(migration, old_ref, new_ref, version)
                return await self._succeeded(old_ref, Outcome("updated", new_ref))
            await self._store.migrations.mark_pending(migration, old_ref)
            made = await self._create(thing)
            new_ref = str(Ref(Kind.THING, self._target.name, made.id))
            await self._store.migrations.set_alias(migration, old_ref, new_ref, version)
            return await self._succeeded(old_ref, Outcome("copied", new_ref))
        except OneError as exc:
            await self._failed(thing, exc)
            return Outcome("failed")

    # -- steps ---------------------------------------------------------------------------

    async def _original(self, ref: str) -> Thing | None:
        """The thing on the target that `ref` is itself a copy of, if it is one and that
        thing is still there (a type moved back: the original is brought up to date, no
        second copy is made beside it)."""
        prefix = f"thing.{self._target.name}."
        for alias in (await self._store.migrations.backward(self.migration.org_id, [ref]))[ref]:
            if alias.new_ref and alias.old_ref.startswith(prefix):
                found = (await self._target.get_many([Ref.parse(alias.old_ref).local_id]))[0]
                if found is not None:
                    return found
        return None

    async def _succeeded(self, ref: str, outcome: Outcome) -> Outcome:
        """A thing copied now that failed before is no longer a failure."""
        if any(f.get("id") == ref for f in self.migration.failures):
            await self._save(failures=[f for f in self.migration.failures if f.get("id") != ref])
        return outcome

    async def _check(self, thing: Thing) -> Outcome:
        """A dry run's look at one thing: refused properties and statuses are its failures."""
        json_object(thing.properties, "properties")
        fields = getattr(self._target, "property_map", None)
        if fields is not None:
            fields.fields(thing.properties)
        return Outcome("would_copy")

    async def _create(self, thing: Thing) -> Thing:
        status = map_status(thing.status, self._target.capabilities.statuses)
        first: ThingStatus = ThingStatus.DRAFT if status is ThingStatus.ARCHIVED else status
        first = map_status(first, self._target.capabilities.statuses)
        made = await self._target.create(
            type=thing.type, name=thing.name, status=first, properties=dict(thing.properties)
        )
        if made.status is not status:
            made = await self._target.change_status(made.id, status)
        return made

    async def _update(self, copy: Thing, thing: Thing) -> None:
        status = map_status(thing.status, self._target.capabilities.statuses)
        if copy.status is ThingStatus.ARCHIVED:
            if status is not ThingStatus.ARCHIVED:
                raise _diverged("its copy is archived, the original is not")
            return  # archived is final: nothing more to copy
        await self._target.update(
            copy.id, name=thing.name, properties=dict(thing.properties), merge=False
        )
        steps = (self._source.capabilities.statuses, self._target.capabilities.statuses)
        if not same_status(thing.status, copy.status, *steps):
            await self._target.change_status(copy.id, status)

    async def _adopt(self, old_ref: str, since: str) -> None:
        """A copy begun before a crash: find it (the target's newest thing of the type with
        the original's name, changed since the copy began) and record it, or forget the
        pending alias so the thing is copied again."""
        migration = self.migration
        original = (await self._source.get_many([Ref.parse(old_ref).local_id]))[0]
        if original is not None:
            started = datetime.fromisoformat(since) - timedelta(seconds=5)
            query = ListQuery(type=migration.type, modified_after=started, first=50)
            page = await self._target.page(query)
            taken = await self._store.migrations.backward(
                migration.org_id,
                [str(Ref(Kind.THING, self._target.name, t.id)) for t in page.items],
            )
            for candidate in page.items:
                ref = str(Ref(Kind.THING, self._target.name, candidate.id))
                if candidate.name == original.name and not taken.get(ref):
                    # The version is left unknown: the next sync brings the copy up to date.
                    await self._store.migrations.set_alias(migration, old_ref, ref, "")
                    return
        await self._store.migrations.forget_alias(migration, old_ref)

    async def _failed(self, thing: Thing, error: OneError) -> None:
        failure: dict[str, Any] = {
            "id": str(Ref(Kind.THING, self.migration.source, thing.id)),
            "name": thing.name[:200],
            "code": error.code,
            "message": error.message[:300],
        }
        log.warning("migration %s: %s not copied: %s", self.migration.id, failure["id"], error)
        failures = [f for f in self.migration.failures if f.get("id") != failure["id"]]
        await self._save(failures=[*failures, failure][-MAX_FAILURES:])

    async def _save(self, **fields: Any) -> None:
        self.migration = await self._store.migrations.save_progress(self.migration, **fields)
        if self._renew is not None:
            await self._renew()
        if self._on_progress is not None:
            self._on_progress(self.migration)


def _diverged(reason: str) -> OneError:
    return ConflictError(f"cannot bring the copy up to date: {reason}")
