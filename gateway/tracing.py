"""Tracing with OpenTelemetry, on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

Spans: one per GraphQL operation (`gateway/view.py`), one per DataLoader batch
(`resolvers/loaders.py`) and one per upstream HTTP call (httpx, instrumented), which also
sends the W3C `traceparent` header so an upstream's own traces join ours. An incoming
`traceparent` is continued. Exported over OTLP/HTTP with the standard `OTEL_*` variables;
when tracing is off, the OpenTelemetry API's no-op tracer costs next to nothing.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
from opentelemetry import context, propagate, trace

tracer = trace.get_tracer("one-gateway")
_configured = False


def configure_tracing(client: httpx.AsyncClient) -> bool:
    """Export spans and trace upstream calls of `client`, when an OTLP endpoint is set."""
    global _configured
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    if not _configured:  # the global provider can be set once per process
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        service = os.environ.get("OTEL_SERVICE_NAME", "one-gateway")
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        _configured = True
    instrument(client)
    return True


def instrument(client: httpx.AsyncClient) -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client)


@contextmanager
def operation_span(headers: Mapping[str, str], **attributes: Any) -> Iterator[None]:
    """The span of one GraphQL request, continuing the caller's trace if it sent one."""
    token = context.attach(propagate.extract(dict(headers)))
    try:
        with tracer.start_as_current_span("graphql.operation", attributes=attributes):
            yield
    finally:
        context.detach(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id and the current trace id."""

    def format(self, record: logging.LogRecord) -> str:
        span = trace.get_current_span().get_span_context()
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
