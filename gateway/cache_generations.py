"""Generations: what a process knows of each organization's writes, for the response cache.

An organization's generation moves with each of its events: at once when a write commits in
this process (the store's `on_commit`), at the next sweep of the store's event counters when
another process wrote (`sweep`). With Redis, each commit also sets `one:cache:org:<org>` and
`one:cache:all` to its event's id, so that a replica can tell in one GET whether anything was
written since it read the value; an HTTP mutation waits for that (`settled`) before it is
answered. Connections that start or end later (`validFrom`, `validTo` in the future) change
answers when no event says so: their instants are kept per organization, here and in Redis
(`one:cache:boundaries:<org>`), and an answer expires at the next one.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from providers.engine import AnyOf, Cond, Row
from providers.native import NativeStore

log = logging.getLogger("one.cache")

ALL_KEY = "one:cache:all"


def _org_key(org_id: str) -> str:
    return f"one:cache:org:{org_id}"


def _boundaries_key(org_id: str) -> str:
    return f"one:cache:boundaries:{org_id}"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An organization's generation before an execution: here, in Redis, and when the next
    connection starts or ends (Unix time)."""

    local: int
    shared: bytes | None
    boundary: float


class Generations:
    """What this process knows of each organization's writes (see the module docstring)."""

    def __init__(self, store: NativeStore, redis: Redis | None) -> None:
        self._store = store
        self._redis = redis
        self._counter = 0
        self._of: dict[str, int] = {}  # org -> the counter at its last known event
        self._seq: dict[str, int] = {}  # org -> its highest event number seen
        self._boundaries: dict[str, list[float]] = {}  # org -> heap of future instants
        # org -> its last event's id (or another mark of a write), not yet in Redis
        self._events: dict[str, str] = {}
        self._new_boundaries: list[tuple[str, float]] = []
        self._scheduled = False
        self._flushes: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.invalidations = 0
        store.engine.on_commit("events", self._event)
        store.engine.on_commit("connections", self._connection)

    async def start(self, sweep_seconds: float) -> None:
        """Read the future instants of existing connections and the event counters, then
        sweep the counters every `sweep_seconds`."""
        now = datetime.now(UTC)
        future = AnyOf((Cond("valid_from", "gt", now), Cond("valid_to", "gt", now)))
        for row in await self._store.engine.find("connections", [future]):
            self._connection(row, publish=False)
        await self.sweep()
        self._sweeper = asyncio.create_task(self._sweep_every(sweep_seconds))

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self.settled()

    async def _sweep_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.sweep()
            except Exception:
                log.exception("the response cache's sweep of the store failed; retrying")

    async def sweep(self) -> None:
        """Move the generation of each organization another process wrote to."""
        for head in await self._store.events.stream_heads():
            if head.last_seq > self._seq.get(head.org_id, 0):
                self._seq[head.org_id] = head.last_seq
                self._bump(head.org_id)

    def local(self, org_id: str, every_organization: bool) -> int:
        return self._counter if every_organization else self._of.get(org_id, 0)

    async def snapshot(self, org_id: str, every_organization: bool) -> Snapshot:
        """Raises `RedisError` when Redis does not answer: then nothing may be kept."""
        boundary = self._next_boundary(org_id)
        shared = None
        if self._redis is not None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(ALL_KEY if every_organization else _org_key(org_id))
                pipe.zrangebyscore(_boundaries_key(org_id), f"({time.time()}", "+inf", 0, 1)
                answers: list[Any] = await pipe.execute()
            shared, upcoming = answers
            if upcoming:
                boundary = min(boundary, float(upcoming[0]))
        return Snapshot(self.local(org_id, every_organization), shared, boundary)

    async def shared(self, org_id: str, every_organization: bool) -> bytes | None:
        assert self._redis is not None
        key = ALL_KEY if every_organization else _org_key(org_id)
        return cast(bytes | None, await self._redis.get(key))

    async def settled(self) -> None:
        """Once the writes committed so far have reached Redis (an HTTP mutation waits)."""
        if self._flushes:
            await asyncio.gather(*self._flushes)

    def _bump(self, org_id: str) -> None:
        self._counter += 1
        self._of[org_id] = self._counter
        self.invalidations += 1

    def knowledge_changed(self, org_id: str) -> None:
        """The indexer changed an organization's chunks or their vectors: derived data,
        written without an event, that `knowledge` and `knowledgeSearch` answers hold."""
        self._bump(org_id)
        if self._redis is not None:
            self._events[org_id] = f"knowledge:{org_id}:{self._counter}:{time.time_ns()}"
            self._schedule()

    def _event(self, row: Row) -> None:
        org_id = row["org_id"]
        self._seq[org_id] = max(self._seq.get(org_id, 0), int(row.get("seq") or 0))
        self._bump(org_id)
        if self._redis is not None:
            self._events[org_id] = row["id"]
            self._schedule()

    def _connection(self, row: Row, *, publish: bool = True) -> None:
        now = time.time()
        for at in (row.get("valid_from"), row.get("valid_to")):
            if isinstance(at, datetime) and at.timestamp() > now:
                heapq.heappush(self._boundaries.setdefault(row["org_id"], []), at.timestamp())
                if publish and self._redis is not None:
                    self._new_boundaries.append((row["org_id"], at.timestamp()))
                    self._schedule()

    def _next_boundary(self, org_id: str) -> float:
        heap = self._boundaries.get(org_id)
        now = time.time()
        while heap and heap[0] <= now:
            heapq.heappop(heap)
        return heap[0] if heap else math.inf

    def _schedule(self) -> None:
        # Called while the store commits: the flush runs once the listeners have all spoken,
        # so one Redis transaction carries a write's boundaries and its events together.
        if not self._scheduled:
            self._scheduled = True
            task = asyncio.get_running_loop().create_task(self._flush())
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _flush(self) -> None:
        assert self._redis is not None
        self._scheduled = False
        events, self._events = self._events, {}
        boundaries, self._new_boundaries = self._new_boundaries, []
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for org_id, at in boundaries:
                    pipe.zadd(_boundaries_key(org_id), {repr(at): at})
                    pipe.zremrangebyscore(_boundaries_key(org_id), "-inf", time.time())
                for org_id, event_id in events.items():
                    pipe.set(_org_key(org_id), event_id)
                    pipe.set(ALL_KEY, event_id)
                await pipe.execute()
        except RedisError as exc:
            # Other replicas see these writes at their next sweep of the store, not at once.
            log.warning("telling Redis of %d writes failed (%s)", len(events), exc)
