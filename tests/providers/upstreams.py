"""An upstream of each kind that fails on demand, for the fault matrix (through the gateway)
and the provider conformance suite: WordPress is a fault server speaking its discovery
protocol; Shopify and Notion are the emulators with faults injected. Each way to fail is a
`Case`, with the code it must become and how often one call may ask the upstream."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.emulators import Fault as EmulatorFault
from tests.emulators import serve
from tests.emulators.notion import NotionEmulator
from tests.emulators.shopify import ShopifyEmulator
from tests.faults import GARBAGE, Fault, dead_url, fault_server

TIMEOUT = 0.5  # each provider's timeout_seconds
ATTEMPTS = 3  # ONE_UPSTREAM_ATTEMPTS (the default)
HANG = 3.0
MARKER = "internal-db-password-hunter2"  # upstream text that must never reach a client
WP_PASSWORD = "abcd efgh ijkl mnop qrst uvwx"
SHOPIFY_TOKEN = "shpat_fault_matrix"
NOTION_TOKEN = "secret_fault_matrix"


@dataclass(frozen=True)
class Case:
    status: int | None = None
    body: bytes = b""
    delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    down: bool = False
    redirect: bool = False


CASES: dict[str, tuple[Case, str]] = {
    "down": (Case(down=True), "PROVIDER_UNAVAILABLE"),
    "hang": (Case(delay=HANG), "PROVIDER_UNAVAILABLE"),
    "500": (Case(status=500, body=f'{{"message": "{MARKER}"}}'.encode()), "PROVIDER_UNAVAILABLE"),
    "429": (
        Case(
            status=429, body=f'{{"message": "{MARKER}"}}'.encode(), headers=(("Retry-After", "30"),)
        ),
        "PROVIDER_RATE_LIMITED",
    ),
    "garbage": (Case(status=200, body=GARBAGE), "PROVIDER_BAD_RESPONSE"),
    "redirect": (Case(status=302, redirect=True), "PROVIDER_BAD_RESPONSE"),
}
# How often one request may ask the upstream: a retry budget for what may pass, once for
# what will not (a throttle longer than the deadline, an answer we cannot read).
MOST_REQUESTS = {
    "down": 0,
    "hang": ATTEMPTS,
    "500": ATTEMPTS,
    "429": 1,
    "garbage": 1,
    "redirect": 1,
}


@dataclass
class Upstream:
    """One provider's upstream for a test: its config and how many requests it has had."""

    config: dict[str, Any]
    requests: Callable[[], int]
    inject: Callable[[Case, str], None]  # (case, the witness's URL)


@contextmanager
def wordpress_upstream(down: bool) -> Iterator[Upstream]:
    with fault_server() as server:

        def inject(case: Case, witness: str) -> None:
            headers = dict(case.headers)
            if case.redirect:
                headers["Location"] = witness + "/wp-json/wp/v2/posts"
            server.fault = Fault(
                status=case.status or 200, body=case.body, delay=case.delay, headers=headers
            )

        config = {
            "base_url": dead_url() if down else server.url,
            "username": "editor",
            "application_password": WP_PASSWORD,
            "timeout_seconds": TIMEOUT,
        }
        yield Upstream(config, server.api_requests, inject)


@contextmanager
def shopify_upstream(down: bool) -> Iterator[Upstream]:
    emulator = ShopifyEmulator(token=SHOPIFY_TOKEN)
    emulator.add_product("Hammock", prices=("19.00",))
    with serve(emulator.app) as url:

        def inject(case: Case, witness: str) -> None:
            emulator.fault = _emulator_fault(case, witness + "/admin/api/2025-04/graphql.json")

        config = {
            "shop_url": dead_url() if down else url,
            "access_token": SHOPIFY_TOKEN,
            "api_version": "2025-04",
            "timeout_seconds": TIMEOUT,
        }
        yield Upstream(config, lambda: emulator.requests, inject)


@contextmanager
def notion_upstream(down: bool) -> Iterator[Upstream]:
    emulator = NotionEmulator(token=NOTION_TOKEN)
    database = emulator.add_database("Handbook")
    emulator.add_page(database, "Chapter 1")
    with serve(emulator.app) as url:

        def inject(case: Case, witness: str) -> None:
            emulator.fault = _emulator_fault(case, witness + f"/v1/databases/{database}/query")

        config = {
            "token": NOTION_TOKEN,
            "database_id": database,
            "base_url": dead_url() if down else url,
            "timeout_seconds": TIMEOUT,
        }
        yield Upstream(config, lambda: emulator.requests, inject)


def _emulator_fault(case: Case, location: str) -> EmulatorFault:
    headers = dict(case.headers)
    if case.redirect:
        headers["Location"] = location
    return EmulatorFault(
        status=case.status,
        body=case.body,
        delay=case.delay,
        headers=headers,
    )


UPSTREAMS = {
    "wordpress": wordpress_upstream,
    "shopify": shopify_upstream,
    "notion": notion_upstream,
}
