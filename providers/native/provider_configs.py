"""Each organization's provider configurations and the thing types routed to them.

Not reachable through GraphQL, so nothing here can leak a credential to a client. One config
per provider is active; saving a new one keeps the previous one, inactive, for rollback.
"""

from __future__ import annotations

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
    ) -> ProviderConfig:
        """Make `config` the active one for `provider`; the thing types in `routes` now live
        there. A type may be routed to one provider only."""
        saved = ProviderConfig(
            id=new_local_id(),
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
                    "from": from_provider,
                    "to": provider,
                    "config_id": saved.id,
                },
            )
        return saved
