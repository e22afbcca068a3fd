"""GraphQL over HTTP conformance: graphql-http's server audits against the real gateway on a
loopback port, and the protocol edges the audits do not reach."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from starlette.websockets import WebSocketDisconnect

from gateway.app import create_app
from gateway.settings import load_settings
from gateway.view import GRAPHQL_RESPONSE
from tests.clients.graphql_http import server_audits
from tests.conftest import JWT_SECRET, Api
from tests.emulators import serve


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The gateway's `/graphql` under uvicorn on a loopback port, its lifespan included."""
    # The audits send their requests anonymously, back to back, from one address.
    settings = load_settings(
        env="test",
        data_dir=tmp_path_factory.mktemp("gateway"),
        jwt_secret=JWT_SECRET,
        anonymous_rate=1000,
        anonymous_burst=1000,
    )
    with serve(create_app(settings), lifespan="on") as base:
        yield f"{base}/graphql"


def test_graphql_http_server_audits_pass(url: str) -> None:
    results = server_audits(url)
    assert len(results) > 30, results  # the whole suite ran
    failing = [r for r in results if r["status"] in ("error", "warn")]
    assert not failing, "\n".join(
        f"{r['status']} {r['id']} {r['name']}: {r['reason']} "
        f"(HTTP {r.get('responseStatus')}: {r.get('responseBody')})"
        for r in failing
    )


def _post(url: str, body: object, **headers: str) -> httpx.Response:
    return httpx.post(url, json=body, headers={"Accept": GRAPHQL_RESPONSE, **headers})


def _get(url: str, **params: str) -> httpx.Response:
    headers = {"Accept": GRAPHQL_RESPONSE, "Apollo-Require-Preflight": "true"}
    return httpx.get(url, params=params, headers=headers)


def _code(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


# The audits send their GETs with the preflight header; without it, CSRF prevention refuses.
def test_without_a_preflight_header_only_a_json_post_runs(url: str) -> None:
    query = "{ __typename }"
    refused = [
        httpx.get(url, params={"query": query}),
        httpx.post(url, content=f'{{"query": "{query}"}}', headers={"Content-Type": "text/plain"}),
        httpx.post(url, content=f'{{"query": "{query}"}}'),  # no content type at all
    ]
    assert [(r.status_code, _code(r)) for r in refused] == [(400, "CSRF_PREVENTED")] * 3
    assert httpx.post(url, json={"query": query}).json() == {"data": {"__typename": "Query"}}


QUERY_THEN_MUTATION = 'query Q { __typename } mutation M { archiveThing(id: "x") { id } }'
MUTATION_THEN_QUERY = 'mutation M { archiveThing(id: "x") { id } } query Q { __typename }'


# Strawberry runs the first of several operations when none is named; GraphQL asks for a
# request error. A GET whose first operation is a mutation once answered 500.
@pytest.mark.parametrize("document", [QUERY_THEN_MUTATION, MUTATION_THEN_QUERY])
def test_several_operations_need_an_operation_name(url: str, document: str) -> None:
    for response in (_get(url, query=document), _post(url, {"query": document})):
        assert response.status_code == 400, response.text
        assert response.json()["errors"][0]["message"] == (
            "Must provide operation name if query contains multiple operations."
        )
    named = _get(url, query=document, operationName="Q")
    assert named.json() == {"data": {"__typename": "Query"}}
    assert _get(url, query=document, operationName="M").status_code == 405


def test_an_unknown_operation_name_is_a_request_error(url: str) -> None:
    response = _post(url, {"query": "query Q { __typename }", "operationName": "Z"})
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {"message": 'Unknown operation named "Z".', "extensions": {"code": "BAD_REQUEST"}}
        ]
    }


CREATE = 'mutation($name: String!) { createThing(input: {type: "task", name: $name}) { name } }'


# JSON may escape half of a surrogate pair alone; that is no text, and once reached a store
# that could not encode it (500). A whole pair escaped is an ordinary character.
def test_a_lone_surrogate_in_a_body_is_a_bad_request(api: Api) -> None:
    headers = {"Authorization": f"Bearer {api.token()}", "Content-Type": "application/json"}

    def create(name: str) -> httpx.Response:
        body = f'{{"query": {json.dumps(CREATE)}, "variables": {{"name": "{name}"}}}}'
        return api.client.post("/graphql", content=body, headers=headers)

    lone = create(r"run\ud800")
    assert (lone.status_code, _code(lone)) == (400, "BAD_REQUEST")
    assert create(r"run\ud83c\udfc3").json() == {"data": {"createThing": {"name": "run🏃"}}}


def test_a_lone_surrogate_in_a_websocket_message_closes_it(api: Api) -> None:
    with api.client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {api.token()}"}}
        )
        assert ws.receive_json()["type"] == "connection_ack"
        payload = {"query": CREATE, "variables": {"name": "\udfff"}}
        ws.send_text(json.dumps({"type": "subscribe", "id": "1", "payload": payload}))
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4400
