"""An organization's provider configuration: switch, test, roll back, all or nothing.

One flow for every caller (the GraphQL mutations and the CLI): validate the config with the
provider's schema, test the connection, seal the secret fields, then save and switch routing in
one store transaction with its `settings_updated` event (never holding a secret). A failure at
any step leaves the previous configuration in force.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import httpx
from pydantic import SecretStr

from providers.errors import ProviderError, ProviderSecretError
from providers.native import NativeStore
from providers.provider import Health, Provider
from providers.records import JSONObject, Kind, ProviderConfig, utcnow
from providers.refs import native_ref, new_local_id
from providers.registry import ProviderPool, factory, validate_config
from providers.sealing import Sealer, sealing_context


def secret_fields(provider: str) -> frozenset[str]:
    """The config fields the provider's schema types as secrets (`SecretStr`)."""
    model = factory(provider).config_model
    return frozenset(
        name
        for name, field in model.model_fields.items()
        if field.annotation is SecretStr or SecretStr in getattr(field.annotation, "__args__", ())
    )


def seal(provider: str, values: dict[str, Any], sealer: Sealer, context: bytes) -> dict[str, Any]:
    secret = secret_fields(provider)
    return {
        k: sealer.seal(str(v), context=context) if k in secret and v is not None else v
        for k, v in values.items()
    }


async def configure(
    store: NativeStore,
    client: httpx.AsyncClient,
    sealer: Sealer,
    *,
    org_id: str,
    actor_ref: str | None,
    provider: str,
    config: dict[str, Any],
    routes: list[str],
) -> ProviderConfig:
    """Validate -> test the connection -> seal -> save and switch routing; the saved config
    carries the connection test's result."""
    started = time.perf_counter()
    values = validate_config(provider, config, routes)
    found = factory(provider)
    instance: Provider = found.create(org_id, found.config_model.model_validate(values), client)
    health = await instance.health()
    if health.status != "online":
        raise ProviderError(
            f"{provider} connection test failed, nothing was saved: {health.detail}",
            provider=provider,
            retryable=False,
        )
    config_id = new_local_id()
    sealed = seal(provider, values, sealer, sealing_context(org_id, config_id))
    saved = await store.provider_configs.save(
        org_id,
        actor_ref=actor_ref,
        provider=provider,
        config=sealed,
        routes=routes,
        id=config_id,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return replace(saved, health=await _record(store, saved, health, actor_ref))


async def check(
    store: NativeStore, pool: ProviderPool, config: ProviderConfig, actor_ref: str | None
) -> JSONObject:
    """Test an active config's connection now, and keep and log the result (a
    `communication_event`; a `security_alert` too when its secrets do not open)."""
    try:
        instance = pool.get(config)
    except ProviderSecretError as exc:
        await record_unreadable(store, config)
        return await _record(store, config, Health("offline", 0.0, exc.message), actor_ref)
    return await _record(store, config, await instance.health(), actor_ref)


async def _record(
    store: NativeStore, config: ProviderConfig, health: Health, actor_ref: str | None
) -> JSONObject:
    summary: JSONObject = {
        "status": health.status,
        "response_ms": round(health.response_ms, 1),
        "detail": health.detail,
        "at": utcnow().isoformat(),
    }
    await store.provider_configs.record_health(config, summary)
    await store.events.append(
        config.org_id,
        "communication_event",
        actor_ref=actor_ref,
        target_ref=native_ref(Kind.ORGANIZATION, config.org_id),
        metadata={"provider": config.provider, "config_id": config.id, **summary},
    )
    return summary


async def record_unreadable(store: NativeStore, config: ProviderConfig) -> None:
    """A config whose sealed secrets did not open: a `security_alert` event."""
    await store.events.append(
        config.org_id,
        "security_alert",
        actor_ref=None,
        target_ref=native_ref(Kind.ORGANIZATION, config.org_id),
        metadata={
            "provider": config.provider,
            "config_id": config.id,
            "reason": "sealed credentials did not open",
        },
    )
