"""The upstream client: every call a connector makes to its backend goes through `send`.

One `Upstream` per (organization, provider config), made by the pool's `Upstreams`. A call:

1. fails fast when the request's deadline has passed or the circuit is open;
2. waits for the connector's pacing (Notion's limiter, Shopify's cost bucket), then for one of
   the organization's slots with this upstream (the bulkhead), both within the deadline;
3. sends once, bounded by the provider's timeout and what is left of the deadline, to the
   configured origin only (credentials included), following a redirect only within it;
4. reads the answer (answers.py): 2xx through the connector's model; a throttle waits its
   `Retry-After` when that fits in the deadline, else PROVIDER_RATE_LIMITED with
   `retryAfter`; 5xx, timeouts and transport errors retry reads with jittered exponential
   backoff, up to the attempt budget; 4xx map to the error tree;
5. tells the circuit breaker and the metrics how it went.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import httpx

from providers.errors import OneError, ProviderResponseError
from providers.upstream import deadline
from providers.upstream.answers import (
    Call,
    Failure,
    Pace,
    Rejected,
    Throttled,
    Wording,
    read_answer,
    where_of,
)
from providers.upstream.bodies import Answer, Reply
from providers.upstream.breaker import (
    BreakerPolicy,
    CircuitBreaker,
    CircuitOpen,
    CircuitState,
    Outcome,
)

log = logging.getLogger("one.upstream")

T = TypeVar("T")
CircuitListener = Callable[[str, str, CircuitState], None]  # (org id, provider, new state)

_MAX_REDIRECTS = 3


@dataclass(frozen=True, slots=True)
class UpstreamPolicy:
    """Every default of the upstream layer; `gateway/settings.py` sets them (ONE_UPSTREAM_*)."""

    deadline_seconds: float = 10.0  # a call made outside any request's deadline gets this
    attempts: int = 3  # the retry budget: tries per call, the first one included
    backoff_seconds: float = 0.1  # before the 2nd attempt; doubling, jittered, ...
    backoff_max_seconds: float = 2.0  # ... up to this
    concurrency: int = 20  # calls in flight per (organization, provider): the bulkhead
    max_response_bytes: int = 16 * 1024 * 1024
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)


class UpstreamObserver(Protocol):
    """Where the client reports for metrics (the gateway's Prometheus registry)."""

    def exchanged(self, provider: str, seconds: float) -> None: ...

    def failed(self, provider: str, code: str) -> None: ...


class Upstreams:
    """What every upstream of a pool shares: the guarded HTTP client, the policy, the metrics
    and the listener of circuit changes; and the live upstream of each (org, provider)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        policy: UpstreamPolicy | None = None,
        *,
        observer: UpstreamObserver | None = None,
        on_circuit_change: CircuitListener | None = None,
    ) -> None:
        self.client = client
        self.policy = policy or UpstreamPolicy()
        self.observer = observer
        self.on_circuit_change = on_circuit_change
        self._live: dict[tuple[str, str], Upstream] = {}

    @classmethod
    def of(cls, given: httpx.AsyncClient | Upstreams) -> Upstreams:
        """`given` itself, or a bare client with the default policy (tests, the CLI)."""
        return given if isinstance(given, Upstreams) else cls(given)

    def open(
        self,
        *,
        org_id: str,
        provider: str,
        label: str,
        origin: str,
        timeout: float,
        attempts: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Upstream:
        """The upstream of one organization's provider at `origin` (scheme://host[:port]);
        `headers` (credentials) go with every call, and only to that origin."""
        upstream = Upstream(
            self,
            Wording(provider, label, org_id),
            origin=origin,
            timeout=timeout,
            attempts=min(self.policy.attempts, attempts or self.policy.attempts),
            headers=dict(headers or {}),
        )
        self._live[(org_id, provider)] = upstream
        return upstream

    def circuit(self, org_id: str, provider: str) -> CircuitState | None:
        upstream = self._live.get((org_id, provider))
        return upstream.breaker.state if upstream else None

    def circuits(self) -> list[tuple[str, str, CircuitState]]:
        return [(o, p, u.breaker.state) for (o, p), u in self._live.items()]


class Upstream:
    def __init__(
        self,
        hub: Upstreams,
        wording: Wording,
        *,
        origin: str,
        timeout: float,
        attempts: int,
        headers: dict[str, str],
    ) -> None:
        self.wording = wording
        self.origin = _origin(httpx.URL(origin))
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self._hub = hub
        self._policy = hub.policy
        self._headers = headers
        self._slots = asyncio.Semaphore(hub.policy.concurrency)
        self.breaker = CircuitBreaker(hub.policy.breaker, on_change=self._circuit_changed)

    def same_origin(self, url: str | httpx.URL) -> bool:
        try:
            return _origin(httpx.URL(url)) == self.origin
        except (httpx.InvalidURL, ValueError):
            return False

    def bad_response(self) -> ProviderResponseError:
        """For a connector that finds an answer unreadable after it was read."""
        return self.wording.bad_response()

    async def send(
        self,
        method: str,
        url: str,
        *,
        expect: Callable[[Answer], T],
        read: bool | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        rejected: Rejected | None = None,
        throttled: Throttled | None = None,
        pace: Pace | None = None,
    ) -> Reply[T]:
        """Send one call and read its answer with `expect`, or raise a `OneError`. Reads
        (GETs, or `read=True` for reads sent as POST) are tried again after a failure."""
        read = method in ("GET", "HEAD") if read is None else read
        call = Call(method, url, params, json, read, expect, rejected, throttled, pace)
        try:
            return await self._send(call)
        except OneError as exc:
            if self._hub.observer is not None:
                self._hub.observer.failed(self.wording.provider, exc.code)
            raise

    async def _send(self, call: Call[T]) -> Reply[T]:
        if not self.same_origin(call.url):
            self.wording.note(logging.ERROR, "refused to send to %s", where_of(call.url))
            raise self.wording.bad_response("another address than its own, which is not followed")
        at = deadline.current() or time.monotonic() + self._policy.deadline_seconds
        last: OneError | None = None
        for attempt in range(1, self.attempts + 1):
            if at - time.monotonic() <= 0:
                raise last or self.wording.late()
            try:
                probe = self.breaker.admit()
            except CircuitOpen as exc:
                raise self.wording.circuit_open(exc.retry_after) from None
            try:
                reply = read_answer(call, await self._attempt(call, at), self.wording)
            except Failure as failure:
                self.breaker.record(failure.outcome, probe=probe)
                last = failure.error
                wait = failure.wait
                if failure.transient:
                    wait = max(self._backoff(attempt), wait or 0.0) if call.read else None
                if wait is None or attempt == self.attempts or wait >= at - time.monotonic():
                    raise failure.error from None
                await asyncio.sleep(wait)
                continue
            except BaseException:
                self.breaker.record(Outcome.NEUTRAL, probe=probe)
                raise
            self.breaker.record(Outcome.SUCCESS, probe=probe)
            return reply
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _attempt(self, call: Call[T], at: float) -> Answer:
        """Pace, take a slot, send: one answer, or a `Failure`."""
        if call.pace is not None:
            try:
                async with asyncio.timeout(at - time.monotonic()):
                    await call.pace()
            except TimeoutError:
                raise Failure(self.wording.rate_limited(1), Outcome.NEUTRAL) from None
        try:
            async with asyncio.timeout(at - time.monotonic()):
                await self._slots.acquire()
        except TimeoutError:
            raise Failure(self.wording.busy(), Outcome.NEUTRAL) from None
        try:
            budget = min(self.timeout, at - time.monotonic())
            if budget <= 0:
                raise Failure(self.wording.late(), Outcome.NEUTRAL)
            return await self._timed(call, budget)
        finally:
            self._slots.release()

    async def _timed(self, call: Call[T], budget: float) -> Answer:
        started = time.perf_counter()
        where = where_of(call.url)
        try:
            async with asyncio.timeout(budget):
                return await self._fetch(call, budget)
        except (TimeoutError, httpx.TimeoutException):
            self.wording.note(
                logging.WARNING, "%s %s: no answer within %.2f s", call.method, where, budget
            )
            raise Failure(self.wording.timed_out(), Outcome.FAILURE, transient=True) from None
        except httpx.TransportError as exc:
            self.wording.note(logging.WARNING, "%s %s: %r", call.method, where, exc)
            raise Failure(self.wording.unreachable(), Outcome.FAILURE, transient=True) from None
        finally:
            if self._hub.observer is not None:
                self._hub.observer.exchanged(self.wording.provider, time.perf_counter() - started)

    async def _fetch(self, call: Call[T], budget: float) -> Answer:
        """Send, and follow a redirect only for a read and only within the origin."""
        target, params = httpx.URL(call.url), call.params
        for _ in range(_MAX_REDIRECTS + 1):
            request = self._hub.client.build_request(
                call.method,
                target,
                params=params,
                json=call.json,
                headers=self._headers,
                timeout=budget,
            )
            response = await self._hub.client.send(request, stream=True)
            try:
                content = await self._body(response)
            finally:
                await response.aclose()
            location = response.headers.get("location")
            if not response.is_redirect or location is None:
                return Answer(response.status_code, response.headers, content, request.url)
            following = _join(request.url, location)
            if (
                following is None
                or call.method not in ("GET", "HEAD")
                or not self.same_origin(following)
            ):
                self.wording.note(
                    logging.WARNING,
                    "%s %s redirected to %s: not followed",
                    call.method,
                    where_of(call.url),
                    location[:200],
                )
                raise Failure(
                    self.wording.bad_response("a redirect to another address, not followed"),
                    Outcome.FAILURE,
                )
            target, params = following, None
        raise Failure(self.wording.bad_response("redirect after redirect"), Outcome.FAILURE)

    async def _body(self, response: httpx.Response) -> bytes:
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > self._policy.max_response_bytes:
                raise Failure(self.wording.bad_response("more than we read"), Outcome.FAILURE)
        return bytes(body)

    def _backoff(self, attempt: int) -> float:
        """Exponential, with jitter: half the step, plus up to another half at random."""
        step = min(
            self._policy.backoff_max_seconds, self._policy.backoff_seconds * 2.0 ** (attempt - 1)
        )
        return step / 2 + random.uniform(0, step / 2)

    def _circuit_changed(self, state: CircuitState) -> None:
        self.wording.note(logging.WARNING, "circuit %s", state.value)
        listener = self._hub.on_circuit_change
        if listener is None:
            return
        try:
            listener(self.wording.org_id, self.wording.provider, state)
        except Exception:
            log.exception("the circuit listener failed")


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host.lower(), url.port or default


def _join(base: httpx.URL, location: str) -> httpx.URL | None:
    try:
        return base.join(location)
    except (httpx.InvalidURL, ValueError):
        return None
