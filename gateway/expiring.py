"""Small caches of answers read from the store, each good for a while: organizations' plan
limits, safelist modes and safelist answers (`Expiring`, read at most once per `max_age`
each); who credentials name and each organization's provider configs (`SharedReads`, whose
reads are shared while in flight and forgotten when a change commits)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Expiring(Generic[K, V]):
    """Values with the time they were read; bounded by forgetting them all when full (they
    are cheap to read again, and this keeps the hot path a dict lookup)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._max_entries = max_entries
        self._entries: dict[K, tuple[V, float]] = {}

    def get(self, key: K, max_age: float) -> V | None:
        """The value, if it was read less than `max_age` seconds ago."""
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[1] >= max_age:
            return None
        return entry[0]

    def put(self, key: K, value: V) -> V:
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[key] = (value, time.monotonic())
        return value


@dataclass(frozen=True, slots=True)
class _Read(Generic[V]):
    until: float  # monotonic
    since: int
    value: asyncio.Future[V]


class SharedReads(Generic[K, V]):
    """What `read()` answers for a key, read at most once per `ttl` (counted from when the
    read started) and shared meanwhile: whoever asks while a read is in flight awaits it
    rather than reading again. A read that fails is not kept. `forget` drops answers that a
    committed change made stale, so the next ask reads again.

    Example:
        configs: SharedReads[str, list[ProviderConfig]] = SharedReads(ttl=1.0)
        active = await configs.get(org_id, lambda: store.provider_configs.active(org_id))
    """

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._reads: dict[K, _Read[V]] = {}

    async def get(self, key: K, read: Callable[[], Awaitable[V]], *, since: int = 0) -> V:
        """The answer for `key`, from a read started after the change numbered `since` (a
        number the caller knows its change by, such as an event's `seq`; 0 for any)."""
        now = time.monotonic()
        kept = self._reads.get(key)
        if kept is None or kept.until <= now or kept.since < since:
            if len(self._reads) >= self._max_entries:
                self._reads = {k: r for k, r in self._reads.items() if r.until > now}
                if len(self._reads) >= self._max_entries:
                    self._reads.clear()
            kept = _Read(now + self._ttl, since, asyncio.ensure_future(read()))
            self._reads[key] = kept
            kept.value.add_done_callback(lambda _: self._drop_failed(key, kept))
        # Shielded: a caller that goes away does not cancel the read the others await.
        return await asyncio.shield(kept.value)

    def forget(self, key: K) -> None:
        self._reads.pop(key, None)

    def clear(self) -> None:
        self._reads.clear()

    def _drop_failed(self, key: K, read: _Read[V]) -> None:
        failed = read.value.cancelled() or read.value.exception() is not None
        if failed and self._reads.get(key) is read:
            del self._reads[key]
