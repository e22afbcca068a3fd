"""The schema extension every operation passes, over HTTP and WebSocket alike.

Over a WebSocket each operation is first admitted (rate bucket, daily calls; the HTTP view
does this for its requests). Parsing and validation go through the `DocumentChecker` of the
request's `QueryLimits` (size, tokens, width, depth, aliases; cached), or take the document
the HTTP view already checked. Before execution, the organization's safelist is asked (over
WebSocket) and the query's cost is computed with its variables and refused past the actor's
budget with `QUERY_TOO_COMPLEX`. A client that
sends `"extensions": {"cost": true}` gets `extensions.cost` back: the requested and actual
cost and the budget.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError, parse
from opentelemetry import trace
from strawberry.extensions import SchemaExtension

from providers.errors import OneError
from resolvers.cost import QueryCost, actual_cost
from resolvers.documents import Checked, QueryLimits, checker, refusal
from resolvers.errors import partial_errors

# Stands in for a document that did not parse, so Strawberry reports our coded error (and
# over WebSocket sends it as an `error` message instead of closing the socket).
_PLACEHOLDER = parse("{ __typename }")
_DEFAULT_LIMITS = QueryLimits()
DEFAULT_COST_BUDGET = 1_000
_tracer = trace.get_tracer("one-gateway")


class RequestGuard(SchemaExtension):
    def __init__(self) -> None:
        self._checked: Checked | None = None
        self._requested: int | None = None

    def on_operation(self) -> Iterator[None]:
        if not tracing():
            yield  # even a no-op span costs some 4% of a small request
            return
        ctx = self.execution_context
        attributes = {"graphql.operation.name": ctx.operation_name or ""}
        request_id = getattr(ctx.context, "request_id", None)
        if request_id:
            attributes["one.request_id"] = request_id
        # A no-op unless tracing is on (gateway/tracing.py).
        with _tracer.start_as_current_span("graphql.operation", attributes=attributes) as span:
            yield
            if ctx.result is not None and ctx.result.errors:
                span.set_attribute("graphql.errors", len(ctx.result.errors))

    async def on_parse(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        admit = getattr(ctx.context, "admit", None)
        if admit is not None and ctx.graphql_document is None:
            # An operation over a WebSocket: admitted (rate, daily calls) before its document
            # is checked, as the HTTP view does, since checking a new document is the cost.
            try:
                await admit()
            except OneError as exc:
                ctx.graphql_document = _PLACEHOLDER
                ctx.pre_execution_errors = [GraphQLError(exc.message, original_error=exc)]
        if ctx.graphql_document is None and ctx.query:
            limits = getattr(ctx.context, "limits", _DEFAULT_LIMITS)
            try:
                self._checked = getattr(ctx.context, "checked", None) or checker(
                    ctx.schema._schema, limits
                ).check(ctx.query)
            except GraphQLError as error:
                ctx.graphql_document = _PLACEHOLDER
                ctx.pre_execution_errors = [error]
            else:
                ctx.graphql_document = self._checked.document
                # Validated when checked: an empty list tells Strawberry not to validate again.
                ctx.pre_execution_errors = list(self._checked.errors)
        yield

    async def on_execute(self) -> Any:
        ctx = self.execution_context
        trusted = getattr(ctx.context, "trusted", None)
        if trusted is not None and ctx.result is None and not await trusted(ctx.query or ""):
            error = refusal(
                "this organization runs only its trusted documents, and this is not one",
                "PERSISTED_QUERY_NOT_IN_LIST",
            )
            ctx.result = GraphQLExecutionResult(data=None, errors=[error])
        if ctx.graphql_document is not None and ctx.result is None:
            self._requested = self._cost()
            budget = self._budget()
            if self._requested > budget:
                error = refusal(
                    f"the query's cost {self._requested} is over this request's budget of "
                    f"{budget}: ask for fewer items (smaller `first`) or fewer nested lists",
                    "QUERY_TOO_COMPLEX",
                    cost=self._requested,
                    limit=budget,
                )
                ctx.result = GraphQLExecutionResult(data=None, errors=[error])
        with partial_errors() as partial:
            yield
        if partial and ctx.result is not None:
            ctx.result.errors = [*(ctx.result.errors or []), *partial]

    def _cost(self) -> int:
        ctx = self.execution_context
        assert ctx.graphql_document is not None
        checked, operation = self._checked, ctx.operation_name
        if checked is not None and operation in checked.costs:
            return checked.costs[operation]
        cost = QueryCost(ctx.schema._schema, ctx.graphql_document, operation, ctx.variables)
        requested = cost.requested()
        if checked is not None and not cost.uses_variables:
            checked.costs[operation] = requested
        return requested

    def get_results(self) -> dict[str, Any]:
        ctx = self.execution_context
        asked = bool((ctx.operation_extensions or {}).get("cost"))
        if not asked or self._requested is None or ctx.graphql_document is None:
            return {}
        data = ctx.result.data if ctx.result is not None else None
        return {
            "cost": {
                "requestedQueryCost": self._requested,
                "actualQueryCost": actual_cost(
                    ctx.schema._schema, ctx.graphql_document, ctx.operation_name, data
                ),
                "budget": self._budget(),
            }
        }

    def _budget(self) -> int:
        budget = getattr(self.execution_context.context, "cost_budget", DEFAULT_COST_BUDGET)
        return int(budget)


def tracing() -> bool:
    """Whether spans go anywhere: a tracer provider is set (`gateway/tracing.py`, or a test's)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
