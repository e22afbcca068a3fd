"""WebSockets (graphql-transport-ws) authenticate in connection_init."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from providers.records import Role
from tests.conftest import Api

PROTOCOL = ["graphql-transport-ws"]


def run(client: TestClient, init: dict[str, Any], query: str) -> dict[str, Any]:
    with client.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
        ws.send_json({"type": "connection_init", "payload": init})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"type": "subscribe", "id": "1", "payload": {"query": query}})
        message: dict[str, Any] = ws.receive_json()
        assert message["type"] == "next" and message["id"] == "1"
        return message["payload"]


def test_a_token_in_connection_init_authenticates(api: Api) -> None:
    init = {"Authorization": f"Bearer {api.token('acme', Role.ORG_USER)}"}
    assert run(api.client, init, "{ me { role organization { slug } } }") == {
        "data": {"me": {"role": "ORG_USER", "organization": {"slug": "acme"}}}
    }


def test_an_api_key_in_connection_init_authenticates(api: Api) -> None:
    created = api.data('mutation { createApiKey(name: "ws", role: CUSTOMER) { secret } }')
    init = {"X-API-Key": created["createApiKey"]["secret"]}
    assert run(api.client, init, "{ me { role } }") == {"data": {"me": {"role": "CUSTOMER"}}}


@pytest.mark.parametrize(
    "init",
    [
        {},
        {"Authorization": "Bearer forged.token.here"},
        {"X-API-Key": "one_not_a_real_key_at_all_000000"},
    ],
)
def test_no_or_bad_credentials_are_refused_with_4403(api: Api, init: dict[str, Any]) -> None:
    with api.client.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
        ws.send_json({"type": "connection_init", "payload": init})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4403


def _subscribe(api: Api, query: str) -> dict[str, Any]:
    init = {"Authorization": f"Bearer {api.token('acme', Role.ORG_USER)}"}
    with api.client.websocket_connect("/graphql", subprotocols=PROTOCOL) as ws:
        ws.send_json({"type": "connection_init", "payload": init})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"type": "subscribe", "id": "1", "payload": {"query": query}})
        message: dict[str, Any] = ws.receive_json()
        return message


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("{ me { role }", "GRAPHQL_PARSE_FAILED"),
        ("{ me { nonsense } }", "GRAPHQL_VALIDATION_FAILED"),
        ("{ " + " ".join(f"a{i}: me {{ role }}" for i in range(60)) + " }", "TOO_MANY_ALIASES"),
        (
            "{ things(first: 100) { edges { node { connections { to { ... on Thing {"
            " connections { to { id } } } } } } } } }",
            "QUERY_TOO_COMPLEX",
        ),
    ],
)
def test_refused_operations_answer_an_error_with_its_code(api: Api, query: str, code: str) -> None:
    message = _subscribe(api, query)
    assert message["type"] == "error" or message["payload"].get("errors"), message
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == code


def test_execution_errors_over_a_websocket_carry_codes(api: Api) -> None:
    message = _subscribe(api, '{ thing(id: "thing.native.missing") { id } }')
    assert message["type"] == "next"
    assert message["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
