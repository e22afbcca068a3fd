"""One organization on all four backends: native things, WordPress posts, Shopify products and
Notion documents, with connections across them. Shared by the cross-backend tests and
`bench/federation.py`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import httpx

from providers.native import NativeStore, ThingQuery
from providers.records import Kind, ThingStatus
from providers.refs import native_ref
from providers.registry import validate_config
from providers.wordpress import WordPressConfig, WordPressProvider
from tests.emulators import serve
from tests.emulators.notion import NotionEmulator
from tests.emulators.shopify import ShopifyEmulator
from tests.wordpress import WordPress

SHOPIFY_TOKEN = "shpat_four_backends"
NOTION_TOKEN = "secret_four_backends"


@dataclass
class Backends:
    wordpress: WordPress
    shopify: ShopifyEmulator
    shopify_url: str
    notion: NotionEmulator
    notion_url: str
    notion_database: str

    def requests(self) -> dict[str, int]:
        """Upstream requests so far, as each upstream counted them."""
        return {
            "wordpress": self.wordpress.requests(),
            "shopify": self.shopify.requests,
            "notion": self.notion.requests,
        }


@contextmanager
def four_backends(wordpress: WordPress) -> Iterator[Backends]:
    shopify = ShopifyEmulator(token=SHOPIFY_TOKEN)
    for i in range(8):
        shopify.add_product(f"Garden chair {i}", prices=("49.00",))
    shopify.add_order("#1001", "98.00")
    notion = NotionEmulator(token=NOTION_TOKEN, rate=3, burst=3)
    database = notion.add_database("Garden handbook")
    for i in range(4):
        notion.add_page(database, f"Care guide {i}", paragraphs=[f"Oil chair {i} twice a year."])
    with ExitStack() as stack:
        shopify_url = stack.enter_context(serve(shopify.app))
        notion_url = stack.enter_context(serve(notion.app))
        yield Backends(wordpress, shopify, shopify_url, notion, notion_url, database)


async def route_and_connect(
    store: NativeStore, org_id: str, backends: Backends, **shopify_config: Any
) -> dict[str, str]:
    """Route acme's types to the four backends and connect one thing of each to the next:
    course -> post -> product -> document -> course. Returns their global ids."""
    routes = {
        "wordpress": (["blog_post", "page"], backends.wordpress.config()),
        "shopify": (
            ["product", "order"],
            {
                "shop_url": backends.shopify_url,
                "access_token": SHOPIFY_TOKEN,
                "api_version": "2025-04",
                **shopify_config,
            },
        ),
        "notion": (
            ["document"],
            {
                "token": NOTION_TOKEN,
                "base_url": backends.notion_url,
                "database_id": backends.notion_database,
            },
        ),
    }
    for provider, (types, config) in routes.items():
        await store.provider_configs.save(
            org_id,
            actor_ref=None,
            provider=provider,
            config=validate_config(provider, config, types),
            routes=types,
        )
    course = (await store.things.page(org_id, ThingQuery(type="course"))).items[0]
    # The chain's members are each listed first by their backend: WordPress lists newest
    # first (so a post made now), Shopify by id (so its first product).
    async with httpx.AsyncClient() as client:
        config = WordPressConfig.model_validate(backends.wordpress.config())
        post = await WordPressProvider(org_id, config, client).create(
            type="blog_post",
            name="Chairs that last",
            status=ThingStatus.PUBLISHED,
            properties={"content": "<p>Oil them.</p>"},
        )
    ids = {
        "course": native_ref(Kind.THING, course.id),
        "post": f"thing.wordpress.{post.id}",
        "product": f"thing.shopify.product-{min(backends.shopify.products)}",
        "document": f"thing.notion.{next(iter(backends.notion.pages))}",
    }
    chain = ["course", "post", "product", "document", "course"]
    for a, b in pairwise(chain):
        await store.connections.create(
            org_id, actor_ref=None, from_ref=ids[a], to_ref=ids[b], relationship_type="references"
        )
    return ids


ALL_FOUR = """{
  native: things(type: "course", first: 5) { edges { node { ...Linked } } }
  posts: things(type: "blog_post", first: 5) { edges { node { ...Linked } } }
  products: things(type: "product", first: 5) { edges { node { ...Linked } } }
  documents: things(type: "document", first: 5) { edges { node { ...Linked } } }
}
fragment Linked on Thing {
  id name provider
  connections(direction: OUT, relationshipType: "references") {
    to { ... on Thing { id name provider } }
  }
}"""
FLAT = """{
  native: things(type: "course", first: 5) { edges { node { id name } } }
  posts: things(type: "blog_post", first: 5) { edges { node { id name } } }
  products: things(type: "product", first: 5) { edges { node { id name } } }
  documents: things(type: "document", first: 5) { edges { node { id name } } }
}"""
