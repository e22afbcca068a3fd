"""Partner API keys through GraphQL: owners create them (the secret is shown once), list and
revoke them. A key's hash never leaves the store."""

from __future__ import annotations

from datetime import datetime

import strawberry

from providers.errors import InvalidInputError
from providers.records import ApiKey as ApiKeyRecord
from resolvers.context import Actor, Info
from resolvers.enums import Role
from resolvers.permissions import Action, require


@strawberry.type(description="A partner's key: one organization, one role.")
class ApiKey:
    id: strawberry.ID
    name: str
    role: Role
    prefix: str = strawberry.field(description="The key's first characters, to tell keys apart.")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_record(cls, record: ApiKeyRecord) -> ApiKey:
        return cls(
            id=api_key_global_id(record.id),
            name=record.name,
            role=record.role,
            prefix=record.prefix,
            created_at=record.created_at,
            last_used_at=record.last_used_at,
            revoked_at=record.revoked_at,
        )


@strawberry.type
class CreatedApiKey:
    api_key: ApiKey
    secret: str = strawberry.field(description="The key itself. Shown this once, never again.")


def _key_manager(info: Info) -> Actor:
    # A person's action: a leaked owner key must not be able to mint its own successors.
    return require(info.context.actor, Action.MANAGE_API_KEYS)


async def api_keys(info: Info) -> list[ApiKey]:
    """Your organization's API keys (owners only), revoked ones included."""
    actor = _key_manager(info)
    return [
        ApiKey.from_record(k)
        for k in await info.context.store.api_keys.of_organization(actor.org_id)
    ]


async def create_api_key(info: Info, name: str, role: Role) -> CreatedApiKey:
    """A key for a partner, acting in your organization with `role`."""
    actor = _key_manager(info)
    key, secret = await info.context.store.api_keys.create(
        actor.org_id, actor_ref=actor.ref, name=name, role=role
    )
    return CreatedApiKey(api_key=ApiKey.from_record(key), secret=secret)


async def revoke_api_key(info: Info, id: strawberry.ID) -> ApiKey:
    """Revoke a key: its next request is refused."""
    actor = _key_manager(info)
    local = parse_api_key_id(id)
    return ApiKey.from_record(
        await info.context.store.api_keys.revoke(actor.org_id, local, actor_ref=actor.ref)
    )


def api_key_global_id(local_id: str) -> strawberry.ID:
    return strawberry.ID(f"apikey.native.{local_id}")


def parse_api_key_id(id: str, field: str = "id") -> str:
    local = id.removeprefix("apikey.native.")
    if local == id or not local.isalnum() or len(local) > 64:
        raise InvalidInputError(f"'{field}' is not an API key id (apikey.native.<id>)", field=field)
    return local
