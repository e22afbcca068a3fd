"""The native store as a `Provider`: every thing type, for one organization.

Made per request for the organization and the actor writing, which the store needs (an
actor who is a person `owns` what they create, and is the actor of its events). Its writes
commit their events and their checks in one store transaction (`records_events`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from providers.native import MAX_PAGE_SIZE, NativeStore
from providers.provider import Capabilities, Health, Hit, ListQuery, SearchQuery, check_health
from providers.records import NATIVE, THING_TYPES, Page, Thing, ThingStatus


class NativeProvider:
    name = NATIVE
    thing_types = THING_TYPES
    capabilities = Capabilities(
        read=True,
        search=True,
        write=True,
        batch_size=MAX_PAGE_SIZE * 10,  # one `id IN (...)` query, however many
        summaries=False,
        records_events=True,
    )

    def __init__(self, store: NativeStore, org_id: str, actor_ref: str | None = None) -> None:
        self.store = store
        self.org_id = org_id
        self.actor_ref = actor_ref

    async def get_many(self, ids: Sequence[str], *, detail: bool = True) -> list[Thing | None]:
        return await self.store.things.get_many(self.org_id, ids)

    async def page(self, query: ListQuery) -> Page[Thing]:
        return await self.store.things.page(self.org_id, query)

    async def search(self, query: SearchQuery) -> Page[Hit]:
        """Best matches first, by BM25 over the store's full-text index."""
        return await self.store.things.search(self.org_id, query)

    async def create(
        self, *, type: str, name: str, status: ThingStatus, properties: dict[str, Any]
    ) -> Thing:
        return await self.store.things.create(
            self.org_id,
            actor_ref=self.actor_ref,
            type=type,
            name=name,
            properties=properties,
            status=status,
        )

    async def update(
        self, id: str, *, name: str | None, properties: dict[str, Any] | None, merge: bool = True
    ) -> Thing:
        return await self.store.things.update(
            self.org_id,
            id,
            actor_ref=self.actor_ref,
            name=name,
            properties=properties,
            merge_properties=merge,
        )

    async def change_status(self, id: str, status: ThingStatus) -> Thing:
        return await self.store.things.change_status(
            self.org_id, id, actor_ref=self.actor_ref, status=status
        )

    async def health(self) -> Health:
        return await check_health(self.store.things.count(self.org_id))
