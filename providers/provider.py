"""The `Provider` protocol: what every backend that owns things offers the thing service.

A provider instance is bound to one organization's configuration, so every call it makes is
made for that organization. It returns plain `Thing` records whose `id` is the provider's own
local id (what follows `thing.<provider>.` in a global id). A provider only reads and writes:
the lifecycle, the events and the checks every write needs are the thing service's
(`providers/things.py`), written once above every provider.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from providers.errors import OneError
from providers.lifecycle import EVERY_STATUS
from providers.records import Page, Thing, ThingStatus


@dataclass(frozen=True, slots=True)
class Capabilities:
    read: bool = True
    search: bool = False
    write: bool = False
    batch_size: int = 100  # the most ids one upstream request may carry
    statuses: frozenset[ThingStatus] = EVERY_STATUS  # the lifecycle steps its things have
    summaries: bool = True  # `detail=False` may leave heavy fields out of what it returns
    records_events: bool = False  # its writes commit their events with them (the native store)
    # A federated search asks for bodies (for snippets): not where they cost (Shopify's query
    # points) and its search does not look at them anyway.
    search_detail: bool = True


@dataclass(frozen=True, slots=True)
class ListQuery:
    type: str | None = None  # None: every type it holds (only the native store is asked so)
    status: ThingStatus | None = None
    search: str | None = None
    modified_after: datetime | None = None
    first: int = 20
    after: str | None = None
    detail: bool = True  # False: the caller asked for no heavy fields (bodies)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A free-text search of one backend, best match first (see `providers/search.py`)."""

    text: str
    type: str | None = None  # upstreams: the one type asked of them
    types: frozenset[str] | None = None  # the native store: among these (None: any)
    first: int = 20
    after: str | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    thing: Thing
    snippet: str  # HTML: escaped text, matched words in <mark>


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
    ) -> Thing:
        """A new thing; a property the backend cannot store is `InvalidInputError` (see
        `providers/properties.py`), never dropped."""
        ...

    async def update(
        self, id: str, *, name: str | None, properties: dict[str, Any] | None, merge: bool = True
    ) -> Thing:
        """Rename, or write `properties`: merged into the current ones (`merge`), or in their
        place, every property the backend lets us clear cleared."""
        ...

    async def change_status(self, id: str, status: ThingStatus) -> Thing: ...

    async def health(self) -> Health: ...
