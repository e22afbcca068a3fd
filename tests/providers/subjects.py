"""What the provider conformance suite runs against: every provider, each behind a thing
service as a request sees it. The native store on SQLite and on the MongoDB engine (over
mongomock), the real WordPress, and the Shopify and Notion emulators.

A `Subject` is one provider for one organization, with what the suite needs to know of its
backend: two sets of properties it stores and how they read back, an id that names nothing,
and the ids of every thing of its type as the backend itself knows them."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from providers.engine import Engine
from providers.errors import NotFoundError
from providers.mongodb import MongoEngine
from providers.native import NativeStore, ThingQuery
from providers.native.provider import NativeProvider
from providers.notion import NotionConfig, NotionProvider
from providers.provider import Provider
from providers.records import Kind, Role, Thing
from providers.refs import Ref, native_ref, new_local_id
from providers.shopify import ShopifyConfig, ShopifyProvider
from providers.sqlite import SQLiteEngine
from providers.things import ThingService
from providers.wordpress import WordPressConfig, WordPressProvider
from resolvers.loaders import Loaders
from tests.emulators import serve
from tests.emulators.notion import NotionEmulator
from tests.emulators.shopify import ShopifyEmulator
from tests.mongomock_async import AsyncMongomockClient
from tests.wordpress import WordPress

SUBJECTS = ["native-sqlite", "native-mongodb", "wordpress", "shopify", "notion"]
UPSTREAM_SUBJECTS = ["wordpress", "shopify", "notion"]
SHOPIFY_TOKEN = "shpat_conformance"
NOTION_TOKEN = "secret_conformance"


@dataclass
class Subject:
    name: str
    provider: Provider
    store: NativeStore  # where the organization and its events live
    org_id: str
    actor_ref: str
    thing_type: str
    missing_id: str  # well formed, names nothing
    properties: tuple[dict[str, Any], dict[str, Any]]  # two sets it stores, different keys
    view: Callable[[Thing], dict[str, Any]]  # what a thing shows of such properties
    every_id: Callable[[], Awaitable[set[str]]]  # the type's things, as the backend knows them
    page_size: int = 2
    stores_any_property: bool = False

    def service(self) -> ThingService:
        """A thing service with fresh loaders, as a new request has."""
        return ThingService(
            OneRoute(self.provider),
            Loaders(self.store, self.org_id),
            self.store.events,
            org_id=self.org_id,
            actor_ref=self.actor_ref,
        )

    def ref(self, id: str) -> Ref:
        return Ref(Kind.THING, self.provider.name, id)


class OneRoute:
    """Every type routed to one provider."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    async def for_type(self, type: str | None) -> Provider:
        return self.provider

    async def named(self, name: str) -> Provider:
        if name != self.provider.name:
            raise NotFoundError(f"no '{name}' provider is configured", provider=name)
        return self.provider


async def organization(store: NativeStore) -> tuple[str, str]:
    """A fresh organization and its owner's reference."""
    slug = f"org-{uuid.uuid4().hex[:8]}"
    org = await store.organizations.create(actor_ref=None, name="Conformance", slug=slug)
    person, _ = await store.people.add_member(
        org.id, actor_ref=None, email=f"owner@{slug}.test", name="Owner", role=Role.ORG_OWNER
    )
    return org.id, native_ref(Kind.PERSON, person.id)


async def make_subject(
    name: str,
    tmp_path: Path,
    stack: AsyncExitStack,
    client: httpx.AsyncClient,
    wordpress: Callable[[], WordPress],
) -> Subject:
    """The subject `name` (one of SUBJECTS); `wordpress` starts the real one when asked.
    What it opens closes with `stack`, before `client` does."""
    engine: Engine
    if name == "native-mongodb":
        engine = MongoEngine(AsyncMongomockClient(), "one_conformance")
    else:
        engine = SQLiteEngine(tmp_path / "one.db")
    store = NativeStore(engine)
    await store.start()
    stack.push_async_callback(store.close)
    org_id, owner = await organization(store)
    if name.startswith("native-"):
        return await _native(name, store, org_id, owner)
    if name == "wordpress":
        return await _wordpress(name, store, org_id, owner, stack, client, wordpress())
    if name == "shopify":
        return await _shopify(name, store, org_id, owner, stack, client)
    return await _notion(name, store, org_id, owner, stack, client)


async def _native(name: str, store: NativeStore, org_id: str, owner: str) -> Subject:
    async def every_id() -> set[str]:
        page = await store.things.page(org_id, ThingQuery(type="course", first=100))
        return {t.id for t in page.items}

    return Subject(
        name=name,
        provider=NativeProvider(store, org_id, owner),
        store=store,
        org_id=org_id,
        actor_ref=owner,
        thing_type="course",
        missing_id=new_local_id(),
        properties=({"level": "beginner"}, {"hours": 12}),
        view=lambda thing: thing.properties,
        every_id=every_id,
        stores_any_property=True,
    )


async def _wordpress(
    name: str,
    store: NativeStore,
    org_id: str,
    owner: str,
    stack: AsyncExitStack,
    client: httpx.AsyncClient,
    wordpress: WordPress,
) -> Subject:
    config = WordPressConfig.model_validate(wordpress.config())
    auth = (wordpress.username, wordpress.application_password)

    async def every_id() -> set[str]:
        found: set[str] = set()
        for number in range(1, 100):
            params = {
                "rest_route": "/wp/v2/posts",
                "per_page": 100,
                "page": number,
                "status": "publish,future,draft,pending,private,trash",
                "_fields": "id",
            }
            answer = await client.get(f"{wordpress.url}/", params=params, auth=auth)
            answer.raise_for_status()
            found |= {f"post-{post['id']}" for post in answer.json()}
            if number >= int(answer.headers["X-WP-TotalPages"]):
                return found
        raise AssertionError("more posts than the oracle reads")

    seeded = await every_id()

    async def remove_what_the_test_made() -> None:
        # The WordPress is the session's: leave it as seeded for the tests that count on it.
        for id in await every_id() - seeded:
            route = f"/wp/v2/posts/{id.removeprefix('post-')}"
            params = {"rest_route": route, "force": "true"}
            (await client.delete(f"{wordpress.url}/", params=params, auth=auth)).raise_for_status()

    stack.push_async_callback(remove_what_the_test_made)
    categories, tags = wordpress.seed["categories"], wordpress.seed["tags"]
    return Subject(
        name=name,
        provider=WordPressProvider(org_id, config, client),
        store=store,
        org_id=org_id,
        actor_ref=owner,
        thing_type="blog_post",
        missing_id="post-987654321",
        properties=({"categories": [categories["news"]]}, {"tags": [tags["launch"]]}),
        view=lambda t: {k: t.properties.get(k) for k in ("categories", "tags")},
        every_id=every_id,
        page_size=40,
    )


async def _shopify(
    name: str,
    store: NativeStore,
    org_id: str,
    owner: str,
    stack: AsyncExitStack,
    client: httpx.AsyncClient,
) -> Subject:
    emulator = ShopifyEmulator(token=SHOPIFY_TOKEN)
    for i in range(5):
        emulator.add_product(f"Hammock {i}", status="DRAFT" if i % 2 else "ACTIVE")
    emulator.add_order("#1001", "48.00")
    url = stack.enter_context(serve(emulator.app))
    config = ShopifyConfig(shop_url=url, access_token=SHOPIFY_TOKEN, api_version="2025-04")

    async def every_id() -> set[str]:
        return {f"product-{id}" for id in emulator.products}

    return Subject(
        name=name,
        provider=ShopifyProvider(org_id, config, client),
        store=store,
        org_id=org_id,
        actor_ref=owner,
        thing_type="product",
        missing_id="product-987654321",
        properties=({"vendor": "Acme"}, {"tags": ["camp"]}),
        view=lambda t: {k: t.properties.get(k) for k in ("vendor", "tags")},
        every_id=every_id,
    )


async def _notion(
    name: str,
    store: NativeStore,
    org_id: str,
    owner: str,
    stack: AsyncExitStack,
    client: httpx.AsyncClient,
) -> Subject:
    emulator = NotionEmulator(token=NOTION_TOKEN)
    database = emulator.add_database("Handbook", {"Summary": "rich_text"})
    for i in range(3):
        emulator.add_page(database, f"Chapter {i}", paragraphs=[f"Chapter {i} opens."])
    other = emulator.add_database("Someone else's")
    emulator.add_page(other, "Chapter from elsewhere")
    url = stack.enter_context(serve(emulator.app))
    config = NotionConfig.model_validate(
        {"token": NOTION_TOKEN, "database_id": database, "base_url": url}
    )

    async def every_id() -> set[str]:
        return {
            id
            for id, page in emulator.pages.items()
            if page["parent"]["database_id"] == database and not page["archived"]
        }

    return Subject(
        name=name,
        provider=NotionProvider(org_id, config, client),
        store=store,
        org_id=org_id,
        actor_ref=owner,
        thing_type="document",
        missing_id=str(uuid.uuid4()),
        properties=({"tags": ["guide"]}, {"Summary": "Short"}),
        view=lambda t: {"tags": t.properties["tags"], "Summary": t.properties["notion"]["Summary"]},
        every_id=every_id,
    )
