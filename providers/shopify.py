"""Shopify (Admin GraphQL API): products as `product` things, orders as `order` things.

Versioned endpoint (`api_version`, a current one by default) and `X-Shopify-Access-Token` from
the organization's config. Reads batch with `nodes(ids:)`, lists page with cursors and
Shopify's search syntax; writes use `productCreate`/`productUpdate`. Every request is paced
by `CostBucket` and split so no query's requested cost exceeds Shopify's single-query maximum.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from graphql import parse
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr

from providers import shopify_documents as documents
from providers.errors import (
    InvalidInputError,
    NotFoundError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimitedError,
    ProviderResponseError,
    ProviderUnavailableError,
)
from providers.provider import Capabilities, Health, ListQuery, check_health, retry_after
from providers.records import (
    STATUS_TRANSITIONS,
    Page,
    Thing,
    ThingStatus,
    require_changeable,
    require_transition,
)
from providers.registry import ProviderFactory, register
from providers.shopify_throttle import MAX_QUERY_COST, CostBucket, estimate_cost
from providers.validation import excerpt

log = logging.getLogger(__name__)

NAME = "shopify"
MAX_IDS = 250  # every array input, and every page, holds at most 250
_LOCAL_ID = re.compile(r"(product|order)-([0-9]{1,20})")
_GID = re.compile(r"gid://shopify/(Product|Order)/([0-9]{1,20})")
_TO_LIFECYCLE = {
    "DRAFT": ThingStatus.DRAFT,
    "ACTIVE": ThingStatus.PUBLISHED,
    "ARCHIVED": ThingStatus.ARCHIVED,
}
_FROM_LIFECYCLE = {
    ThingStatus.DRAFT: "DRAFT",
    ThingStatus.PUBLISHED: "ACTIVE",
    ThingStatus.ARCHIVED: "ARCHIVED",
}
# Shopify has no step between DRAFT and ACTIVE: a product is published straight from draft.
_TRANSITIONS = {
    **STATUS_TRANSITIONS,
    ThingStatus.DRAFT: frozenset({ThingStatus.PUBLISHED, ThingStatus.ARCHIVED}),
}

# Thing property -> ProductInput field a write sets.
_WRITABLE = {
    "handle": "handle",
    "vendor": "vendor",
    "tags": "tags",
    "product_type": "productType",
    "description_html": "descriptionHtml",
}


class ShopifyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shop_url: HttpUrl = Field(description="e.g. https://acme.myshopify.com")
    access_token: SecretStr
    api_version: str = Field(default="2026-10", pattern=r"^\d{4}-(01|04|07|10)$")
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    max_retries: int = Field(default=6, ge=0, le=20)


def _parse_local_id(id: str) -> str:
    match = _LOCAL_ID.fullmatch(id)
    if not match:
        raise InvalidInputError(
            f"'{excerpt(id)}' is not a Shopify id (product-<n> or order-<n>)", field="id"
        )
    return f"gid://shopify/{match.group(1).title()}/{match.group(2)}"


def _time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class ShopifyProvider:
    name = NAME
    thing_types = frozenset({"product", "order"})
    capabilities = Capabilities(read=True, search=True, write=True, batch_size=MAX_IDS)

    def __init__(self, org_id: str, config: ShopifyConfig, client: httpx.AsyncClient) -> None:
        self.org_id = org_id
        base = str(config.shop_url).rstrip("/")
        self._endpoint = f"{base}/admin/api/{config.api_version}/graphql.json"
        self._headers = {"X-Shopify-Access-Token": config.access_token.get_secret_value()}
        self._timeout = config.timeout_seconds
        self._retries = config.max_retries
        self._client = client
        self.bucket = CostBucket()
        self._probe = asyncio.Lock()

    # -- reads ---------------------------------------------------------------------------

    async def get_many(self, ids: Sequence[str], *, detail: bool = True) -> list[Thing | None]:
        """`nodes(ids:)` in as few requests as the 250-id cap and the cost limit allow."""
        gids = list(dict.fromkeys(_parse_local_id(i) for i in ids))
        document = documents.nodes(detail=detail)
        per_id = max(estimate_cost(parse(document), {"ids": ["x"]}), 1)
        chunk = max(1, min(MAX_IDS, MAX_QUERY_COST // per_id))
        batches = [gids[i : i + chunk] for i in range(0, len(gids), chunk)]
        results = await asyncio.gather(*(self._query(document, {"ids": b}) for b in batches))
        found: dict[str, Thing] = {}
        for data in results:
            for node in data.get("nodes") or []:
                if node:
                    thing = self._thing(node)
                    found[thing.id] = thing
        return [found.get(id) for id in ids]

    async def page(self, query: ListQuery) -> Page[Thing]:
        field = "products" if query.type == "product" else "orders"
        document = documents.page(field, detail=query.detail)
        search = self._search(query, products=field == "products")
        items: list[Thing] = []
        cursors: list[str] = []
        after, has_next, total = query.after, False, 0
        # A page may cost more than one query may: fetch it in as many requests as it takes.
        per_node = max(estimate_cost(parse(document), {"first": 1}) - 3, 1)
        while True:
            want = min(query.first - len(items), MAX_IDS, (MAX_QUERY_COST - 3) // per_node)
            variables = {"first": max(want, 1), "after": after, "query": search}
            data = await self._query(document, variables)
            connection = data[field]
            total = int((data.get(f"{field}Count") or {}).get("count") or 0)
            for edge in connection["edges"][: max(want, 0)]:
                items.append(self._thing(edge["node"]))
                cursors.append(edge["cursor"])
            has_next = bool(connection["pageInfo"]["hasNextPage"]) or len(
                connection["edges"]
            ) > max(want, 0)
            after = connection["pageInfo"]["endCursor"]
            if len(items) >= query.first or not has_next or not connection["edges"]:
                break
        return Page(items, cursors, has_next, total)

    def _search(self, query: ListQuery, *, products: bool) -> str:
        terms = []
        if products:
            # Name every status: Shopify's search may default to ACTIVE products only.
            statuses = (
                [_FROM_LIFECYCLE[query.status]]
                if query.status in _FROM_LIFECYCLE
                else (["ACTIVE", "DRAFT", "ARCHIVED"])
            )
            terms.append(f"status:{','.join(statuses)}")
        if query.modified_after is not None:
            stamp = query.modified_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            terms.append(f"updated_at:>'{stamp}'")
        if query.search:
            terms.append(query.search.replace("\\", " ").replace("'", " "))
        return " ".join(terms)

    # -- writes --------------------------------------------------------------------------

    async def create(
        self, *, type: str, name: str, status: ThingStatus, properties: dict[str, Any]
    ) -> Thing:
        if type != "product":
            raise InvalidInputError("Shopify orders are read-only here", field="type")
        if status not in _FROM_LIFECYCLE:
            raise InvalidInputError(_no_active_step(), field="status")
        product = {"title": name, "status": _FROM_LIFECYCLE[status], **self._fields(properties)}
        return await self._mutate(documents.CREATE, "productCreate", product)

    async def update(
        self, id: str, *, name: str | None, properties: dict[str, Any] | None
    ) -> Thing:
        current = await self._current(id)
        require_changeable(current.status)
        product: dict[str, Any] = {"id": _parse_local_id(id), **self._fields(properties or {})}
        if name is not None:
            product["title"] = name
        return await self._mutate(documents.UPDATE, "productUpdate", product)

    async def change_status(self, id: str, status: ThingStatus) -> Thing:
        current = await self._current(id)
        note = f"; {_no_active_step()}" if status is ThingStatus.ACTIVE else ""
        require_transition(current.status, status, _TRANSITIONS, note)
        product = {"id": _parse_local_id(id), "status": _FROM_LIFECYCLE[status]}
        return await self._mutate(documents.UPDATE, "productUpdate", product)

    async def _current(self, id: str) -> Thing:
        gid = _parse_local_id(id)
        if not gid.startswith("gid://shopify/Product/"):
            raise InvalidInputError("Shopify orders are read-only here", field="id")
        [found] = await self.get_many([id], detail=False)
        if found is None:
            raise NotFoundError("Shopify has no such product", provider=NAME, field="id")
        return found

    async def _mutate(self, document: str, field: str, product: dict[str, Any]) -> Thing:
        payload = (await self._query(document, {"product": product}))[field]
        errors = payload.get("userErrors") or []
        if errors:
            first = errors[0]
            path = first.get("field") or []
            name = path[-1] if path else None
            raise InvalidInputError(
                f"Shopify rejected the product: {first.get('message', '')}",
                field="name" if name == "title" else name,
                provider=NAME,
                errors=[{"field": e.get("field"), "message": e.get("message")} for e in errors],
            )
        return self._thing(payload["product"])

    def _fields(self, properties: dict[str, Any]) -> dict[str, Any]:
        return {shop: properties[key] for key, shop in _WRITABLE.items() if key in properties}

    # -- health --------------------------------------------------------------------------

    async def health(self) -> Health:
        return await check_health(self._query(documents.SHOP, {}))

    # -- the wire ------------------------------------------------------------------------

    async def _query(self, document: str, variables: dict[str, Any]) -> dict[str, Any]:
        if not self.bucket.known:
            # Until Shopify has reported the bucket, one request at a time: a burst sized for
            # our default guess could be throttled by a smaller real bucket.
            async with self._probe:
                if not self.bucket.known:
                    return await self._query_paced(document, variables)
        return await self._query_paced(document, variables)

    async def _query_paced(self, document: str, variables: dict[str, Any]) -> dict[str, Any]:
        cost = estimate_cost(parse(document), variables)
        if cost > MAX_QUERY_COST:  # a bug in the caller, never a request Shopify would refuse
            raise ValueError(f"query cost {cost} exceeds Shopify's maximum {MAX_QUERY_COST}")
        for attempt in range(self._retries + 1):
            try:
                await self.bucket.reserve(cost)
            except OverflowError as exc:
                raise ProviderRateLimitedError(f"Shopify: {exc}", provider=NAME) from None
            response = await self._send({"query": document, "variables": variables})
            body = self._json(response)
            extensions = body.get("extensions") if isinstance(body, dict) else None
            reported = (extensions or {}).get("cost") or {}
            errors = body.get("errors") if isinstance(body, dict) else None
            if _throttled(response, errors):
                wait = (
                    self.bucket.throttled(reported)
                    if reported
                    else retry_after(response, at_least=0.05)
                )
                log.info("shopify throttled us; waiting %.2f s (attempt %d)", wait, attempt + 1)
                await asyncio.sleep(wait)
                continue
            if reported:
                self.bucket.observe(reported, cost)
            if response.status_code >= 500:
                await asyncio.sleep(min(2**attempt * 0.1, 2.0))
                continue
            if errors:
                raise self._graphql_error(errors)
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, dict):
                raise ProviderResponseError("Shopify answered without data", provider=NAME)
            return data
        if response.status_code >= 500:
            raise ProviderUnavailableError(
                f"Shopify failed: HTTP {response.status_code}",
                provider=NAME,
                status=response.status_code,
            )
        raise ProviderRateLimitedError("Shopify kept throttling the request", provider=NAME)

    async def _send(self, body: dict[str, Any]) -> httpx.Response:
        try:
            response = await self._client.post(
                self._endpoint, json=body, headers=self._headers, timeout=self._timeout
            )
        except httpx.TimeoutException:
            raise ProviderUnavailableError(
                f"Shopify did not answer within {self._timeout:g} s", provider=NAME
            ) from None
        except httpx.TransportError:
            raise ProviderUnavailableError("Shopify cannot be reached", provider=NAME) from None
        if response.status_code in (401, 403):
            raise ProviderAuthError(
                "Shopify refused the access token", provider=NAME, status=response.status_code
            )
        if response.status_code == 404:
            raise ProviderResponseError(
                "Shopify has no such endpoint (check the shop URL and API version)",
                provider=NAME,
                status=404,
            )
        return response

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            if response.status_code >= 500:
                return {}
            raise ProviderResponseError(
                "Shopify answered with something other than JSON", provider=NAME
            ) from None

    def _graphql_error(self, errors: Any) -> ProviderError:
        first: dict[str, Any] = {"message": str(errors)}
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
        code = (first.get("extensions") or {}).get("code", "")
        message = f"Shopify refused the query: {first.get('message', '')}"
        # Our documents are valid and within cost; an error here is Shopify's, not the user's.
        return ProviderResponseError(message, provider=NAME, upstream_code=code)

    def _thing(self, node: dict[str, Any]) -> Thing:
        try:
            match = _GID.fullmatch(node["id"])
            if match is None:
                raise ValueError(f"unexpected id {node['id']!r}")
            kind, number = match.group(1).lower(), match.group(2)
            if kind == "order":
                total = node["totalPriceSet"]["shopMoney"]
                return Thing(
                    id=f"order-{number}",
                    org_id=self.org_id,
                    type="order",
                    name=node["name"],
                    status=ThingStatus.PUBLISHED,
                    properties={
                        "total": float(total["amount"]),
                        "currency": total["currencyCode"],
                        "financial_status": node.get("displayFinancialStatus"),
                    },
                    provider=NAME,
                    external_id=node["id"],
                    created_at=_time(node.get("createdAt")),
                    updated_at=_time(node.get("updatedAt")),
                )
            low = node["priceRangeV2"]["minVariantPrice"]
            high = node["priceRangeV2"]["maxVariantPrice"]
            properties: dict[str, Any] = {
                "shopify_status": node["status"],
                "handle": node["handle"],
                "vendor": node["vendor"],
                "tags": node["tags"],
                "product_type": node.get("productType"),
                "price": float(low["amount"]),
                "max_price": float(high["amount"]),
                "currency": low["currencyCode"],
            }
            if "variants" in node:
                variants = [e["node"] for e in node["variants"]["edges"]]
                properties["variants"] = [
                    {"id": v["id"], "sku": v.get("sku"), "price": float(v["price"])}
                    for v in variants
                ]
                properties["sku"] = next((v["sku"] for v in variants if v.get("sku")), None)
            if "descriptionHtml" in node:
                properties["description_html"] = node["descriptionHtml"]
            return Thing(
                id=f"product-{number}",
                org_id=self.org_id,
                type="product",
                name=node["title"],
                status=_TO_LIFECYCLE.get(node["status"], ThingStatus.DRAFT),
                properties=properties,
                provider=NAME,
                external_id=node["id"],
                created_at=_time(node.get("createdAt")),
                updated_at=_time(node.get("updatedAt")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderResponseError(
                f"Shopify sent an object we cannot read: {exc}", provider=NAME
            ) from None


def _no_active_step() -> str:
    return "Shopify has no 'active' step: a product is DRAFT, ACTIVE (published) or ARCHIVED"


def _throttled(response: httpx.Response, errors: Any) -> bool:
    if response.status_code == 429:
        return True
    return isinstance(errors, list) and any(
        (e.get("extensions") or {}).get("code") == "THROTTLED"
        for e in errors
        if isinstance(e, dict)
    )


register(ProviderFactory.of(ShopifyProvider, ShopifyConfig))
