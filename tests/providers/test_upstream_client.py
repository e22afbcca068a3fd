"""The upstream client's rules, one at a time, against a loopback fault server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from pydantic import TypeAdapter

from providers.errors import (
    InvalidInputError,
    NotFoundError,
    ProviderAuthError,
    ProviderRateLimitedError,
    ProviderResponseError,
    ProviderUnavailableError,
)
from providers.upstream import (
    BreakerPolicy,
    Upstream,
    UpstreamPolicy,
    Upstreams,
    deadline,
    json_body,
    retry_after,
)
from tests.faults import Fault, FaultServer, fault_server

ANY = json_body(TypeAdapter(object))


class Observed:
    def __init__(self) -> None:
        self.exchanges: list[str] = []
        self.failures: list[tuple[str, str]] = []

    def exchanged(self, provider: str, seconds: float) -> None:
        self.exchanges.append(provider)

    def failed(self, provider: str, code: str) -> None:
        self.failures.append((provider, code))


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    with fault_server(Fault(body=b'{"ok": true}')) as server:
        yield server


def upstream(
    client: httpx.AsyncClient,
    server: FaultServer,
    observer: Observed | None = None,
    **policy: object,
) -> Upstream:
    # A breaker out of reach: these tests count requests (tests/providers/test_upstream_breaker.py
    # has the breaker's own).
    values: dict[str, object] = {
        "backoff_seconds": 0.01,
        "breaker": BreakerPolicy(failures=100, min_calls=100),
        **policy,
    }
    hub = Upstreams(client, UpstreamPolicy(**values), observer=observer)  # type: ignore[arg-type]
    return hub.open(
        org_id="org1",
        provider="test",
        label="Test",
        origin=server.url,
        timeout=2.0,
        headers={"Authorization": "Bearer s3cret"},
    )


async def test_a_passed_deadline_sends_nothing(server: FaultServer) -> None:
    async with httpx.AsyncClient() as client:
        test = upstream(client, server)
        with deadline(0.0), pytest.raises(ProviderUnavailableError, match="ran out of time"):
            await test.send("GET", server.url + "/x", expect=ANY)
    assert server.received == []


async def test_reads_are_retried_and_writes_are_not(server: FaultServer) -> None:
    server.fault = Fault(status=503, body=b"down")
    async with httpx.AsyncClient() as client:
        test = upstream(client, server)
        for method, read, expected in [("GET", None, 3), ("POST", None, 1), ("POST", True, 3)]:
            before = len(server.received)
            with pytest.raises(ProviderUnavailableError) as raised:
                await test.send(method, server.url + "/x", expect=ANY, read=read)
            assert len(server.received) - before == expected, method
            assert raised.value.extensions["status"] == 503


async def test_a_passing_failure_is_retried_with_backoff(server: FaultServer) -> None:
    async with httpx.AsyncClient() as client:
        test = upstream(client, server, backoff_seconds=0.2)

        async def heal() -> None:
            await asyncio.sleep(0.05)
            server.fault = Fault(body=b'{"ok": true}')

        server.fault = Fault(status=500)
        started = time.perf_counter()
        healing = asyncio.create_task(heal())
        reply = await test.send("GET", server.url + "/x", expect=ANY)
        await healing
    assert reply.body == {"ok": True} and len(server.received) == 2
    assert time.perf_counter() - started >= 0.1  # half the first backoff, at least


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, ProviderAuthError),
        (403, ProviderAuthError),
        (404, NotFoundError),
        (400, InvalidInputError),
        (409, InvalidInputError),
        (418, ProviderResponseError),
        (302, ProviderResponseError),  # without a Location
    ],
)
async def test_statuses_map_to_the_error_tree(
    server: FaultServer, status: int, error: type[Exception]
) -> None:
    server.fault = Fault(status=status, body=b'{"message": "upstream words"}')
    async with httpx.AsyncClient() as client:
        with pytest.raises(error) as raised:
            await upstream(client, server).send("GET", server.url + "/x", expect=ANY)
    assert "upstream words" not in str(raised.value)
    assert len(server.received) == 1


async def test_retry_after_within_the_deadline_is_waited_else_reported(
    server: FaultServer,
) -> None:
    server.fault = Fault(status=429, headers={"Retry-After": "2"})
    async with httpx.AsyncClient() as client:
        test = upstream(client, server)
        started = time.perf_counter()
        with deadline(1.0), pytest.raises(ProviderRateLimitedError) as raised:
            await test.send("GET", server.url + "/x", expect=ANY)
        assert time.perf_counter() - started < 0.5  # told at once, not after waiting
        assert raised.value.extensions["retryAfter"] == 2 and len(server.received) == 1
        server.fault = Fault(status=429, headers={"Retry-After": "0"})
        with pytest.raises(ProviderRateLimitedError):
            await test.send("POST", server.url + "/x", expect=ANY)  # a 429 was not processed
    assert len(server.received) == 1 + 3


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after(httpx.Headers({"Retry-After": "1.5"})) == 1.5
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= (retry_after(httpx.Headers({"Retry-After": when})) or 0) <= 30
    assert retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    assert retry_after(httpx.Headers()) is None


async def test_the_bulkhead_bounds_calls_in_flight(server: FaultServer) -> None:
    server.fault = Fault(delay=2.0)
    async with httpx.AsyncClient() as client:
        test = upstream(client, server, concurrency=2, attempts=1)
        with deadline(0.5):
            results = await asyncio.gather(
                *(test.send("GET", server.url + "/x", expect=ANY) for _ in range(3)),
                return_exceptions=True,
            )
    messages = sorted(str(r) for r in results)
    assert all(isinstance(r, ProviderUnavailableError) for r in results)
    assert messages == [
        "Test did not answer in time",
        "Test did not answer in time",
        "Test is busy: too many calls to it are in flight",
    ]
    assert server.most_at_once == 2


async def test_credentials_go_to_the_configured_origin_only(server: FaultServer) -> None:
    with fault_server() as elsewhere:
        server.fault = Fault(status=302, headers={"Location": elsewhere.url + "/stolen"})
        async with httpx.AsyncClient() as client:
            test = upstream(client, server)
            with pytest.raises(ProviderResponseError, match="redirect"):
                await test.send("GET", server.url + "/x", expect=ANY)
            with pytest.raises(ProviderResponseError, match="another address"):
                await test.send("GET", elsewhere.url + "/x", expect=ANY)
        assert elsewhere.received == []
    assert [r.credentials for r in server.received] == ["Bearer s3cret"]


async def test_a_redirect_within_the_origin_is_followed_by_reads_only(
    server: FaultServer,
) -> None:
    server.paths["/old"] = Fault(status=301, headers={"Location": "/new"})
    server.paths["/new"] = Fault(body=b'{"moved": true}')
    async with httpx.AsyncClient() as client:
        test = upstream(client, server)
        reply = await test.send("GET", server.url + "/old", expect=ANY)
        assert reply.body == {"moved": True}
        with pytest.raises(ProviderResponseError, match="redirect"):
            await test.send("POST", server.url + "/old", expect=ANY)
    assert [r.path for r in server.received] == ["/old", "/new", "/old"]


async def test_garbage_and_oversized_answers_are_bad_responses(server: FaultServer) -> None:
    observed = Observed()
    async with httpx.AsyncClient() as client:
        test = upstream(client, server, observed, max_response_bytes=1000)
        strict = json_body(TypeAdapter(dict[str, int]))
        for body in (b"not json", b'[1, "a", {}]', b'{"a": "b"}', b'{"a": ' + b"1" * 2000 + b"}"):
            server.fault = Fault(body=body)
            with pytest.raises(ProviderResponseError, match=r"cannot read|more than we read"):
                await test.send("GET", server.url + "/x", expect=strict)
    assert len(server.received) == 4  # none retried
    assert observed.failures == [("test", "PROVIDER_BAD_RESPONSE")] * 4
    assert observed.exchanges == ["test"] * 4


def test_the_package_exports_what_it_names() -> None:
    import providers.upstream as package

    assert sorted(package.__all__) == package.__all__
    assert all(hasattr(package, name) for name in package.__all__)
