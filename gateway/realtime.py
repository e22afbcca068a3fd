"""Real-time, put together: the relay publishes committed events on the bus, live events
hands them to this process's subscribers, and each subscriber's access is checked again as
they arrive (at most a second apart, through the check every request with the same
credentials shares: `gateway/access.py`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gateway.access import Credentials
from gateway.event_bus import event_bus
from gateway.live_events import LiveEvents
from gateway.relay import Relay
from gateway.settings import Settings
from providers.errors import OneError
from providers.native import NativeStore
from resolvers.context import Actor, Live

# The actor that credentials name, from a check started after the access event (its `seq`).
Authenticate = Callable[[str | None, str | None, str | None, int], Awaitable[Actor | OneError]]


class Realtime:
    def __init__(self, store: NativeStore, settings: Settings) -> None:
        self.settings = settings
        self.bus = event_bus(settings.redis_url, retention=settings.event_retention)
        self.relay = Relay(store, self.bus, sweep_seconds=settings.relay_sweep_seconds)
        self.live = LiveEvents(
            store,
            self.bus,
            queue_size=settings.subscriber_queue,
            retention=settings.event_retention,
            per_organization=settings.subscriptions_per_organization,
            idle_seconds=settings.subscription_recheck_seconds,
        )

    async def start(self) -> None:
        await self.relay.start()

    async def stop(self) -> None:
        await self.relay.stop()
        await self.bus.close()

    def session(
        self, credentials: Credentials, authenticate: Authenticate, *, resume_after: str | None
    ) -> Live:
        """What the subscriptions of one connection (or SSE stream) share."""

        async def current_actor(since: int) -> Actor | OneError:
            return await authenticate(*credentials, since)

        return Live(
            feed=self.live,
            current_actor=current_actor,
            max_subscriptions=self.settings.subscriptions_per_connection,
            resume_after=resume_after,
        )
