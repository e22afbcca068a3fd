"""The router: which provider owns a thing type in the actor's organization.

Routes are read once per request, only when a request needs them: one store query, or none
when the gateway keeps them (`gateway/active_configs.py`: at most once a second, forgotten
when a configuration commits). Either way a change of configuration takes effect on the next
request in this process and touches no other organization. Any type without a configured
provider lives in the native store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import cached_property

from providers.configuration import record_unreadable
from providers.embeddings import EmbeddingProvider
from providers.errors import ProviderSecretError
from providers.native import NativeStore
from providers.native.provider import NativeProvider
from providers.provider import Hit, Provider, SearchQuery
from providers.records import NATIVE, THING_TYPES, Page, ProviderConfig
from providers.registry import ProviderPool, factory, not_configured
from providers.search import Source, upstream_hits

ReadConfigs = Callable[[str], Awaitable[list[ProviderConfig]]]  # an organization's active ones


class Router:
    """The thing service's `Routes` for one organization (and the actor writing, whom the
    native store needs)."""

    def __init__(
        self,
        store: NativeStore,
        pool: ProviderPool,
        org_id: str,
        actor_ref: str | None = None,
        *,
        configs: ReadConfigs | None = None,
    ) -> None:
        self._store = store
        self._pool = pool
        self._read_configs = configs or store.provider_configs.active
        self._org_id = org_id
        self._actor_ref = actor_ref
        self._configs: asyncio.Task[list[ProviderConfig]] | None = None
        self._alerted: set[str] = set()

    @cached_property
    def native(self) -> NativeProvider:
        return NativeProvider(self._store, self._org_id, self._actor_ref)

    async def _active(self) -> list[ProviderConfig]:
        if self._configs is None:
            # A task, so concurrent resolvers of one request share a single query.
            self._configs = asyncio.ensure_future(self._read_configs(self._org_id))
        return await self._configs

    async def configured(self) -> bool:
        """Whether the organization has configured any provider."""
        return bool(await self._active())

    async def for_type(self, type: str | None) -> Provider:
        """The provider a thing type is routed to: the native store when none is, and for
        `None` (a listing of every type)."""
        if type is not None:
            for config in await self._active():
                if type in config.routes:
                    return await self._instance(config)
        return self.native

    async def named(self, name: str) -> Provider:
        if name == NATIVE:
            return self.native
        return await self._instance(await self.config(name))

    async def config(self, name: str) -> ProviderConfig:
        for config in await self._active():
            if config.provider == name:
                return config
        raise not_configured(name)

    async def search_sources(self, text: str, types: frozenset[str] | None) -> list[Source]:
        """What a federated search asks: each searchable type of each configured upstream
        (`types` narrows them), and the native store for every type routed nowhere else."""
        sources: list[Source] = []
        routed: set[str] = set()
        for config in await self._active():
            for type in config.routes:
                routed.add(type)
                if types is not None and type not in types:
                    continue
                if not factory(config.provider).capabilities.search:
                    continue
                sources.append(
                    Source(
                        key=f"{config.provider}:{type}",
                        provider=config.provider,
                        query=SearchQuery(text, type=type),
                        fetch=self._upstream_search(config),
                    )
                )
        native = (THING_TYPES if types is None else types) - routed
        if native:
            query = SearchQuery(text, types=frozenset(native))
            sources.insert(0, Source("native", NATIVE, query, self.native.search))
        return sources

    async def embedder(self) -> EmbeddingProvider | None:
        """The organization's embedding provider, if it configured one."""
        return self._pool.embedder(await self._active())

    def _upstream_search(
        self, config: ProviderConfig
    ) -> Callable[[SearchQuery], Awaitable[Page[Hit]]]:
        async def fetch(query: SearchQuery) -> Page[Hit]:
            # Opened here, so that an unreadable secret fails this source, not the search.
            return await upstream_hits(await self._instance(config), query)

        return fetch

    async def _instance(self, config: ProviderConfig) -> Provider:
        try:
            return self._pool.get(config)
        except ProviderSecretError as exc:
            if config.id not in self._alerted:  # once per request, not once per field
                self._alerted.add(config.id)
                await record_unreadable(self._store, config)
            raise exc from None
