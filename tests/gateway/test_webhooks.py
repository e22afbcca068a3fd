"""Shopify and Notion webhooks over real HTTP: the gateway under uvicorn on a loopback port,
deliveries signed by the tests or sent by the emulators, the events read back through GraphQL
as the organization's owner."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import strawberry
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from gateway.app import create_app
from gateway.demo import seed_demo
from gateway.settings import load_settings
from providers.configuration import seal
from providers.native import NativeStore
from providers.records import Kind, Role, utcnow
from providers.refs import native_ref, new_local_id
from providers.registry import ProviderPool, validate_config
from providers.sealing import sealing_context
from resolvers import webhooks as webhook_resolvers
from resolvers.context import Actor, Context
from tests.conftest import JWT_SECRET
from tests.emulators import serve
from tests.emulators.notion import NotionEmulator
from tests.emulators.shopify import ShopifyEmulator

T = TypeVar("T")
SECRET = "shpss_gateway_test_secret"
SHOPIFY_TOKEN = "shpat_webhook_test"
NOTION_TOKEN = "secret_notion_webhook_test"
EVENTS = """query($target: ID, $type: String) { events(targetId: $target, type: $type, first: 50) {
  totalCount edges { node { type metadata } } } }"""
UPDATE = """mutation($id: ID!, $name: String!) { updateThing(id: $id, input: {name: $name}) {
  id name } }"""


class _LoopOf:
    """The app, noting the event loop uvicorn runs it on (the store lives on that loop)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)


@dataclass
class Live:
    url: str
    app: Starlette
    loop: asyncio.AbstractEventLoop
    org_id: str = ""

    @property
    def store(self) -> NativeStore:
        store: NativeStore = self.app.state.store
        return store

    def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        return asyncio.run_coroutine_threadsafe(fn(*args), self.loop).result(timeout=30)

    def token(self, role: Role = Role.ORG_OWNER) -> str:
        members = self.run(self.store.people.members, self.org_id)
        member = next(m for m in members if m.role is role)
        issued: str = self.app.state.auth.issue(
            person_id=member.person_id, org_id=self.org_id, role=role
        )
        return issued

    def data(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        response = httpx.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {self.token()}"},
        )
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def events(self, target: str | None = None, type: str | None = None) -> list[dict[str, Any]]:
        page = self.data(EVENTS, {"target": target, "type": type})["events"]
        return [e["node"] for e in page["edges"]]

    def configure(self, provider: str, routes: list[str], **config: Any) -> str:
        """Save `config` for acme, sealed as `configureProvider` seals it (no connection
        test); returns the config's id."""
        values = validate_config(provider, config, routes)
        config_id = new_local_id()
        sealed = seal(
            provider, values, self.app.state.keyring, sealing_context(self.org_id, config_id)
        )
        self.run(
            lambda: self.store.provider_configs.save(
                self.org_id,
                actor_ref=None,
                provider=provider,
                config=sealed,
                routes=routes,
                id=config_id,
            )
        )
        return config_id

    def hook(self, provider: str, org: str | None = None) -> str:
        return f"{self.url}/webhooks/{provider}/{org or native_ref(Kind.ORGANIZATION, self.org_id)}"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    settings = load_settings(
        env="test", data_dir=tmp_path, jwt_secret=JWT_SECRET, actor_rate=1000, actor_burst=1000
    )
    app = create_app(settings)
    wrapped = _LoopOf(app)
    with serve(wrapped, lifespan="on") as url:
        assert wrapped.loop is not None
        live = Live(url, app, wrapped.loop)
        live.run(seed_demo, live.store)
        acme = live.run(live.store.organizations.get_by_slug, "acme")
        assert acme is not None
        live.org_id = acme.id
        yield live


def shopify_config(shop_url: str = "https://acme.myshopify.com", **extra: Any) -> dict[str, Any]:
    return {
        "shop_url": shop_url,
        "access_token": SHOPIFY_TOKEN,
        "api_version": "2025-04",
        "webhook_secret": SECRET,
        **extra,
    }


def signed_shopify(
    live: Live,
    body: dict[str, Any] | bytes,
    *,
    topic: str = "products/update",
    secret: str = SECRET,
    webhook_id: str | None = None,
    org: str | None = None,
    signature: str | None = None,
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).digest()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": signature
        if signature is not None
        else base64.b64encode(digest).decode(),
        "X-Shopify-Shop-Domain": "acme.myshopify.com",
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": utcnow().isoformat(),
        "X-Shopify-API-Version": "2025-04",
    }
    return httpx.post(live.hook("shopify", org), content=raw, headers=headers)


def product(number: int, updated_at: str = "2025-06-01T10:00:00-04:00") -> dict[str, Any]:
    return {
        "id": number,
        "admin_graphql_api_id": f"gid://shopify/Product/{number}",
        "title": "Hammock",
        "status": "active",
        "updated_at": updated_at,
    }


def test_a_signed_shopify_webhook_becomes_an_event(live: Live) -> None:
    live.configure("shopify", ["product", "order"], **shopify_config())
    answer = signed_shopify(live, product(101))
    assert answer.status_code == 200 and answer.json() == {"status": "recorded"}
    created = signed_shopify(live, product(102), topic="products/create", org=live.org_id)
    assert created.json() == {"status": "recorded"}  # the bare local id names the org too
    deleted = signed_shopify(live, {"id": 101}, topic="products/delete")
    assert deleted.json() == {"status": "recorded"}
    ignored = signed_shopify(live, {"id": 9}, topic="orders/create")
    assert ignored.status_code == 200 and ignored.json() == {"status": "ignored"}
    events = live.events("thing.shopify.product-101")
    assert [e["type"] for e in events] == ["entity_deleted", "entity_updated"]
    assert events[1]["metadata"] == {
        "provider": "shopify",
        "thing_type": "product",
        "source": "webhook",
        "topic": "products/update",
        "version": "2025-06-01T14:00:00+00:00",
    }
    assert live.events("thing.shopify.product-102")[0]["type"] == "entity_created"


def test_a_duplicate_delivery_records_nothing_new(live: Live) -> None:
    live.configure("shopify", ["product"], **shopify_config())
    first = signed_shopify(live, product(7), webhook_id="delivery-1")
    again = signed_shopify(live, product(7), webhook_id="delivery-1")
    assert first.json() == {"status": "recorded"} and again.json() == {"status": "duplicate"}
    assert len(live.events("thing.shopify.product-7")) == 1


def test_a_bad_signature_is_refused_and_alerted(live: Live) -> None:
    live.configure("shopify", ["product"], **shopify_config())
    forged = signed_shopify(live, product(8), secret="not-the-secret")
    missing = signed_shopify(live, product(8), signature="")
    unknown = signed_shopify(live, product(8), org=native_ref(Kind.ORGANIZATION, "f" * 32))
    malformed = signed_shopify(live, product(8), org="thing.native.x")
    for refused in (forged, missing, unknown, malformed):
        assert refused.status_code == 401
        assert refused.json() == {"error": "webhook not accepted"}
    assert live.events("thing.shopify.product-8") == []
    alerts = live.events(type="security_alert")
    reasons = {a["metadata"]["reason"] for a in alerts}
    assert reasons == {"webhook refused: bad signature", "webhook refused: missing signature"}
    assert all(a["metadata"]["provider"] == "shopify" for a in alerts)
    assert SECRET not in json.dumps(alerts)


def test_an_organization_without_the_provider_refuses(live: Live) -> None:
    refused = signed_shopify(live, product(9))
    assert refused.status_code == 401 and refused.json() == {"error": "webhook not accepted"}
    alert = live.events(type="security_alert")[0]
    assert alert["metadata"] == {
        "provider": "shopify",
        "reason": "webhook refused: shopify is not configured",
    }


def test_size_and_json_limits(live: Live) -> None:
    live.configure("shopify", ["product"], **shopify_config())
    huge = signed_shopify(live, b'{"id": 1, "pad": "' + b"x" * (1024 * 1024) + b'"}')
    assert huge.status_code == 413
    not_json = signed_shopify(live, b"id=1")
    assert not_json.status_code == 400


def test_the_previous_secret_signs_for_an_hour_after_rotation(live: Live) -> None:
    first = live.configure("shopify", ["product"], **shopify_config(webhook_secret="old-secret"))
    live.configure("shopify", ["product"], **shopify_config())
    assert signed_shopify(live, product(11), secret="old-secret").status_code == 200
    assert signed_shopify(live, product(12), secret=SECRET).status_code == 200

    async def an_hour_later() -> None:
        async with live.store.engine.transaction() as tx:
            stale = utcnow() - timedelta(hours=1, minutes=1)
            await tx.update("provider_configs", first, {"updated_at": stale})

    live.run(an_hour_later)
    assert signed_shopify(live, product(13), secret="old-secret").status_code == 401


def notion_config(base_url: str = "https://api.notion.com", database: str | None = None) -> Any:
    return {
        "token": NOTION_TOKEN,
        "database_id": database or str(uuid.uuid4()),
        "base_url": base_url,
    }


def signed_notion(live: Live, event: dict[str, Any], token: str) -> httpx.Response:
    raw = json.dumps(event).encode()
    signature = "sha256=" + hmac.new(token.encode(), raw, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Notion-Signature": signature}
    return httpx.post(live.hook("notion"), content=raw, headers=headers)


def notion_event(type: str, page: str, database: str, second: int = 0) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "timestamp": f"2025-06-01T10:00:{second:02d}.123Z",
        "workspace_id": str(uuid.uuid4()),
        "subscription_id": str(uuid.uuid4()),
        "integration_id": str(uuid.uuid4()),
        "type": type,
        "authors": [{"id": str(uuid.uuid4()), "type": "person"}],
        "attempt_number": 1,
        "entity": {"id": page, "type": "page"},
        "data": {"parent": {"id": database, "type": "database"}},
    }


def owner_reads_token(live: Live, role: Role = Role.ORG_OWNER) -> Any:
    """`notionVerificationToken` as `role` sees it, through the resolver's own schema."""

    @strawberry.type
    class Query:
        notion_verification_token = strawberry.field(
            resolver=webhook_resolvers.notion_verification_token
        )

    pool: ProviderPool = live.app.state.providers
    context = Context(live.store, pool, Actor(live.org_id, role, person_id="p"))
    schema = strawberry.Schema(query=Query)
    result = live.run(lambda: schema.execute("{ notionVerificationToken }", context_value=context))
    if result.errors:
        return result.errors[0].message
    assert result.data is not None
    return result.data["notionVerificationToken"]


def test_notion_handshake_then_signed_page_events(live: Live) -> None:
    database = str(uuid.uuid4())
    live.configure("notion", ["document"], **notion_config(database=database))
    assert owner_reads_token(live) is None
    token = "secret_" + "t" * 40
    early = signed_notion(live, notion_event("page.created", str(uuid.uuid4()), database), token)
    assert early.status_code == 401  # nothing to verify with before the handshake
    kept = httpx.post(live.hook("notion"), json={"verification_token": token})
    assert kept.status_code == 200 and kept.json() == {"status": "verification_kept"}
    retried = httpx.post(live.hook("notion"), json={"verification_token": token})
    assert retried.status_code == 200
    other = httpx.post(live.hook("notion"), json={"verification_token": "secret_other"})
    assert other.status_code == 409
    assert owner_reads_token(live) == token
    assert "may not" in owner_reads_token(live, Role.ORG_USER)
    settings = live.events(type="settings_updated")
    assert settings[0]["metadata"]["provider"] == "notion"
    assert token not in json.dumps(live.events())

    page = str(uuid.uuid4())
    answer = signed_notion(live, notion_event("page.properties_updated", page, database), token)
    assert answer.status_code == 200 and answer.json() == {"status": "recorded"}
    signed_notion(live, notion_event("page.deleted", page, database, 1), token)
    signed_notion(live, notion_event("page.undeleted", page, database, 2), token)
    other_database = notion_event("page.created", str(uuid.uuid4()), str(uuid.uuid4()))
    assert signed_notion(live, other_database, token).json() == {"status": "ignored"}
    forged = signed_notion(live, notion_event("page.created", page, database), "secret_wrong")
    assert forged.status_code == 401
    events = live.events(f"thing.notion.{page}")
    assert [e["type"] for e in events] == ["entity_updated", "entity_deleted", "entity_updated"]
    assert events[-1]["metadata"] == {
        "provider": "notion",
        "thing_type": "document",
        "source": "webhook",
        "topic": "page.properties_updated",
        "version": "2025-06-01T10:00:00.123000+00:00",
    }


def test_a_product_changed_in_the_shopify_emulator_arrives(live: Live) -> None:
    shop = ShopifyEmulator(token=SHOPIFY_TOKEN, app_secret=SECRET)
    with serve(shop.app) as shop_url:
        live.configure("shopify", ["product"], **shopify_config(shop_url))
        for topic in ("products/create", "products/update"):
            shop.subscribe_webhook(topic, live.hook("shopify"))
        number = shop.add_product("Hammock")
        shop.update_product(number, title="Hammock XL")
        shop.outbox.wait()
        target = f"thing.shopify.product-{number}"
        assert [e["type"] for e in live.events(target)] == ["entity_updated", "entity_created"]
        # The gateway's own write comes back as a webhook: its echo is not recorded twice.
        renamed = live.data(UPDATE, {"id": target, "name": "Hammock XXL"})
        assert renamed["updateThing"]["name"] == "Hammock XXL"
        shop.outbox.wait()
    assert not shop.outbox.failed
    assert [d.status for d in shop.outbox.delivered] == [200, 200, 200]
    events = live.events(target)
    assert len(events) == 3 and "source" not in events[0]["metadata"]


def test_a_page_changed_in_the_notion_emulator_arrives(live: Live) -> None:
    notion = NotionEmulator(token=NOTION_TOKEN, rate=1000, burst=1000)
    database = notion.add_database("Docs")
    page = notion.add_page(database, "Handbook")
    with serve(notion.app) as notion_url:
        live.configure("notion", ["document"], **notion_config(notion_url, database))
        subscription = notion.subscribe_webhook(live.hook("notion"))
        notion.outbox.wait()
        assert notion.verify_webhook(subscription, owner_reads_token(live))
        notion.rename_page(page, "Employee handbook")
        notion.outbox.wait()
    assert not notion.outbox.failed
    events = live.events(f"thing.notion.{page}")
    assert [e["type"] for e in events] == ["entity_updated"]
    assert events[0]["metadata"]["topic"] == "page.properties_updated"
