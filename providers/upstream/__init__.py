"""One upstream layer for every connector: deadline, timeouts, retries, `Retry-After`,
circuit breakers, bulkheads, the SSRF guard, error mapping and metrics, in one place.

    deadline.py   one deadline per GraphQL request, read by every call made for it
    client.py     `Upstreams` (per pool) and `Upstream` (per organization and provider):
                  `send` = deadline -> breaker -> pacing -> bulkhead -> timeout -> answer
    answers.py    what an answer means: the reply, or the error (never the upstream's text)
    breaker.py    the circuit breaker
    addresses.py  the SSRF guard, applied when a connection is made
    bodies.py     answers, validated replies, timestamps

Connectors keep only their request shapes, their response models and the mapping to records.
"""

from __future__ import annotations

from providers.upstream.addresses import AddressGuard, GuardedBackend, guarded_client
from providers.upstream.bodies import (
    Answer,
    Reply,
    UtcDatetime,
    json_body,
    retry_after,
)
from providers.upstream.breaker import BreakerPolicy, CircuitBreaker, CircuitState
from providers.upstream.client import (
    CircuitListener,
    Upstream,
    UpstreamObserver,
    UpstreamPolicy,
    Upstreams,
)
from providers.upstream.deadline import deadline

__all__ = [
    "AddressGuard",
    "Answer",
    "BreakerPolicy",
    "CircuitBreaker",
    "CircuitListener",
    "CircuitState",
    "GuardedBackend",
    "Reply",
    "Upstream",
    "UpstreamObserver",
    "UpstreamPolicy",
    "Upstreams",
    "UtcDatetime",
    "deadline",
    "guarded_client",
    "json_body",
    "retry_after",
]
