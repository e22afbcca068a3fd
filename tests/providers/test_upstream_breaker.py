"""Circuit breakers per (organization, provider): the rules on a clock we control, then the
whole cycle through the gateway (fail fast, probe, close), its events, `providers` and the
Prometheus gauge."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from providers.upstream import BreakerPolicy, CircuitBreaker, CircuitState
from providers.upstream.breaker import CircuitOpen, Outcome
from tests.conftest import Api
from tests.faults import Fault, fault_server
from tests.providers.gateways import gateway_api, native_and, route

POSTS = native_and("blog_post")
COOLDOWN = 1.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(**policy: Any) -> tuple[CircuitBreaker, Clock, list[CircuitState]]:
    clock, changes = Clock(), []
    made = CircuitBreaker(BreakerPolicy(**policy), changes.append, clock)
    return made, clock, changes


def run(b: CircuitBreaker, outcome: Outcome) -> None:
    b.record(outcome, probe=b.admit())


def test_opens_after_failures_in_a_row_and_only_then() -> None:
    b, _, changes = breaker(failures=3)
    for outcome in [Outcome.FAILURE, Outcome.FAILURE, Outcome.SUCCESS, Outcome.FAILURE]:
        run(b, outcome)
    assert b.state is CircuitState.CLOSED
    run(b, Outcome.NEUTRAL)  # a 429: says nothing either way
    run(b, Outcome.FAILURE)
    run(b, Outcome.FAILURE)
    assert b.state is CircuitState.OPEN and changes == [CircuitState.OPEN]


def test_opens_on_the_failure_rate_of_the_window() -> None:
    b, _, _ = breaker(failures=100, window=20, min_calls=10, failure_rate=0.5)
    for i in range(9):
        run(b, Outcome.FAILURE if i % 2 else Outcome.SUCCESS)
    assert b.state is CircuitState.CLOSED  # 4 of 9: too few calls, and under half
    run(b, Outcome.FAILURE)
    assert b.state is CircuitState.OPEN  # 5 of 10


def test_open_fails_fast_then_lets_one_probe_through() -> None:
    b, clock, changes = breaker(failures=1, cooldown_seconds=30)
    run(b, Outcome.FAILURE)
    with pytest.raises(CircuitOpen) as raised:
        b.admit()
    assert raised.value.retry_after == 30
    clock.now += 30
    assert b.admit() is True  # the probe
    assert b.state is CircuitState.HALF_OPEN
    with pytest.raises(CircuitOpen):
        b.admit()  # one probe at a time
    b.record(Outcome.FAILURE, probe=True)
    assert b.state is CircuitState.OPEN
    clock.now += 30
    run(b, Outcome.SUCCESS)
    assert b.state is CircuitState.CLOSED
    assert changes == [
        CircuitState.OPEN,
        CircuitState.HALF_OPEN,
        CircuitState.OPEN,
        CircuitState.HALF_OPEN,
        CircuitState.CLOSED,
    ]


def test_a_cancelled_probe_frees_the_way_for_the_next() -> None:
    b, clock, _ = breaker(failures=1, cooldown_seconds=1)
    run(b, Outcome.FAILURE)
    clock.now += 1
    b.record(Outcome.NEUTRAL, probe=b.admit())
    assert b.state is CircuitState.HALF_OPEN and b.admit() is True


def test_late_outcomes_of_calls_from_before_the_opening_are_ignored() -> None:
    b, _, _ = breaker(failures=2)
    early = [b.admit() for _ in range(4)]  # four calls in flight
    for probe in early[:2]:
        b.record(Outcome.FAILURE, probe=probe)
    assert b.state is CircuitState.OPEN
    b.record(Outcome.SUCCESS, probe=early[2])  # a slow success does not close it
    b.record(Outcome.FAILURE, probe=early[3])
    assert b.state is CircuitState.OPEN and b.retry_after() >= 1


# -- through the gateway -------------------------------------------------------------------


def circuit_events(api: Api) -> list[str]:
    edges = api.data(
        '{ events(type: "communication_event", first: 50) { edges { node { metadata } } } }'
    )["events"]["edges"]
    return [e["node"]["metadata"]["circuit"] for e in edges if "circuit" in e["node"]["metadata"]]


def circuit_of(api: Api) -> str | None:
    [info] = api.data("{ providers { provider circuit } }")["providers"]
    circuit: str | None = info["circuit"]
    return circuit


def gauge(api: Api) -> float:
    text = api.client.get("/metrics").text
    match = re.search(r'one_upstream_circuit_state\{[^}]*provider="wordpress"[^}]*\} (\S+)', text)
    assert match, text
    return float(match.group(1))


def test_the_breaker_opens_fails_fast_probes_and_closes(tmp_path: Path) -> None:
    with (
        fault_server(Fault(status=500, body=b'{"message": "down"}')) as site,
        gateway_api(
            tmp_path,
            upstream_attempts=1,
            upstream_breaker_failures=3,
            upstream_breaker_cooldown_seconds=COOLDOWN,
        ) as api,
    ):
        route(api, "wordpress", {"base_url": site.url})
        assert circuit_of(api) is None  # not used yet
        for _ in range(3):
            error = api.post(POSTS)["errors"][0]
            assert error["extensions"]["code"] == "PROVIDER_UNAVAILABLE"
            assert "circuit" not in error["extensions"]
        assert site.api_requests() == 3
        assert circuit_of(api) == "open" and gauge(api) == 2

        started = time.perf_counter()
        body = api.post(POSTS)
        assert time.perf_counter() - started < 0.2
        assert body["data"]["courses"] == {"totalCount": 1}
        extensions = body["errors"][0]["extensions"]
        assert extensions["code"] == "PROVIDER_UNAVAILABLE" and extensions["circuit"] == "open"
        assert extensions["retryAfter"] == 1 and extensions["retryable"] is True
        assert site.api_requests() == 3  # failed fast: the upstream was not asked

        time.sleep(COOLDOWN)
        site.fault = Fault(status=200, body=b"[]", headers={"X-WP-Total": "0"})
        assert api.data(POSTS)["items"] == {"totalCount": 0, "edges": []}  # the probe
        assert site.api_requests() == 4
        assert circuit_of(api) == "closed" and gauge(api) == 0
        assert api.data(POSTS)["items"]["totalCount"] == 0
        assert list(reversed(circuit_events(api))) == ["open", "half_open", "closed"]
        metrics = api.client.get("/metrics").text
    assert 'one_upstream_errors_total{code="PROVIDER_UNAVAILABLE",provider="wordpress"} 4.0' in (
        metrics
    )
    assert 'one_upstream_request_seconds_count{provider="wordpress"}' in metrics


def test_a_failed_probe_opens_the_circuit_again(tmp_path: Path) -> None:
    with (
        fault_server(Fault(status=503, body=b"{}")) as site,
        gateway_api(
            tmp_path,
            upstream_attempts=1,
            upstream_breaker_failures=2,
            upstream_breaker_cooldown_seconds=COOLDOWN,
        ) as api,
    ):
        route(api, "wordpress", {"base_url": site.url})
        for _ in range(2):
            api.post(POSTS)
        time.sleep(COOLDOWN)
        probe = api.post(POSTS)["errors"][0]["extensions"]
        assert "circuit" not in probe and site.api_requests() == 3  # the probe went out ...
        after = api.post(POSTS)["errors"][0]["extensions"]
        assert after["circuit"] == "open" and site.api_requests() == 3  # ... and failed
        assert list(reversed(circuit_events(api))) == ["open", "half_open", "open"]


def test_one_organizations_open_circuit_leaves_anothers_closed(tmp_path: Path) -> None:
    with (
        fault_server(Fault(status=500)) as failing,
        fault_server(Fault(body=b"[]")) as healthy,
        gateway_api(tmp_path, upstream_attempts=1, upstream_breaker_failures=2) as api,
    ):
        route(api, "wordpress", {"base_url": failing.url})
        route(api, "wordpress", {"base_url": healthy.url}, org="globex")
        for _ in range(3):
            api.post(POSTS)
            assert "errors" not in api.post(POSTS, org="globex")
        assert circuit_of(api) == "open"
        [theirs] = api.data("{ providers { circuit } }", org="globex")["providers"]
    assert theirs["circuit"] == "closed"


def test_bad_responses_count_and_client_errors_do_not(tmp_path: Path) -> None:
    with (
        fault_server(Fault(status=404, body=b'{"code": "rest_no_route", "message": "x"}')) as site,
        gateway_api(tmp_path, upstream_attempts=1, upstream_breaker_failures=2) as api,
    ):
        route(api, "wordpress", {"base_url": site.url})
        for _ in range(4):
            assert api.post(POSTS)["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert circuit_of(api) == "closed"
        site.fault = Fault(status=200, body=b'{"not": "a list"}')
        for _ in range(2):
            assert api.post(POSTS)["errors"][0]["extensions"]["code"] == "PROVIDER_BAD_RESPONSE"
        assert circuit_of(api) == "open"
