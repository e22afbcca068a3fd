"""Faithful local stand-ins for the SaaS APIs the gateway talks to (Shopify, Notion), and the
loopback runner they share. Each validates requests as the real API does, answers in its
documented shapes, enforces its rate limit, counts requests and injects faults on demand."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.responses import Response
from starlette.types import ASGIApp


@dataclass
class Fault:
    """An upstream misbehaving on demand, for the next `times` requests: slower by `delay`
    seconds and, when `status` is set, answering it with `body` instead of the real answer."""

    delay: float = 0.0
    status: int | None = None
    body: bytes = b'{"errors": "Internal Server Error"}'
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1_000_000


async def injected(fault: Fault | None) -> Response | None:
    """Apply `fault` to one request: the response to send instead, or None to carry on."""
    if fault is None or fault.times <= 0:
        return None
    fault.times -= 1
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.status is None:
        return None
    return Response(fault.body, fault.status, headers=fault.headers, media_type="application/json")


@contextmanager
def serve(app: ASGIApp, *, lifespan: str = "off") -> Iterator[str]:
    """Run `app` on a free loopback port in a background thread; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("emulator did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
