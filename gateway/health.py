"""Connection checks of every active provider configuration, on an interval."""

from __future__ import annotations

import asyncio
import logging

from providers.configuration import check
from providers.native import NativeStore
from providers.registry import ProviderPool

log = logging.getLogger("one.health")


async def check_providers(store: NativeStore, pool: ProviderPool) -> int:
    """One round: each active config tested and logged; returns how many were checked."""
    configs = await store.provider_configs.every(active_only=True)
    for config in configs:
        await check(store, pool, config, None)
    return len(configs)


async def check_providers_every(seconds: float, store: NativeStore, pool: ProviderPool) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await check_providers(store, pool)
        except Exception:
            # A failed round must not end the loop: the next one may well succeed.
            log.exception("provider health round failed")
