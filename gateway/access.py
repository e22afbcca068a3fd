"""Who a request's credentials name, checked at most once a second for the same credentials.

Authenticating is a JWT signature check and a membership query, or an API key lookup: much of
what a small request costs. So the answer for one set of credentials (Authorization,
X-API-Key, X-One-Organization) is kept for at most `ACCESS_TTL` from when its check started,
never past the token's expiry, and shared by the HTTP requests, WebSockets and subscriptions
that present them; a check in flight is awaited by all who need it, not repeated.

A change of access committed in this process (a member joins or leaves, which is also how a
role changes, or a key is revoked) forgets every kept answer at once, so the next request
checks again; one committed by another process is seen within `ACCESS_TTL`. A subscription
told of an access event asks for a check started after it (`since`, the event's `seq`).
"""

from __future__ import annotations

import time
from dataclasses import replace

from gateway.auth import Authenticator
from gateway.expiring import SharedReads
from providers.engine import Row
from providers.errors import ForbiddenError, NotFoundError, OneError, UnauthenticatedError
from providers.native import NativeStore
from providers.records import Kind, Role
from providers.refs import Ref
from resolvers.context import Actor

Credentials = tuple[str | None, str | None, str | None]  # authorization, API key, acting for

ACCESS_TTL = 1.0  # seconds a checked answer is trusted
ACCESS_EVENTS = frozenset({"user_joined_org", "user_left_org", "api_key_revoked"})
Answer = tuple[Actor | OneError, float]  # and until when (Unix time) the token is valid


class Access:
    """Example:
    access = Access(auth, store)
    actor_or_error = await access.actor(("Bearer eyJ...", None, None))
    """

    def __init__(self, auth: Authenticator, store: NativeStore, *, ttl: float = ACCESS_TTL) -> None:
        self._auth = auth
        self._store = store
        self._checks: SharedReads[Credentials, Answer] = SharedReads(ttl)
        store.engine.on_commit("events", self._committed)

    async def actor(self, credentials: Credentials, since: int = 0) -> Actor | OneError:
        """The actor `credentials` name now, or the error that says why there is none."""
        actor, valid_until = await self._checks.get(
            credentials, lambda: self._check(credentials), since=since
        )
        if isinstance(actor, OneError):
            # A fresh error for each request: the kept one is raised by none of them.
            return type(actor)(actor.message, **actor.extensions)
        if time.time() >= valid_until:
            return UnauthenticatedError("the token has expired")
        return actor

    def _committed(self, row: Row) -> None:
        if row.get("type") in ACCESS_EVENTS:
            self._checks.clear()

    async def _check(self, credentials: Credentials) -> Answer:
        authorization, api_key, acting_for = credentials
        actor, valid_until = await self._auth.identify(authorization, self._store, api_key)
        if isinstance(actor, Actor) and acting_for:
            actor = await self._acting_for(actor, acting_for)
        return actor, valid_until

    async def _acting_for(self, actor: Actor, organization: str) -> Actor | OneError:
        """A platform owner acts in another organization by naming it in
        `X-One-Organization` (its id); nobody else may."""
        try:
            org_id = Ref.parse(organization, expect=Kind.ORGANIZATION).local_id
        except OneError as exc:
            return exc
        if org_id == actor.org_id:
            return actor
        if actor.role is not Role.PLATFORM_OWNER:
            return ForbiddenError("only a platform owner may act for another organization")
        if (await self._store.organizations.get_many([org_id]))[0] is None:
            return NotFoundError("X-One-Organization names no organization")
        return replace(actor, org_id=org_id)
