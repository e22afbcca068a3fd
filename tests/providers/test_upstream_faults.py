"""The fault matrix: each upstream provider x each way an upstream fails, through the gateway.

For every cell, over HTTP: a 200 with acme's native courses intact next to the failed field,
the typed code, an answer within the request's deadline, the upstream asked no more often
than the retry budget allows, no upstream text in the answer, and nothing (credentials
least of all) sent anywhere but the configured origin: a witness server on another port
counts what it receives. WordPress is a fault server speaking its discovery protocol;
Shopify and Notion are the emulators with faults injected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.emulators import Fault as EmulatorFault
from tests.emulators import serve
from tests.emulators.notion import NotionEmulator
from tests.faults import GARBAGE, Fault, FaultServer, fault_server
from tests.providers.gateways import THING_TYPE, gateway_api, native_and, route
from tests.providers.upstreams import (
    ATTEMPTS,
    CASES,
    HANG,
    MARKER,
    MOST_REQUESTS,
    NOTION_TOKEN,
    TIMEOUT,
    UPSTREAMS,
    WP_PASSWORD,
)

DEADLINE = 1.5  # ONE_UPSTREAM_DEADLINE_SECONDS for these tests
SLACK = 0.5  # what the gateway itself may add to the deadline
TIMINGS: dict[tuple[str, str], float] = {}


@pytest.fixture(scope="module", autouse=True)
def report_timings() -> Iterator[None]:
    yield
    if TIMINGS:
        lines = [f"  {p:9s} {f:8s} {s * 1000:7.0f} ms" for (p, f), s in sorted(TIMINGS.items())]
        print("\nfault matrix, answer times:\n" + "\n".join(lines))


@pytest.mark.parametrize("fault", list(CASES))
@pytest.mark.parametrize("provider", list(UPSTREAMS))
def test_fault_matrix(tmp_path: Path, provider: str, fault: str) -> None:
    case, code = CASES[fault]
    with ExitStack() as stack:
        witness: FaultServer = stack.enter_context(fault_server())
        upstream = stack.enter_context(UPSTREAMS[provider](case.down))
        api = stack.enter_context(
            gateway_api(tmp_path, upstream_deadline_seconds=DEADLINE, upstream_backoff_seconds=0.05)
        )
        route(api, provider, upstream.config)
        upstream.inject(case, witness.url)
        before = upstream.requests()
        started = time.perf_counter()
        body = api.post(native_and(THING_TYPE[provider]))  # asserts HTTP 200
        elapsed = time.perf_counter() - started
        asked = upstream.requests() - before
    TIMINGS[(provider, fault)] = elapsed

    assert body["data"]["courses"] == {"totalCount": 1}  # the native part, intact
    assert body["data"]["items"] is None
    [error] = body["errors"]
    assert error["path"] == ["items"]
    extensions = error["extensions"]
    assert extensions["code"] == code and extensions["provider"] == provider, error
    assert extensions["retryable"] is (code != "PROVIDER_BAD_RESPONSE")
    if fault == "429":
        assert extensions["retryAfter"] == 30
    assert MARKER not in str(body) and "Traceback" not in str(body)
    assert elapsed < DEADLINE + SLACK, elapsed
    assert asked <= MOST_REQUESTS[fault], asked
    if fault in ("429", "garbage", "redirect"):
        assert asked == 1
    assert witness.received == []  # nothing, credentials least of all, went elsewhere


def test_wordpress_discovery_never_leaves_the_configured_origin(tmp_path: Path) -> None:
    """A home page whose `Link` names another host or port: ignored, and the REST API is
    asked in its query form on the configured origin, credentials and all."""
    with (
        fault_server() as witness,
        fault_server(Fault(body=b"[]", headers={"X-WP-Total": "0"})) as site,
        gateway_api(tmp_path) as api,
    ):
        site.api_link = witness.url + "/wp-json/"
        route(
            api,
            "wordpress",
            {"base_url": site.url, "username": "editor", "application_password": WP_PASSWORD},
        )
        data = api.data(native_and("blog_post"))
    assert data["items"] == {"totalCount": 0, "edges": []}
    assert witness.received == []
    [listing] = [r for r in site.received if "rest_route" in r.query]
    assert "rest_route=%2Fwp%2Fv2%2Fposts" in listing.query
    assert listing.credentials is not None and listing.credentials.startswith("Basic ")


@pytest.mark.parametrize("link", ["http://[::1", "http://example.com:notaport/", "::::"])
def test_a_malformed_api_link_is_a_bad_response_remembered(tmp_path: Path, link: str) -> None:
    with fault_server() as site, gateway_api(tmp_path) as api:
        site.api_link = link
        route(api, "wordpress", {"base_url": site.url})
        first = api.post(native_and("blog_post"))
        second = api.post(native_and("blog_post"))
    codes = [b["errors"][0]["extensions"]["code"] for b in (first, second)]
    assert codes == ["PROVIDER_BAD_RESPONSE"] * 2
    assert first["data"]["courses"] == {"totalCount": 1}
    # The failed discovery is remembered: the second request did not ask the home page again.
    assert sum(1 for r in site.received if r.path == "/" and not r.query) == 1
    assert second["errors"][0]["extensions"]["retryAfter"] >= 1


def test_a_failed_discovery_is_not_retried_on_every_request(tmp_path: Path) -> None:
    """A home page that hangs costs the first request its deadline; the next ones, within
    the backoff, fail fast without asking again."""
    with fault_server() as site, gateway_api(tmp_path, upstream_deadline_seconds=DEADLINE) as api:
        site.home = Fault(delay=HANG)
        route(api, "wordpress", {"base_url": site.url, "timeout_seconds": TIMEOUT})
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            body = api.post(native_and("blog_post"))
            timings.append(time.perf_counter() - started)
            assert body["errors"][0]["extensions"]["code"] == "PROVIDER_UNAVAILABLE"
        asked = len(site.received)
    assert body["errors"][0]["extensions"]["retryAfter"] >= 1
    assert timings[0] >= TIMEOUT and max(timings[1:]) < 0.3, timings
    assert asked <= ATTEMPTS  # all of them from the first request


def test_upstream_error_text_goes_to_the_log_not_the_client(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "one.upstream")
    fault = Fault(
        status=400,
        body=f'{{"code": "rest_invalid_param", "message": "{MARKER}", '
        '"data": {"status": 400, "params": {"categories": "x"}}}'.encode(),
    )
    with fault_server(fault) as site, gateway_api(tmp_path) as api:
        route(api, "wordpress", {"base_url": site.url})
        body = api.post(native_and("blog_post"))
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "categories"
    assert MARKER not in str(body)
    assert MARKER in caplog.text  # the operator can still read what the upstream said


@pytest.mark.parametrize(
    "body",
    [
        b'{"code": "rest_invalid_param", "message": "x", "data": "a string"}',
        b"<html>Bad Request</html>",
        GARBAGE,
    ],
    ids=["data-is-a-string", "html", "mixed-array"],
)
def test_an_unreadable_400_is_a_bad_response(tmp_path: Path, body: bytes) -> None:
    with fault_server(Fault(status=400, body=body)) as site, gateway_api(tmp_path) as api:
        route(api, "wordpress", {"base_url": site.url})
        answer = api.post(native_and("blog_post"))
    assert answer["data"]["courses"] == {"totalCount": 1}
    assert answer["errors"][0]["extensions"]["code"] == "PROVIDER_BAD_RESPONSE"


def test_a_retry_after_that_fits_the_deadline_is_waited_out(tmp_path: Path) -> None:
    """Notion answers 429 with `Retry-After: 1` once; a 3 s deadline has room to wait."""
    emulator = NotionEmulator(token=NOTION_TOKEN)
    database = emulator.add_database("Handbook")
    emulator.add_page(database, "Chapter 1")
    with serve(emulator.app) as url, gateway_api(tmp_path, upstream_deadline_seconds=3) as api:
        route(api, "notion", {"token": NOTION_TOKEN, "database_id": database, "base_url": url})
        emulator.fault = EmulatorFault(status=429, headers={"Retry-After": "1"}, times=1)
        started = time.perf_counter()
        data = api.data(native_and("document"))
        elapsed = time.perf_counter() - started
    assert data["items"]["totalCount"] is None and len(data["items"]["edges"]) == 1
    assert emulator.requests == 2 and 1.0 <= elapsed < 3.0


def test_the_deadline_bounds_every_attempt(tmp_path: Path) -> None:
    """A provider timeout longer than the deadline: the attempt ends with the deadline, and
    no other attempt is sent once it has passed."""
    emulator = NotionEmulator(token=NOTION_TOKEN)
    database = emulator.add_database("Handbook")
    emulator.add_page(database, "Chapter 1")
    with serve(emulator.app) as url, gateway_api(tmp_path, upstream_deadline_seconds=0.6) as api:
        route(
            api,
            "notion",
            {"token": NOTION_TOKEN, "database_id": database, "base_url": url, "timeout_seconds": 5},
        )
        emulator.fault = EmulatorFault(delay=0.8, times=1)
        started = time.perf_counter()
        body = api.post(native_and("document"))
        elapsed = time.perf_counter() - started
    assert body["errors"][0]["extensions"]["code"] == "PROVIDER_UNAVAILABLE"
    assert elapsed < 0.6 + SLACK and emulator.requests == 1
