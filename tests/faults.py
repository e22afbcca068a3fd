"""A loopback HTTP server that answers however a test tells it to: the upstream faults a
healthy real service will not produce on demand (500s, non-JSON, hangs, redirects), and a
witness that records every request (and its credentials) it should never have received."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.emulators import serve

GARBAGE = b'[1, "two", {"three": 3}, null, [4]]'  # valid JSON, of no shape an upstream uses


@dataclass
class Fault:
    status: int = 200
    body: bytes = b"[]"
    content_type: str = "application/json"
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]

    @property
    def credentials(self) -> str | None:
        return self.headers.get("authorization") or self.headers.get("x-shopify-access-token")


@dataclass
class FaultServer:
    url: str
    fault: Fault
    # What the home page advertises as the WordPress REST root; None: this server's own.
    api_link: str | None = None
    home: Fault | None = None  # set: the home page answers with this fault instead
    paths: dict[str, Fault] = field(default_factory=dict)  # faults for single paths
    received: list[Received] = field(default_factory=list)
    in_flight: int = 0
    most_at_once: int = 0  # the most requests it was answering at one time

    @property
    def requests(self) -> list[str]:
        return [f"{r.method} {r.path}?{r.query}" for r in self.received]

    def api_requests(self) -> int:
        """Requests other than WordPress discovery's look at the home page."""
        return sum(1 for r in self.received if not _home_page(r))


def _home_page(received: Received) -> bool:
    return received.path == "/" and "rest_route" not in received.query


@contextmanager
def fault_server(fault: Fault | None = None) -> Iterator[FaultServer]:
    """Serves `Link: <url/?rest_route=/>; rel="https://api.w.org/"` on `/` (as WordPress does)
    and the current `fault` on every other request."""
    server = FaultServer("", fault or Fault())

    async def handle(request: Request) -> Response:
        received = Received(
            request.method,
            request.url.path,
            request.url.query,
            {k.lower(): v for k, v in request.headers.items()},
        )
        server.received.append(received)
        if _home_page(received) and server.home is None:
            link = f'<{server.api_link or server.url + "/?rest_route=/"}>; rel="https://api.w.org/"'
            return Response("<html></html>", media_type="text/html", headers={"Link": link})
        current = server.paths.get(received.path, server.fault)
        if _home_page(received) and server.home is not None:
            current = server.home
        server.in_flight += 1
        server.most_at_once = max(server.most_at_once, server.in_flight)
        try:
            if current.delay:
                await asyncio.sleep(current.delay)
        finally:
            server.in_flight -= 1
        return Response(
            current.body, current.status, headers=current.headers, media_type=current.content_type
        )

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(routes=[Route("/{path:path}", handle, methods=methods)])
    with serve(app) as url:
        server.url = url
        yield server


def dead_url() -> str:
    """A loopback address nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"
