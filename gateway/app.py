"""The Starlette application: `/graphql` (GraphiQL, queries, subscriptions), health, metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from gateway.auth import Authenticator
from gateway.metrics import Metrics, MetricsMiddleware
from gateway.settings import Settings, load_settings
from gateway.store import open_store
from providers.native import NativeStore
from resolvers.context import Context
from resolvers.schema import schema

log = logging.getLogger("one.gateway")


class OneGraphQL(GraphQL[Context, None]):
    def __init__(self, store: NativeStore, auth: Authenticator) -> None:
        super().__init__(schema, graphql_ide="graphiql")
        self.store = store
        self.auth = auth

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        actor = await self.auth.authenticate(request.headers.get("authorization"), self.store)
        return Context(store=self.store, actor_or_error=actor, request=request, response=response)


def create_app(settings: Settings | None = None, *, store: NativeStore | None = None) -> Starlette:
    """The gateway as an ASGI app; the store opens and closes with the app's lifespan."""
    settings = settings or load_settings()
    store = store or open_store(settings)
    auth = Authenticator(
        settings.jwt_secret_value(),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=settings.token_ttl_seconds,
    )
    metrics = Metrics(store)
    graphql = OneGraphQL(store, auth)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.start()
        log.info("gateway ready on the %s store", store.engine.name)
        try:
            yield
        finally:
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
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    app = Starlette(
        routes=[
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
        ],
        middleware=[Middleware(MetricsMiddleware, metrics=metrics)],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.auth = auth
    return app
