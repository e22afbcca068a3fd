"""Changes made in the backends themselves reach subscribers as `thingChanged`, with the
thing as its provider has it after the change: a product changed in the Shopify emulator
(a signed webhook) and a post edited in the real WordPress (polling)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from providers.records import Role
from tests.emulators import serve
from tests.emulators.shopify import ShopifyEmulator
from tests.gateway.test_realtime import SSE, Subscription, bearer
from tests.gateway.test_webhooks import (  # noqa: F401 - `live` is a fixture
    SECRET,
    SHOPIFY_TOKEN,
    Live,
    live,
    shopify_config,
)
from tests.gateway.test_wordpress_changes import call, made, new_post, rest  # noqa: F401
from tests.providers.gateways import gateway_api, route
from tests.wordpress import WordPress

PRODUCTS = """subscription { thingChanged(type: "product") { changeType id
  thing { name ... on Product { price } } } }"""


def test_a_product_changed_in_shopify_arrives_with_its_new_values(live: Live) -> None:  # noqa: F811
    shop = ShopifyEmulator(token=SHOPIFY_TOKEN, app_secret=SECRET)
    with serve(shop.app) as shop_url:
        live.configure("shopify", ["product"], **shopify_config(shop_url))
        for topic in ("products/create", "products/update", "products/delete"):
            shop.subscribe_webhook(topic, live.hook("shopify"))
        stream = SSE(live.url, live.token(Role.ORG_USER), PRODUCTS)
        number = shop.add_product("Hammock")
        stream.wait(1)
        shop.update_product(number, title="Hammock XL")
        got = stream.wait(2)
        shop.delete_product(number)
        got = stream.wait(3)
    changes = [d["data"]["thingChanged"] for _, d in got]
    assert [c["changeType"] for c in changes] == ["CREATED", "UPDATED", "DELETED"]
    assert {c["id"] for c in changes} == {f"thing.shopify.product-{number}"}
    assert changes[1]["thing"]["name"] == "Hammock XL"  # fetched from Shopify after the change
    assert changes[2]["thing"] is None


def test_a_post_edited_in_wordpress_arrives_with_its_new_values(
    tmp_path: Path,
    wordpress: WordPress,
    rest: httpx.Client,  # noqa: F811
    made: list[int],  # noqa: F811
) -> None:
    post = new_post(rest, made, "Watched")
    with gateway_api(tmp_path, wordpress_poll_seconds=0.2) as api:
        route(api, "wordpress", wordpress.config())
        time.sleep(1.5)  # the first poll sets the mark, and WordPress's clock moves a second
        query = 'subscription { thingChanged(type: "blog_post") { changeType thing { name } } }'
        sub = Subscription(api.client, bearer(api, Role.ORG_USER), query)
        time.sleep(0.2)
        started = time.monotonic()
        call(rest, "POST", f"/wp/v2/posts/{post['id']}", json={"title": "Edited in WordPress"})
        message: dict[str, Any] = sub.next()
        delay = time.monotonic() - started
        sub.close()
    change = message["payload"]["data"]["thingChanged"]
    assert change == {"changeType": "UPDATED", "thing": {"name": "Edited in WordPress"}}
    assert delay < 5
