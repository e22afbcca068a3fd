"""A small cache of answers read from the store, each good for a while: organizations' plan
limits, safelist modes and safelist answers are read at most once per `max_age` each."""

from __future__ import annotations

import time
from collections.abc import Hashable
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
