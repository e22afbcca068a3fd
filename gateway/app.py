"""The Starlette application: `/graphql` (GraphiQL, queries, subscriptions), health, metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, cast

import httpx
from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry import UNSET
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types.unset import UnsetType

from gateway.auth import Authenticator, authenticator
from gateway.crypto import KeyRing
from gateway.health import check_providers_every
from gateway.limits import DailyCalls
from gateway.metrics import Metrics, MetricsMiddleware
from gateway.settings import Settings, load_settings
from gateway.store import open_store
from providers.errors import ForbiddenError, NotFoundError, OneError, QuotaExceededError
from providers.native import NativeStore
from providers.records import Kind, Role
from providers.refs import Ref
from providers.registry import ProviderPool
from resolvers.context import Actor, Context
from resolvers.schema import schema

log = logging.getLogger("one.gateway")


MAX_BODY_BYTES = 1024 * 1024
_HTTP_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


class OneGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI view, with our context, a body limit, and JSON protocol errors."""

    def __init__(self, store: NativeStore, auth: Authenticator, providers: ProviderPool) -> None:
        super().__init__(schema, graphql_ide="graphiql")
        self.store = store
        self.auth = auth
        self.providers = providers
        self.calls = DailyCalls(store)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                raise HTTPException(413, f"the request body is over {MAX_BODY_BYTES} bytes")
            return message

        try:
            response: Response = await self.run(Request(scope, receive=limited_receive))
        except HTTPException as exc:
            # A request GraphQL could not even read still gets a GraphQL-shaped answer.
            code = _HTTP_CODES.get(exc.status_code, "BAD_REQUEST")
            error = {"message": exc.reason, "extensions": {"code": code}}
            response = JSONResponse({"errors": [error]}, status_code=exc.status_code)
        await response(scope, receive, send)

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """WebSockets authenticate in `connection_init`, as HTTP does in headers (browsers
        cannot set headers on a WebSocket): `{"Authorization": "Bearer ..."}` or
        `{"X-API-Key": "..."}`. Refused: closed with 4403."""
        params = {
            k.lower(): v for k, v in (context.connection_params or {}).items() if isinstance(v, str)
        }
        if params:
            context.actor_or_error = await self._actor(
                params.get("authorization"),
                params.get("x-api-key"),
                params.get("x-one-organization"),
            )
        if isinstance(context.actor_or_error, OneError):
            raise ConnectionRejectionError({"message": context.actor_or_error.message})
        return cast(UnsetType, UNSET)

    async def _actor(
        self, authorization: str | None, api_key: str | None, acting_for: str | None = None
    ) -> Actor | OneError:
        actor = await self.auth.authenticate(authorization, self.store, api_key)
        if isinstance(actor, Actor) and acting_for:
            actor = await self._acting_for(actor, acting_for)
        if isinstance(actor, Actor):
            try:
                await self.calls.count(actor.org_id)
            except QuotaExceededError as exc:
                return exc  # every field of this request answers QUOTA_EXCEEDED
        return actor

    async def _acting_for(self, actor: Actor, organization: str) -> Actor | OneError:
        """A platform owner acts in another organization by naming it in
        `X-One-Organization` (its id); nobody else may."""
        try:
            org_id = Ref.parse(organization, expect=Kind.ORGANIZATION).local_id
        except OneError as exc:
            return exc
        if org_id == actor.org_id:
            return actor
        if actor.role is not Role.PLATFORM_OWNER:
            return ForbiddenError("only a platform owner may act for another organization")
        if (await self.store.organizations.get_many([org_id]))[0] is None:
            return NotFoundError("X-One-Organization names no organization")
        return replace(actor, org_id=org_id)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        headers = request.headers
        actor = await self._actor(
            headers.get("authorization"),
            headers.get("x-api-key"),
            headers.get("x-one-organization"),
        )
        return Context(
            api_calls_today=self.calls.today,
            store=self.store,
            providers=self.providers,
            actor_or_error=actor,
            request=request,
            response=response,
        )


def create_app(settings: Settings | None = None, *, store: NativeStore | None = None) -> Starlette:
    """The gateway as an ASGI app; the store opens and closes with the app's lifespan."""
    settings = settings or load_settings()
    store = store or open_store(settings)
    auth = authenticator(settings)
    metrics = Metrics(store)
    # One client for every upstream call: pooled connections, and timeouts per provider.
    http = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        timeout=httpx.Timeout(10.0),
        headers={"User-Agent": "one-gateway"},
    )
    keyring = KeyRing.from_settings(settings)
    providers = ProviderPool(http, keyring)
    graphql = OneGraphQL(store, auth, providers)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.start()
        log.info("gateway ready on the %s store", store.engine.name)
        checks = None
        if settings.health_check_seconds > 0:
            checks = asyncio.create_task(
                check_providers_every(settings.health_check_seconds, store, providers)
            )
        try:
            yield
        finally:
            if checks is not None:
                checks.cancel()
            await http.aclose()
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
    app.state.providers = providers
    app.state.keyring = keyring
    return app
