"""Real-time, put together: the relay publishes committed events on the bus, live events
hands them to this process's subscribers, and each subscriber's access is checked again as
they arrive (at most a second apart, through a cache shared by the connections that present
the same credentials)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from gateway.event_bus import event_bus
from gateway.live_events import LiveEvents
from gateway.relay import Relay
from gateway.settings import Settings
from providers.errors import OneError
from providers.native import NativeStore
from resolvers.context import Actor, Live

Credentials = tuple[str | None, str | None, str | None]  # authorization, API key, acting for
Authenticate = Callable[[str | None, str | None, str | None], Awaitable[Actor | OneError]]

ACCESS_TTL = 1.0  # seconds a subscriber's checked access is trusted


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
        # credentials -> (until, the access event it was started after, the check)
        self._access: dict[Credentials, tuple[float, int, asyncio.Future[Actor | OneError]]] = {}

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
            now = time.monotonic()
            cached = self._access.get(credentials)
            if cached is None or cached[0] <= now or cached[1] < since:
                # One check for every subscription that holds these credentials: the others
                # await it rather than each asking the store at once when the cache expires
                # or an event about access arrives.
                check = asyncio.ensure_future(authenticate(*credentials))
                if len(self._access) > 10_000:
                    self._access = {k: v for k, v in self._access.items() if v[0] > now}
                cached = (now + ACCESS_TTL, since, check)
                self._access[credentials] = cached
            return await asyncio.shield(cached[2])

        return Live(
            feed=self.live,
            current_actor=current_actor,
            max_subscriptions=self.settings.subscriptions_per_connection,
            resume_after=resume_after,
        )
