"""The provider registry: the single list of provider names, each provider's factory and
config schema, and a pool of instances.

Adding a provider is one module that declares its factory as `PROVIDER` and its name in
`PROVIDER_MODULES`. The native store is always there (`NATIVE`), configured by nobody. A
provider may own no thing types (`embeddings`): configured like the others, it is never
routed to, and no global id names it.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from providers.errors import InvalidInputError, NotFoundError, ProviderSecretError
from providers.provider import Capabilities, Provider
from providers.records import NATIVE, ProviderConfig
from providers.sealing import Sealer, SealError, unseal_config
from providers.upstream import (
    CircuitListener,
    CircuitState,
    UpstreamObserver,
    UpstreamPolicy,
    Upstreams,
)
from providers.validation import excerpt

if TYPE_CHECKING:
    from providers.embeddings import EmbeddingProvider


@dataclass(frozen=True, slots=True)
class ProviderFactory:
    name: str
    config_model: type[BaseModel]
    thing_types: frozenset[str]
    capabilities: Capabilities
    # (org id, config, upstreams): a bare client gets the default upstream policy
    create: Callable[[str, Any, httpx.AsyncClient | Upstreams], Provider]

    @classmethod
    def of(cls, provider: Any, config_model: type[BaseModel]) -> ProviderFactory:
        """The factory of a provider class, which declares its name, types and capabilities."""
        return cls(
            name=provider.name,
            config_model=config_model,
            thing_types=provider.thing_types,
            capabilities=provider.capabilities,
            create=provider,
        )


# The modules of the configurable providers, each declaring `PROVIDER = ProviderFactory(...)`.
# Imported on first use, so that the registry itself stays free of provider code.
PROVIDER_MODULES = (
    "providers.wordpress",
    "providers.shopify",
    "providers.notion",
    "providers.embeddings",
)


@dataclass(frozen=True, slots=True)
class _Loaded:
    modules: tuple[str, ...]
    factories: dict[str, ProviderFactory]
    names: frozenset[str]


_loaded: _Loaded | None = None


def _registry() -> _Loaded:
    global _loaded
    if _loaded is None or _loaded.modules is not PROVIDER_MODULES:
        found: dict[str, ProviderFactory] = {}
        for module in PROVIDER_MODULES:
            declared: ProviderFactory = importlib.import_module(module).PROVIDER
            found[declared.name] = declared
        owners = (name for name, f in found.items() if f.thing_types)
        _loaded = _Loaded(PROVIDER_MODULES, found, frozenset({NATIVE, *owners}))
    return _loaded


def provider_names() -> frozenset[str]:
    """Every provider a global id may name: the native store and the configurable ones that
    own thing types."""
    return _registry().names


def factory(name: str) -> ProviderFactory:
    factories = _registry().factories
    try:
        return factories[name]
    except KeyError:
        known = ", ".join(sorted(factories))
        raise InvalidInputError(
            f"unknown provider '{excerpt(name)}'; providers: {known}", field="provider"
        ) from None


def validate_config(name: str, config: dict[str, Any], routes: list[str]) -> dict[str, Any]:
    """The config as the provider's schema normalizes it, or `InvalidInputError` per field."""
    found = factory(name)
    unknown = sorted(set(routes) - found.thing_types)
    if unknown:
        raise InvalidInputError(
            f"{name} cannot own {excerpt(', '.join(unknown))}; "
            f"it owns {', '.join(sorted(found.thing_types)) or 'no thing types'}",
            field="routes",
        )
    try:
        model = found.config_model.model_validate(config)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InvalidInputError(f"{name} config: {field}: {first['msg']}", field=field) from None
    return _plain(model.model_dump(exclude_none=True))


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready values, secrets in clear: this is what gets stored (sealed, once #5 lands)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, SecretStr):
            out[key] = value.get_secret_value()
        elif isinstance(value, str | int | float | bool | list | dict):
            out[key] = value
        else:
            out[key] = str(value)  # URLs and the like
    return out


class ProviderPool:
    """Provider instances, one per (organization, provider), reused across requests until
    their config changes. Their secrets are opened here, and only here, when an instance is
    made. Each instance calls its backend through its own `Upstream` (breaker, bulkhead)
    made from the pool's `upstreams`; `on_circuit_change(org_id, provider, state)` hears of
    every breaker's state change."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        sealer: Sealer,
        *,
        policy: UpstreamPolicy | None = None,
        observer: UpstreamObserver | None = None,
        on_circuit_change: CircuitListener | None = None,
    ) -> None:
        self.client = client
        self.sealer = sealer
        self.upstreams = Upstreams(
            client, policy, observer=observer, on_circuit_change=on_circuit_change
        )
        self._instances: dict[tuple[str, str], tuple[str, Provider]] = {}

    def get(self, config: ProviderConfig) -> Provider:
        key = _key(config)
        held = self._instances.get((config.org_id, config.provider))
        if held is not None and held[0] == key:
            return held[1]
        try:
            values = unseal_config(config, self.sealer)
        except SealError as exc:
            # Fail closed: no instance, no clear text, a clear error for this provider.
            raise ProviderSecretError(
                f"the {config.provider} credentials cannot be opened ({exc}); the "
                "provider is offline until it is configured again",
                provider=config.provider,
            ) from None
        found = factory(config.provider)
        model = found.config_model.model_validate(values)
        instance = found.create(config.org_id, model, self.upstreams)
        # A new config replaces the organization's previous instance (and its breaker).
        self._instances[(config.org_id, config.provider)] = (key, instance)
        return instance

    def embedder(self, configs: Iterable[ProviderConfig]) -> EmbeddingProvider | None:
        """The organization's embedding provider among its active `configs`, or None when it
        has none configured; `ProviderSecretError` when its key does not open."""
        from providers.embeddings import NAME, EmbeddingProvider  # it imports this module

        for config in configs:
            if config.provider == NAME:
                instance = self.get(config)
                if not isinstance(instance, EmbeddingProvider):
                    raise TypeError(f"the {NAME} provider is a {type(instance).__name__}")
                return instance
        return None

    def circuit(self, config: ProviderConfig) -> CircuitState | None:
        """The breaker state of this config's instance; None until it has been made."""
        held = self._instances.get((config.org_id, config.provider))
        if held is None or held[0] != _key(config):
            return None
        return self.upstreams.circuit(config.org_id, config.provider)


def _key(config: ProviderConfig) -> str:
    return json.dumps([config.id, config.config], sort_keys=True)


def not_configured(provider: str) -> NotFoundError:
    return NotFoundError(
        f"no '{provider}' provider is configured for this organization", provider=provider
    )
