"""What the data layer needs of secret sealing; the gateway's keyring implements it."""

from __future__ import annotations

from typing import Any, Protocol

from providers.records import ProviderConfig

Sealed = dict[str, str]  # {"kid": key id, "nonce": base64, "ct": base64}


class SealError(Exception):
    """A sealed value that cannot be opened: unknown key, wrong key, or tampered with."""


class Sealer(Protocol):
    def seal(self, plaintext: str, *, context: bytes) -> Sealed: ...

    def unseal(self, sealed: Sealed, *, context: bytes) -> str: ...


def sealing_context(org_id: str, config_id: str) -> bytes:
    """The associated data a secret is bound to: moved to another org or config, it fails."""
    return f"one-gateway/provider-config/{org_id}/{config_id}".encode()


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and {"kid", "nonce", "ct"} <= value.keys()


def unseal_config(config: ProviderConfig, sealer: Sealer) -> dict[str, Any]:
    """The config with its secrets opened; `SealError` when one does not open."""
    context = sealing_context(config.org_id, config.id)
    return {
        k: sealer.unseal(v, context=context) if is_sealed(v) else v
        for k, v in config.config.items()
    }
