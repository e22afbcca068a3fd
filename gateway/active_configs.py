"""Each organization's active provider configurations (and migrations), as the router reads
them: at most once a second per organization rather than once per request.

A configuration committed in this process (`configureProvider`, `rollbackProvider`, a
webhook secret kept: each writes `settings_updated`) forgets the organization's at once, so
the next request routes by it; one committed by another process is seen within
`CONFIGS_TTL`.
"""

from __future__ import annotations

from gateway.expiring import SharedReads
from providers.engine import Row
from providers.native import NativeStore
from providers.native.migrations import Migration
from providers.records import ProviderConfig

CONFIGS_TTL = 1.0  # seconds


class ActiveConfigs:
    def __init__(self, store: NativeStore, *, ttl: float = CONFIGS_TTL) -> None:
        self._store = store
        self._reads: SharedReads[str, list[ProviderConfig]] = SharedReads(ttl)
        self._migrations: SharedReads[str, list[Migration]] = SharedReads(ttl)
        store.engine.on_commit("events", self._committed)

    async def of(self, org_id: str) -> list[ProviderConfig]:
        return await self._reads.get(org_id, lambda: self._store.provider_configs.active(org_id))

    async def migrations(self, org_id: str) -> list[Migration]:
        """The organization's migrations (their states and rollouts route reads), kept the
        same way: every step of one writes `settings_updated`."""
        return await self._migrations.get(org_id, lambda: self._store.migrations.of_org(org_id))

    def _committed(self, row: Row) -> None:
        if row.get("type") == "settings_updated":
            self._reads.forget(row["org_id"])
            self._migrations.forget(row["org_id"])
