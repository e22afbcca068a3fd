"""Prometheus metrics: requests and latency per route, the store's round trips, each
upstream's latency, errors and circuit state, the real-time pipeline's counts, and the
knowledge indexer's."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.indexer import Indexer
from gateway.realtime import Realtime
from gateway.response_cache import ResponseCache
from providers.migrating import MigrationMonitor
from providers.native import NativeStore
from providers.upstream import CircuitState, Upstreams

_ROUTES = frozenset({"/graphql", "/healthz", "/readyz", "/metrics"})
CIRCUIT_VALUES = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


class _StoreCollector(Collector):
    def __init__(self, store: NativeStore) -> None:
        self._store = store

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "one_store_queries", "Round trips to the native store", labels=["engine"]
        )
        family.add_metric([self._store.engine.name], self._store.engine.queries)
        yield family


class _CircuitCollector(Collector):
    def __init__(self, upstreams: Upstreams) -> None:
        self._upstreams = upstreams

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "one_upstream_circuit_state",
            "Circuit breaker of each organization's provider: 0 closed, 1 half-open, 2 open",
            labels=["organization", "provider"],
        )
        for org_id, provider, state in self._upstreams.circuits():
            family.add_metric([org_id, provider], CIRCUIT_VALUES[state])
        yield family


class _RealtimeCollector(Collector):
    def __init__(self, realtime: Realtime) -> None:
        self._realtime = realtime

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        live, relay = self._realtime.live, self._realtime.relay
        yield GaugeMetricFamily(
            "one_subscribers", "Subscriptions open on this process", value=live.subscribers()
        )
        yield CounterMetricFamily(
            "one_events_published", "Events the relay published on the bus", value=relay.published
        )
        yield CounterMetricFamily(
            "one_events_dispatched",
            "Events handed to this process's subscribers",
            value=live.delivered,
        )
        yield CounterMetricFamily(
            "one_subscribers_dropped",
            "Subscriptions ended for falling too far behind (SUBSCRIBER_TOO_SLOW)",
            value=live.dropped,
        )


class _ResponseCacheCollector(Collector):
    def __init__(self, cache: ResponseCache) -> None:
        self._cache = cache

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        cache = self._cache
        yield CounterMetricFamily(
            "one_response_cache_hits", "Queries answered from the response cache", value=cache.hits
        )
        yield CounterMetricFamily(
            "one_response_cache_misses",
            "Cacheable queries the response cache could not answer",
            value=cache.misses,
        )
        yield CounterMetricFamily(
            "one_response_cache_invalidations",
            "Writes that made an organization's kept answers stale",
            value=cache.generations.invalidations,
        )
        yield GaugeMetricFamily("one_response_cache_entries", "Answers kept", value=len(cache))
        yield GaugeMetricFamily(
            "one_response_cache_bytes", "Bytes of the answers kept", value=cache.size
        )


class _IndexerCollector(Collector):
    def __init__(self, indexer: Indexer) -> None:
        self._indexer = indexer

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        counts = self._indexer.counts
        yield CounterMetricFamily(
            "one_knowledge_chunks_indexed",
            "Knowledge chunks made from things' text by this process",
            value=counts.chunks_added,
        )
        yield CounterMetricFamily(
            "one_knowledge_chunks_retired",
            "Chunks retired because their thing's text, or the thing, is gone",
            value=counts.chunks_retired,
        )
        yield CounterMetricFamily(
            "one_knowledge_embeddings",
            "Vectors recorded for knowledge, from the organizations' embedding providers",
            value=counts.embeddings,
        )
        yield CounterMetricFamily(
            "one_knowledge_index_failures",
            "Things (or embedding passes) left for `one-gateway reindex` after failing",
            value=counts.failures,
        )
        yield CounterMetricFamily(
            "one_knowledge_index_dropped",
            "Changes not indexed because too many things were waiting",
            value=counts.dropped,
        )
        yield GaugeMetricFamily(
            "one_knowledge_index_pending",
            "Things waiting to be indexed",
            value=self._indexer.pending(),
        )
        yield CounterMetricFamily(
            "one_knowledge_reindexed_things",
            "Things walked by reindexes run in this process",
            value=counts.reindexed,
        )
        yield GaugeMetricFamily(
            "one_knowledge_reindexes_running",
            "Reindexes running in this process",
            value=counts.reindexing,
        )


class _MigrationCollector(Collector):
    def __init__(self, monitor: MigrationMonitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        reads = CounterMetricFamily(
            "one_migration_reads",
            "Reads of a migration's new backend by this process: shadow or served, and how "
            "they went (match, mismatch, ok, error)",
            labels=["migration", "kind", "outcome"],
        )
        for (id, outcome), count in sorted(self._monitor.counts.items()):
            kind, _, result = outcome.partition("_")
            reads.add_metric([id, kind, result], count)
        yield reads
        yield CounterMetricFamily(
            "one_migration_rollbacks",
            "Migrations this process rolled back on its own (a threshold crossed)",
            value=self._monitor.rollbacks,
        )
        rates = GaugeMetricFamily(
            "one_migration_window",
            "The new backend over the sliding window, as this process saw it",
            labels=["migration", "measure"],
        )
        copies = GaugeMetricFamily(
            "one_migration_things",
            "Things of a migration by what its copy did with them (copied, updated, failed...)",
            labels=["migration", "outcome"],
        )
        for id, stats in self._monitor.windows():
            rates.add_metric([id, "error_rate"], stats.error_rate)
            rates.add_metric([id, "mismatch_rate"], stats.mismatch_rate)
            rates.add_metric([id, "p99_ms"], stats.p99_ms)
        for id, progress in sorted(self._monitor.progress.items()):
            for outcome, count in sorted(progress.items()):
                if isinstance(count, int):
                    copies.add_metric([id, outcome], count)
        yield rates
        yield copies


class Metrics:
    """One registry per app, so two apps in one process (tests) never share counters.
    It observes the upstream calls too (`providers.upstream.UpstreamObserver`)."""

    def __init__(self, store: NativeStore) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "one_http_requests", "HTTP requests", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "one_http_request_seconds", "HTTP request latency", ["route"], registry=self.registry
        )
        self.upstream_latency = Histogram(
            "one_upstream_request_seconds",
            "Latency of each request to an upstream (every attempt)",
            ["provider"],
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "one_upstream_errors",
            "Upstream calls that failed, by the code their caller received",
            ["provider", "code"],
            registry=self.registry,
        )
        self.registry.register(_StoreCollector(store))
        # (route, status) -> its latency histogram and request counter; routes are few
        self._served: dict[tuple[str, int], tuple[Histogram, Counter]] = {}

    def watch_circuits(self, upstreams: Upstreams) -> None:
        self.registry.register(_CircuitCollector(upstreams))

    def watch_realtime(self, realtime: Realtime) -> None:
        self.registry.register(_RealtimeCollector(realtime))

    def watch_response_cache(self, cache: ResponseCache) -> None:
        self.registry.register(_ResponseCacheCollector(cache))

    def watch_indexer(self, indexer: Indexer) -> None:
        self.registry.register(_IndexerCollector(indexer))

    def watch_migrations(self, monitor: MigrationMonitor) -> None:
        self.registry.register(_MigrationCollector(monitor))

    def exchanged(self, provider: str, seconds: float) -> None:
        self.upstream_latency.labels(provider).observe(seconds)

    def failed(self, provider: str, code: str) -> None:
        self.upstream_errors.labels(provider, code).inc()

    def served(self, route: str, status: int, seconds: float) -> None:
        """One HTTP request answered. The labelled series are kept: finding them again
        (`labels()`, under a lock) cost more than counting."""
        series = self._served.get((route, status))
        if series is None:
            series = (self.latency.labels(route), self.requests.labels(route, str(status)))
            self._served[(route, status)] = series
        series[0].observe(seconds)
        series[1].inc()

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
            self.metrics.served(route, status, time.perf_counter() - started)
