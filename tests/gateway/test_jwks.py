"""RS256/ES256 tokens from an identity provider, verified against its JWKS URL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.demo import seed_demo
from gateway.settings import load_settings
from tests.conftest import JWT_SECRET
from tests.emulators import serve


def base64url(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


class IdentityProvider:
    """Publishes a JWKS and signs tokens with its keys, as an IdP would."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.fetches = 0
        self.app = Starlette(routes=[Route("/.well-known/jwks.json", self._jwks)])

    def add_key(self, kid: str, kind: str) -> None:
        self.keys[kid] = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if kind == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )

    async def _jwks(self, request: Any) -> JSONResponse:
        self.fetches += 1
        published = []
        for kid, key in self.keys.items():
            algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
            jwk = json.loads(algorithm.to_jwk(key.public_key()))
            published.append({**jwk, "kid": kid, "use": "sig"})
        return JSONResponse({"keys": published})

    def token(self, kid: str, claims: dict[str, Any]) -> str:
        key = self.keys[kid]
        algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        now = int(time.time())
        body = {"iss": "one-gateway", "aud": "one-gateway", "iat": now, "exp": now + 600, **claims}
        return jwt.encode(body, key, algorithm=algorithm, headers={"kid": kid})


@pytest.fixture
def idp() -> Iterator[tuple[IdentityProvider, str]]:
    provider = IdentityProvider()
    provider.add_key("rsa-1", "RS256")
    provider.add_key("ec-1", "ES256")
    with serve(provider.app) as url:
        yield provider, f"{url}/.well-known/jwks.json"


@pytest.fixture
def client(idp: tuple[IdentityProvider, str], tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        env="test",
        data_dir=tmp_path,
        jwt_secret=JWT_SECRET,
        jwks_url=idp[1],
        jwks_cooldown_seconds=0.2,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def me(client: TestClient, token: str) -> dict[str, Any]:
    body: dict[str, Any] = client.post(
        "/graphql", json={"query": "{ me { role } }"}, headers={"Authorization": f"Bearer {token}"}
    ).json()
    return body


def owner_claims(client: TestClient) -> dict[str, str]:
    portal = client.portal
    assert portal is not None
    owners = portal.call(seed_demo, client.app.state.store)  # type: ignore[attr-defined]
    return {"sub": owners["acme"].person_id, "org": owners["acme"].org.id}


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
def test_rs256_and_es256_tokens_are_verified(
    idp: tuple[IdentityProvider, str], client: TestClient, kid: str
) -> None:
    provider, _ = idp
    claims = owner_claims(client)
    assert me(client, provider.token(kid, claims)) == {"data": {"me": {"role": "ORG_OWNER"}}}
    fetches = provider.fetches
    me(client, provider.token(kid, claims))
    assert provider.fetches == fetches  # cached


def test_an_unknown_kid_refreshes_the_keys(
    idp: tuple[IdentityProvider, str], client: TestClient
) -> None:
    provider, _ = idp
    claims = owner_claims(client)
    assert "errors" not in me(client, provider.token("rsa-1", claims))
    provider.add_key("rsa-2", "RS256")  # the IdP rotates
    time.sleep(0.3)  # past the refresh cooldown
    assert me(client, provider.token("rsa-2", claims)) == {"data": {"me": {"role": "ORG_OWNER"}}}


def test_forged_and_confused_tokens_are_refused(
    idp: tuple[IdentityProvider, str], client: TestClient
) -> None:
    provider, _ = idp
    claims = owner_claims(client)
    stranger = IdentityProvider()
    stranger.add_key("rsa-1", "RS256")  # same kid, another key
    forged = stranger.token("rsa-1", claims)
    # The IdP's public key used as an HMAC secret: the classic algorithm confusion. PyJWT will
    # not even build such a token, so it is signed by hand.
    public_pem = (
        provider.keys["rsa-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    now = int(time.time())
    segments = [
        base64url({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}),
        base64url(
            {**claims, "iss": "one-gateway", "aud": "one-gateway", "iat": now, "exp": now + 600}
        ),
    ]
    signature = hmac.new(public_pem, ".".join(segments).encode(), hashlib.sha256).digest()
    confused = ".".join([*segments, base64.urlsafe_b64encode(signature).decode().rstrip("=")])
    wrong_audience = provider.token("ec-1", {**claims, "aud": "someone-else"})
    for token in (forged, confused, wrong_audience):
        error = me(client, token)["errors"][0]
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
