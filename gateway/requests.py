"""Every HTTP request gets an id (`X-Request-Id`, and `request_id` on every log record of it),
and an answer in JSON even when something breaks: a bug is a 500 with
`INTERNAL_SERVER_ERROR` and the request id, which is also in the log line with the traceback.
"""

from __future__ import annotations

import json
import logging
import secrets
from contextvars import ContextVar

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("one.gateway")

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def request_id() -> str | None:
    """The id of the request being served, if any."""
    return _request_id.get()


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record, so a format can say `%(request_id)s`."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get() or "-"
        return True


class RequestIds:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = secrets.token_hex(8)
        token = _request_id.set(rid)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unexpected error serving %s (request %s)", scope.get("path"), rid)
            if scope["type"] != "http" or started:
                raise
            body = {
                "errors": [
                    {
                        "message": "Internal server error",
                        "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": rid},
                    }
                ]
            }
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"x-request-id", rid.encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": json.dumps(body).encode()})
        finally:
            _request_id.reset(token)


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request's body, or None once it is over `limit` bytes (by its Content-Length, or
    as it streams in, before the rest is read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
