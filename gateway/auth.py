"""Authentication: a bearer JWT becomes an `Actor`, checked against current membership."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import jwt

from gateway.settings import Settings
from providers.errors import OneError, UnauthenticatedError
from providers.native import NativeStore
from providers.native.api_keys import looks_like_key
from providers.records import Role
from resolvers.context import Actor

_ALGORITHM = "HS256"
# Each algorithm only with keys of its own kind: a public key is never taken as an HMAC secret.
_JWKS_ALGORITHMS = ("RS256", "ES256")
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "org"]
TOUCH_EVERY = 60.0  # seconds between writes of a key's last_used_at


class Authenticator:
    """Issues and verifies the gateway's HS256 tokens.

    Example:
        auth = Authenticator(secret, issuer="one-gateway", audience="one-gateway")
        token = auth.issue(person_id=p.id, org_id=org.id, role=Role.ORG_OWNER)
        actor_or_error = await auth.authenticate(f"Bearer {token}", store)
    """

    def __init__(
        self,
        secret: str,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        jwks_url: str | None = None,
        jwks_cooldown_seconds: float = 30.0,
    ) -> None:
        self._secret = secret
        # Keys cached for 5 minutes; a token with an unknown `kid` makes it fetch them again,
        # at most once per cooldown, so a flood of made-up kids cannot make it hammer the IdP.
        self._jwks = (
            jwt.PyJWKClient(
                jwks_url, cache_keys=True, lifespan=300, cooldown_duration=jwks_cooldown_seconds
            )
            if jwks_url
            else None
        )
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl_seconds
        self._touched: dict[str, float] = {}  # key id -> when its last_used_at was written

    def issue(
        self, *, person_id: str, org_id: str, role: Role, ttl_seconds: int | None = None
    ) -> str:
        now = int(time.time())
        claims = {
            "sub": person_id,
            "org": org_id,
            "role": role.value,
            "iss": self._issuer,
            "aud": self._audience,
            "iat": now,
            "exp": now + (ttl_seconds or self._ttl),
        }
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token: HS256 with our secret, or RS256/ES256 with a key from
        the JWKS URL (when one is configured)."""
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
            key: Any = self._secret
            if algorithm in _JWKS_ALGORITHMS and self._jwks is not None:
                # The fetch is blocking (urllib): keep it off the event loop.
                signing = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
                key = signing.key
            elif algorithm != _ALGORITHM:
                raise jwt.InvalidAlgorithmError(f"{algorithm} tokens are not accepted")
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise UnauthenticatedError("the token has expired") from None
        except (jwt.InvalidTokenError, jwt.PyJWKClientError):
            raise UnauthenticatedError("the token is not valid") from None

    async def authenticate(
        self, authorization: str | None, store: NativeStore, api_key: str | None = None
    ) -> Actor | OneError:
        """The actor of a request's credentials, or the error that says why there is none.

        A JWT's role is the one the person holds now, not the one in the token: a member who
        was removed or demoted loses access with their next request. A partner's API key
        (`X-API-Key`, or a Bearer value that is a key) acts with the key's organization and
        role until it is revoked.
        """
        return (await self.identify(authorization, store, api_key))[0]

    async def identify(
        self, authorization: str | None, store: NativeStore, api_key: str | None = None
    ) -> tuple[Actor | OneError, float]:
        """`authenticate`'s answer, and until when (Unix time) its credentials are valid:
        the token's expiry, else forever (`gateway/access.py` decides how long to trust it)."""
        try:
            if api_key:
                return await self._key_actor(api_key.strip(), store), math.inf
            token = _bearer(authorization)
            if looks_like_key(token):
                return await self._key_actor(token, store), math.inf
            claims = await self.verify(token)
            person_id, org_id = str(claims["sub"]), str(claims["org"])
            membership = (await store.people.memberships(org_id, [person_id])).get(person_id)
            if membership is None:
                raise UnauthenticatedError("the token's person is not a member of its organization")
            actor = Actor(org_id=org_id, role=membership.role, person_id=person_id)
            return actor, float(claims["exp"])
        except UnauthenticatedError as exc:
            return exc, math.inf

    async def _key_actor(self, secret: str, store: NativeStore) -> Actor:
        key = await store.api_keys.find(secret) if looks_like_key(secret) else None
        if key is None:
            raise UnauthenticatedError("the API key is not valid, or was revoked")
        now = time.monotonic()
        if now - self._touched.get(key.id, -TOUCH_EVERY) >= TOUCH_EVERY:
            self._touched[key.id] = now
            await store.api_keys.touch(key)
        return Actor(org_id=key.org_id, role=key.role, person_id=None, api_key_id=key.id)


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise UnauthenticatedError(
            "authentication required: send 'Authorization: Bearer <token>' or 'X-API-Key'"
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthenticatedError("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def authenticator(settings: Settings) -> Authenticator:
    """The authenticator the settings describe."""
    return Authenticator(
        settings.jwt_secret_value(),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=settings.token_ttl_seconds,
        jwks_url=settings.jwks_url,
        jwks_cooldown_seconds=settings.jwks_cooldown_seconds,
    )
