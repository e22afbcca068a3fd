"""Each organization's provider configurations and the thing types routed to them.

Not reachable through GraphQL, so nothing here can leak a credential to a client. One config
per provider is active; saving a new one keeps the previous one, inactive, for rollback.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from providers.engine import Cond, Engine, Order, Where
from providers.errors import InvalidInputError
from providers.native.events import record_event
from providers.native.rows import to_row
from providers.records import Kind, ProviderConfig, utcnow
from providers.refs import native_ref, new_local_id


class ProviderConfigs:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def active(self, org_id: str) -> list[ProviderConfig]:
        where: Where = [Cond("org_id", "eq", org_id), Cond("status", "eq", "active")]
        rows = await self._engine.find("provider_configs", where, order=Order("created_at"))
        return [ProviderConfig(**r) for r in rows]

    async def save(
        self,
        org_id: str,
        *,
        actor_ref: str | None,
        provider: str,
        config: dict[str, Any],
        routes: list[str],
        id: str | None = None,
        duration_ms: float | None = None,
    ) -> ProviderConfig:
        """Make `config` the active one for `provider`; the thing types in `routes` now live
        there. A type may be routed to one provider only. `id` is given when the config's
        secrets were sealed to it before saving; `duration_ms` is how long the switch took."""
        saved = ProviderConfig(
            id=id or new_local_id(),
            org_id=org_id,
            provider=provider,
            config=config,
            routes=sorted(set(routes)),
        )
        async with self._engine.transaction() as tx:
            where: Where = [Cond("org_id", "eq", org_id), Cond("status", "eq", "active")]
            previous = [ProviderConfig(**r) for r in await tx.find("provider_configs", where)]
            for other in previous:
                if other.provider == provider:
                    await tx.update(
                        "provider_configs", other.id, {"status": "inactive", "updated_at": utcnow()}
                    )
                elif taken := set(other.routes) & set(saved.routes):
                    raise InvalidInputError(
                        f"{', '.join(sorted(taken))} already routed to {other.provider}",
                        field="routes",
                    )
            await tx.insert("provider_configs", to_row(saved))
            from_provider = next((p.provider for p in previous if p.provider == provider), None)
            await record_event(
                tx,
                org_id,
                "settings_updated",
                actor_ref=actor_ref,
                target_ref=native_ref(Kind.ORGANIZATION, org_id),
                metadata={
                    "provider": provider,
                    "routes": saved.routes,
                    "from": from_provider or "native",
                    "to": provider,
                    "config_id": saved.id,
                    "duration_ms": duration_ms,
                },
            )
        return saved

    async def rollback(
        self, org_id: str, provider: str, *, actor_ref: str | None
    ) -> ProviderConfig:
        """Back to the config `provider` had before the active one; the active one is kept,
        inactive, so a rollback can itself be rolled back."""
        async with self._engine.transaction() as tx:
            where: Where = [Cond("org_id", "eq", org_id), Cond("provider", "eq", provider)]
            history = [
                ProviderConfig(**r)
                for r in await tx.find(
                    "provider_configs", where, order=Order("updated_at", descending=True)
                )
            ]
            active = next((c for c in history if c.status == "active"), None)
            previous = next((c for c in history if c.status == "inactive"), None)
            if active is None or previous is None:
                raise InvalidInputError(
                    f"{provider} has no previous configuration to go back to", field="provider"
                )
            now = utcnow()
            await tx.update(
                "provider_configs", active.id, {"status": "inactive", "updated_at": now}
            )
            await tx.update(
                "provider_configs", previous.id, {"status": "active", "updated_at": now}
            )
            await record_event(
                tx,
                org_id,
                "settings_updated",
                actor_ref=actor_ref,
                target_ref=native_ref(Kind.ORGANIZATION, org_id),
                metadata={
                    "provider": provider,
                    "rollback": True,
                    "from_config": active.id,
                    "to_config": previous.id,
                    "routes": previous.routes,
                },
            )
        return replace(previous, status="active", updated_at=now)

    async def record_health(self, config: ProviderConfig, health: dict[str, Any]) -> None:
        """Keep the last connection test on the config (no event: the caller writes one)."""
        async with self._engine.transaction() as tx:
            await tx.update("provider_configs", config.id, {"health": health})

    async def every(self, *, active_only: bool) -> list[ProviderConfig]:
        """Across every organization: for the gateway's own jobs (health checks, key
        rotation), never for a request."""
        where: Where = [Cond("status", "eq", "active")] if active_only else []
        rows = await self._engine.find("provider_configs", where, order=Order("created_at"))
        return [ProviderConfig(**r) for r in rows]

    async def replace_config(self, config: ProviderConfig, values: dict[str, Any]) -> None:
        """Store re-sealed values for the same config (key rotation): no event, no switch."""
        async with self._engine.transaction() as tx:
            await tx.update("provider_configs", config.id, {"config": values})
