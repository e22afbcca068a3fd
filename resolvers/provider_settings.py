"""Provider configuration through GraphQL: `providers`, `configureProvider`,
`testProviderConnection`, `rollbackProvider`. No field here ever carries a secret: configs
are never returned, only what a provider is, what it owns and how it is doing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from providers import configuration
from providers.errors import ForbiddenError, InvalidInputError, NotFoundError
from providers.records import Kind, ProviderConfig
from providers.registry import factory
from providers.validation import excerpt
from resolvers.context import Actor, Info
from resolvers.enums import Role
from resolvers.ids import parse_id
from resolvers.permissions import Action, require

SLOW_MS = 2000.0  # an answer slower than this makes a provider "degraded"


@strawberry.type
class ProviderCapabilities:
    read: bool
    search: bool
    write: bool
    batch_size: int


@strawberry.type(description="A connection test: how the provider answered, and when.")
class ProviderHealth:
    status: str = strawberry.field(description="online, degraded or offline")
    response_ms: float
    checked_at: datetime | None
    detail: str


@strawberry.type(description="A configured provider. Org users see its name and types only.")
class ProviderInfo:
    provider: str
    routes: list[str]
    status: str | None = strawberry.field(description="online, degraded, offline; null: untested")
    last_health_check: ProviderHealth | None
    capabilities: ProviderCapabilities | None
    configured_at: datetime | None
    circuit: str | None = strawberry.field(
        default=None,
        description="closed, open (calls fail fast until a probe), half_open; null: not yet used",
    )


def _health(summary: dict[str, Any] | None) -> ProviderHealth | None:
    if not summary:
        return None
    status = str(summary.get("status", "offline"))
    response_ms = float(summary.get("response_ms") or 0)
    if status == "online" and response_ms > SLOW_MS:
        status = "degraded"
    at = summary.get("at")
    return ProviderHealth(
        status=status,
        response_ms=response_ms,
        checked_at=datetime.fromisoformat(at) if at else None,
        detail=str(summary.get("detail") or ""),
    )


def _info(config: ProviderConfig, actor: Actor, circuit: str | None = None) -> ProviderInfo:
    if actor.role not in (Role.PLATFORM_OWNER, Role.ORG_OWNER):
        return ProviderInfo(
            provider=config.provider,
            routes=config.routes,
            status=None,
            last_health_check=None,
            capabilities=None,
            configured_at=None,
        )
    health = _health(config.health)
    capabilities = factory(config.provider).capabilities
    return ProviderInfo(
        provider=config.provider,
        routes=config.routes,
        status=health.status if health else None,
        last_health_check=health,
        capabilities=ProviderCapabilities(
            read=capabilities.read,
            search=capabilities.search,
            write=capabilities.write,
            batch_size=capabilities.batch_size,
        ),
        configured_at=config.updated_at,
        circuit=circuit,
    )


def _org(info: Info, org_id: strawberry.ID | None) -> str:
    actor = info.context.actor
    if org_id is None:
        return actor.org_id
    local = parse_id(org_id, Kind.ORGANIZATION, "orgId").local_id
    if local != actor.org_id and actor.role is not Role.PLATFORM_OWNER:
        raise NotFoundError("organization not found", field="orgId")
    return local


async def providers(info: Info, org_id: strawberry.ID | None = None) -> list[ProviderInfo]:
    """Your organization's configured providers. Owners see status, health and
    capabilities; org users the routed types only; customers nothing."""
    actor = info.context.actor
    if actor.role is Role.CUSTOMER:
        raise ForbiddenError("customers may not see provider configuration")
    configs = await info.context.store.provider_configs.active(_org(info, org_id))
    pool = info.context.providers
    return [_info(c, actor, pool.circuit(c)) for c in configs]


@strawberry.input
class ConfigureProviderInput:
    provider: str = strawberry.field(
        description="wordpress, shopify, notion, or embeddings (which routes no types)"
    )
    routes: list[str] = strawberry.field(description="thing types it owns, e.g. [blog_post]")
    config: JSON = strawberry.field(description="the provider's settings, credentials included")


async def configure_provider(
    info: Info, input: ConfigureProviderInput, org_id: strawberry.ID | None = None
) -> ProviderInfo:
    """Validate, test the connection, seal the credentials, save and switch routing: all or
    nothing. The previous configuration is kept, inactive, for `rollbackProvider`."""
    actor = require(info.context.actor, Action.MANAGE_PROVIDERS)
    if not isinstance(input.config, dict):
        raise InvalidInputError("'config' must be a JSON object", field="config")
    pool = info.context.providers
    saved = await configuration.configure(
        info.context.store,
        pool.client,
        pool.sealer,
        org_id=_org(info, org_id),
        actor_ref=actor.ref,
        provider=input.provider,
        config=dict(input.config),
        routes=list(input.routes),
    )
    return _info(saved, actor)


async def test_provider_connection(
    info: Info, provider: str, org_id: strawberry.ID | None = None
) -> ProviderHealth:
    """Test a configured provider's connection now; logged as a `communication_event`."""
    actor = require(info.context.actor, Action.SEE_PROVIDER_HEALTH)
    org = _org(info, org_id)
    config = next(
        (
            c
            for c in await info.context.store.provider_configs.active(org)
            if c.provider == provider
        ),
        None,
    )
    if config is None:
        raise NotFoundError(f"no '{excerpt(provider)}' provider is configured", field="provider")
    summary = await configuration.check(
        info.context.store, info.context.providers, config, actor.ref
    )
    result = _health(summary)
    assert result is not None  # a fresh summary is never empty
    return result


async def rollback_provider(
    info: Info, provider: str, org_id: strawberry.ID | None = None
) -> ProviderInfo:
    """Go back to the provider's previous configuration (the current one is kept)."""
    actor = require(info.context.actor, Action.MANAGE_PROVIDERS)
    restored = await info.context.store.provider_configs.rollback(
        _org(info, org_id), provider, actor_ref=actor.ref
    )
    return _info(restored, actor)
