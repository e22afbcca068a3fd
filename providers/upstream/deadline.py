"""One deadline per GraphQL request, shared by every upstream call made for it.

The gateway opens `deadline(seconds)` around each request; every call below reads what is
left with `remaining()`. Nested deadlines never extend an outer one. A call made outside any
request (a health round, a test) gets its own deadline from the policy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("one_upstream_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Upstream calls inside the block must finish within `seconds` from now, all together.

    Example:
        with deadline(10.0):
            await provider.page(query)  # every retry and wait of it included
    """
    at = time.monotonic() + seconds
    outer = _deadline.get()
    token = _deadline.set(at if outer is None else min(outer, at))
    try:
        yield
    finally:
        _deadline.reset(token)


def current() -> float | None:
    """The monotonic time of the current deadline, or None outside any."""
    return _deadline.get()
