"""The event bus: committed events, from the relay of the process that committed them, to the
live subscribers of every process.

In process (`LocalBus`) when nothing is configured; with `ONE_REDIS_URL`, Redis Streams
(`RedisBus`): one stream per organization, trimmed to about `retention` entries, read with a
blocking `XREAD` from the last id seen by one reader task per organization that has
subscribers here. The bus may repeat an event or deliver two processes' events out of order;
`gateway/live_events.py` puts each organization's stream back in `seq` order from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from providers.records import Event

log = logging.getLogger("one.realtime")

Listener = Callable[[Event], None]


class Bus(Protocol):
    async def publish(self, event: Event) -> None: ...

    def listen(self, org_id: str, listener: Listener) -> None:
        """Call `listener` with each event of `org_id` published from now on (one per org)."""
        ...

    def forget(self, org_id: str) -> None: ...

    async def close(self) -> None: ...


def encode(event: Event) -> str:
    return json.dumps(
        {
            "id": event.id,
            "org_id": event.org_id,
            "type": event.type,
            "actor_ref": event.actor_ref,
            "target_ref": event.target_ref,
            "timestamp": event.timestamp.isoformat(),
            "metadata": event.metadata,
            "seq": event.seq,
        },
        separators=(",", ":"),
    )


def decode(text: str | bytes) -> Event:
    data: dict[str, Any] = json.loads(text)
    data["timestamp"] = datetime.fromisoformat(data["timestamp"])
    return Event(**data)


class LocalBus:
    """One process: a publish calls the organization's listener at once."""

    shared = False

    def __init__(self) -> None:
        self._listeners: dict[str, Listener] = {}

    async def publish(self, event: Event) -> None:
        listener = self._listeners.get(event.org_id)
        if listener is not None:
            listener(event)

    def listen(self, org_id: str, listener: Listener) -> None:
        self._listeners[org_id] = listener

    def forget(self, org_id: str) -> None:
        self._listeners.pop(org_id, None)

    async def close(self) -> None:
        self._listeners.clear()


class RedisBus:
    """Redis Streams across gateway processes (see the module docstring)."""

    shared = True

    def __init__(self, url: str, *, retention: int, block_ms: int = 5_000) -> None:
        self._url = url
        self._redis: Redis = Redis.from_url(url)
        self._retention = retention
        self._block_ms = block_ms
        self._readers: dict[str, asyncio.Task[None]] = {}

    @staticmethod
    def stream(org_id: str) -> str:
        return f"one:events:{org_id}"

    async def publish(self, event: Event) -> None:
        await self._redis.xadd(
            self.stream(event.org_id),
            {"e": encode(event)},
            maxlen=self._retention,
            approximate=True,
        )

    def listen(self, org_id: str, listener: Listener) -> None:
        self.forget(org_id)
        self._readers[org_id] = asyncio.create_task(self._read(org_id, listener))

    def forget(self, org_id: str) -> None:
        task = self._readers.pop(org_id, None)
        if task is not None:
            task.cancel()

    async def _read(self, org_id: str, listener: Listener) -> None:
        # A connection of its own: a blocking XREAD holds it, and cancelling the task
        # drops it rather than handing a half-read connection back to a pool.
        client: Redis = Redis.from_url(self._url, single_connection_client=True)
        stream = self.stream(org_id)
        last = "$"
        try:
            while True:
                try:
                    answer: Any = await client.xread(
                        {stream: last}, block=self._block_ms, count=500
                    )
                except RedisError as exc:
                    # The relay's events stay in the store: once Redis is back, the next
                    # event's gap is filled from there (gateway/live_events.py).
                    log.warning("reading %s from Redis failed (%s); retrying", stream, exc)
                    await asyncio.sleep(1.0)
                    continue
                for _, entries in answer or ():
                    for entry_id, fields in entries:
                        last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                        try:
                            listener(decode(fields[b"e"]))
                        except Exception:
                            log.exception("a malformed event on %s was skipped", stream)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(client.aclose())

    async def close(self) -> None:
        for org_id in list(self._readers):
            self.forget(org_id)
        await self._redis.aclose()


def event_bus(redis_url: str | None, *, retention: int) -> LocalBus | RedisBus:
    return RedisBus(redis_url, retention=retention) if redis_url else LocalBus()
