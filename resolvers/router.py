"""The router: which provider owns a thing type in the actor's organization.

Routes are read once per request (one store query, only when a request needs them), so a
change of configuration takes effect on the next request and touches no other organization.
"""

from __future__ import annotations

import asyncio

from providers.configuration import record_unreadable
from providers.errors import ProviderSecretError
from providers.native import NativeStore
from providers.provider import Provider
from providers.records import ProviderConfig
from providers.registry import ProviderPool, not_configured


class Router:
    def __init__(self, store: NativeStore, pool: ProviderPool, org_id: str) -> None:
        self._store = store
        self._pool = pool
        self._org_id = org_id
        self._configs: asyncio.Task[list[ProviderConfig]] | None = None
        self._alerted: set[str] = set()

    async def _active(self) -> list[ProviderConfig]:
        if self._configs is None:
            # A task, so concurrent resolvers of one request share a single query.
            self._configs = asyncio.ensure_future(self._store.provider_configs.active(self._org_id))
        return await self._configs

    async def for_type(self, type: str) -> Provider | None:
        """The provider a thing type is routed to, or `None` for the native store."""
        for config in await self._active():
            if type in config.routes:
                return await self._instance(config)
        return None

    async def named(self, name: str) -> Provider:
        return await self._instance(await self.config(name))

    async def config(self, name: str) -> ProviderConfig:
        for config in await self._active():
            if config.provider == name:
                return config
        raise not_configured(name)

    async def _instance(self, config: ProviderConfig) -> Provider:
        try:
            return self._pool.get(config)
        except ProviderSecretError as exc:
            if config.id not in self._alerted:  # once per request, not once per field
                self._alerted.add(config.id)
                await record_unreadable(self._store, config)
            raise exc from None
