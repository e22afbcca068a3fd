"""One call's answer: the reply it reads as, or the error it means to the caller and what it
says of the upstream's health. Upstream text goes to the `one.upstream` log (with the
organization, and the request id the gateway's log filter adds), never into an error."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from providers.errors import (
    InvalidInputError,
    NotFoundError,
    OneError,
    ProviderAuthError,
    ProviderRateLimitedError,
    ProviderResponseError,
    ProviderUnavailableError,
)
from providers.upstream.bodies import Answer, Reply, retry_after
from providers.upstream.breaker import CircuitState, Outcome

log = logging.getLogger("one.upstream")

T = TypeVar("T")
Rejected = Callable[[Answer], OneError | None]  # a connector's reading of a 4xx answer
Throttled = Callable[[Answer], float | None]  # seconds to wait, when an answer is a throttle
Pace = Callable[[], Awaitable[None]]  # a connector's own pacing before each attempt


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One call as a connector asks for it, and how to read its answer."""

    method: str
    url: str
    params: Mapping[str, Any] | None
    json: Any
    read: bool  # idempotent: may be tried again after a failure
    expect: Callable[[Answer], T]
    rejected: Rejected | None = None
    throttled: Throttled | None = None
    pace: Pace | None = None


class Failure(Exception):
    """One attempt's end: the error to raise and what it says of the upstream's health.
    `wait`: seconds after which another attempt may help (a throttle's, or a 5xx's
    `Retry-After`); `transient`: a read may be tried again after a backoff."""

    def __init__(
        self,
        error: OneError,
        outcome: Outcome,
        *,
        wait: float | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(error.message)
        self.error = error
        self.outcome = outcome
        self.wait = wait
        self.transient = transient


@dataclass(frozen=True, slots=True)
class Wording:
    """The errors of one organization's upstream, as its callers read them."""

    provider: str
    label: str  # the upstream's name in messages: "WordPress"
    org_id: str

    def note(self, level: int, message: str, *args: object) -> None:
        log.log(level, "%s (org %s): " + message, self.provider, self.org_id, *args)

    def late(self) -> ProviderUnavailableError:
        return self._unavailable("was not asked: the request ran out of time")

    def busy(self) -> ProviderUnavailableError:
        return self._unavailable("is busy: too many calls to it are in flight", retryAfter=1)

    def timed_out(self) -> ProviderUnavailableError:
        return self._unavailable("did not answer in time")

    def unreachable(self) -> ProviderUnavailableError:
        # The same words for a refused address as for a closed port: they must look alike.
        return self._unavailable("cannot be reached")

    def circuit_open(self, retry_after: int) -> ProviderUnavailableError:
        return self._unavailable(
            "keeps failing; calls to it are paused",
            circuit=CircuitState.OPEN.value,
            retryAfter=retry_after,
        )

    def rate_limited(self, wait: float) -> ProviderRateLimitedError:
        seconds = max(1, math.ceil(wait))
        return ProviderRateLimitedError(
            f"{self.label} is limiting our requests; try again in {seconds} s",
            provider=self.provider,
            retryAfter=seconds,
        )

    def bad_response(self, what: str = "something we cannot read") -> ProviderResponseError:
        return ProviderResponseError(f"{self.label} answered with {what}", provider=self.provider)

    def refused(self, status: int) -> OneError:
        if status in (401, 403):
            return ProviderAuthError(
                f"{self.label} refused the credentials", provider=self.provider, status=status
            )
        if status == 404:
            return NotFoundError(f"{self.label} has no such item", provider=self.provider)
        if status in (400, 409, 413, 422):
            return InvalidInputError(f"{self.label} rejected the request", provider=self.provider)
        return ProviderResponseError(
            f"{self.label} answered HTTP {status}", provider=self.provider, status=status
        )

    def _unavailable(self, what: str, **extensions: Any) -> ProviderUnavailableError:
        return ProviderUnavailableError(
            f"{self.label} {what}", provider=self.provider, **extensions
        )


def read_answer(call: Call[T], answer: Answer, wording: Wording) -> Reply[T]:
    """The reply, or a `Failure` saying what the answer means."""
    status, where = answer.status, where_of(answer.url)
    wait = call.throttled(answer) if call.throttled is not None else None
    if wait is None and status == 429:
        wait = retry_after(answer.headers) or 1.0
    if wait is not None:
        wording.note(
            logging.INFO,
            "%s throttled us (HTTP %d) for %.2f s: %s",
            where,
            status,
            wait,
            answer.excerpt(),
        )
        raise Failure(wording.rate_limited(wait), Outcome.NEUTRAL, wait=wait)
    if 200 <= status < 300:
        try:
            return Reply(status, answer.headers, call.expect(answer))
        except ValueError as exc:
            wording.note(
                logging.WARNING,
                "%s answered what we cannot read: %s; body: %s",
                where,
                str(exc)[:500],
                answer.excerpt(),
            )
            raise Failure(wording.bad_response(), Outcome.FAILURE) from None
    if status >= 500:
        wording.note(logging.WARNING, "%s answered %d: %s", where, status, answer.excerpt())
        failed = ProviderUnavailableError(
            f"{wording.label} failed (HTTP {status})", provider=wording.provider, status=status
        )
        raise Failure(failed, Outcome.FAILURE, wait=retry_after(answer.headers), transient=True)
    wording.note(logging.INFO, "%s answered %d: %s", where, status, answer.excerpt())
    error = (call.rejected(answer) if call.rejected else None) or wording.refused(status)
    # A 4xx is the upstream answering sensibly, unless it is an answer we cannot read.
    bad = isinstance(error, ProviderResponseError)
    raise Failure(error, Outcome.FAILURE if bad else Outcome.SUCCESS)


def where_of(url: str | httpx.URL) -> str:
    """An address for the log: no query string (it may hold what a user searched for)."""
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii', 'replace')}{parsed.path}"
