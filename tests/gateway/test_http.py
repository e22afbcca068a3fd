"""The HTTP surface: GraphiQL, authentication, protocol errors, health and metrics."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from providers.records import Role
from tests.conftest import JWT_SECRET, Api


def test_graphiql_loads_for_a_browser_without_a_token(api: Api) -> None:
    response = api.client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200 and "graphiql" in response.text.lower()


def test_introspection_works_without_a_token_for_graphiql(api: Api) -> None:
    body = api.post("{ __schema { queryType { name } } }", role=None)
    assert body == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


def test_queries_without_a_token_are_unauthenticated(api: Api) -> None:
    for query in (
        "{ me { role } }",
        "{ things { totalCount } }",
        '{ node(id: "x.y.z") { id } }',
        'mutation { createThing(input: {type: "task", name: "x"}) { id } }',
    ):
        error = api.error(query, role=None)
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
        assert "Bearer" in error["message"]


def _claims(api: Api, **changes: object) -> dict[str, object]:
    claims = jwt.decode(api.token(), JWT_SECRET, algorithms=["HS256"], audience="one-gateway")
    claims.update(changes)
    return claims


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda api: jwt.encode(_claims(api, exp=int(time.time()) - 5), JWT_SECRET), "expired"),
        (
            lambda api: jwt.encode(_claims(api), "another-secret-of-enough-length-0123456789"),
            "not valid",
        ),
        (lambda api: jwt.encode(_claims(api, aud="someone-else"), JWT_SECRET), "not valid"),
        (lambda api: jwt.encode(_claims(api, iss="someone-else"), JWT_SECRET), "not valid"),
        (
            lambda api: jwt.encode(
                {k: v for k, v in _claims(api).items() if k != "exp"}, JWT_SECRET
            ),
            "not valid",
        ),
        (lambda api: jwt.encode(_claims(api, alg="none"), "", algorithm="none"), "not valid"),
        (lambda api: api.token()[:-4] + "AAAA", "not valid"),
        (lambda api: "garbage", "not valid"),
        (lambda api: jwt.encode(_claims(api, sub="0" * 32), JWT_SECRET), "not a member"),
        (lambda api: jwt.encode(_claims(api, org="0" * 32), JWT_SECRET), "not a member"),
    ],
)
def test_bad_tokens_are_unauthenticated(api: Api, make: object, fragment: str) -> None:
    token = make(api)  # type: ignore[operator]
    error = api.error("{ me { role } }", role=None, token=token)
    assert error["extensions"]["code"] == "UNAUTHENTICATED" and fragment in error["message"]


def test_a_token_for_another_org_does_not_lend_its_role(api: Api) -> None:
    # Uma is org_user in acme; a token claiming she owns globex gets her nothing there.
    uma = _claims(api)
    globex = jwt.decode(
        api.token("globex"), JWT_SECRET, algorithms=["HS256"], audience="one-gateway"
    )
    forged = jwt.encode({**uma, "org": globex["org"]}, JWT_SECRET)
    assert api.error("{ me { role } }", role=None, token=forged)["extensions"]["code"] == (
        "UNAUTHENTICATED"
    )


def test_role_comes_from_current_membership_not_the_token(api: Api) -> None:
    claims = _claims(api, role="platform_owner")  # Olivia is org_owner, whatever the token says
    token = jwt.encode(claims, JWT_SECRET)
    assert api.data("{ me { role } }", role=None, token=token)["me"]["role"] == "ORG_OWNER"


def test_authorization_header_must_be_bearer(api: Api) -> None:
    response = api.client.post(
        "/graphql",
        json={"query": "{ me { role } }"},
        headers={"Authorization": f"Basic {api.token()}"},
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        (
            {"content": b"not json", "headers": {"content-type": "application/json"}},
            400,
            "BAD_REQUEST",
        ),
        ({"json": {"variables": {}}}, 400, "BAD_REQUEST"),
        (
            {"content": b"x" * (1024 * 1024 + 1), "headers": {"content-type": "application/json"}},
            413,
            "PAYLOAD_TOO_LARGE",
        ),
    ],
)
def test_unreadable_requests_get_graphql_errors(
    api: Api, kwargs: dict[str, object], status: int, code: str
) -> None:
    response = api.client.post("/graphql", **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status
    assert response.json()["errors"][0]["extensions"]["code"] == code


def test_depth_and_alias_limits(api: Api) -> None:
    chain = ["me", "organization"] + ["members", "person", "membership", "organization"] * 3
    deep = "{ " + " { ".join(chain) + " { name" + " }" * len(chain) + " }"
    error = api.error(deep)
    assert error["extensions"] == {"code": "QUERY_TOO_DEEP", "limit": 12}
    aliases = "{ " + " ".join(f"a{i}: me {{ role }}" for i in range(60)) + " }"
    assert api.error(aliases)["extensions"] == {"code": "TOO_MANY_ALIASES", "limit": 50}


def test_unexpected_errors_are_masked_and_logged(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(api.store.things, "page", broken)
    error = api.error("{ things { totalCount } }")
    request_id = error["extensions"]["requestId"]
    assert error == {
        **error,
        "message": "Internal server error",
        "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
    }
    assert "hunter2" not in str(error)
    logged = [r for r in caplog.records if r.exc_info and "hunter2" in str(r.exc_info)]
    assert logged and request_id in logged[0].getMessage()


def test_health_readiness_and_metrics(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json() == {"status": "ready", "store": "sqlite"}
    api.data("{ me { role } }")
    metrics = api.client.get("/metrics").text
    assert 'one_http_requests_total{route="/graphql",status="200"}' in metrics
    assert 'one_store_queries_total{engine="sqlite"}' in metrics


def _as(api: Api, role: Role, organization: str, query: str) -> dict[str, Any]:
    headers = {
        "Authorization": f"Bearer {api.token('acme', role)}",
        "X-One-Organization": organization,
    }
    body: dict[str, Any] = api.client.post(
        "/graphql", json={"query": query}, headers=headers
    ).json()
    return body


def test_a_platform_owner_acts_for_another_organization(api: Api) -> None:
    globex = api.data("{ organization { id } }", org="globex")["organization"]["id"]
    query = "{ me { role organization { slug } } things { totalCount } }"
    body = _as(api, Role.PLATFORM_OWNER, globex, query)
    assert body["data"] == {
        "me": {"role": "PLATFORM_OWNER", "organization": {"slug": "globex"}},
        "things": {"totalCount": 3},
    }
    for role in (Role.ORG_OWNER, Role.ORG_USER, Role.CUSTOMER):
        assert _as(api, role, globex, query)["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    acme = api.data("{ organization { id } }")["organization"]["id"]
    assert _as(api, Role.ORG_USER, acme, "{ me { role } }")["data"]["me"]["role"] == "ORG_USER"
    bad = _as(api, Role.PLATFORM_OWNER, "nonsense", query)["errors"][0]["extensions"]["code"]
    missing = _as(api, Role.PLATFORM_OWNER, "org.native.0123456789abcdef", query)
    assert bad == "BAD_USER_INPUT" and missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
