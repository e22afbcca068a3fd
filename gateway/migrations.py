"""The migration runner: copies what `startMigration` asked for and keeps copies up to date.

Every `ONE_MIGRATION_POLL_SECONDS` (and at once when a migration starts here), for each
migration still following its source: a copy not finished is carried on from its checkpoint
(after a restart too) and, once done, the migration moves to `shadow`; a dry run is counted;
the source's writes since the last replay are copied on. A process holds a lease on the
migration while it copies (`migrations.lease_owner`), so two replicas, or a replica and
`one-gateway migrate`, never copy the same migration at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable

from providers.errors import OneError
from providers.migrating import MigrationMonitor
from providers.migration_copy import Copier, CopyStopped
from providers.native import NativeStore
from providers.native.migrations import Migration, MigrationState
from providers.registry import ProviderPool
from resolvers.router import Router

log = logging.getLogger("one.migrations")

LEASE_SECONDS = 60.0


def lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def gone(owner: str) -> bool:
    """Whether the process holding a lease is known to have died: one of this host's."""
    host, _, pid = owner.removeprefix("cli:").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


async def copier_for(
    store: NativeStore,
    pool: ProviderPool,
    migration: Migration,
    *,
    monitor: MigrationMonitor | None = None,
    on_progress: Callable[[Migration], None] | None = None,
    renew: Callable[[], Awaitable[object]] | None = None,
) -> Copier:
    """A copier between the migration's two backends, as its organization configured them."""
    router = Router(store, pool, migration.org_id)
    return Copier(
        store,
        migration,
        source=await router.named(migration.source),
        target=await router.named(migration.target),
        on_progress=on_progress or (monitor.copied if monitor is not None else None),
        lock=monitor.lock if monitor is not None else None,
        renew=renew,
    )


async def step(
    store: NativeStore,
    pool: ProviderPool,
    migration: Migration,
    *,
    owner: str,
    monitor: MigrationMonitor | None = None,
    on_progress: Callable[[Migration], None] | None = None,
) -> Migration:
    """One turn of the runner for `migration`: carry the copy on (to its end) or replay the
    source's writes. Returns the migration as it is now (unchanged when another process
    holds its lease)."""
    if not await store.migrations.claim(migration, owner, LEASE_SECONDS, gone):
        return migration
    try:
        copier = await copier_for(
            store,
            pool,
            migration,
            monitor=monitor,
            on_progress=on_progress,
            renew=lambda: store.migrations.claim(migration, owner, LEASE_SECONDS, gone),
        )
        try:
            done = await copier.run()
        except CopyStopped:
            return await store.migrations.get(migration.org_id, migration.id)
        if done.state is MigrationState.COPYING:
            done = await store.migrations.transition(
                done,
                "copied",
                actor_ref=None,
                detail={"progress": done.progress, "failures": len(done.failures)},
                expect=frozenset({MigrationState.COPYING}),
                state=MigrationState.SHADOW,
            )
        elif done.state is MigrationState.PLANNED and done.checkpoint.get("done"):
            done = await store.migrations.transition(
                done,
                "planned",
                actor_ref=None,
                detail={"progress": done.progress, "failures": len(done.failures)},
            )
        return done
    finally:
        await store.migrations.release(migration, owner)


class MigrationRunner:
    """Example:
    runner = MigrationRunner(store, pool, monitor, seconds=1.0)
    runner.start(); runner.kick()  # look now
    await runner.stop()
    """

    def __init__(
        self, store: NativeStore, pool: ProviderPool, monitor: MigrationMonitor, *, seconds: float
    ) -> None:
        self._store = store
        self._pool = pool
        self.monitor = monitor
        self._seconds = seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._owner = lease_owner()
        self.failures = 0  # turns that failed (the next turn tries again)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def kick(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.monitor.close()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._seconds)
            self._wake.clear()
            try:
                await self.turn()
            except Exception:
                self.failures += 1
                log.exception("migration runner turn failed")

    async def turn(self) -> None:
        """Every migration that has work: the live ones and unfinished dry runs."""
        todo = await self._store.migrations.live()
        todo += [m for m in await self._store.migrations.planned() if not m.checkpoint.get("done")]
        for migration in todo:
            try:
                await step(
                    self._store, self._pool, migration, owner=self._owner, monitor=self.monitor
                )
            except OneError as exc:
                self.failures += 1
                log.warning("migration %s: %s (tried again next turn)", migration.id, exc)
