"""The `Provider` protocol: what every backend that owns things offers the router.

A provider instance is bound to one organization's configuration, so every call it makes is
made for that organization. It returns plain `Thing` records whose `id` is the provider's own
local id (what follows `thing.<provider>.` in a global id).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from providers.errors import OneError
from providers.records import Page, Thing, ThingStatus


@dataclass(frozen=True, slots=True)
class Capabilities:
    read: bool = True
    search: bool = False
    write: bool = False
    batch_size: int = 100  # the most ids one upstream request may carry


@dataclass(frozen=True, slots=True)
class ListQuery:
    type: str
    status: ThingStatus | None = None
    search: str | None = None
    modified_after: datetime | None = None
    first: int = 20
    after: str | None = None
    detail: bool = True  # False: the caller asked for no heavy fields (bodies)


@dataclass(frozen=True, slots=True)
class Health:
    status: str  # "online" | "degraded" | "offline"
    response_ms: float
    detail: str = ""


async def check_health(probe: Awaitable[object]) -> Health:
    """Time a provider's cheapest authenticated request: online, or offline with the reason."""
    started = time.perf_counter()
    try:
        await probe
    except OneError as exc:
        return Health("offline", (time.perf_counter() - started) * 1000, exc.message)
    return Health("online", (time.perf_counter() - started) * 1000)


class Provider(Protocol):
    name: str
    thing_types: frozenset[str]
    capabilities: Capabilities

    async def get_many(self, ids: Sequence[str], *, detail: bool = True) -> list[Thing | None]:
        """Things by local id, in the order asked, `None` where missing; `detail=False` may
        leave out heavy fields (bodies) the caller did not ask for."""
        ...

    async def page(self, query: ListQuery) -> Page[Thing]: ...

    async def create(
        self, *, type: str, name: str, status: ThingStatus, properties: dict[str, Any]
    ) -> Thing: ...

    async def update(
        self, id: str, *, name: str | None, properties: dict[str, Any] | None
    ) -> Thing: ...

    async def change_status(self, id: str, status: ThingStatus) -> Thing: ...

    async def health(self) -> Health: ...
