"""One query across all four backends: native, WordPress (real), Shopify and Notion
(emulated), with connections among them."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.backends import ALL_FOUR, FLAT, Backends, four_backends, route_and_connect
from tests.conftest import Api
from tests.emulators import Fault
from tests.wordpress import WordPress


@pytest.fixture
def backends(wordpress: WordPress) -> Iterator[Backends]:
    with four_backends(wordpress) as backends:
        yield backends


def setup(api: Api, backends: Backends, **shopify_config: Any) -> dict[str, str]:
    async def run() -> dict[str, str]:
        org = await api.store.organizations.get_by_slug("acme")
        assert org is not None
        return await route_and_connect(api.store, org.id, backends, **shopify_config)

    ids: dict[str, str] = api.run(run)
    return ids


def test_one_query_returns_all_four_with_their_connections(api: Api, backends: Backends) -> None:
    ids = setup(api, backends)
    api.data(FLAT)  # discovery and calibration happen once per provider, not per query
    before = backends.requests()
    data = api.data(ALL_FOUR)
    spent = {k: v - before[k] for k, v in backends.requests().items()}
    providers = {key: {e["node"]["provider"] for e in data[key]["edges"]} for key in data}
    assert providers == {
        "native": {"native"},
        "posts": {"wordpress"},
        "products": {"shopify"},
        "documents": {"notion"},
    }
    links = {
        e["node"]["id"]: [c["to"]["id"] for c in e["node"]["connections"]]
        for key in data
        for e in data[key]["edges"]
    }
    assert links[ids["course"]] == [ids["post"]]
    assert links[ids["post"]] == [ids["product"]]
    assert links[ids["product"]] == [ids["document"]]
    assert links[ids["document"]] == [ids["course"]]
    # Two nesting levels: the lists, then the connections' far ends. At most one request per
    # provider per level; ends that were already listed are answered from the loaders.
    assert spent["wordpress"] <= 2 and spent["shopify"] <= 2, spent
    assert spent["notion"] <= 2, spent  # the listed page and, at most, one page read


def test_the_four_are_fetched_concurrently(api: Api, backends: Backends) -> None:
    setup(api, backends)
    api.data(FLAT)

    def median_latency() -> float:
        times = []
        for _ in range(5):
            time.sleep(0.7)  # let Notion's limiter (3/s) refill: measure latency, not pacing
            started = time.perf_counter()
            api.data(FLAT)
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    base = median_latency()
    backends.shopify.fault = Fault(delay=0.05)
    backends.notion.fault = Fault(delay=0.05)
    with backends.wordpress.delayed(50):
        delayed = median_latency()
    # Three upstreams each 50 ms slower: one after another would add 150 ms, together 50.
    assert delayed - base < 0.100, (base, delayed)
    assert base < 0.25, base  # and the limiter did not hide a serial fetch


def test_one_failing_backend_leaves_the_others_whole(api: Api, backends: Backends) -> None:
    setup(api, backends, max_retries=1)
    backends.shopify.fault = Fault(status=500)
    body = api.post(ALL_FOUR)
    assert body["data"]["products"] is None
    assert all(body["data"][key]["edges"] for key in ("native", "posts", "documents"))
    codes = {
        (
            tuple(e["path"][:1]),
            e["extensions"]["code"],
            e["extensions"]["provider"],
            e["extensions"]["retryable"],
        )
        for e in body["errors"]
    }
    assert (("products",), "PROVIDER_UNAVAILABLE", "shopify", True) in codes
    # The WordPress post's connection to the Shopify product: only that end is null.
    post = body["data"]["posts"]["edges"]
    ends = [c["to"] for e in post for c in e["node"]["connections"]]
    assert None in ends
    assert all(e["extensions"]["provider"] == "shopify" for e in body["errors"])
