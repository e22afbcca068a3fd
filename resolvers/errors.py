"""Every GraphQL error leaves with an `extensions.code`, and unexpected ones say nothing more.

Data-layer errors (`providers.errors`) carry their code and extensions. Errors graphql-core
raises before execution are parse or validation failures; during execution, an error with no
original exception is a variable that did not coerce (bad user input). Anything else is a bug:
the client sees "Internal server error" and the log has the traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionContext

from providers.errors import OneError

log = logging.getLogger("one.graphql")


def coded(error: GraphQLError, *, before_execution: bool) -> GraphQLError:
    original = error.original_error
    extensions: dict[str, Any] = dict(error.extensions or {})
    message = error.message
    if isinstance(original, OneError):
        extensions = {**original.extensions, **extensions, "code": original.code}
        message = original.message
    elif "code" in extensions:
        return error
    elif original is None or isinstance(original, GraphQLError):
        # graphql-core's own errors: a variable that did not coerce wraps another one.
        if not before_execution or isinstance(original, GraphQLError):
            extensions["code"] = "BAD_USER_INPUT"
        elif message.startswith("Syntax Error"):
            extensions["code"] = "GRAPHQL_PARSE_FAILED"
        else:
            extensions["code"] = "GRAPHQL_VALIDATION_FAILED"
    else:
        extensions = {"code": "INTERNAL_SERVER_ERROR"}
        message = "Internal server error"
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=original,
        extensions=extensions,
    )


def log_unexpected(errors: list[GraphQLError], context: ExecutionContext | None) -> None:
    """Log what is a bug; a client's mistake is not worth a traceback."""
    for error in errors:
        original = error.original_error
        if original is not None and not isinstance(original, OneError | GraphQLError):
            log.error("unexpected error in %s", error.path, exc_info=original)


class ErrorCodes(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        before = bool(self.execution_context.pre_execution_errors)
        result.errors = [coded(e, before_execution=before) for e in result.errors]
