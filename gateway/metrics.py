"""Prometheus metrics: requests and latency per route, and the store's round trips."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from providers.native import NativeStore

_ROUTES = frozenset({"/graphql", "/healthz", "/readyz", "/metrics"})


class _StoreCollector(Collector):
    def __init__(self, store: NativeStore) -> None:
        self._store = store

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "one_store_queries", "Round trips to the native store", labels=["engine"]
        )
        family.add_metric([self._store.engine.name], self._store.engine.queries)
        yield family


class Metrics:
    """One registry per app, so two apps in one process (tests) never share counters."""

    def __init__(self, store: NativeStore) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "one_http_requests", "HTTP requests", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "one_http_request_seconds", "HTTP request latency", ["route"], registry=self.registry
        )
        self.registry.register(_StoreCollector(store))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI, so it adds no task or body buffering to a request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope["path"] if scope["path"] in _ROUTES else "other"
        status = 500
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
            self.metrics.requests.labels(route, str(status)).inc()
