"""What an owner needs to switch webhooks on: `notionVerificationToken`, the one-time token
Notion sent to the organization's webhook endpoint (see gateway/webhooks.py), to paste back
into Notion. The only secret any field returns, and to owners only."""

from __future__ import annotations

from providers.errors import ProviderSecretError
from providers.sealing import SealError, unseal_config
from resolvers.context import Info
from resolvers.permissions import Action, require


async def notion_verification_token(info: Info) -> str | None:
    """The verification token Notion sent to your organization's webhook endpoint
    (`/webhooks/notion/<organization id>`): paste it into Notion to activate the subscription.
    Null until it has arrived. Owners only."""
    actor = require(info.context.actor, Action.MANAGE_PROVIDERS)
    configs = await info.context.store.provider_configs.active(actor.org_id)
    config = next((c for c in configs if c.provider == "notion"), None)
    if config is None:
        return None
    try:
        token = unseal_config(config, info.context.providers.sealer).get(
            "webhook_verification_token"
        )
    except SealError:
        raise ProviderSecretError(
            "the notion credentials cannot be opened; configure Notion again",
            provider="notion",
        ) from None
    return str(token) if token else None
