"""Reads of a type while it moves to another backend: which backend serves an actor, old ids
resolved to their copies, shadow reads compared in the background, and the rollback when the
new backend misbehaves.

    MigrationMonitor   one per process: each migration's sliding window of reads of the new
                       backend (`providers/migration_health.py`), the shadow tallies it adds
                       to the migration's row, and the rollback
    MigrationView      one per request: the organization's migrations, for its actor

Who reads the new backend: an actor whose bucket (a hash of the migration and the actor, 0-99)
is below `rollout_percent`, so the same person always sees the same backend and raising the
percentage only adds people. Writes always go to the backend the type is routed to (the
source until promotion) and are copied on (`providers/migration_copy.py`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiodataloader import DataLoader

from providers.errors import OneError, ProviderError
from providers.migration_compare import FieldDiff, compare
from providers.migration_copy import Copier
from providers.migration_health import Thresholds, Window, WindowStats
from providers.native import NativeStore
from providers.native.migrations import (
    MAX_MISMATCHES,
    Alias,
    Migration,
    MigrationState,
)
from providers.provider import ListQuery, Provider
from providers.records import Kind, Page, Thing, ThingStatus, utcnow
from providers.refs import Ref, native_ref

log = logging.getLogger("one.migrations")

SHADOW_BATCH = 20  # copies read back in one request of a shadow read (a page's worth)
SHADOW_DELAY = 0.005  # seconds a shadow read waits before it starts
MAX_SHADOW_TASKS = 200  # shadow reads in flight in a process; beyond, a sample is skipped
READS_TARGET = frozenset({MigrationState.ROLLOUT})
SHADOWED = frozenset({MigrationState.SHADOW, MigrationState.ROLLOUT})


def thresholds_of(migration: Migration) -> Thresholds:
    return Thresholds(**migration.thresholds)


def bucket(migration_id: str, actor_key: str) -> int:
    """0-99, the same for the same actor and migration."""
    digest = hashlib.sha256(f"{migration_id}\0{actor_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


@dataclass
class _Tally:
    org_id: str
    reads: int = 0
    errors: int = 0
    compared: int = 0
    mismatches: int = 0
    skipped: int = 0
    recent: list[dict[str, Any]] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.reads or self.errors or self.compared or self.skipped)


Rollback = Callable[[Migration, str], Awaitable[None]]


class MigrationMonitor:
    """Example:
    monitor = MigrationMonitor(store, rollback=roll_back)
    monitor.observe(migration, ok=True, latency_ms=12.0, diffs=[])
    await monitor.drain()  # the shadow reads in flight, then the tallies written
    """

    def __init__(
        self,
        store: NativeStore,
        *,
        rollback: Rollback,
        flush_seconds: float = 2.0,
        sample: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._rollback = rollback
        self._flush_seconds = flush_seconds
        self._sample = sample
        self._windows: dict[str, tuple[Thresholds, Window]] = {}
        self._tallies: dict[str, _Tally] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._flushing: asyncio.Task[None] | None = None
        self._rolling_back: set[str] = set()
        # Totals since start, for /metrics: (migration, outcome) -> count.
        self.counts: dict[tuple[str, str], int] = {}
        self.rollbacks = 0
        self.progress: dict[str, dict[str, Any]] = {}  # each copy's counts, as last saved here
        self._locks: dict[str, asyncio.Lock] = {}
        self._flush_lock = asyncio.Lock()
        self._halted: dict[str, datetime] = {}  # migration -> when this process rolled it back

    def lock(self, key: str) -> asyncio.Lock:
        """One copy of a thing at a time in this process (a write's and the replay's)."""
        found = self._locks.get(key)
        if found is None:
            if len(self._locks) > 10_000:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            found = self._locks[key] = asyncio.Lock()
        return found

    def windows(self) -> list[tuple[str, WindowStats]]:
        return [(id, window.stats()) for id, (_, window) in sorted(self._windows.items())]

    def copied(self, migration: Migration) -> None:
        """A copy's counts, as it saved them (for /metrics)."""
        self.progress[migration.id] = {**migration.progress, "failed": len(migration.failures)}

    def sampled(self, migration: Migration) -> bool:
        return self._sample() * 100 < migration.sample_percent

    def window(self, migration: Migration) -> Window:
        thresholds = thresholds_of(migration)
        held = self._windows.get(migration.id)
        if held is None or held[0] != thresholds:
            held = (thresholds, Window(thresholds))
            self._windows[migration.id] = held
        return held[1]

    def observe(
        self,
        migration: Migration,
        *,
        ok: bool,
        latency_ms: float,
        compared: Sequence[tuple[str | None, list[FieldDiff]]] | None = None,
        shadow: bool = False,
    ) -> None:
        """One request to the migration's new backend: a read served from it (rollout) or a
        shadow read, with each thing it compared (the thing's old id, its differences). The
        window counts requests, so a page of twenty is one read, failed or not."""
        mismatched = [(ref, diffs) for ref, diffs in compared or () if diffs]
        window = self.window(migration)
        window.observe(
            ok=ok, latency_ms=latency_ms, mismatch=None if compared is None else bool(mismatched)
        )
        tally = self._tallies.setdefault(migration.id, _Tally(migration.org_id))
        tally.reads += 1
        kind = "shadow" if shadow else "served"
        if not ok:
            tally.errors += 1
            self._count(migration, f"{kind}_error")
        elif compared is None:
            self._count(migration, f"{kind}_ok")
        else:
            tally.compared += len(compared)
            tally.mismatches += len(mismatched)
            self._count(migration, f"{kind}_match", len(compared) - len(mismatched))
            self._count(migration, f"{kind}_mismatch", len(mismatched))
            at = utcnow().isoformat()
            for ref, diffs in mismatched:
                fields = [
                    {"path": d.path, "current": d.current, "candidate": d.candidate}
                    for d in diffs[:20]
                ]
                tally.recent.append({"id": ref, "at": at, "fields": fields})
            del tally.recent[:-MAX_MISMATCHES]
        reason = window.breach()
        if reason is not None and migration.id not in self._rolling_back:
            # Off the new backend in this process from the next read on; the store's pause
            # (and the other replicas) follow as soon as it commits.
            self._halted[migration.id] = utcnow()
            self._rolling_back.add(migration.id)
            self.spawn(self._roll_back(migration, reason))
        self._schedule_flush()

    def _count(self, migration: Migration, outcome: str, n: int = 1) -> None:
        if n:
            key = (migration.id, outcome)
            self.counts[key] = self.counts.get(key, 0) + n

    def skipped(self, migration: Migration) -> None:
        self._tallies.setdefault(migration.id, _Tally(migration.org_id)).skipped += 1

    async def _roll_back(self, migration: Migration, reason: str) -> None:
        try:
            await self._rollback(migration, reason)
            self.rollbacks += 1
            self.window(migration).reset()
        finally:
            self._rolling_back.discard(migration.id)

    def resumed(self, migration: Migration) -> None:
        """An owner took the migration out of its pause: a fresh window."""
        self.window(migration).reset()
        self._halted.pop(migration.id, None)

    def halted(self, migration: Migration) -> bool:
        """Whether this process rolled `migration` back after its last change."""
        at = self._halted.get(migration.id)
        return at is not None and migration.updated_at <= at

    def spawn(self, work: Coroutine[Any, Any, None]) -> bool:
        """Run `work` in the background; False (and not run) when too much already is."""
        if len(self._tasks) >= MAX_SHADOW_TASKS:
            work.close()
            return False
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return True

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("migration background work failed", exc_info=task.exception())

    def _schedule_flush(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._flush_seconds)
        await self.flush()

    async def flush(self) -> None:
        """Add the tallies gathered here to the migrations' rows (replicas add theirs); one
        flush at a time, so a caller that flushes reads everything written before it."""
        async with self._flush_lock:
            tallies, self._tallies = self._tallies, {}
            await self._write(tallies)

    async def _write(self, tallies: dict[str, _Tally]) -> None:
        for id, tally in tallies.items():
            if tally.empty():
                continue
            try:
                await self._store.migrations.add_shadow(id, _tally_json(tally))
                if tally.mismatches:
                    await self._report(id, tally)
            except Exception:
                log.exception("migration %s: shadow tallies not saved", id)

    async def _report(self, id: str, tally: _Tally) -> None:
        """Mismatches found since the last flush, as one event of the organization (a
        flush is at most every `flush_seconds`: a diverging backend cannot flood the log)."""
        paths = sorted({f["path"] for r in tally.recent for f in r["fields"]})
        await self._store.events.append(
            tally.org_id,
            "communication_event",
            actor_ref=None,
            target_ref=native_ref(Kind.ORGANIZATION, tally.org_id),
            metadata={
                "migration": id,
                "kind": "shadow_mismatches",
                "mismatches": tally.mismatches,
                "compared": tally.compared,
                "paths": paths,
                "things": sorted({str(r["id"]) for r in tally.recent if r.get("id")})[:20],
            },
        )

    async def drain(self) -> None:
        """Wait for the background reads, then write the tallies (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.flush()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._flushing is not None:
            self._flushing.cancel()
        await self.flush()


def _tally_json(tally: _Tally) -> dict[str, Any]:
    return {
        "reads": tally.reads,
        "errors": tally.errors,
        "compared": tally.compared,
        "mismatches": tally.mismatches,
        "skipped": tally.skipped,
        "recent": tally.recent,
    }


Instances = Callable[[str], Awaitable[Provider]]  # a provider by name, for this organization


class MigrationView:
    """An organization's migrations for one request's actor.

    Example:
        view = MigrationView(store, monitor, routes.named, org_id, actor_key, migrations)
        migration, to_target = await view.reading("blog_post")
    """

    def __init__(
        self,
        store: NativeStore,
        monitor: MigrationMonitor,
        named: Instances,
        org_id: str,
        actor_key: str,
        migrations: Callable[[], Awaitable[list[Migration]]],
        configured: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self._store = store
        self._configured = configured
        self.monitor = monitor
        self._named = named
        self._org_id = org_id
        self._actor_key = actor_key
        self._read = migrations
        self._migrations: asyncio.Task[list[Migration]] | None = None
        self._forward: DataLoader[str, list[Alias]] | None = None
        self._backward: DataLoader[str, list[Alias]] | None = None

    async def all(self) -> list[Migration]:
        """The organization's migrations that route anything: neither dry runs nor aborted."""
        if self._migrations is None:
            self._migrations = asyncio.ensure_future(self._relevant())
        return await self._migrations

    async def _relevant(self) -> list[Migration]:
        # Every migration has a configured provider on one side, and configurations are
        # never deleted: an organization without one (most) is spared the read.
        if self._configured is not None and not await self._configured():
            return []
        return [
            m for m in await self._read() if not m.dry_run and m.state is not MigrationState.ABORTED
        ]

    def to_target(self, migration: Migration) -> bool:
        """Whether this actor reads `migration`'s type from its new backend."""
        if migration.state is MigrationState.PROMOTED:
            return True
        if migration.state not in READS_TARGET or self.monitor.halted(migration):
            return False
        return bucket(migration.id, self._actor_key) < migration.rollout_percent

    async def reading(self, type: str | None) -> Migration | None:
        """The migration of `type` whose reads are shadowed or rolled out now, if any."""
        if type is None:
            return None
        for migration in await self.all():
            if migration.type == type and migration.state in SHADOWED:
                return migration
        return None

    # -- ids -----------------------------------------------------------------------------

    async def resolve(self, ref: Ref) -> tuple[Ref, Migration | None]:
        """The reference this actor reads `ref` as: the copy's, when the thing was copied by
        a promoted migration or by one whose rollout includes the actor, followed along
        migrations; and that rollout's migration, if the last step was one. A type moved
        there and back comes round to where it started: the newest migration's step wins."""
        listed = await self.all()
        if not listed:
            return ref, None
        migrations = {m.id: m for m in listed}
        sources = {m.source for m in listed if self.to_target(m)}
        hops: list[tuple[Ref, Migration]] = []  # (where a step led, by which migration)
        seen = {str(ref): 0}
        current = ref
        while current.provider in sources:
            step = None
            for alias in await self._forward_loader().load(str(current)):
                migration = migrations.get(alias.migration_id)
                if migration is None or not self.to_target(migration) or not alias.new_ref:
                    continue
                if step is None or migration.updated_at > step[1].updated_at:
                    step = (Ref.parse(alias.new_ref), migration)
            if step is None:
                break
            hops.append(step)
            if str(step[0]) in seen:  # a cycle: its newest step says where the thing is now
                cycle = hops[seen[str(step[0])] :]
                newest = max(cycle, key=lambda hop: hop[1].updated_at)
                hops = hops[: seen[str(step[0])]] + cycle[: cycle.index(newest) + 1]
                break
            seen[str(step[0])] = len(hops)
            current = step[0]
        if not hops:
            return ref, None
        last, through = hops[-1]
        return last, None if through.state is MigrationState.PROMOTED else through

    async def writable(self, ref: Ref) -> Ref:
        """Where a write of `ref` goes: to the original of a copy whose migration is not
        promoted (writes reach the new backend through the copy, never the other way)."""
        live = {m.id: m for m in await self.all() if m.state.live}
        if not any(m.target == ref.provider for m in live.values()):
            return ref
        for alias in await self._backward_loader().load(str(ref)):
            if alias.migration_id in live:
                return Ref.parse(alias.old_ref)
        return ref

    async def formers_of(self, refs: list[str]) -> dict[str, list[str]]:
        """For each of `refs`, the references its thing had before it was copied (its
        connections and events may name those); nothing is read unless a migration went to
        one of their backends."""
        targets = {f"thing.{m.target}." for m in await self.all()}
        if not any(r.startswith(t) for r in refs for t in targets):
            return {}

        async def of(ref: str) -> list[str]:
            olds: list[str] = []
            frontier = [ref]
            while frontier and len(olds) < 16:
                groups = await self._backward_loader().load_many(frontier)
                frontier = [
                    a.old_ref
                    for group in groups
                    for a in group
                    if a.old_ref not in olds and a.old_ref != ref
                ]
                olds.extend(frontier)
            return olds

        chosen = [r for r in refs if any(r.startswith(t) for t in targets)]
        olds = await asyncio.gather(*map(of, chosen))
        return {r: o for r, o in zip(chosen, olds, strict=True) if o}

    def _forward_loader(self) -> DataLoader[str, list[Alias]]:
        if self._forward is None:

            async def fetch(refs: list[str]) -> list[list[Alias]]:
                found = await self._store.migrations.forward(self._org_id, refs)
                return [found[r] for r in refs]

            self._forward = DataLoader(fetch)
        return self._forward

    def _backward_loader(self) -> DataLoader[str, list[Alias]]:
        if self._backward is None:

            async def fetch(refs: list[str]) -> list[list[Alias]]:
                found = await self._store.migrations.backward(self._org_id, refs)
                return [[a for a in found[r] if a.new_ref] for r in refs]

            self._backward = DataLoader(fetch)
        return self._backward

    async def written(self, provider: Provider, thing: Thing) -> None:
        """A write the source accepted: copied on now, so an actor reading the new backend
        reads it back (the runner's replay of the event stream is what guarantees it)."""
        for migration in await self.all():
            if (
                migration.state in SHADOWED  # copying: the pass takes it; paused: the replay
                and migration.type == thing.type
                and migration.source == provider.name
                and migration.checkpoint.get("done")
            ):
                copier = Copier(
                    self._store,
                    migration,
                    source=provider,
                    target=await self._named(migration.target),
                    lock=self.monitor.lock,
                )
                await copier.sync(thing)

    # -- reads of the new backend --------------------------------------------------------

    async def serve_page(self, migration: Migration, query: ListQuery) -> Page[Thing]:
        """A page from the new backend for an actor in the rollout, timed into its window."""
        target = await self._named(migration.target)
        started = time.perf_counter()
        try:
            page = await target.page(query)
        except ProviderError:  # the backend's fault; a client's bad cursor or input is not
            self.monitor.observe(migration, ok=False, latency_ms=_ms(started))
            raise
        self.monitor.observe(migration, ok=True, latency_ms=_ms(started))
        return page

    async def serve_get(self, migration: Migration, load: Awaitable[Thing | None]) -> Thing | None:
        started = time.perf_counter()
        try:
            found = await load
        except ProviderError:
            self.monitor.observe(migration, ok=False, latency_ms=_ms(started))
            raise
        self.monitor.observe(migration, ok=True, latency_ms=_ms(started))
        return found

    def shadow_things(self, migration: Migration, things: Sequence[Thing]) -> None:
        """Read the copies of `things` (served by the source) from the new backend in the
        background, and compare: never delays the answer."""
        if not things or not self.monitor.sampled(migration):
            return
        work = self._shadow(migration, list(things))
        if not self.monitor.spawn(work):
            self.monitor.skipped(migration)

    async def _shadow(self, migration: Migration, things: list[Thing]) -> None:
        await asyncio.sleep(SHADOW_DELAY)  # the answer that sampled it goes out first
        old_refs = [str(Ref(Kind.THING, migration.source, t.id)) for t in things]
        aliases = await self._store.migrations.aliases(
            self._org_id, old_refs, target=migration.target
        )
        pairs = [
            (thing, Ref.parse(a.new_ref))
            for thing, old in zip(things, old_refs, strict=True)
            if (a := aliases.get(old)) is not None and a.new_ref
        ]
        if not pairs:
            return
        target = await self._named(migration.target)
        steps = (await self._named(migration.source)).capabilities.statuses
        # A few at a time, yielding between steps: the served reads share this event loop,
        # and one parse and comparison of twenty bodies is a burst they would wait behind.
        for start in range(0, len(pairs), SHADOW_BATCH):
            await self._shadow_batch(migration, steps, target, pairs[start : start + SHADOW_BATCH])

    async def _shadow_batch(
        self,
        migration: Migration,
        source_steps: frozenset[ThingStatus],
        target: Provider,
        pairs: list[tuple[Thing, Ref]],
    ) -> None:
        started = time.perf_counter()
        try:
            copies = await target.get_many([new.local_id for _, new in pairs], detail=True)
        except OneError:
            self.monitor.observe(migration, ok=False, latency_ms=_ms(started), shadow=True)
            return
        latency = _ms(started)
        compared: list[tuple[str | None, list[FieldDiff]]] = []
        for (thing, new), copy in zip(pairs, copies, strict=True):
            await asyncio.sleep(0)
            if copy is None:
                diffs = [FieldDiff("id", str(new), None)]
            else:
                diffs = compare(
                    thing,
                    copy,
                    candidate_statuses=target.capabilities.statuses,
                    current_statuses=source_steps,
                )
            compared.append((str(Ref(Kind.THING, migration.source, thing.id)), diffs))
        self.monitor.observe(migration, ok=True, latency_ms=latency, compared=compared, shadow=True)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
