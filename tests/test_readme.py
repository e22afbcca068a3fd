"""The README cannot drift: every GraphQL example in it runs against the demo data, and its
"schema in brief" names every root field."""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path
from typing import Any

from graphql import OperationType, get_operation_ast, parse, validate

from resolvers.schema import schema
from tests.conftest import Api

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
_BLOCK = re.compile(r"^( *)```graphql\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
EXAMPLES = [textwrap.dedent(body) for _, body in _BLOCK.findall(README)]
# Examples that configure a backend with placeholder credentials (blog.example.com, "sk-..."):
# they run, and must fail only as an unreachable backend does, saving nothing.
UPSTREAM_CODES = {"PROVIDER_UNAVAILABLE", "PROVIDER_ERROR", "PROVIDER_UNAUTHORIZED"}


def test_the_readme_has_graphql_examples_and_each_is_valid() -> None:
    assert len(EXAMPLES) >= 5
    for example in EXAMPLES:
        errors = validate(schema._schema, parse(example))
        assert errors == [], (example, errors)


def _kind(example: str) -> OperationType:
    operation = get_operation_ast(parse(example))
    assert operation is not None
    return operation.operation


def test_every_query_example_answers_from_the_demo_data(api: Api) -> None:
    queries = [e for e in EXAMPLES if _kind(e) is OperationType.QUERY]
    assert queries
    for example in queries:
        data = api.data(example)
        assert data and all(v is not None for v in data.values()), (example, data)


def test_the_quick_start_example_shows_each_things_other_end(api: Api) -> None:
    data = api.data(EXAMPLES[0])
    assert data["me"]["role"] == "ORG_OWNER" and data["things"]["totalCount"] > 5
    edges = [e["node"] for e in data["things"]["edges"]]
    assert any(node["connections"] for node in edges)
    for node in edges:
        for connection in node["connections"]:
            assert connection["to"]["id"] != node["id"], node  # never "X references X"


def test_every_mutation_example_runs(api: Api) -> None:
    mutations = [e for e in EXAMPLES if _kind(e) is OperationType.MUTATION]
    assert mutations
    before = api.data("{ providers { provider } }")["providers"]
    for example in mutations:
        body = api.post(example)
        codes = {e["extensions"]["code"] for e in body.get("errors", [])}
        if "example.com" in example or "sk-..." in example:
            assert codes and codes <= UPSTREAM_CODES, (example, body)
        else:
            assert not codes, (example, body)
    assert api.data("{ providers { provider } }")["providers"] == before


def test_every_subscription_example_delivers(api: Api) -> None:
    subscriptions = [e for e in EXAMPLES if _kind(e) is OperationType.SUBSCRIPTION]
    assert subscriptions
    headers = {"Authorization": f"Bearer {api.token()}"}
    for example in subscriptions:
        with api.client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_json({"type": "connection_init", "payload": headers})
            assert ws.receive_json()["type"] == "connection_ack"
            ws.send_json({"type": "subscribe", "id": "1", "payload": {"query": example}})
            time.sleep(0.2)  # registered once its first await has run
            api.data(
                'mutation { createThing(input: {type: "blog_post", name: "From the README", '
                'properties: {content: "<p>Hello</p>"}}) { id } }'
            )
            message: dict[str, Any] = ws.receive_json()
            while message["type"] == "ping":
                message = ws.receive_json()
            assert message["type"] == "next" and "errors" not in message["payload"], message
            (value,) = message["payload"]["data"].values()
            assert value["thing"]["name"] == "From the README", value


def _brief() -> str:
    start = README.index("## The schema in brief")
    return README[start : README.index("\n## ", start + 1)]


def test_the_schema_in_brief_names_every_root_field() -> None:
    brief = _brief()
    named = set(re.findall(r"`(\w+)[(`]", brief))
    graphql = schema._schema
    for root in (graphql.query_type, graphql.mutation_type, graphql.subscription_type):
        assert root is not None
        missing = {f for f in root.fields if not f.startswith("_")} - named
        assert not missing, f"README's schema in brief lacks {sorted(missing)} ({root.name})"
