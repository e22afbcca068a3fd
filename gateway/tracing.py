"""Tracing with OpenTelemetry, on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

Spans: one per GraphQL operation (`resolvers/guard.py`), one per DataLoader batch
(`resolvers/loaders.py`) and one per upstream HTTP call (httpx, instrumented), which also
sends the W3C `traceparent` header so an upstream's own traces join ours. An incoming
`traceparent` is continued. Exported over OTLP/HTTP with the standard `OTEL_*` variables;
when tracing is off, the operation's span is not made (even a no-op span costs some 4% of
a small request).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import httpx
from opentelemetry import context, propagate, trace
from starlette.types import ASGIApp, Receive, Scope, Send

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


class TraceContext:
    """Continues the caller's trace: the W3C `traceparent` of each request becomes the
    parent of the spans made while serving it (the operation's, in `resolvers/guard.py`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        fields = propagate.get_global_textmap().fields  # traceparent, tracestate, baggage
        carrier = {
            name: v.decode("latin-1")
            for k, v in scope["headers"]
            if (name := k.decode("latin-1")) in fields
        }
        if not carrier:  # nothing to continue
            await self.app(scope, receive, send)
            return
        token = context.attach(propagate.extract(carrier))
        try:
            await self.app(scope, receive, send)
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
