"""Live events: each organization's stream, in order and without repeats, to the
subscribers of this process.

One dispatcher per organization with subscribers here listens on the bus. The bus may repeat
an event or deliver two processes' events out of order, so the dispatcher keeps the last
`seq` it delivered, drops what it has seen, and fills a gap from the store before going on:
subscribers receive 1, 2, 3... however the bus behaved. Each subscriber has a bounded queue;
publishing never waits for one, and a subscriber that falls `queue_size` events behind is
cut off with SUBSCRIBER_TOO_SLOW (counted in `dropped`) instead of growing memory.

A subscriber may resume after a cursor it saw: it gets the events since from the store, then
the live ones, with nothing missed and nothing twice, or CURSOR_EXPIRED when the cursor is
older than the `retention` newest events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from gateway.event_bus import Bus
from providers.errors import (
    CursorExpiredError,
    OneError,
    SubscriberTooSlowError,
    TooManySubscriptionsError,
)
from providers.native import NativeStore
from providers.records import Event

log = logging.getLogger("one.realtime")


@dataclass(eq=False)
class _Subscriber:
    queue: asyncio.Queue[Event | None]
    failed: OneError | None = None

    def offer(self, event: Event) -> bool:
        if self.failed is not None:
            return True
        try:
            self.queue.put_nowait(event)
            return True
        except asyncio.QueueFull:
            self.failed = SubscriberTooSlowError(
                "this subscription fell too far behind its events and was ended; "
                "subscribe again with `after:` set to the last cursor you received"
            )
            # Its backlog goes now: memory is freed without waiting for the consumer.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)
            return False


@dataclass(eq=False)
class _Dispatcher:
    org_id: str
    store: NativeStore
    last: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    subscribers: set[_Subscriber] = field(default_factory=set)
    inbox: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


class LiveEvents:
    """Example:
    async with live.follow(org_id, after=None) as events:
        async for event in events:   # an `Event`, or None after `idle_seconds` without one
            ...
    """

    def __init__(
        self,
        store: NativeStore,
        bus: Bus,
        *,
        queue_size: int = 256,
        retention: int = 10_000,
        per_organization: int = 2_000,
        idle_seconds: float = 5.0,
    ) -> None:
        self._store = store
        self._bus = bus
        self._queue_size = queue_size
        self._retention = retention
        self._per_organization = per_organization
        self._idle_seconds = idle_seconds
        self._dispatchers: dict[str, _Dispatcher] = {}
        self.delivered = 0
        self.dropped = 0  # subscribers cut off for falling behind

    def subscribers(self) -> int:
        return sum(len(d.subscribers) for d in self._dispatchers.values())

    @contextlib.asynccontextmanager
    async def follow(
        self, org_id: str, after: int | None
    ) -> AsyncIterator[AsyncIterator[Event | None]]:
        dispatcher = await self._dispatcher(org_id)
        while self._dispatchers.get(org_id) is not dispatcher:  # closed while we waited
            dispatcher = await self._dispatcher(org_id)
        if len(dispatcher.subscribers) >= self._per_organization:
            raise TooManySubscriptionsError(
                f"this organization has {self._per_organization} subscriptions open on this "
                "server, the most it may; close one first"
            )
        subscriber = _Subscriber(asyncio.Queue(self._queue_size))
        dispatcher.subscribers.add(subscriber)
        try:
            # Registered before the replay is read: what commits meanwhile is in the queue
            # too, and repeats are dropped by `seq`.
            live_from = dispatcher.last
            if after is not None and live_from - after > self._retention:
                raise CursorExpiredError(
                    f"the cursor is older than the {self._retention} newest events this "
                    "organization keeps for resuming; read what you missed with `events` "
                    "and subscribe again without `after:`"
                )
            yield self._events(dispatcher, subscriber, after, live_from)
        finally:
            dispatcher.subscribers.discard(subscriber)
            if not dispatcher.subscribers:
                self._close(dispatcher)

    async def _events(
        self, dispatcher: _Dispatcher, subscriber: _Subscriber, after: int | None, live_from: int
    ) -> AsyncIterator[Event | None]:
        last = live_from
        if after is not None:
            last = after
            while last < live_from:
                batch = await self._store.events.in_stream(
                    dispatcher.org_id, after=last, until=live_from
                )
                if not batch:
                    break
                for missed in batch:
                    last = missed.seq or last
                    yield missed
            last = max(last, live_from)
        while True:
            try:
                event = await asyncio.wait_for(subscriber.queue.get(), self._idle_seconds)
            except TimeoutError:
                yield None
                continue
            if event is None:
                raise subscriber.failed or SubscriberTooSlowError("this subscription ended")
            if (event.seq or 0) <= last:
                continue
            last = event.seq or last
            yield event

    async def _dispatcher(self, org_id: str) -> _Dispatcher:
        dispatcher = self._dispatchers.get(org_id)
        if dispatcher is None:
            dispatcher = _Dispatcher(org_id, self._store)
            self._dispatchers[org_id] = dispatcher
            self._bus.listen(org_id, dispatcher.inbox.put_nowait)
            dispatcher.task = asyncio.create_task(self._dispatch(dispatcher))
            try:
                dispatcher.last = await self._store.events.last_seq(org_id)
            finally:
                dispatcher.ready.set()
        await dispatcher.ready.wait()
        return dispatcher

    def _close(self, dispatcher: _Dispatcher) -> None:
        if self._dispatchers.get(dispatcher.org_id) is dispatcher:
            del self._dispatchers[dispatcher.org_id]
            self._bus.forget(dispatcher.org_id)
        if dispatcher.task is not None:
            dispatcher.task.cancel()

    async def _dispatch(self, dispatcher: _Dispatcher) -> None:
        await dispatcher.ready.wait()
        while True:
            event = await dispatcher.inbox.get()
            seq = event.seq or 0
            if seq <= dispatcher.last:
                continue
            try:
                if seq > dispatcher.last + 1:
                    for missed in await self._store.events.in_stream(
                        dispatcher.org_id,
                        after=dispatcher.last,
                        until=seq - 1,
                        limit=self._retention,
                    ):
                        self._deliver(dispatcher, missed)
            except Exception:
                log.exception("filling a gap in %s's events failed", dispatcher.org_id)
            self._deliver(dispatcher, event)

    def _deliver(self, dispatcher: _Dispatcher, event: Event) -> None:
        dispatcher.last = max(dispatcher.last, event.seq or 0)
        for subscriber in list(dispatcher.subscribers):
            if not subscriber.offer(event):
                self.dropped += 1
        self.delivered += 1
