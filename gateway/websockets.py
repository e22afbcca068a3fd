"""WebSocket transports: Strawberry's handlers for `graphql-transport-ws` and the legacy
`graphql-ws`, with the server's own heartbeat on the current protocol (the legacy one sends
`ka` messages itself).

A `ping` every `heartbeat_seconds` after the connection is acknowledged: proxies see traffic
on an idle connection, and a client that has gone is found when the send fails.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage


class TransportWSHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    _heartbeat: asyncio.Task[None] | None = None

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._ping_forever())

    async def _ping_forever(self) -> None:
        seconds = self.view.settings.heartbeat_seconds  # type: ignore[attr-defined]
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.send_message({"type": "ping"})
            except Exception:  # noqa: BLE001 - the connection is gone; shutdown follows
                return

    async def shutdown(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await super().shutdown()
