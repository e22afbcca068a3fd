"""The health of a migration's new backend over a sliding window, and when to roll it back.

Every read of the new backend counts (served to a user in the rollout, or a shadow read): its
failures, its latency and, when it was compared, whether it matched. The first threshold it
crosses, once the window holds enough reads to judge, is the reason to roll back.

`breach` runs after each read: it keeps running tallies, and sorts latencies only to report a
p99 it already knows is over.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from providers.errors import InvalidInputError

MAX_READS = 10_000  # a window's memory bound; past it, the oldest reads go first


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When the new backend has misbehaved: each rate or the p99 strictly over its threshold,
    over the last `window_seconds`, once at least `min_samples` reads (compared reads, for the
    mismatch rate) are in it."""

    error_rate: float = 0.05
    mismatch_rate: float = 0.10
    p99_ms: float = 2000.0
    window_seconds: float = 60.0
    min_samples: int = 20

    def __post_init__(self) -> None:
        for name, field in (("error_rate", "errorRate"), ("mismatch_rate", "mismatchRate")):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidInputError(f"{field} must be between 0 and 1", field=field)
        if not 0 < self.p99_ms <= 600_000:  # NaN and infinity fail too
            raise InvalidInputError("p99Ms must be more than 0 and at most 600000", field="p99Ms")
        # Bounded both ways: a window too short or a sample too large would switch the
        # automatic rollback off without saying so.
        if not 1 <= self.window_seconds <= 3600:
            raise InvalidInputError(
                "windowSeconds must be between 1 and 3600", field="windowSeconds"
            )
        if not 1 <= self.min_samples <= 10_000:
            raise InvalidInputError("minSamples must be between 1 and 10000", field="minSamples")


@dataclass(frozen=True, slots=True)
class WindowStats:
    reads: int
    errors: int
    compared: int
    mismatches: int
    error_rate: float  # 0.0 without reads
    mismatch_rate: float  # 0.0 without compared reads
    p99_ms: float  # nearest rank, failed reads included; 0.0 without reads


class _Read(NamedTuple):
    at: float
    ok: bool
    latency_ms: float
    mismatch: bool | None


class Window:
    """The new backend's reads of the last `thresholds.window_seconds`.

    Example:
        window = Window(Thresholds(error_rate=0.2))
        window.observe(ok=True, latency_ms=120.0, mismatch=False)
        if reason := window.breach():
            ...  # roll back, saying `reason`; then `window.reset()`
    """

    def __init__(self, thresholds: Thresholds, clock: Callable[[], float] = time.monotonic) -> None:
        self.thresholds = thresholds
        self._clock = clock
        self._reads: deque[_Read] = deque(maxlen=MAX_READS)
        self._errors = self._compared = self._mismatches = self._slow = 0

    def observe(self, *, ok: bool, latency_ms: float, mismatch: bool | None = None) -> None:
        """One read of the new backend; `mismatch` None when it was not compared (a failed
        read never is: its `mismatch` is ignored)."""
        read = _Read(self._clock(), ok, latency_ms, mismatch if ok else None)
        if len(self._reads) == MAX_READS:
            self._tally(self._reads.popleft(), -1)
        self._reads.append(read)
        self._tally(read, 1)

    def stats(self) -> WindowStats:
        self._drop_old()
        reads, compared = len(self._reads), self._compared
        return WindowStats(
            reads=reads,
            errors=self._errors,
            compared=compared,
            mismatches=self._mismatches,
            error_rate=self._errors / reads if reads else 0.0,
            mismatch_rate=self._mismatches / compared if compared else 0.0,
            p99_ms=self._p99(),
        )

    def breach(self) -> str | None:
        """The first threshold crossed, as a reason a person can read; None while the window
        holds fewer than `min_samples` reads, or none is crossed."""
        self._drop_old()
        limits, reads = self.thresholds, len(self._reads)
        if reads < limits.min_samples:
            return None
        span = f"in {limits.window_seconds:g} s"
        if (rate := self._errors / reads) > limits.error_rate:
            return f"error rate {rate:.1%} > {limits.error_rate:.1%} over {reads} reads {span}"
        if self._compared >= limits.min_samples:
            rate = self._mismatches / self._compared
            if rate > limits.mismatch_rate:
                return (
                    f"mismatch rate {rate:.1%} > {limits.mismatch_rate:.1%} "
                    f"over {self._compared} compared reads {span}"
                )
        # The nearest-rank p99 is over the threshold iff more reads than the ones ranked
        # above it are: a count, no sort.
        if self._slow > reads - _p99_rank(reads):
            return (
                f"p99 latency {self._p99():,.0f} ms > {limits.p99_ms:,.0f} ms "
                f"over {reads} reads {span}"
            )
        return None

    def reset(self) -> None:
        """Forget every read: a fresh start, after a rollback."""
        self._reads.clear()
        self._errors = self._compared = self._mismatches = self._slow = 0

    def _drop_old(self) -> None:
        since = self._clock() - self.thresholds.window_seconds
        while self._reads and self._reads[0].at <= since:
            self._tally(self._reads.popleft(), -1)

    def _tally(self, read: _Read, by: int) -> None:
        self._errors += by * (not read.ok)
        self._compared += by * (read.mismatch is not None)
        self._mismatches += by * (read.mismatch is True)
        self._slow += by * (read.latency_ms > self.thresholds.p99_ms)

    def _p99(self) -> float:
        if not self._reads:
            return 0.0
        latencies = sorted(read.latency_ms for read in self._reads)
        return latencies[_p99_rank(len(latencies)) - 1]


def _p99_rank(n: int) -> int:
    """The nearest rank of the 99th percentile among `n` values: ceil(0.99 n), exactly."""
    return (99 * n + 99) // 100
