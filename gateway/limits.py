"""API calls per organization per UTC day, against the plan's `api_calls_per_day`.

Counted in this process (a fleet of replicas would share the count through Redis); the
organization's limit is read from the store at most once a minute.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

from providers.errors import QuotaExceededError
from providers.native import NativeStore

LIMIT_TTL = 60.0


class DailyCalls:
    def __init__(self, store: NativeStore) -> None:
        self._store = store
        self._counts: dict[tuple[str, date], int] = {}
        self._limits: dict[str, tuple[int | None, float]] = {}

    def today(self, org_id: str) -> int:
        return self._counts.get((org_id, datetime.now(UTC).date()), 0)

    async def count(self, org_id: str) -> None:
        """Count one call, or refuse it with `QuotaExceededError` past the daily limit."""
        limit = await self._limit(org_id)
        key = (org_id, datetime.now(UTC).date())
        used = self._counts.get(key, 0)
        if limit is not None and used >= limit:
            raise QuotaExceededError(
                f"this organization has made its {limit} API calls for today (UTC)",
                quota="api_calls_per_day",
                limit=limit,
                used=used,
            )
        if used == 0:  # first call of a day for this org: forget earlier days
            self._counts = {k: v for k, v in self._counts.items() if k[1] == key[1]}
        self._counts[key] = used + 1

    async def _limit(self, org_id: str) -> int | None:
        cached = self._limits.get(org_id)
        if cached is not None and time.monotonic() - cached[1] < LIMIT_TTL:
            return cached[0]
        [org] = await self._store.organizations.get_many([org_id])
        limit = org.limits.get("api_calls_per_day") if org else None
        value = limit if isinstance(limit, int) else None
        self._limits[org_id] = (value, time.monotonic())
        return value
