"""A circuit breaker per (organization, provider): stop calling an upstream that keeps failing.

    closed --(N failures in a row, or a failure rate over the window)--> open
    open --(cooldown elapsed; the next call is the one probe)--> half_open
    half_open --(probe succeeds)--> closed
    half_open --(probe fails)--> open

Failures are what say the upstream itself is unwell: transport errors, timeouts, 5xx and
answers we cannot read. A 4xx is the upstream answering sensibly (a success here); a 429 is
neither. Outcomes of calls that started before the circuit opened are ignored.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"  # says nothing about the upstream's health (a 429, a cancelled call)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failures: int = 5  # in a row
    window: int = 20  # the last calls the failure rate is taken over ...
    min_calls: int = 10  # ... once it holds at least this many
    failure_rate: float = 0.5
    cooldown_seconds: float = 30.0


class CircuitOpen(Exception):
    """The circuit does not let this call through; try again in `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"circuit open; retry in {retry_after} s")
        self.retry_after = retry_after


class CircuitBreaker:
    def __init__(
        self,
        policy: BreakerPolicy,
        on_change: Callable[[CircuitState], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.state = CircuitState.CLOSED
        self._on_change = on_change
        self._clock = clock
        self._recent: deque[bool] = deque(maxlen=policy.window)  # True: a failure
        self._in_a_row = 0
        self._opened_at = 0.0
        self._probing = False

    def admit(self) -> bool:
        """Let a call through (True when it is the half-open probe), or raise `CircuitOpen`."""
        if self.state is CircuitState.CLOSED:
            return False
        if self.state is CircuitState.OPEN:
            left = self._opened_at + self.policy.cooldown_seconds - self._clock()
            if left > 0:
                raise CircuitOpen(max(1, math.ceil(left)))
            self._change(CircuitState.HALF_OPEN)
        if self._probing:
            raise CircuitOpen(1)  # one probe at a time; its answer decides for the rest
        self._probing = True
        return True

    def record(self, outcome: Outcome, *, probe: bool) -> None:
        if probe:
            self._probing = False
            if outcome is Outcome.SUCCESS:
                self._close()
            elif outcome is Outcome.FAILURE:
                self._open()
            return
        if self.state is not CircuitState.CLOSED or outcome is Outcome.NEUTRAL:
            return
        failed = outcome is Outcome.FAILURE
        self._recent.append(failed)
        self._in_a_row = self._in_a_row + 1 if failed else 0
        calls = len(self._recent)
        rate = sum(self._recent) / calls
        if self._in_a_row >= self.policy.failures or (
            calls >= self.policy.min_calls and rate >= self.policy.failure_rate
        ):
            self._open()

    def retry_after(self) -> int:
        """Seconds until the circuit lets a probe through (0 when closed)."""
        if self.state is CircuitState.CLOSED:
            return 0
        left = self._opened_at + self.policy.cooldown_seconds - self._clock()
        return max(1, math.ceil(left))

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._recent.clear()
        self._in_a_row = 0
        self._change(CircuitState.OPEN)

    def _close(self) -> None:
        self._recent.clear()
        self._in_a_row = 0
        self._change(CircuitState.CLOSED)

    def _change(self, state: CircuitState) -> None:
        if state is self.state:
            return
        self.state = state
        if self._on_change is not None:
            self._on_change(state)
