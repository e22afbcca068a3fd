"""`/graphql`: GraphQL over HTTP and WebSocket, and what a request passes before it runs.

Over HTTP, in order, each step refusing with a GraphQL-shaped error and its own code:

1. the method (GET or POST, else 405) and CSRF prevention: a GET, or a POST with a
   CORS-safelisted content type, must carry `Apollo-Require-Preflight` or
   `X-Apollo-Operation-Name`, so a browser cannot send it cross-site without a preflight;
2. the body: at most `max_body_bytes` (413), `application/json` (415), a JSON object of
   Unicode text, no lone surrogates (400);
3. the actor (a token or an API key, checked at most once a second: `gateway/access.py`;
   headers over `max_header_bytes` are 431), and its admission: the rate bucket of the actor
   (or of the client's address when it sent no credential, 429) and the organization's daily
   calls, before any document is checked, since checking a new document is the costly step;
4. the document: found by its hash (automatic persisted queries, or the organization's
   trusted documents), then its size, tokens, width, validity, depth and aliases
   (`resolvers.documents`), and the operation to run: named when there are several, a query
   when over GET (405);
5. the organization's safelist, when it has one: only trusted documents run;
6. the response cache, when it is on: a query's kept answer is sent as it was kept
   (`gateway/response_cache.py`);
7. execution, where the cost budget is checked first (`resolvers.guard`).

Answers are `application/graphql-response+json` when the client accepts it, with 400 for a
request that did not execute; `application/json` otherwise, with 200 for any GraphQL result.
A request that accepts `text/event-stream` passes the same steps and is answered as a stream
(`gateway/sse.py`); WebSockets (`gateway/websockets.py`) authenticate in `connection_init`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, cast

from graphql import GraphQLError, OperationType, get_operation_ast
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry import UNSET
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType as StrawberryOperation
from strawberry.types.unset import UnsetType

from gateway.access import Access, Credentials
from gateway.active_configs import ActiveConfigs
from gateway.admission import Admission
from gateway.auth import Authenticator
from gateway.graphiql import graphiql_page
from gateway.persisted_queries import PersistedQueries
from gateway.realtime import Realtime
from gateway.requests import read_body, request_id
from gateway.response_cache import PASS, Lookup, ResponseCache
from gateway.settings import Settings
from gateway.sse import event_stream, wants_event_stream
from gateway.trusted import Safelists
from gateway.websockets import TransportWSHandler
from providers import migrations as migration_steps
from providers.errors import (
    OneError,
    QuotaExceededError,
    RateLimitedError,
    UnauthenticatedError,
)
from providers.migrating import MigrationMonitor
from providers.native import NativeStore
from providers.native.migrations import Migration
from providers.native.trusted_documents import document_hash
from providers.registry import ProviderPool
from resolvers.context import Actor, Context
from resolvers.documents import Checked, QueryLimits, checker
from resolvers.schema import schema

log = logging.getLogger("one.gateway")

JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"
_SIMPLE_CONTENT_TYPES = frozenset(
    {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"}
)
_PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name")
_OPERATIONS = {
    "GET": frozenset({StrawberryOperation.QUERY}),
    "POST": frozenset({StrawberryOperation.QUERY, StrawberryOperation.MUTATION}),
}


# A GraphQL request error (the request was read, but will not run): 400 when the client
# accepts application/graphql-response+json, 200 under plain JSON, as GraphQL over HTTP asks.
REQUEST_ERROR = 0


class Refused(Exception):
    """A request refused before GraphQL ran it: an HTTP status and a coded error."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})
        self.error = {"message": message, "extensions": {"code": code, **extensions}}


class OneGraphQL(GraphQL[Context, None]):
    """Strawberry's view for GraphiQL and WebSockets; HTTP requests take our path."""

    graphql_transport_ws_handler_class = TransportWSHandler
    max_subscriptions_per_connection = None  # counted by the subscriptions themselves

    def __init__(
        self,
        store: NativeStore,
        auth: Authenticator,
        providers: ProviderPool,
        admission: Admission,
        settings: Settings,
        realtime: Realtime,
        cache: ResponseCache | None = None,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            keep_alive=True,  # the legacy protocol's `ka` messages
            keep_alive_interval=settings.heartbeat_seconds,
            connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout_seconds),
        )
        self.realtime = realtime
        self.cache = cache
        self.store = store
        self.auth = auth
        self.access = Access(auth, store)
        self.configs = ActiveConfigs(store)
        self.kick_migrations: Callable[[], None] | None = None  # set by the app's runner
        self.migrations = MigrationMonitor(
            store,
            rollback=lambda migration, reason: _roll_back(store, migration, reason),
            flush_seconds=settings.migration_flush_seconds,
        )
        self.providers = providers
        self.admission = admission
        self.settings = settings
        self.limits = QueryLimits(
            max_document_chars=settings.max_document_chars,
            max_tokens=settings.max_tokens,
            max_depth=settings.max_depth,
            max_aliases=settings.max_aliases,
            max_selections=settings.max_selections,
        )
        self.checker = checker(schema._schema, self.limits)
        self.persisted = PersistedQueries(settings.persisted_queries_chars)
        self.safelists = Safelists(store)

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(graphiql_page(development=self.settings.env == "development"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        media = JSON
        try:
            if _wants_graphiql(request):
                response: Response = await self.render_graphql_ide(request)
            elif wants_event_stream(request.headers.get("accept")):
                response = await self._stream(request)
            else:
                media = _response_media(request.headers.get("accept"))
                response = await self._serve(request, media)
        except Refused as exc:
            status = exc.status or (400 if media == GRAPHQL_RESPONSE else 200)
            response = _json({"errors": [exc.error]}, status, media, exc.headers)
        await response(scope, receive, send)

    async def _serve(self, request: Request, media: str) -> Response:
        if request.method not in _OPERATIONS:
            raise Refused(405, "METHOD_NOT_ALLOWED", "use GET or POST", {"Allow": "GET, POST"})
        self._prevent_csrf(request)
        params = await self._params(request)
        query, digest = self._persisted(params)
        # Rate limits before the document: checking a new document is the costly step.
        actor = await self._admit(request)
        if query is None:  # a hash we do not know: maybe one of the organization's documents
            query = await self._trusted_text(actor, digest)
        checked = self._check_document(query, params, request.method)
        if digest is not None and params.get("query"):
            self.persisted.put(digest, query)  # only documents that passed are kept
        if isinstance(actor, Actor):
            await self._require_trusted(actor, query)
        lookup = PASS
        if self.cache is not None:
            lookup = await self.cache.lookup(request, actor, checked, query, params)
        if lookup.hit is not None:
            return _sent(lookup.hit, 200, media, lookup.headers)
        context = await self._context(request, actor)
        context.checked = checked
        lookup.watch(context)
        try:
            result = await self.schema.execute(
                query,
                variable_values=params.get("variables"),
                context_value=context,
                operation_name=params.get("operationName"),
                allowed_operation_types=_OPERATIONS[request.method],
                operation_extensions=params.get("extensions"),
            )
        except InvalidOperationTypeError as exc:
            reason = exc.as_http_error_reason(request.method)
            raise Refused(405, "METHOD_NOT_ALLOWED", reason, {"Allow": "POST"}) from None
        except (CannotGetOperationTypeError, MissingQueryError) as exc:
            raise Refused(400, "BAD_REQUEST", _reason(exc)) from None
        return await _result(result, media, lookup)

    async def _stream(self, request: Request) -> Response:
        """The same steps as `_serve`, answered as an event stream (gateway/sse.py); a GET
        may subscribe, since a subscription changes nothing (EventSource sends only GETs)."""
        if request.method not in _OPERATIONS:
            raise Refused(405, "METHOD_NOT_ALLOWED", "use GET or POST", {"Allow": "GET, POST"})
        if request.method == "POST":
            self._prevent_csrf(request)
        params = await self._params(request)
        query, digest = self._persisted(params)
        actor = await self._admit(request)
        if query is None:
            query = await self._trusted_text(actor, digest)
        checked = self._check_document(query, params, request.method)
        if isinstance(actor, OneError):
            status = {UnauthenticatedError: 401, QuotaExceededError: 429}.get(type(actor), 403)
            raise Refused(status, actor.code, actor.message, **actor.extensions)
        await self._require_trusted(actor, query)
        context = await self._context(request, actor)
        context.checked = checked
        context.live = self.realtime.session(
            _credentials(request.headers),
            self._actor,
            resume_after=request.headers.get("last-event-id"),
        )
        allowed = {*_OPERATIONS[request.method], StrawberryOperation.SUBSCRIPTION}
        results = await self.schema.stream(
            query,
            variable_values=params.get("variables"),
            context_value=context,
            operation_name=params.get("operationName"),
            operation_extensions=params.get("extensions"),
            allowed_operation_types=allowed,
        )
        return event_stream(
            results,
            context.live,
            heartbeat=self.settings.heartbeat_seconds,
            formatted=_formatted,
        )

    def _prevent_csrf(self, request: Request) -> None:
        if not self.settings.csrf_prevention:
            return
        content_type = request.headers.get("content-type")
        if content_type and _media_type(content_type) not in _SIMPLE_CONTENT_TYPES:
            return
        if any(request.headers.get(h, "").strip() for h in _PREFLIGHT_HEADERS):
            return
        raise Refused(
            400,
            "CSRF_PREVENTED",
            "this request may be a cross-site request forgery: send it with "
            "'Content-Type: application/json', or with an 'Apollo-Require-Preflight' header",
        )

    async def _params(self, request: Request) -> dict[str, Any]:
        if request.method == "GET":
            params: dict[str, Any] = dict(request.query_params)
            for name in ("variables", "extensions"):
                if params.get(name):
                    params[name] = _json_value(params[name], name)
        else:
            if _media_type(request.headers.get("content-type", "")) != JSON:
                raise Refused(
                    415, "UNSUPPORTED_MEDIA_TYPE", "send 'Content-Type: application/json'"
                )
            body = await _body(request, self.settings.max_body_bytes)
            params = _json_value(body, "the body")
            if not isinstance(params, dict):
                raise Refused(400, "BAD_REQUEST", "the body must be a JSON object")
        for name, kind in (("query", str), ("operationName", str)):
            if params.get(name) is not None and not isinstance(params[name], kind):
                raise Refused(400, "BAD_REQUEST", f"'{name}' must be a string")
        for name in ("variables", "extensions"):
            if params.get(name) is not None and not isinstance(params[name], dict):
                raise Refused(400, "BAD_REQUEST", f"'{name}' must be an object")
        return params

    def _persisted(self, params: dict[str, Any]) -> tuple[str | None, str | None]:
        """The document, and the hash it was asked by (Apollo's automatic persisted queries)."""
        query: str | None = params.get("query") or None
        persisted = (params.get("extensions") or {}).get("persistedQuery")
        if persisted is None:
            if query is None:
                raise Refused(400, "BAD_REQUEST", "no GraphQL document: send 'query'")
            return query, None
        digest = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
        if not isinstance(digest, str) or persisted.get("version") != 1:
            raise Refused(400, "BAD_REQUEST", "persistedQuery needs version 1 and a sha256Hash")
        if query is None:
            return self.persisted.get(digest), digest
        if document_hash(query) != digest:
            raise Refused(400, "PERSISTED_QUERY_HASH_MISMATCH", "the hash is not the query's")
        return query, digest

    def _check_document(self, query: str, params: dict[str, Any], method: str) -> Checked:
        try:
            checked = self.checker.check(query)
        except GraphQLError as exc:
            raise Refused(REQUEST_ERROR, **_coded(exc)) from None
        if checked.errors:
            raise Refused(REQUEST_ERROR, **_coded(checked.errors[0]))
        # The operation GraphQL's GetOperation picks (Strawberry would run the first one of
        # several when none is named); a GET must not reach a mutation.
        name = params.get("operationName")
        operation = get_operation_ast(checked.document, name)
        if operation is None:
            raise Refused(
                REQUEST_ERROR,
                "BAD_REQUEST",
                f'Unknown operation named "{name}".'
                if name is not None
                else "Must provide operation name if query contains multiple operations.",
            )
        if method == "GET" and operation.operation is OperationType.MUTATION:
            raise Refused(405, "METHOD_NOT_ALLOWED", "send mutations with POST", {"Allow": "POST"})
        return checked

    async def _admit(self, request: Request) -> Actor | OneError:
        limit = self.settings.max_header_bytes
        for name, value in request.scope["headers"]:  # raw: decoding each costs more
            if len(value) > limit:
                what = name.decode("latin-1")[:40]
                raise Refused(431, "HEADER_TOO_LARGE", f"the '{what}' header is too large")
        actor = await self._actor(*_credentials(request.headers))
        try:
            if isinstance(actor, Actor):
                await self.admission.admit(actor)
            else:
                await self.admission.admit_anonymous(request.client.host if request.client else "")
        except RateLimitedError as exc:
            retry = str(exc.extensions.get("retryAfter", 1))
            raise Refused(
                429, exc.code, exc.message, {"Retry-After": retry}, **exc.extensions
            ) from None
        except QuotaExceededError as exc:
            return exc  # every field of this request answers QUOTA_EXCEEDED
        return actor

    async def _trusted_text(self, actor: Actor | OneError, digest: str | None) -> str:
        text = None
        if isinstance(actor, Actor) and digest is not None:
            text = await self.safelists.document(actor, digest)
        if text is None:
            raise Refused(REQUEST_ERROR, "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
        return text

    async def _require_trusted(self, actor: Actor, query: str) -> None:
        if not await self.safelists.allows(actor, query):
            raise Refused(
                REQUEST_ERROR,
                "PERSISTED_QUERY_NOT_IN_LIST",
                "this organization runs only its trusted documents, and this is not one",
            )

    async def _context(self, request: Request | WebSocket, actor: Actor | OneError) -> Context:
        budget = await self.admission.cost_budget(actor if isinstance(actor, Actor) else None)
        return Context(
            api_calls_today=self.admission.calls_today,
            store=self.store,
            providers=self.providers,
            actor_or_error=actor,
            request=request,
            limits=self.limits,
            cost_budget=budget,
            request_id=request_id(),
            planning=self.settings.planned_execution,
            search_deadline=self.settings.search_deadline_seconds,
            provider_configs=self.configs.of,
            migration_monitor=self.migrations,
            read_migrations=self.configs.migrations,
            kick_migrations=self.kick_migrations,
        )

    def decode_json(self, data: str | bytes) -> object:
        """WebSocket messages decode as HTTP bodies do (a message that does not closes 4400)."""
        return _loads(data)

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """WebSockets authenticate in `connection_init`, as HTTP does in headers (browsers
        cannot set headers on a WebSocket): `{"Authorization": "Bearer ..."}` or
        `{"X-API-Key": "..."}`. Refused: closed with 4403."""
        params = {
            k.lower(): v for k, v in (context.connection_params or {}).items() if isinstance(v, str)
        }
        if params:
            context.actor_or_error = await self._actor(*_credentials(params))
        actor = context.actor_or_error
        if isinstance(actor, OneError):
            raise ConnectionRejectionError({"message": actor.message})
        context.live = self.realtime.session(_credentials(params), self._actor, resume_after=None)
        context.cost_budget = await self.admission.cost_budget(actor)
        context.admit = lambda: self.admission.admit(actor)
        context.trusted = lambda query: self.safelists.allows(actor, query)
        return cast(UnsetType, UNSET)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        """The context of a WebSocket connection, until `connection_init` names the actor
        (HTTP requests build theirs in `_serve`)."""
        return Context(
            api_calls_today=self.admission.calls_today,
            store=self.store,
            providers=self.providers,
            request=request,
            limits=self.limits,
            request_id=request_id(),
            provider_configs=self.configs.of,
            migration_monitor=self.migrations,
            read_migrations=self.configs.migrations,
            kick_migrations=self.kick_migrations,
        )

    async def _actor(
        self,
        authorization: str | None,
        api_key: str | None,
        acting_for: str | None = None,
        since: int = 0,
    ) -> Actor | OneError:
        """Who the credentials name, from a check at most a second old (and started after
        the access event `since`, for a subscription told of one): `gateway/access.py`."""
        return await self.access.actor((authorization, api_key, acting_for), since)


def _credentials(source: Mapping[str, str]) -> Credentials:
    """What names the actor, from request headers or (lower-cased) `connection_init` params."""
    return (source.get("authorization"), source.get("x-api-key"), source.get("x-one-organization"))


def _wants_graphiql(request: Request) -> bool:
    return (
        request.method == "GET"
        and "query" not in request.query_params
        and "extensions" not in request.query_params
        and "text/html" in request.headers.get("accept", "")
    )


def _response_media(accept: str | None) -> str:
    """`application/graphql-response+json` when the client accepts it, else JSON (406 when
    it accepts neither)."""
    if not accept:
        return JSON
    accepted = {}
    for part in accept.split(","):
        media, _, parameters = part.partition(";")
        quality = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        accepted[media.strip().lower()] = quality
    if accepted.get(GRAPHQL_RESPONSE, 0) > 0:
        return GRAPHQL_RESPONSE
    if any(accepted.get(m, 0) > 0 for m in (JSON, "application/*", "*/*")):
        return JSON
    raise Refused(406, "NOT_ACCEPTABLE", f"this endpoint answers {GRAPHQL_RESPONSE} or {JSON}")


def _media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


async def _body(request: Request, limit: int) -> bytes:
    body = await read_body(request, limit)
    if body is None:
        raise Refused(413, "PAYLOAD_TOO_LARGE", f"the request body is over {limit} bytes")
    return body


def _json_value(text: str | bytes, what: str) -> Any:
    try:
        return _loads(text)
    except (ValueError, RecursionError):  # not JSON, not Unicode, or nested past Python's stack
        raise Refused(400, "BAD_REQUEST", f"{what} is not valid JSON") from None


def _loads(text: str | bytes) -> Any:
    """`json.loads` of Unicode text only: a lone surrogate, encoded in the bytes or escaped
    (`"\\ud800"`), is JSON no store can keep. Raises `JSONDecodeError`, as Strawberry expects."""
    if isinstance(text, bytes):
        try:
            text = text.decode(json.detect_encoding(text))  # json.loads would let them pass
        except UnicodeDecodeError as exc:
            raise json.JSONDecodeError("not Unicode text", "", exc.start) from None
    value = json.loads(text)
    if "\\u" in text:
        try:
            json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise json.JSONDecodeError("a lone surrogate escape", text, 0) from None
    return value


def _coded(error: GraphQLError) -> dict[str, Any]:
    extensions = dict(error.extensions or {})
    code = str(extensions.pop("code", "GRAPHQL_VALIDATION_FAILED"))
    if error.locations:
        extensions["locations"] = [loc.formatted for loc in error.locations]
    return {"code": code, "message": error.message, **extensions}  # capped by the checker


def _reason(exc: Exception) -> str:
    as_reason = getattr(exc, "as_http_error_reason", None)
    return str(as_reason()) if callable(as_reason) else "no GraphQL operation to run"


async def _result(result: ExecutionResult, media: str, lookup: Lookup) -> Response:
    body = _formatted(result)
    status = 400 if "data" not in body and media == GRAPHQL_RESPONSE else 200
    content = await lookup.finish(body, _encoded(body))  # kept by the response cache
    return _sent(content, status, media, lookup.headers)


def _formatted(result: ExecutionResult) -> dict[str, Any]:
    errors = result.errors or []
    # Errors without a path came before execution: the request did not run, so no `data`.
    not_run = result.data is None and bool(errors) and all(not e.path for e in errors)
    body: dict[str, Any] = {} if not_run else {"data": result.data}
    if errors:
        body["errors"] = [e.formatted for e in errors]
    if result.extensions:
        body["extensions"] = result.extensions
    return body


def _json(
    body: dict[str, Any], status: int, media: str, headers: Mapping[str, str] | None = None
) -> Response:
    return _sent(_encoded(body), status, media, headers)


def _encoded(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def _sent(
    content: bytes, status: int, media: str, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        content, status, headers=dict(headers or {}), media_type=f"{media}; charset=utf-8"
    )


async def _roll_back(store: NativeStore, migration: Migration, reason: str) -> None:
    log.warning("migration %s rolled back: %s", migration.id, reason)
    await migration_steps.roll_back(store, migration, reason)
