"""Per-organization provider configuration with sealed credentials, through GraphQL."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.health import check_providers
from gateway.settings import load_settings
from providers.records import Role
from tests.conftest import JWT_SECRET, Api
from tests.wordpress import WordPress

CONFIGURE = """mutation($input: ConfigureProviderInput!) { configureProvider(input: $input) {
  provider routes status lastHealthCheck { status responseMs checkedAt }
  capabilities { read search write batchSize } configuredAt } }"""
PROVIDERS = """{ providers { provider routes status lastHealthCheck { status responseMs }
  capabilities { batchSize } } }"""


def configure(
    api: Api, wordpress: WordPress, routes: list[str] | None = None, **changes: Any
) -> dict[str, Any]:
    variables = {
        "input": {
            "provider": "wordpress",
            "routes": routes or ["blog_post", "page"],
            "config": wordpress.config(**changes),
        }
    }
    return api.post(CONFIGURE, variables)


def stored_configs(api: Api) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = api.run(api.store.engine.find, "provider_configs", [])
    return rows


def everything_said(api: Api, caplog: pytest.LogCaptureFixture, responses: list[Any]) -> str:
    events = api.data("{ events(first: 100) { edges { node { type metadata } } } }")
    return str(responses) + str(events) + caplog.text


def test_configure_tests_seals_saves_and_routes(api: Api, wordpress: WordPress) -> None:
    body = configure(api, wordpress)
    assert "errors" not in body, body
    info = body["data"]["configureProvider"]
    assert info["provider"] == "wordpress" and info["routes"] == ["blog_post", "page"]
    assert info["status"] == "online" and info["lastHealthCheck"]["responseMs"] > 0
    assert info["capabilities"] == {"read": True, "search": True, "write": True, "batchSize": 100}
    posts = api.data('{ things(type: "blog_post") { totalCount } }')["things"]["totalCount"]
    assert posts >= 60  # routed at once, no restart
    [row] = stored_configs(api)
    sealed = row["config"]["application_password"]
    assert set(sealed) == {"kid", "nonce", "ct"} and len(base64.b64decode(sealed["nonce"])) == 12
    assert wordpress.application_password not in str(row)
    assert row["config"]["username"] == "editor"  # only the secret fields are sealed
    [event] = api.data("""{ events(type: "settings_updated") { edges { node { metadata
      actor { email } } } } }""")["events"]["edges"]
    metadata = event["node"]["metadata"]
    assert metadata["from"] == "native" and metadata["to"] == "wordpress"
    assert 0 < metadata["duration_ms"] < 30_000
    assert event["node"]["actor"]["email"] == "olivia@acme.example"
    communications = api.data('{ events(type: "communication_event") { totalCount } }')
    assert communications["events"]["totalCount"] == 1


def test_a_failed_connection_test_saves_nothing(api: Api, wordpress: WordPress) -> None:
    body = configure(api, wordpress, application_password="wrong wrong wrong wrong")
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["provider"] == "wordpress"
    assert "nothing was saved" in body["errors"][0]["message"]
    assert stored_configs(api) == []
    assert api.data('{ things(type: "blog_post") { totalCount } }')["things"]["totalCount"] == 3
    bad = configure(api, wordpress, base_url="not a url")
    assert bad["errors"][0]["extensions"] == {
        **bad["errors"][0]["extensions"],
        "code": "BAD_USER_INPUT",
        "field": "base_url",
    }
    taken = configure(api, wordpress, routes=["product"])
    assert taken["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_roles_see_what_their_role_allows(api: Api, wordpress: WordPress) -> None:
    assert "errors" not in configure(api, wordpress)
    owner = api.data(PROVIDERS)["providers"][0]
    assert owner["status"] == "online" and owner["capabilities"] == {"batchSize": 100}
    user = api.data(PROVIDERS, role=Role.ORG_USER)["providers"][0]
    assert user == {
        "provider": "wordpress",
        "routes": ["blog_post", "page"],
        "status": None,
        "lastHealthCheck": None,
        "capabilities": None,
    }
    assert api.error(PROVIDERS, role=Role.CUSTOMER)["extensions"]["code"] == "FORBIDDEN"
    variables = {
        "input": {"provider": "wordpress", "routes": ["blog_post"], "config": wordpress.config()}
    }
    for role in (Role.ORG_USER, Role.CUSTOMER):
        error = api.error(CONFIGURE, variables, role=role)
        assert error["extensions"]["code"] == "FORBIDDEN"
    assert api.data(PROVIDERS, org="globex")["providers"] == []


def test_rollback_and_connection_tests(api: Api, wordpress: WordPress) -> None:
    assert "errors" not in configure(api, wordpress)
    assert "errors" not in configure(api, wordpress, routes=["blog_post"])
    assert api.data(PROVIDERS)["providers"][0]["routes"] == ["blog_post"]
    rolled = api.data('mutation { rollbackProvider(provider: "wordpress") { routes } }')
    assert rolled["rollbackProvider"]["routes"] == ["blog_post", "page"]
    pages = api.data('{ things(type: "page") { edges { node { provider } } } }')["things"]
    assert {e["node"]["provider"] for e in pages["edges"]} == {"wordpress"}
    assert len(stored_configs(api)) == 2  # nothing deleted: the other one waits, inactive
    tested = api.data(
        'mutation { testProviderConnection(provider: "wordpress") { status responseMs } }'
    )["testProviderConnection"]
    assert tested["status"] == "online" and tested["responseMs"] > 0
    events = api.data("""{ events(type: "communication_event", first: 1) { edges { node {
      metadata } } } }""")["events"]["edges"][0]["node"]["metadata"]
    assert events["provider"] == "wordpress" and events["status"] == "online"
    none = api.error('mutation { rollbackProvider(provider: "shopify") { routes } }')
    assert none["extensions"]["code"] == "BAD_USER_INPUT"
    forbidden = api.error(
        'mutation { testProviderConnection(provider: "wordpress") { status } }', role=Role.ORG_USER
    )
    assert forbidden["extensions"]["code"] == "FORBIDDEN"


def test_tampered_ciphertext_fails_closed(api: Api, wordpress: WordPress) -> None:
    assert "errors" not in configure(api, wordpress)
    [row] = stored_configs(api)
    sealed = dict(row["config"]["application_password"])
    raw = bytearray(base64.b64decode(sealed["ct"]))
    raw[0] ^= 0x01  # one bit of one byte
    sealed["ct"] = base64.b64encode(bytes(raw)).decode()

    async def tamper() -> None:
        async with api.store.engine.transaction() as tx:
            await tx.update(
                "provider_configs",
                row["id"],
                {"config": {**row["config"], "application_password": sealed}},
            )

    api.run(tamper)
    body = api.post(
        '{ courses: things(type: "course") { totalCount } '
        'posts: things(type: "blog_post") { totalCount } }'
    )
    assert body["data"]["courses"]["totalCount"] == 1 and body["data"]["posts"] is None
    assert body["errors"][0]["extensions"]["code"] == "PROVIDER_CONFIG_UNREADABLE"
    alerts = api.data('{ events(type: "security_alert") { edges { node { metadata } } } }')
    assert alerts["events"]["edges"][0]["node"]["metadata"]["provider"] == "wordpress"
    assert api.run(check_providers, api.store, api.client.app.state.providers) == 1  # type: ignore[attr-defined]
    health = api.data(PROVIDERS)["providers"][0]
    assert health["status"] == "offline"
    tested = api.data(
        'mutation { testProviderConnection(provider: "wordpress") { status detail } }'
    )["testProviderConnection"]
    assert tested["status"] == "offline" and "cannot be opened" in tested["detail"]
    alerts = api.data('{ events(type: "security_alert") { totalCount } }')["events"]
    assert alerts["totalCount"] == 3  # the query, the health round, the on-demand test


def test_a_gateway_with_another_key_fails_closed(
    api: Api, wordpress: WordPress, tmp_path: Path
) -> None:
    assert "errors" not in configure(api, wordpress)
    settings = load_settings(
        env="test",
        data_dir=tmp_path,
        jwt_secret=JWT_SECRET,
        encryption_key=base64.b64encode(b"k" * 32).decode(),
    )
    with TestClient(create_app(settings)) as other:
        token = api.token()
        body = other.post(
            "/graphql",
            json={"query": '{ things(type: "blog_post") { totalCount } }'},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
    assert body["errors"][0]["extensions"]["code"] == "PROVIDER_CONFIG_UNREADABLE"
    assert wordpress.application_password not in str(body)


def test_no_secret_is_ever_said(
    api: Api, wordpress: WordPress, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = wordpress.application_password
    responses = [
        configure(api, wordpress),
        configure(api, wordpress, routes=["blog_post"]),
        api.post('mutation { rollbackProvider(provider: "wordpress") { routes status } }'),
        api.post('mutation { testProviderConnection(provider: "wordpress") { status detail } }'),
        configure(api, wordpress, application_password=secret[:-4] + "zzzz"),  # a failed test
        configure(api, wordpress, base_url="http://127.0.0.1:1"),  # unreachable
        api.post(PROVIDERS),
        api.post('{ things(type: "blog_post", first: 3) { edges { node { properties } } } }'),
        api.post(
            'mutation { createThing(input: {type: "blog_post", name: "x", properties: '
            '{categories: ["bad"]}}) { id } }'
        ),
    ]
    said = everything_said(api, caplog, responses)
    assert secret not in said and secret.replace(" ", "") not in said
    assert secret[:-4] not in said  # not even the wrong one we sent


def test_invalid_encryption_key_is_a_clear_settings_error(tmp_path: Path) -> None:
    from gateway.settings import SettingsError

    with pytest.raises(SettingsError, match="ONE_ENCRYPTION_KEY: must be 32 bytes") as error:
        load_settings(data_dir=tmp_path, encryption_key="too-short-a-key")
    assert "too-short-a-key" not in str(error.value)
