"""The upstream layer as the settings configure it: the guarded HTTP client every connector
shares, the policy of each (organization, provider)'s upstream, and the deadline of each
GraphQL request (providers/upstream has the rules; this module only sets their numbers)."""

from __future__ import annotations

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.settings import Settings
from providers.upstream import (
    AddressGuard,
    BreakerPolicy,
    UpstreamPolicy,
    deadline,
    guarded_client,
)


def upstream_client(settings: Settings) -> httpx.AsyncClient:
    """One pool for every organization, larger than any one's bulkhead
    (`upstream_concurrency`): a hanging upstream holds at most its own slots of it."""
    guard = AddressGuard.build(
        allow_loopback=settings.env != "production",
        allowlist=settings.upstream_allowlist,
        listen=(settings.host, settings.port),
    )
    return guarded_client(
        guard,
        max_connections=max(settings.upstream_max_connections, 2 * settings.upstream_concurrency),
    )


def upstream_policy(settings: Settings) -> UpstreamPolicy:
    return UpstreamPolicy(
        deadline_seconds=settings.upstream_deadline_seconds,
        attempts=settings.upstream_attempts,
        backoff_seconds=settings.upstream_backoff_seconds,
        backoff_max_seconds=settings.upstream_backoff_max_seconds,
        concurrency=settings.upstream_concurrency,
        breaker=BreakerPolicy(
            failures=settings.upstream_breaker_failures,
            window=settings.upstream_breaker_window,
            min_calls=settings.upstream_breaker_min_calls,
            failure_rate=settings.upstream_breaker_failure_rate,
            cooldown_seconds=settings.upstream_breaker_cooldown_seconds,
        ),
    )


class UpstreamDeadlines:
    """Every GraphQL request over HTTP gets one deadline for all its upstream calls.
    Streams (SSE subscriptions) and WebSockets live longer than any deadline: their upstream
    calls each get the policy's deadline instead."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _streams(scope):
            await self.app(scope, receive, send)
            return
        with deadline(self.seconds):
            await self.app(scope, receive, send)


def _streams(scope: Scope) -> bool:
    accept = dict(scope.get("headers") or []).get(b"accept", b"")
    return b"text/event-stream" in accept
