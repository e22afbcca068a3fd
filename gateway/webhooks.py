"""Webhooks from Shopify and Notion, verified and turned into ontology events.

`POST /webhooks/shopify/{org}` and `POST /webhooks/notion/{org}`, where `{org}` is the
organization's global id (`organization.native.<id>`) or its local id. The answers:

    413  a body over 1 MiB
    400  a body that is not a JSON object, or a signed one without what its kind needs
    401  {"error": "webhook not accepted"}, the same whatever the reason: no such organization,
         the provider not configured there, no secret to verify with, a missing or bad
         signature. A `security_alert` event (provider, reason) when the organization exists.
    409  a Notion verification token while another one is kept
    200  {"status": "recorded" | "duplicate" | "echo" | "ignored" | "verification_kept"}

The answer waits for verification, deduplication and one store transaction (the delivery and
its event), never for an upstream: events name the thing, subscribers fetch it when they need
it. A change the gateway made itself comes back as a webhook too; when the thing's newest event
is the gateway's own and holds the same `version` (its updated_at), the echo is not recorded
again. (A webhook's own event never makes an echo: two changes upstream within one second of
Shopify's clock would look alike.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.requests import read_body
from providers.errors import InvalidInputError
from providers.native import NativeStore
from providers.records import Kind, ProviderConfig, utcnow
from providers.refs import Ref, native_ref
from providers.sealing import Sealer, SealError, sealing_context, unseal_config
from providers.thing_events import ThingEvent, instant, same_version

log = logging.getLogger("one.webhooks")

MAX_BODY = 1024 * 1024
# Shopify may sign with the previous secret for up to an hour after a rotation.
ROTATION_GRACE = timedelta(hours=1)
# At most one alert per organization, provider and reason in this time: a flood of forged
# deliveries must not flood the organization's events.
ALERT_SECONDS = 60.0
MAX_TOKEN_LENGTH = 512
_PRODUCT_NUMBER = re.compile(r"[0-9]{1,20}")

_SHOPIFY_TOPICS = {
    "products/create": "entity_created",
    "products/update": "entity_updated",
    "products/delete": "entity_deleted",
}
_NOTION_TYPES = {
    "page.created": "entity_created",
    "page.properties_updated": "entity_updated",
    "page.content_updated": "entity_updated",
    "page.deleted": "entity_deleted",
    "page.undeleted": "entity_updated",
}


class _Refused(Exception):
    """A delivery answered without being processed; `alert` is the security alert's reason."""

    def __init__(self, status: int, error: str, *, alert: str | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.alert = status, error, alert


def _unauthorized(reason: str) -> _Refused:
    return _Refused(401, "webhook not accepted", alert=reason)


def webhook_routes(store: NativeStore, sealer: Sealer) -> list[Route]:
    """The webhook endpoints, to add to the app's routes."""
    webhooks = Webhooks(store, sealer)
    return [
        Route("/webhooks/shopify/{org}", webhooks.shopify, methods=["POST"]),
        Route("/webhooks/notion/{org}", webhooks.notion, methods=["POST"]),
    ]


class Webhooks:
    def __init__(self, store: NativeStore, sealer: Sealer) -> None:
        self._store = store
        self._sealer = sealer
        self._deliveries = store.webhook_deliveries
        self._alerted: dict[tuple[str, str, str], float] = {}

    async def shopify(self, request: Request) -> Response:
        return await self._answer(request, "shopify")

    async def notion(self, request: Request) -> Response:
        return await self._answer(request, "notion")

    async def _answer(self, request: Request, provider: str) -> Response:
        org_id: str | None = None
        try:
            raw = await _read_body(request)
            body = _json_object(raw)
            org_id = await self._organization(request.path_params["org"])
            config = await self._config(org_id, provider)
            if provider == "shopify":
                status = await self._shopify(request, raw, body, config)
            else:
                status = await self._notion(request, raw, body, config)
        except _Refused as refused:
            if refused.alert is not None:
                log.warning("%s webhook refused for %s: %s", provider, org_id, refused.alert)
                if org_id is not None:
                    await self._alert(org_id, provider, refused.alert)
            return JSONResponse({"error": refused.error}, refused.status)
        return JSONResponse({"status": status})

    # -- the steps every delivery takes ----------------------------------------------------

    async def _organization(self, value: str) -> str:
        """The organization's local id; refused, with nobody to alert, when there is none."""
        try:
            spelled = value if "." in value else native_ref(Kind.ORGANIZATION, value)
            org_id = Ref.parse(spelled, expect=Kind.ORGANIZATION).local_id
        except InvalidInputError:
            raise _unauthorized("malformed organization id") from None
        if (await self._store.organizations.get_many([org_id]))[0] is None:
            raise _unauthorized("no such organization")
        return org_id

    async def _config(self, org_id: str, provider: str) -> ProviderConfig:
        for config in await self._store.provider_configs.active(org_id):
            if config.provider == provider:
                return config
        raise _unauthorized(f"{provider} is not configured")

    def _secret(self, config: ProviderConfig, field: str) -> str | None:
        try:
            value = unseal_config(config, self._sealer).get(field)
        except SealError:
            raise _unauthorized("sealed credentials did not open") from None
        return str(value) if value else None

    async def _take_in(
        self, config: ProviderConfig, delivery_id: str, event: ThingEvent | None
    ) -> str:
        if event is not None and await self._is_echo(config.org_id, event):
            event, status = None, "echo"
        else:
            status = "recorded" if event is not None else "ignored"
        taken = await self._deliveries.take_in(config.org_id, config.provider, delivery_id, event)
        return status if taken else "duplicate"

    async def _is_echo(self, org_id: str, event: ThingEvent) -> bool:
        newest = (await self._store.events.of_targets(org_id, [event.target_ref], limit=1))[
            event.target_ref
        ]
        if newest and newest[0].metadata.get("source") == "webhook":
            return False
        return same_version(newest, instant(event.metadata.get("version")))

    async def _alert(self, org_id: str, provider: str, reason: str) -> None:
        now = time.monotonic()
        key = (org_id, provider, reason)
        if now - self._alerted.get(key, -ALERT_SECONDS) < ALERT_SECONDS:
            return
        self._alerted[key] = now
        await self._store.events.append(
            org_id,
            "security_alert",
            actor_ref=None,
            target_ref=native_ref(Kind.ORGANIZATION, org_id),
            metadata={"provider": provider, "reason": f"webhook refused: {reason}"},
        )

    # -- Shopify ---------------------------------------------------------------------------

    async def _shopify(
        self, request: Request, raw: bytes, body: dict[str, Any], config: ProviderConfig
    ) -> str:
        signature = request.headers.get("x-shopify-hmac-sha256")
        if not signature:
            raise _unauthorized("missing signature")
        secret = self._secret(config, "webhook_secret")
        if not _shopify_signed(raw, signature, secret):
            previous = await self._deliveries.replaced_since(
                config.org_id, "shopify", utcnow() - ROTATION_GRACE
            )
            if previous is None or not _shopify_signed(
                raw, signature, self._secret(previous, "webhook_secret")
            ):
                raise _unauthorized("bad signature" if secret else "no webhook secret")
        _check_shop_domain(config, request.headers.get("x-shopify-shop-domain"))
        delivery_id = request.headers.get("x-shopify-webhook-id") or _digest(raw)
        topic = request.headers.get("x-shopify-topic", "")
        triggered = instant(request.headers.get("x-shopify-triggered-at"))
        return await self._take_in(
            config, delivery_id, _shopify_event(topic, body, config, triggered)
        )

    # -- Notion ----------------------------------------------------------------------------

    async def _notion(
        self, request: Request, raw: bytes, body: dict[str, Any], config: ProviderConfig
    ) -> str:
        if "verification_token" in body and "x-notion-signature" not in request.headers:
            return await self._notion_verification(config, body["verification_token"])
        token = self._secret(config, "webhook_verification_token")
        if token is None:
            raise _unauthorized("no verification token yet")
        given = request.headers.get("x-notion-signature", "")
        if not given:
            raise _unauthorized("missing signature")
        expected = "sha256=" + hmac.new(token.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise _unauthorized("bad signature")
        delivery_id = body.get("id")
        if not isinstance(delivery_id, str) or not delivery_id:
            raise _Refused(400, "a Notion event needs its id")
        return await self._take_in(config, delivery_id, _notion_event(body, config))

    async def _notion_verification(self, config: ProviderConfig, token: Any) -> str:
        """Notion's one-time handshake: the token is kept, sealed, for an owner to paste back
        into Notion. The first token stays: a second one is refused (configure Notion again
        to start over), the same one again is a retry."""
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
            raise _Refused(400, "verification_token must be a string")
        kept = self._secret(config, "webhook_verification_token")
        if kept is None:
            sealed = self._sealer.seal(token, context=sealing_context(config.org_id, config.id))
            metadata = {"webhook": "verification token received", "source": "webhook"}
            if await self._deliveries.keep_secret(
                config, "webhook_verification_token", sealed, metadata=metadata
            ):
                return "verification_kept"
        elif hmac.compare_digest(kept.encode(), token.encode()):
            return "verification_kept"
        raise _Refused(
            409,
            "a verification token is already kept; configure Notion again to replace it",
            alert="a second verification token",
        )


async def _read_body(request: Request) -> bytes:
    body = await read_body(request, MAX_BODY)
    if body is None:
        raise _Refused(413, "body over 1 MiB")
    return body


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise _Refused(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise _Refused(400, "the body is not a JSON object")
    return body


def _shopify_signed(raw: bytes, signature: str, secret: str | None) -> bool:
    """Whether `signature` is the base64 HMAC-SHA256 of the raw body keyed with `secret`."""
    if not secret:
        return False
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(digest), signature.encode())


def _check_shop_domain(config: ProviderConfig, domain: str | None) -> None:
    # An app's secret signs for every shop that installed it, so a delivery from another shop
    # verifies too; the shop's domain tells them apart (a custom shop URL cannot be checked).
    host = str(config.config.get("shop_url", "")).split("://", 1)[-1].split("/", 1)[0].lower()
    if host.endswith(".myshopify.com") and domain is not None and domain.lower() != host:
        raise _unauthorized("another shop's delivery")


def _shopify_event(
    topic: str, body: dict[str, Any], config: ProviderConfig, triggered: datetime | None
) -> ThingEvent | None:
    type = _SHOPIFY_TOPICS.get(topic)
    if type is None or "product" not in config.routes:
        return None
    number = body.get("id")
    if isinstance(number, bool) or not _PRODUCT_NUMBER.fullmatch(str(number)):
        raise _Refused(400, "a product webhook needs the product's id")
    # The local id the provider gives a product (see providers/shopify_nodes.py).
    target = Ref(Kind.THING, "shopify", f"product-{number}")
    version = instant(body.get("updated_at")) or triggered or utcnow()
    return _thing_event(type, target, "product", topic, version)


def _notion_event(body: dict[str, Any], config: ProviderConfig) -> ThingEvent | None:
    kind = str(body.get("type"))
    type = _NOTION_TYPES.get(kind)
    entity = body.get("entity")
    if type is None or "document" not in config.routes or not isinstance(entity, dict):
        return None
    try:
        page_id = str(uuid.UUID(str(entity.get("id"))))
    except ValueError:
        raise _Refused(400, "a page event needs the page's id") from None
    data = body.get("data")
    parent = data.get("parent") if isinstance(data, dict) else None
    if (
        isinstance(parent, dict)
        and parent.get("type") == "database"
        and not _same_uuid(parent.get("id"), config.config.get("database_id"))
    ):
        return None  # a page the integration sees, outside the organization's database
    version = instant(body.get("timestamp")) or utcnow()
    return _thing_event(type, Ref(Kind.THING, "notion", page_id), "document", kind, version)


def _thing_event(
    type: str, target: Ref, thing_type: str, topic: str, version: datetime
) -> ThingEvent:
    return ThingEvent(
        type,
        str(target),
        {
            "provider": target.provider,
            "thing_type": thing_type,
            "source": "webhook",
            "topic": topic,
            "version": version.isoformat(),
        },
    )


def _same_uuid(a: Any, b: Any) -> bool:
    try:
        return uuid.UUID(str(a)) == uuid.UUID(str(b))
    except ValueError:
        return False


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()
