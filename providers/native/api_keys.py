"""Partner API keys: created and revoked by owners, shown once, kept only as a hash.

Keys carry 256 random bits, so a plain SHA-256 is enough to store them (a slow password hash
protects guessable secrets; nothing about these is guessable), and it lets a request find its
key with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import replace

from providers import validation
from providers.engine import Cond, Engine, Order, Row, Where
from providers.errors import InvalidInputError, NotFoundError
from providers.native.events import record_event
from providers.native.rows import to_row
from providers.records import ApiKey, Kind, Role, utcnow
from providers.refs import native_ref, new_local_id

KEY_PREFIX = "one_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX) and 20 <= len(value) <= 100


def _record(row: Row) -> ApiKey:
    return ApiKey(**{**row, "role": Role(row["role"])})


class ApiKeys:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def create(
        self, org_id: str, *, actor_ref: str | None, name: str, role: Role
    ) -> tuple[ApiKey, str]:
        """A new key for `org_id` acting as `role`; returns it with the secret, once."""
        if role is Role.PLATFORM_OWNER:
            raise InvalidInputError("an API key cannot act as platform_owner", field="role")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            id=new_local_id(),
            org_id=org_id,
            name=validation.name(name),
            role=role,
            prefix=secret[:10],
            key_hash=hash_key(secret),
            created_by=actor_ref,
        )
        async with self._engine.transaction() as tx:
            await tx.insert("api_keys", to_row(key))
            await record_event(
                tx,
                org_id,
                "api_key_created",
                actor_ref=actor_ref,
                target_ref=native_ref(Kind.ORGANIZATION, org_id),
                metadata={
                    "key_id": key.id,
                    "name": key.name,
                    "role": role.value,
                    "prefix": key.prefix,
                },
            )
        return key, secret

    async def revoke(self, org_id: str, id: str, *, actor_ref: str | None) -> ApiKey:
        async with self._engine.transaction() as tx:
            where: Where = [Cond("org_id", "eq", org_id), Cond("id", "eq", id)]
            rows = await tx.find("api_keys", where)
            if not rows or rows[0]["revoked_at"] is not None:
                raise NotFoundError("API key not found, or already revoked", field="id")
            now = utcnow()
            await tx.update("api_keys", id, {"revoked_at": now})
            key = replace(_record(rows[0]), revoked_at=now)
            await record_event(
                tx,
                org_id,
                "api_key_revoked",
                actor_ref=actor_ref,
                target_ref=native_ref(Kind.ORGANIZATION, org_id),
                metadata={"key_id": id, "name": key.name, "prefix": key.prefix},
            )
        return key

    async def of_organization(self, org_id: str) -> list[ApiKey]:
        where: Where = [Cond("org_id", "eq", org_id)]
        rows = await self._engine.find("api_keys", where, order=Order("created_at"))
        return [_record(r) for r in rows]

    async def find(self, secret: str) -> ApiKey | None:
        """The live key `secret` is, if any: the one lookup that crosses organizations,
        because the key is what says which organization a request is for."""
        where: Where = [Cond("key_hash", "eq", hash_key(secret)), Cond("revoked_at", "eq", None)]
        rows = await self._engine.find("api_keys", where, limit=1)
        return _record(rows[0]) if rows else None

    async def touch(self, key: ApiKey) -> None:
        async with self._engine.transaction() as tx:
            await tx.update("api_keys", key.id, {"last_used_at": utcnow()})
