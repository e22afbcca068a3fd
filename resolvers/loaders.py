"""Per-request DataLoaders: every lookup of a request is batched, per kind, into one query.

Loaders are made for one organization (the actor's), so a batch cannot mix scopes, and they
live for one request only, so nothing cached outlives the permissions it was read under.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Hashable
from datetime import datetime
from functools import partial
from typing import Any

from aiodataloader import DataLoader
from opentelemetry import trace

from providers.native import MAX_PAGE_SIZE, Direction, NativeStore
from providers.provider import Provider
from providers.records import Connection, Event, Kind, Knowledge, Membership
from resolvers.guard import tracing

BatchFn = Callable[[list[str]], Coroutine[Any, Any, list[Any]]]
# A thing's references before it was copied to another backend (providers/migrating.py).
Formers = Callable[[list[str]], Awaitable[dict[str, list[str]]]]
Loader = DataLoader[str, Any]
# A page holds at most MAX_PAGE_SIZE things; nested lists multiply that. One IN (...) of a
# thousand keys is still one cheap indexed query on either engine.
MAX_BATCH = MAX_PAGE_SIZE * 10
_tracer = trace.get_tracer("one-gateway")


class Loaders:
    """`things` loads things from any provider and `by_id(kind)` the store's other records by
    local id; the others load what hangs off a reference."""

    def __init__(self, store: NativeStore, org_id: str, formers: Formers | None = None) -> None:
        self._store = store
        self._org_id = org_id
        self._formers = formers
        self._loaders: dict[Hashable, Loader] = {}

    async def _with_formers(self, refs: list[str]) -> tuple[list[str], dict[str, list[str]]]:
        """`refs` and the references their things had before a migration copied them (their
        connections and events may name those), and which is whose."""
        if self._formers is None:
            return refs, {}
        formers = await self._formers(refs)
        return list(dict.fromkeys([*refs, *(o for r in refs for o in formers.get(r, []))])), formers

    def _get(self, key: Hashable, fn: BatchFn, max_batch: int = MAX_BATCH) -> Loader:
        loader = self._loaders.get(key)
        if loader is None:
            name = str(key[0] if isinstance(key, tuple) else key)

            async def batch(keys: list[str]) -> list[Any]:
                if not tracing():  # see gateway/tracing.py
                    return await fn(keys)
                with _tracer.start_as_current_span(
                    "dataloader.batch", attributes={"loader": name, "keys": len(keys)}
                ):
                    return await fn(keys)

            loader = self._loaders[key] = DataLoader(batch_load_fn=batch, max_batch_size=max_batch)
        return loader

    def things(self, provider: Provider, *, detail: bool) -> Loader:
        """Local id -> `Thing | None` from a provider (the native store too), batched at its
        cap (WordPress `include=` takes 100, the store one `id IN (...)` of up to MAX_BATCH);
        the batches of one tick run concurrently. `detail=False` loads without heavy fields,
        where the provider can leave them out (else one loader serves both)."""
        detail = detail or not provider.capabilities.summaries
        fetch = partial(provider.get_many, detail=detail)
        batch = min(provider.capabilities.batch_size, MAX_BATCH)
        return self._get(("things", provider.name, detail), fetch, batch)

    def by_id(self, kind: Kind) -> Loader:
        """Records of the native store's other dimensions by local id (things: `things`)."""
        store, org = self._store, self._org_id
        fetch: dict[Kind, BatchFn] = {
            Kind.ORGANIZATION: store.organizations.get_many,
            Kind.PERSON: partial(store.people.get_many, org),
            Kind.CONNECTION: partial(store.connections.get_many, org),
            Kind.EVENT: partial(store.events.get_many, org),
            Kind.KNOWLEDGE: partial(store.knowledge.get_many, org),
        }
        return self._get(("by_id", kind), fetch[kind])

    def memberships(self) -> Loader:
        """Person id -> `Membership | None` in this organization."""

        async def fetch(ids: list[str]) -> list[Membership | None]:
            found = await self._store.people.memberships(self._org_id, ids)
            return [found.get(i) for i in ids]

        return self._get("memberships", fetch)

    def connections(
        self, direction: Direction, relationship_type: str | None, at: datetime | None
    ) -> Loader:
        """Reference -> the `Connection`s touching it, for one combination of filters."""

        async def fetch(refs: list[str]) -> list[list[Connection]]:
            every, formers = await self._with_formers(refs)
            found = await self._store.connections.of(
                self._org_id, every, direction=direction, relationship_type=relationship_type, at=at
            )
            if not formers:
                return [found[r] for r in refs]
            merged = []
            for ref in refs:
                edges = [c for r in (ref, *formers.get(ref, [])) for c in found[r]]
                merged.append(list({c.id: c for c in edges}.values()))
            return merged

        return self._get(("connections", direction, relationship_type, at), fetch)

    def events(self, limit: int) -> Loader:
        """Target reference -> its newest `limit` `Event`s."""

        async def fetch(refs: list[str]) -> list[list[Event]]:
            every, formers = await self._with_formers(refs)
            found = await self._store.events.of_targets(self._org_id, every, limit=limit)
            if not formers:
                return [found[r] for r in refs]
            merged = []
            for ref in refs:
                events = [e for r in (ref, *formers.get(ref, [])) for e in found[r]]
                events.sort(key=lambda e: (e.timestamp, e.id), reverse=True)
                merged.append(events[:limit])
            return merged

        return self._get(("events", limit), fetch)

    def knowledge(self) -> Loader:
        """Source reference -> the `Knowledge` taken from it."""

        async def fetch(refs: list[str]) -> list[list[Knowledge]]:
            found = await self._store.knowledge.of_sources(self._org_id, refs)
            return [found[r] for r in refs]

        return self._get("knowledge", fetch)
