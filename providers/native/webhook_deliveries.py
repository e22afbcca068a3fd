"""What taking in a webhook writes: each delivery once, together with the event it brings.

A delivery's row and its event commit in one transaction, so a crash cannot keep one without
the other: a retried delivery is either new (both are written) or a duplicate (neither is).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from providers.engine import Cond, Engine, Order, Where
from providers.errors import ConflictError
from providers.native.events import record_event
from providers.records import JSONObject, Kind, ProviderConfig, utcnow
from providers.refs import native_ref
from providers.sealing import Sealed
from providers.thing_events import ThingEvent


class WebhookDeliveries:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def take_in(
        self, org_id: str, provider: str, delivery_id: str, event: ThingEvent | None
    ) -> bool:
        """Record the delivery and, when given, its event (no actor: the upstream acted).
        False, and nothing written, when the delivery was taken in before."""
        key = hashlib.sha256(f"{provider}:{org_id}:{delivery_id}".encode()).hexdigest()
        row = {"id": key, "org_id": org_id, "provider": provider, "received_at": utcnow()}
        try:
            async with self._engine.transaction() as tx:
                await tx.insert("webhook_deliveries", row)
                if event is not None:
                    await record_event(
                        tx,
                        org_id,
                        event.type,
                        actor_ref=None,
                        target_ref=event.target_ref,
                        metadata=event.metadata,
                    )
        except ConflictError:
            return False
        return True

    async def keep_secret(
        self, config: ProviderConfig, field: str, sealed: Sealed, *, metadata: JSONObject
    ) -> bool:
        """Set the secret `field` of the active `config` when it holds none yet, with a
        `settings_updated` event carrying `metadata` (never the secret). False when the config
        is no longer active or already holds one: the first value stays."""
        async with self._engine.transaction() as tx:
            where: Where = [Cond("id", "eq", config.id), Cond("org_id", "eq", config.org_id)]
            rows = await tx.find("provider_configs", where, limit=1)
            if not rows or rows[0]["status"] != "active" or rows[0]["config"].get(field):
                return False
            await tx.update(
                "provider_configs", config.id, {"config": {**rows[0]["config"], field: sealed}}
            )
            await record_event(
                tx,
                config.org_id,
                "settings_updated",
                actor_ref=None,
                target_ref=native_ref(Kind.ORGANIZATION, config.org_id),
                metadata={"provider": config.provider, "config_id": config.id, **metadata},
            )
        return True

    async def replaced_since(
        self, org_id: str, provider: str, since: datetime
    ) -> ProviderConfig | None:
        """The provider's config most recently made inactive after `since`: whose secrets an
        upstream may still sign with for a while after a rotation."""
        where: Where = [
            Cond("org_id", "eq", org_id),
            Cond("provider", "eq", provider),
            Cond("status", "eq", "inactive"),
            Cond("updated_at", "gt", since),
        ]
        order = Order("updated_at", descending=True)
        rows = await self._engine.find("provider_configs", where, order=order, limit=1)
        return ProviderConfig(**rows[0]) if rows else None
