"""The Shopify provider against the emulator (which validates against Shopify's real schema)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from graphql import parse, validate

from providers import shopify_documents
from providers.errors import (
    InvalidInputError,
    ProviderAuthError,
    ProviderRateLimitedError,
)
from providers.provider import ListQuery
from providers.records import ThingStatus
from providers.shopify import ShopifyConfig, ShopifyProvider
from tests.emulators import Fault, serve
from tests.emulators.shopify import ShopifyEmulator, admin_schema

TOKEN = "shpat_provider_test"


def make_shop(products: int = 40, **kwargs: Any) -> ShopifyEmulator:
    emulator = ShopifyEmulator(token=TOKEN, **kwargs)
    for i in range(products):
        emulator.add_product(
            f"Hammock {i:03d}",
            status="DRAFT" if i % 4 == 0 else "ACTIVE",
            prices=("19.00", "29.00"),
            tags=["outdoor"] if i % 2 else [],
            updated_at=f"2025-{1 + i % 12:02d}-01T00:00:00Z",
        )
    emulator.add_order("#1001", "48.00")
    return emulator


@pytest.fixture
def shop() -> Iterator[tuple[ShopifyEmulator, str]]:
    emulator = make_shop()
    with serve(emulator.app) as url:
        yield emulator, url


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def provider(url: str, client: httpx.AsyncClient, **config: Any) -> ShopifyProvider:
    values = {"shop_url": url, "access_token": TOKEN, "api_version": "2025-04", **config}
    return ShopifyProvider("org1", ShopifyConfig.model_validate(values), client)


@pytest.mark.parametrize("name", sorted(shopify_documents.ALL))
def test_every_document_is_valid_against_the_real_schema(name: str) -> None:
    document = parse(shopify_documents.ALL[name])
    assert validate(admin_schema(), document) == []


async def test_batch_get_is_one_request_in_key_order(
    shop: tuple[ShopifyEmulator, str], client: httpx.AsyncClient
) -> None:
    emulator, url = shop
    ids = sorted(emulator.products)
    order = next(iter(emulator.orders))
    wanted = [f"product-{ids[3]}", "product-1", f"order-{order}", f"product-{ids[0]}"]
    found = await provider(url, client).get_many(wanted)
    assert emulator.requests == 1
    assert [t.id if t else None for t in found] == [wanted[0], None, wanted[2], wanted[3]]
    product, sale = found[0], found[2]
    assert product is not None and sale is not None
    assert product.type == "product" and product.provider == "shopify"
    assert product.properties["price"] == 19.0 and product.properties["max_price"] == 29.0
    assert product.properties["sku"].startswith("SKU-") and product.properties["currency"] == "USD"
    assert product.external_id == f"gid://shopify/Product/{ids[3]}"
    assert sale.type == "order" and sale.properties["total"] == 48.0


async def test_batches_respect_the_id_cap_and_the_cost_limit(client: httpx.AsyncClient) -> None:
    emulator = make_shop(products=300, maximum_available=20_000, restore_rate=20_000)
    with serve(emulator.app) as url:
        wp = provider(url, client)
        ids = [f"product-{i}" for i in sorted(emulator.products)]
        found = await wp.get_many(ids)
        summary = await wp.get_many(ids, detail=False)
    assert all(found) and all(summary) and len(found) == 300
    assert emulator.throttled == 0
    # Every request stayed within 250 ids and a requested cost of 1000.
    costs = [c for c in emulator.costs]
    assert costs and max(costs) <= 1000
    assert all(len(ids) <= 250 for ids in emulator.id_batches)
    assert len(emulator.id_batches) >= 3  # 300 detailed products do not fit in 1000 points


async def test_search_status_and_modified_filters(
    shop: tuple[ShopifyEmulator, str], client: httpx.AsyncClient
) -> None:
    _, url = shop
    shopify = provider(url, client)
    drafts = await shopify.page(ListQuery(type="product", status=ThingStatus.DRAFT, first=100))
    assert drafts.total_count == 10 and {t.status for t in drafts.items} == {ThingStatus.DRAFT}
    found = await shopify.page(ListQuery(type="product", search="Hammock 007"))
    assert [t.name for t in found.items] == ["Hammock 007"]
    recent = await shopify.page(
        ListQuery(type="product", first=100, modified_after=datetime(2025, 10, 15, tzinfo=UTC))
    )
    assert recent.total_count == 6
    orders = await shopify.page(ListQuery(type="order"))
    assert [t.name for t in orders.items] == ["#1001"]


async def test_large_pages_are_fetched_within_the_cost_limit(client: httpx.AsyncClient) -> None:
    emulator = make_shop(products=120, maximum_available=20_000, restore_rate=20_000)
    with serve(emulator.app) as url:
        page = await provider(url, client).page(ListQuery(type="product", first=100))
    assert len(page.items) == 100 and page.has_next_page and page.total_count == 120
    assert max(emulator.costs) <= 1000 and emulator.requests >= 2


async def test_writes_and_user_errors(
    shop: tuple[ShopifyEmulator, str], client: httpx.AsyncClient
) -> None:
    emulator, url = shop
    shopify = provider(url, client)
    made = await shopify.create(
        type="product",
        name="Camp stool",
        status=ThingStatus.DRAFT,
        properties={"vendor": "Acme", "tags": ["camp"]},
    )
    assert made.status is ThingStatus.DRAFT and made.properties["vendor"] == "Acme"
    with pytest.raises(InvalidInputError) as blank:
        await shopify.create(type="product", name=" ", status=ThingStatus.DRAFT, properties={})
    assert blank.value.extensions["field"] == "name"
    assert blank.value.extensions["provider"] == "shopify"
    taken = made.properties["handle"]
    with pytest.raises(InvalidInputError, match="already in use") as duplicate:
        await shopify.create(
            type="product", name="Other", status=ThingStatus.DRAFT, properties={"handle": taken}
        )
    assert duplicate.value.extensions["field"] == "handle"
    published = await shopify.change_status(made.id, ThingStatus.PUBLISHED)
    assert published.properties["shopify_status"] == "ACTIVE"  # Shopify's word for published
    with pytest.raises(InvalidInputError, match="read-only"):
        await shopify.create(type="order", name="#2", status=ThingStatus.DRAFT, properties={})
    order = f"order-{next(iter(emulator.orders))}"
    with pytest.raises(InvalidInputError, match="read-only"):
        await shopify.update(order, name="#3", properties=None)
    assert all(validate(admin_schema(), parse(d)) == [] for d in emulator.documents)


async def test_a_burst_larger_than_the_bucket_is_paced_not_throttled(
    client: httpx.AsyncClient,
) -> None:
    # A small bucket: 200 points, 600 restored per second; the burst asks for about 5x that.
    emulator = make_shop(products=40, maximum_available=200, restore_rate=600)
    with serve(emulator.app) as url:
        shopify = provider(url, client)
        ids = [f"product-{i}" for i in sorted(emulator.products)]
        pages = await asyncio.gather(
            *(shopify.get_many([ids[i % 40]]) for i in range(40)),
            *(shopify.page(ListQuery(type="product", first=5)) for _ in range(10)),
        )
    assert all(pages)
    assert sum(emulator.costs) > 4 * 200  # the burst really was larger than the bucket
    assert emulator.throttled == 0  # ... and never once went over it
    assert shopify.bucket.waited > 0


@pytest.mark.parametrize("status", [200, 429])
async def test_throttled_answers_are_waited_out_and_retried(
    client: httpx.AsyncClient, status: int
) -> None:
    emulator = make_shop(
        products=5, maximum_available=100, restore_rate=200, throttled_status=status
    )
    emulator.drain()  # someone else emptied the bucket just before we came
    with serve(emulator.app) as url:
        page = await provider(url, client).page(ListQuery(type="product", first=5))
    assert len(page.items) == 5
    assert emulator.throttled >= 1


async def test_a_passing_failure_is_retried(client: httpx.AsyncClient) -> None:
    emulator = make_shop(products=2)
    emulator.fault = Fault(status=502, body=b"bad gateway", times=2)
    with serve(emulator.app) as url:
        page = await provider(url, client).page(ListQuery(type="product"))
    assert len(page.items) == 2 and emulator.requests == 3


async def test_wrong_token_is_an_auth_error_without_the_token(
    shop: tuple[ShopifyEmulator, str], client: httpx.AsyncClient
) -> None:
    _, url = shop
    wrong = provider(url, client, access_token="shpat_wrong_secret")
    with pytest.raises(ProviderAuthError) as error:
        await wrong.get_many(["product-1"])
    assert "shpat_wrong_secret" not in str(error.value) + repr(error.value.extensions)
    assert (await wrong.health()).status == "offline"
    assert (await provider(url, client).health()).status == "online"


def test_config_validation() -> None:
    from providers.registry import validate_config

    saved = validate_config(
        "shopify",
        {"shop_url": "https://acme.myshopify.com", "access_token": "shpat_x"},
        ["product", "order"],
    )
    assert saved["api_version"] == "2026-10" and saved["access_token"] == "shpat_x"
    with pytest.raises(InvalidInputError, match="api_version"):
        validate_config(
            "shopify",
            {"shop_url": "https://a.myshopify.com", "access_token": "x", "api_version": "2025-05"},
            ["product"],
        )


async def test_a_query_larger_than_the_whole_bucket_fails_instead_of_hanging(
    client: httpx.AsyncClient,
) -> None:
    emulator = make_shop(products=10, maximum_available=50, restore_rate=100)
    with serve(emulator.app) as url:
        shopify = provider(url, client, max_retries=2)
        with pytest.raises(ProviderRateLimitedError, match="exceeds the whole bucket"):
            await asyncio.wait_for(shopify.page(ListQuery(type="product", first=10)), 10)


async def test_a_request_slow_to_arrive_is_not_overtaken_by_a_burst(
    client: httpx.AsyncClient,
) -> None:
    # A full bucket stays full while a request is on its way: refill it may not bank. Our
    # estimate once refilled from the moment the request left, so a burst sent meanwhile was
    # charged first and the slow request, arriving last, was throttled.
    emulator = make_shop(products=40, maximum_available=200, restore_rate=100)
    with serve(emulator.app) as url:
        shopify = provider(url, client)
        ids = [f"product-{i}" for i in sorted(emulator.products)]
        await shopify.get_many([ids[0]])  # learns the bucket's size and rate
        await asyncio.sleep(0.3)  # ... and lets it fill up again
        emulator.fault = Fault(delay=0.6, times=1)  # the next request takes 0.6 s to arrive
        slow = asyncio.create_task(shopify.page(ListQuery(type="product", first=5)))
        await asyncio.sleep(0.4)  # our estimate would be full again by now
        burst = [shopify.get_many([ids[i % 40]]) for i in range(40)]
        await asyncio.gather(slow, *burst)
    assert sum(emulator.costs) > 200  # together more than the bucket holds
    assert emulator.throttled == 0
