"""The Shopify emulator against Shopify's documented behaviour, so that a provider cannot pass
by matching a lenient emulator."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.emulators import serve
from tests.emulators.shopify import ShopifyEmulator
from tests.emulators.webhooks import Inbox

TOKEN = "shpat_emulator"


@pytest.fixture
def shop() -> Iterator[tuple[ShopifyEmulator, str]]:
    emulator = ShopifyEmulator(token=TOKEN, maximum_available=1000, restore_rate=100)
    for i in range(30):
        emulator.add_product(
            f"Hammock {i}",
            status="DRAFT" if i % 3 == 0 else "ACTIVE",
            prices=("10.00", "25.50"),
            updated_at=f"2025-0{1 + i % 9}-01T00:00:00Z",
        )
    emulator.add_order("#1001", "35.50")
    with serve(emulator.app) as url:
        yield emulator, f"{url}/admin/api/2025-04/graphql.json"


def post(
    url: str, query: str, variables: dict[str, Any] | None = None, token: str | None = TOKEN
) -> httpx.Response:
    headers = {"X-Shopify-Access-Token": token} if token else {}
    return httpx.post(url, json={"query": query, "variables": variables or {}}, headers=headers)


def test_documented_cost_examples_and_cost_extension(shop: tuple[ShopifyEmulator, str]) -> None:
    _, url = shop
    one = post(url, "{ shop { id name } }").json()
    assert one["extensions"]["cost"]["requestedQueryCost"] == 1
    page = post(url, "{ products(first: 10) { edges { node { title } } } }").json()
    cost = page["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 12  # 2 + 10 x 1, as shopify.dev's example
    assert cost["actualQueryCost"] == 12
    status = cost["throttleStatus"]
    assert status["maximumAvailable"] == 1000 and status["restoreRate"] == 100
    assert status["currentlyAvailable"] <= 1000 - 12 + 5
    mutation = post(
        url,
        'mutation { productCreate(product: {title: "x"}) { product { id } '
        "userErrors { field message } } }",
    ).json()
    assert mutation["extensions"]["cost"]["requestedQueryCost"] == 10


def test_actual_cost_counts_what_came_back(shop: tuple[ShopifyEmulator, str]) -> None:
    _, url = shop
    body = post(
        url, "{ products(first: 100, query: \"title:'Hammock 7'\") { edges { node { title } } } }"
    ).json()
    assert len(body["data"]["products"]["edges"]) == 1
    assert body["extensions"]["cost"]["requestedQueryCost"] == 102
    assert body["extensions"]["cost"]["actualQueryCost"] == 3


def test_authentication_and_versions(shop: tuple[ShopifyEmulator, str]) -> None:
    _, url = shop
    missing = post(url, "{ shop { name } }", token=None)
    assert (
        missing.status_code == 401 and "Invalid API key or access token" in missing.json()["errors"]
    )
    assert post(url, "{ shop { name } }", token="wrong").status_code == 401
    assert post(url.replace("2025-04", "2025-05"), "{ shop { name } }").status_code == 404
    assert post(url.replace("2025-04", "latest"), "{ shop { name } }").status_code == 404


def test_documents_are_validated_against_the_real_schema(shop: tuple[ShopifyEmulator, str]) -> None:
    _, url = shop
    body = post(url, "{ products(first: 1) { edges { node { titel } } } }").json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "undefinedField"
    assert "titel" in body["errors"][0]["message"]
    syntax = post(url, "{ products(first: 1) {").json()
    assert "Syntax Error" in syntax["errors"][0]["message"]
    wrong_arg = post(url, '{ products(first: "ten") { edges { cursor } } }').json()
    assert "data" not in wrong_arg


def test_limits_on_pages_arrays_and_cost(shop: tuple[ShopifyEmulator, str]) -> None:
    _, url = shop
    no_first = post(url, "{ products { edges { node { id } } } }").json()
    assert "first or last" in no_first["errors"][0]["message"] and "data" not in no_first
    too_big = post(url, "{ products(first: 251) { edges { node { id } } } }").json()
    assert "data" not in too_big
    ids = [f"gid://shopify/Product/{i}" for i in range(251)]
    array = post(url, "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids}).json()
    assert array["errors"][0]["extensions"]["code"] == "MAX_INPUT_SIZE_EXCEEDED"
    costly = post(
        url,
        "{ products(first: 250) { edges { node { variants(first: 10) { edges "
        "{ node { sku } } } } } } }",
    ).json()
    error = costly["errors"][0]
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED" and error["extensions"]["cost"] > 1000
    assert "data" not in costly


@pytest.mark.parametrize("status", [200, 429])
def test_leaky_bucket_throttles_without_data(status: int) -> None:
    emulator = ShopifyEmulator(
        token=TOKEN, maximum_available=50, restore_rate=10, throttled_status=status
    )
    for i in range(60):  # enough that a page's actual cost is its requested cost
        emulator.add_product(f"P{i}")
    query = "{ products(first: 30) { edges { node { title } } } }"  # costs 32
    with serve(emulator.app) as base:
        url = f"{base}/admin/api/2025-04/graphql.json"
        first = post(url, query)
        assert first.status_code == 200 and "data" in first.json()
        bulk = "{ products(first: 45) { edges { node { title } } } }"  # 47 > what is left
        throttled = post(url, bulk)
    assert throttled.status_code == status
    body = throttled.json()
    assert "data" not in body and body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert body["extensions"]["cost"]["requestedQueryCost"] == 47
    assert emulator.throttled == 1 and emulator.requests == 2


def test_search_syntax_and_nodes(shop: tuple[ShopifyEmulator, str]) -> None:
    emulator, url = shop
    query = (
        "query($q: String) { products(first: 100, query: $q) { edges { node { title status } } } }"
    )

    def titles(q: str) -> list[str]:
        return [
            e["node"]["title"]
            for e in post(url, query, {"q": q}).json()["data"]["products"]["edges"]
        ]

    assert len(titles("status:DRAFT")) == 10
    assert len(titles("status:ACTIVE,DRAFT")) == 30
    assert titles("title:'Hammock 12'") == ["Hammock 12"]
    assert len(titles("updated_at:>'2025-08-15T00:00:00Z'")) == 3
    assert len(titles("hammock status:active")) == 20
    first_id = f"gid://shopify/Product/{min(emulator.products)}"
    nodes = post(
        url,
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        {"ids": [first_id, "gid://shopify/Product/1"]},
    ).json()
    assert nodes["data"]["nodes"] == [{"id": first_id}, None]


SUBSCRIBE = """mutation($topic: WebhookSubscriptionTopic!, $url: URL!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: {callbackUrl: $url}) {
    webhookSubscription { id topic endpoint { ... on WebhookHttpEndpoint { callbackUrl } } }
    userErrors { field message }
  }
}"""


def _hmac(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def test_product_changes_are_signed_webhooks(shop: tuple[ShopifyEmulator, str]) -> None:
    emulator, url = shop
    inbox = Inbox()
    with serve(inbox) as hook:
        for topic in ("PRODUCTS_CREATE", "PRODUCTS_UPDATE", "PRODUCTS_DELETE"):
            made = post(url, SUBSCRIBE, {"topic": topic, "url": hook}).json()
            created = made["data"]["webhookSubscriptionCreate"]
            assert created["userErrors"] == [], created
            assert created["webhookSubscription"]["endpoint"] == {"callbackUrl": hook}
        again = post(url, SUBSCRIBE, {"topic": "PRODUCTS_UPDATE", "url": hook}).json()
        assert again["data"]["webhookSubscriptionCreate"]["userErrors"][0]["message"]
        made = post(
            url,
            'mutation { productCreate(product: {title: "Net"}) { product { id } '
            "userErrors { message } } }",
        ).json()
        gid = made["data"]["productCreate"]["product"]["id"]
        post(
            url,
            "mutation($p: ProductUpdateInput!) { productUpdate(product: $p) { userErrors "
            "{ message } } }",
            {"p": {"id": gid, "title": "Fishing net"}},
        )
        deleted = post(
            url,
            "mutation($id: ID!) { productDelete(input: {id: $id}) { deletedProductId "
            "userErrors { message } } }",
            {"id": gid},
        ).json()
        assert deleted["data"]["productDelete"]["deletedProductId"] == gid
        emulator.outbox.wait()
    topics = [r.headers["x-shopify-topic"] for r in inbox.received]
    assert topics == ["products/create", "products/update", "products/delete"]
    for received in inbox.received:
        headers = received.headers
        assert headers["x-shopify-hmac-sha256"] == _hmac(emulator.app_secret, received.body)
        assert headers["x-shopify-shop-domain"] == emulator.shop_domain
        assert headers["x-shopify-api-version"] == "2025-04"
        assert headers["x-shopify-webhook-id"] and headers["x-shopify-triggered-at"]
    created_body, updated_body, deleted_body = (json.loads(r.body) for r in inbox.received)
    number = int(gid.rsplit("/", 1)[1])
    assert created_body["id"] == number and created_body["admin_graphql_api_id"] == gid
    assert updated_body["title"] == "Fishing net" and updated_body["updated_at"]
    assert deleted_body == {"id": number}


def test_a_refused_webhook_is_retried_with_the_same_id() -> None:
    emulator = ShopifyEmulator(token=TOKEN)
    emulator.outbox.backoff = 0.01
    inbox = Inbox(refuse=2)
    with serve(inbox) as hook:
        emulator.subscribe_webhook("products/update", hook)
        id = emulator.add_product("Hammock")
        emulator.update_product(id, title="Hammock XL")
        emulator.outbox.wait()
    assert inbox.refused == 2 and len(inbox.received) == 1
    delivery = emulator.outbox.delivered[0]
    assert delivery.attempts == 3
    assert (
        delivery.headers["X-Shopify-Webhook-Id"]
        == inbox.received[0].headers["x-shopify-webhook-id"]
    )
    assert json.loads(inbox.received[0].body)["title"] == "Hammock XL"
