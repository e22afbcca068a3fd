"""Safelists: an organization that turned one on runs only its trusted documents.

Mode `api_keys` restricts requests made with an API key; mode `all` restricts everyone but
the organization's owners (who must be able to manage the list). A document is trusted for
an actor when it was registered for the whole organization or for the actor's key. Modes and
answers are cached for `TTL` seconds: a change takes effect within that time.
"""

from __future__ import annotations

from gateway.expiring import Expiring
from providers.native import NativeStore
from providers.native.trusted_documents import document_hash
from providers.records import Role, SafelistMode
from resolvers.context import Actor

TTL = 10.0
_EXEMPT = frozenset({Role.ORG_OWNER, Role.PLATFORM_OWNER})


class Safelists:
    def __init__(self, store: NativeStore) -> None:
        self._store = store
        self._modes: Expiring[str, SafelistMode] = Expiring()
        self._trusted: Expiring[tuple[str, str, str | None], bool] = Expiring()

    async def allows(self, actor: Actor, document: str) -> bool:
        if not await self._restricted(actor):
            return True
        digest = document_hash(document)
        key = (actor.org_id, digest, actor.api_key_id)
        trusted = self._trusted.get(key, TTL)
        if trusted is None:
            trusted = self._trusted.put(key, await self._store.trusted_documents.is_trusted(*key))
        return trusted

    async def document(self, actor: Actor, digest: str) -> str | None:
        """The text of a trusted document asked for by its hash alone."""
        return await self._store.trusted_documents.get_text(
            actor.org_id, digest.lower(), actor.api_key_id
        )

    async def _restricted(self, actor: Actor) -> bool:
        mode = self._modes.get(actor.org_id, TTL)
        if mode is None:
            mode = await self._store.trusted_documents.safelist_mode(actor.org_id)
            self._modes.put(actor.org_id, mode)
        if mode is SafelistMode.API_KEYS:
            return actor.api_key_id is not None
        if mode is SafelistMode.ALL:
            return actor.api_key_id is not None or actor.role not in _EXEMPT
        return False
