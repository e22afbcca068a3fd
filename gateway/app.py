"""The Starlette application: `/graphql` (GraphiQL, queries, WebSockets), health, metrics."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from gateway.admission import Admission
from gateway.auth import authenticator
from gateway.crypto import KeyRing
from gateway.graphiql import static_route
from gateway.health import CircuitEvents, check_providers_every
from gateway.indexer import Indexer
from gateway.metrics import Metrics, MetricsMiddleware
from gateway.migrations import MigrationRunner
from gateway.rate_limits import RateLimits
from gateway.realtime import Realtime
from gateway.requests import RequestIds
from gateway.response_cache import ResponseCache
from gateway.settings import Settings, load_settings
from gateway.store import open_store
from gateway.tracing import TraceContext, configure_tracing
from gateway.upstreams import UpstreamDeadlines, upstream_client, upstream_policy
from gateway.view import OneGraphQL
from gateway.webhooks import webhook_routes
from gateway.wordpress_changes import WordPressChanges
from providers.native import NativeStore
from providers.registry import ProviderPool
from resolvers.schema import schema

log = logging.getLogger("one.gateway")


def create_app(settings: Settings | None = None, *, store: NativeStore | None = None) -> Starlette:
    """The gateway as an ASGI app; the store opens and closes with the app's lifespan."""
    settings = settings or load_settings()
    store = store or open_store(settings)
    auth = authenticator(settings)
    metrics = Metrics(store)
    # One client for every upstream call, its addresses checked at connect time; each
    # organization's provider gets its own bulkhead and circuit breaker on it.
    http = upstream_client(settings)
    configure_tracing(http)  # when OTEL_EXPORTER_OTLP_ENDPOINT is set
    keyring = KeyRing.from_settings(settings)
    providers = ProviderPool(
        http,
        keyring,
        policy=upstream_policy(settings),
        observer=metrics,
        on_circuit_change=CircuitEvents(store),
    )
    metrics.watch_circuits(providers.upstreams)
    limits = RateLimits.from_url(settings.redis_url)
    realtime = Realtime(store, settings)
    metrics.watch_realtime(realtime)
    cache = ResponseCache(store, settings, schema._schema) if settings.response_cache else None
    if cache is not None:
        metrics.watch_response_cache(cache)
    graphql = OneGraphQL(
        store, auth, providers, Admission(store, limits, settings), settings, realtime, cache
    )
    indexer = Indexer(
        store,
        providers,
        configs=graphql.configs.of,
        delay=settings.knowledge_index_seconds or None,
    )
    metrics.watch_indexer(indexer)
    runner = MigrationRunner(
        store, providers, graphql.migrations, seconds=settings.migration_poll_seconds
    )
    graphql.kick_migrations = runner.kick
    metrics.watch_migrations(graphql.migrations)
    if cache is not None:
        indexer.changed = cache.generations.knowledge_changed

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.start()
        await realtime.start()
        if cache is not None:
            await cache.start()
        indexer.start()
        runner.start()
        log.info("gateway ready on the %s store", store.engine.name)
        checks = None
        if settings.health_check_seconds > 0:
            checks = asyncio.create_task(
                check_providers_every(settings.health_check_seconds, store, providers)
            )
        changes = None
        if settings.wordpress_poll_seconds > 0:
            changes = WordPressChanges(
                store,
                providers,
                seconds=settings.wordpress_poll_seconds,
                redis_url=settings.redis_url,
            )
            changes.start()
        try:
            yield
        finally:
            if checks is not None:
                checks.cancel()
            if changes is not None:
                await changes.stop()
            await runner.stop()
            await indexer.stop()
            await realtime.stop()
            if cache is not None:
                await cache.stop()
            await http.aclose()
            await limits.close()
            await store.close()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            await store.engine.find("organizations", [], limit=1)
        except Exception:
            log.exception("readiness check failed")
            return JSONResponse({"status": "unavailable", "store": store.engine.name}, 503)
        return JSONResponse({"status": "ready", "store": store.engine.name})

    async def metrics_endpoint(request: Request) -> Response:
        # With ONE_METRICS_TOKEN set, only its bearer may read; in production it must be set.
        token = settings.metrics_token
        if token is None and settings.env == "production":
            return JSONResponse({"error": "set ONE_METRICS_TOKEN to serve metrics"}, 403)
        if token is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
                return JSONResponse({"error": "metrics need their bearer token"}, 401)
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    app = Starlette(
        routes=[
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            static_route,
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            *webhook_routes(store, keyring),
        ],
        middleware=[
            Middleware(RequestIds),
            Middleware(TraceContext),
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["*"],
                expose_headers=["X-Request-Id", "Retry-After"],
                max_age=600,
            ),
            Middleware(MetricsMiddleware, metrics=metrics),
            Middleware(UpstreamDeadlines, seconds=settings.upstream_deadline_seconds),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.auth = auth
    app.state.providers = providers
    app.state.keyring = keyring
    app.state.realtime = realtime
    app.state.response_cache = cache
    app.state.indexer = indexer
    app.state.migrations = runner
    return app
