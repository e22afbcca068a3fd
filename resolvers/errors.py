"""Every GraphQL error leaves with an `extensions.code`, and unexpected ones say nothing more.

Errors are coded where Strawberry hands every error over once, whatever the transport
(`Schema.process_errors`, before HTTP or WebSocket formats them): data-layer errors
(`providers.errors`) carry their code and extensions; parse, validation and limit failures
were coded when the document was checked (`resolvers.documents`); an error with no original
exception raised during execution is a variable that did not coerce (bad user input); an
operation that cannot be chosen is a bad request. Anything else is a bug: the client sees
"Internal server error" with the request id, and the log has the traceback under that id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from graphql import GraphQLError
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.execution import ExecutionContext

from providers.errors import OneError
from resolvers.documents import capped

log = logging.getLogger("one.graphql")

_REQUEST_ERRORS = (CannotGetOperationTypeError, InvalidOperationTypeError, MissingQueryError)


# Errors reported beside data that was still answered (a search's failed backend): one list
# per operation, set by the request guard around execution. A context variable, not the
# request context, since a WebSocket's operations share one context and may run at once.
_PARTIAL: ContextVar[list[GraphQLError] | None] = ContextVar("one_partial_errors", default=None)


def report_partial(error: GraphQLError) -> None:
    """Add `error` to the operation's errors, while its data is still answered."""
    found = _PARTIAL.get()
    if found is not None:
        found.append(error)


@contextmanager
def partial_errors() -> Iterator[list[GraphQLError]]:
    """Collect the errors `report_partial` reports during an operation's execution."""
    found: list[GraphQLError] = []
    token = _PARTIAL.set(found)
    try:
        yield found
    finally:
        _PARTIAL.reset(token)


def code_errors(errors: list[GraphQLError], context: ExecutionContext | None) -> None:
    """Give each error its code, in place, and log what is a bug."""
    request_id = getattr(context.context, "request_id", None) if context else None
    for error in errors:
        extensions: dict[str, Any] = dict(error.extensions or {})
        if "code" in extensions:
            continue
        original = error.original_error
        if isinstance(original, OneError):
            extensions = {**original.extensions, **extensions, "code": original.code}
            error.message = original.message
        elif isinstance(original, _REQUEST_ERRORS):
            extensions["code"] = "BAD_REQUEST"
        elif original is None or isinstance(original, GraphQLError):
            extensions["code"] = "BAD_USER_INPUT"
        else:
            log.error(
                "unexpected error in %s (request %s)", error.path, request_id, exc_info=original
            )
            extensions = {"code": "INTERNAL_SERVER_ERROR"}
            if request_id:
                extensions["requestId"] = request_id
            error.message = "Internal server error"
        error.message = capped(error.message)
        error.extensions = extensions
