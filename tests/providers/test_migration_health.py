"""The new backend's health over a sliding window, on a clock the tests move."""

from __future__ import annotations

from typing import Any

import pytest

from providers.errors import InvalidInputError
from providers.migration_health import MAX_READS, Thresholds, Window, WindowStats


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def window(**thresholds: Any) -> tuple[Window, Clock]:
    clock = Clock()
    return Window(Thresholds(**thresholds), clock), clock


def reads(w: Window, n: int, *, ok: bool = True, latency_ms: float = 100.0, **kw: Any) -> None:
    for _ in range(n):
        w.observe(ok=ok, latency_ms=latency_ms, **kw)


def test_no_breach_under_min_samples() -> None:
    w, _ = window()
    reads(w, 19, ok=False, latency_ms=9000.0)
    assert w.breach() is None
    assert w.stats() == WindowStats(19, 19, 0, 0, 1.0, 0.0, 9000.0)


def test_empty_window() -> None:
    w, _ = window()
    assert w.stats() == WindowStats(0, 0, 0, 0, 0.0, 0.0, 0.0)
    assert w.breach() is None


def test_error_rate_breach() -> None:
    w, _ = window()
    reads(w, 15)
    reads(w, 10, ok=False, mismatch=True)  # a failed read is never compared
    assert w.stats() == WindowStats(25, 10, 0, 0, 0.4, 0.0, 100.0)
    assert w.breach() == "error rate 40.0% > 5.0% over 25 reads in 60 s"


def test_error_rate_at_the_threshold_does_not_cross_it() -> None:
    w, _ = window()
    reads(w, 19)
    reads(w, 1, ok=False)
    assert w.stats().error_rate == 0.05
    assert w.breach() is None


def test_mismatch_rate_breach_counts_compared_reads_only() -> None:
    w, _ = window()
    reads(w, 30)  # not compared
    reads(w, 17, mismatch=False)
    reads(w, 2, mismatch=True)
    assert w.breach() is None  # 19 compared: under min_samples
    reads(w, 1, mismatch=True)
    assert w.stats() == WindowStats(50, 0, 20, 3, 0.0, 0.15, 100.0)
    assert w.breach() == "mismatch rate 15.0% > 10.0% over 20 compared reads in 60 s"


def test_mismatch_rate_at_the_threshold_does_not_cross_it() -> None:
    w, _ = window()
    reads(w, 18, mismatch=False)
    reads(w, 2, mismatch=True)
    assert w.stats().mismatch_rate == 0.1
    assert w.breach() is None


def test_p99_breach() -> None:
    w, _ = window()
    reads(w, 98, latency_ms=100.0)
    reads(w, 1, latency_ms=2350.0)
    reads(w, 1, latency_ms=5000.0)
    # nearest rank: the 99th of 100
    assert w.stats().p99_ms == 2350.0
    assert w.breach() == "p99 latency 2,350 ms > 2,000 ms over 100 reads in 60 s"


def test_p99_ignores_the_slowest_percent() -> None:
    w, _ = window()
    reads(w, 99, latency_ms=2000.0)  # at the threshold: not over it
    reads(w, 1, latency_ms=60000.0)
    assert w.stats().p99_ms == 2000.0
    assert w.breach() is None


def test_p99_counts_failed_reads() -> None:
    w, _ = window(error_rate=1.0)
    reads(w, 19)
    reads(w, 1, ok=False, latency_ms=3000.0)
    assert w.stats().p99_ms == 3000.0
    assert w.breach() == "p99 latency 3,000 ms > 2,000 ms over 20 reads in 60 s"


def test_the_first_threshold_crossed_is_the_reason() -> None:
    w, _ = window()
    reads(w, 20, ok=False, latency_ms=9000.0)
    reads(w, 20, mismatch=True, latency_ms=9000.0)
    assert w.breach() == "error rate 50.0% > 5.0% over 40 reads in 60 s"


def test_the_window_slides() -> None:
    w, clock = window(window_seconds=30)
    reads(w, 20, ok=False, latency_ms=5000.0)
    clock.now += 20
    reads(w, 20, mismatch=False)
    assert w.breach() == "error rate 50.0% > 5.0% over 40 reads in 30 s"
    clock.now += 10  # the failed reads are 30 s old now: out of the window
    assert w.stats() == WindowStats(20, 0, 20, 0, 0.0, 0.0, 100.0)
    assert w.breach() is None
    clock.now += 20
    assert w.stats() == WindowStats(0, 0, 0, 0, 0.0, 0.0, 0.0)


def test_memory_is_bounded() -> None:
    w, _ = window()
    reads(w, 10, ok=False)
    reads(w, MAX_READS)
    assert w.stats() == WindowStats(MAX_READS, 0, 0, 0, 0.0, 0.0, 100.0)


def test_reset_forgets_every_read() -> None:
    w, _ = window()
    reads(w, 25, ok=False)
    assert w.breach() is not None
    w.reset()
    assert w.stats() == WindowStats(0, 0, 0, 0, 0.0, 0.0, 0.0)
    assert w.breach() is None
    reads(w, 20, mismatch=False)
    assert w.stats() == WindowStats(20, 0, 20, 0, 0.0, 0.0, 100.0)


@pytest.mark.parametrize(
    ("thresholds", "field"),
    [
        ({"error_rate": -0.1}, "errorRate"),
        ({"error_rate": 1.5}, "errorRate"),
        ({"error_rate": float("nan")}, "errorRate"),
        ({"mismatch_rate": 2.0}, "mismatchRate"),
        ({"p99_ms": 0.0}, "p99Ms"),
        ({"window_seconds": 0.0}, "windowSeconds"),
        ({"window_seconds": 3601.0}, "windowSeconds"),
        ({"min_samples": 0}, "minSamples"),
    ],
)
def test_thresholds_out_of_range(thresholds: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        Thresholds(**thresholds)
    assert raised.value.extensions == {"field": field}
    assert raised.value.code == "BAD_USER_INPUT"


def test_thresholds_at_their_bounds_are_valid() -> None:
    Thresholds(error_rate=0.0, mismatch_rate=1.0, window_seconds=3600.0, min_samples=1)
