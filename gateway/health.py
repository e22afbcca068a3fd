"""Provider health: connection checks of every active configuration on an interval, and a
`communication_event` each time an upstream's circuit breaker changes state."""

from __future__ import annotations

import asyncio
import logging

from providers.configuration import check
from providers.native import NativeStore
from providers.records import Kind, utcnow
from providers.refs import native_ref
from providers.registry import ProviderPool
from providers.upstream import CircuitState

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


class CircuitEvents:
    """`on_circuit_change` for the `ProviderPool`: writes the organization's
    `communication_event` ({provider, circuit, at}) in the background, so that the call
    whose outcome changed the state is not held up by the store."""

    def __init__(self, store: NativeStore) -> None:
        self._store = store
        self._writing: set[asyncio.Task[None]] = set()

    def __call__(self, org_id: str, provider: str, state: CircuitState) -> None:
        task = asyncio.get_running_loop().create_task(self._record(org_id, provider, state))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    async def _record(self, org_id: str, provider: str, state: CircuitState) -> None:
        try:
            await self._store.events.append(
                org_id,
                "communication_event",
                actor_ref=None,
                target_ref=native_ref(Kind.ORGANIZATION, org_id),
                metadata={"provider": provider, "circuit": state.value, "at": utcnow().isoformat()},
            )
        except Exception:
            log.exception("could not record %s's circuit change for %s", provider, org_id)

    async def drain(self) -> None:
        """Wait for the events still being written (before the store closes)."""
        if self._writing:
            await asyncio.gather(*self._writing, return_exceptions=True)
