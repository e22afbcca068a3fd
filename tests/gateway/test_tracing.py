"""Tracing: a span per GraphQL operation, per DataLoader batch and per upstream call, the
caller's `traceparent` continued and sent on to the upstream; JSON log lines carry the ids."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.tracing import JsonFormatter, instrument
from tests.faults import Fault, fault_server
from tests.providers.gateways import gateway_api, route

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # once per process: no other test sets one
    yield exporter


def test_spans_follow_the_request_to_the_upstream(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    with fault_server(Fault(status=200, body=b"[]")) as upstream, gateway_api(tmp_path) as api:
        instrument(api.client.app.state.providers.client)  # type: ignore[attr-defined]
        route(
            api,
            "wordpress",
            {
                "base_url": upstream.url,
                "username": "u",
                "application_password": "abcd efgh ijkl mnop qrst uvwx",
            },
        )
        spans.clear()
        response = api.client.post(
            "/graphql",
            json={
                "query": '{ things(type: "blog_post") { edges { node { id owner { name } } } }'
                ' courses: things(type: "course") { edges { node { owner { name } } } } }'
            },
            headers={"Authorization": f"Bearer {api.token()}", "traceparent": TRACEPARENT},
        )
        assert "errors" not in response.json(), response.json()
        sent = [r for r in upstream.received if "posts" in r.path + r.query]
    finished = spans.get_finished_spans()
    names = [s.name for s in finished]
    assert "graphql.operation" in names and "dataloader.batch" in names
    assert any(n.startswith("GET") for n in names), names  # the upstream call
    assert {format(s.context.trace_id, "032x") for s in finished} == {TRACE_ID}
    assert sent and all(r.headers["traceparent"].split("-")[1] == TRACE_ID for r in sent)


def test_json_log_lines_carry_the_request_and_trace_ids(spans: InMemorySpanExporter) -> None:
    record = logging.LogRecord("one.gateway", logging.ERROR, __file__, 1, "broke %s", ("x",), None)
    record.request_id = "abc123"
    with trace.get_tracer("test").start_as_current_span("op") as span:
        line = json.loads(JsonFormatter().format(record))
        trace_id = format(span.get_span_context().trace_id, "032x")
    assert line["message"] == "broke x" and line["request_id"] == "abc123"
    assert line["trace_id"] == trace_id and line["level"] == "ERROR"
