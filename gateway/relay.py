"""The relay: every committed event, published once it is durable, none lost in between.

The store numbers each organization's events in commit order (`events.seq`, written in the
transaction of the change) and tells the relay of each once its transaction has committed.
The relay publishes them in that order and, about once a second, records the highest number
published per organization (`event_streams.published_seq`). A process that dies between
commit and publish leaves its events above that mark; at start, and every `sweep_seconds`
for a mark that stopped moving, the relay publishes what lies between mark and last number
from the store. So an event may be published twice, never not at all; subscribers drop
repeats by `seq`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.event_bus import Bus
from providers.engine import Row
from providers.native import NativeStore
from providers.records import Event

log = logging.getLogger("one.realtime")


class Relay:
    def __init__(self, store: NativeStore, bus: Bus, *, sweep_seconds: float = 2.0) -> None:
        self._store = store
        self._bus = bus
        self._sweep_seconds = sweep_seconds
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._published: dict[str, int] = {}  # org -> highest seq published, not yet marked
        self._stalled: dict[str, tuple[int, int]] = {}  # org -> (last, mark) at the last sweep
        self._tasks: list[asyncio.Task[None]] = []
        self.published = 0
        store.engine.on_commit("events", self._committed)

    def _committed(self, row: Row) -> None:
        self._queue.put_nowait(Event(**row))

    async def start(self) -> None:
        await self.sweep(stalled_only=False)
        self._tasks = [
            asyncio.create_task(self._publish_forever()),
            asyncio.create_task(self._mark_and_sweep_forever()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # What was committed but not yet handed to the bus goes now; what cannot, the next
        # start's sweep publishes.
        with contextlib.suppress(Exception):
            while not self._queue.empty():
                await self._publish(self._queue.get_nowait())
            await self._mark()

    async def _publish_forever(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._publish(event)
            except Exception:
                # Left to the sweep, which finds it above the organization's mark.
                log.exception("publishing event %s failed; the sweep will retry", event.seq)

    async def _publish(self, event: Event) -> None:
        await self._bus.publish(event)
        self.published += 1
        if event.seq is not None and event.seq > self._published.get(event.org_id, 0):
            self._published[event.org_id] = event.seq

    async def _mark_and_sweep_forever(self) -> None:
        elapsed = 0.0
        while True:
            await asyncio.sleep(1.0)
            elapsed += 1.0
            try:
                await self._mark()
                if elapsed >= self._sweep_seconds:
                    elapsed = 0.0
                    await self.sweep(stalled_only=True)
            except Exception:
                log.exception("the relay's mark or sweep failed; retrying")

    async def _mark(self) -> None:
        published, self._published = self._published, {}
        for org_id, seq in published.items():
            await self._store.events.mark_published(org_id, seq)

    async def sweep(self, *, stalled_only: bool) -> int:
        """Publish the events between each organization's mark and its last number. With
        `stalled_only`, only where neither moved since the previous sweep: a live process is
        still publishing the others."""
        count = 0
        for head in await self._store.events.stream_heads():
            seen = (head.last_seq, head.published_seq)
            previous = self._stalled.get(head.org_id)
            self._stalled[head.org_id] = seen
            if head.last_seq <= head.published_seq or (stalled_only and previous != seen):
                continue
            after = head.published_seq
            while after < head.last_seq:
                batch = await self._store.events.in_stream(
                    head.org_id, after=after, until=head.last_seq
                )
                if not batch:
                    break
                for event in batch:
                    await self._publish(event)
                    count += 1
                after = batch[-1].seq or head.last_seq
            await self._store.events.mark_published(head.org_id, head.last_seq)
        if count:
            log.info("the relay published %d events left unpublished", count)
        return count
