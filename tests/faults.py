"""A loopback HTTP server that answers however a test tells it to: the upstream faults a
healthy real service will not produce on demand (500s, non-JSON, hangs)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.emulators import serve


@dataclass
class Fault:
    status: int = 200
    body: bytes = b"[]"
    content_type: str = "application/json"
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FaultServer:
    url: str
    fault: Fault
    requests: list[str] = field(default_factory=list)


@contextmanager
def fault_server(fault: Fault | None = None) -> Iterator[FaultServer]:
    """Serves `Link: <url/?rest_route=/>; rel="https://api.w.org/"` on `/` (as WordPress does)
    and the current `fault` on every other request."""
    server = FaultServer("", fault or Fault())

    async def handle(request: Request) -> Response:
        server.requests.append(f"{request.method} {request.url.path}?{request.url.query}")
        if request.url.path == "/" and "rest_route" not in request.query_params:
            link = f'<{server.url}/?rest_route=/>; rel="https://api.w.org/"'
            return Response("<html></html>", media_type="text/html", headers={"Link": link})
        current = server.fault
        if current.delay:
            await asyncio.sleep(current.delay)
        return Response(
            current.body, current.status, headers=current.headers, media_type=current.content_type
        )

    app = Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST", "DELETE"])])
    with serve(app) as url:
        server.url = url
        yield server
