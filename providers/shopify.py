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
from datetime import UTC
from typing import Any, TypeVar

import httpx
from graphql import parse
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr

from providers import shopify_documents as documents
from providers.cursors import decode_cursor_value, encode_cursor_value, invalid_cursor
from providers.errors import (
    InvalidInputError,
    OneError,
    ProviderAuthError,
    ProviderRateLimitedError,
    ProviderResponseError,
)
from providers.properties import PropertyMap
from providers.provider import Capabilities, Health, ListQuery, check_health
from providers.records import Page, Thing, ThingStatus
from providers.registry import ProviderFactory
from providers.shopify_nodes import (
    NAME,
    Created,
    Envelope,
    Nodes,
    Orders,
    Payload,
    Products,
    Result,
    ShopName,
    Updated,
    envelope_of,
    node_to_thing,
    reader,
)
from providers.shopify_throttle import MAX_QUERY_COST, CostBucket, estimate_cost
from providers.upstream import Answer, Upstreams, retry_after
from providers.validation import excerpt

log = logging.getLogger(__name__)

D = TypeVar("D")
MAX_IDS = 250  # every array input, and every page, holds at most 250
_LOCAL_ID = re.compile(r"(product|order)-([0-9]{1,20})")
_CODE = re.compile(r"[A-Z_]{1,40}")
# Shopify has no step between DRAFT and ACTIVE: a product is published straight from draft.
_FROM_LIFECYCLE = {
    ThingStatus.DRAFT: "DRAFT",
    ThingStatus.PUBLISHED: "ACTIVE",
    ThingStatus.ARCHIVED: "ARCHIVED",
}
_PROPERTIES = PropertyMap(
    NAME,
    stored={
        "handle": "handle",
        "vendor": "vendor",
        "tags": "tags",
        "product_type": "productType",
        "description_html": "descriptionHtml",
    },
    # A replace empties these; the handle stays (Shopify needs one).
    cleared={"vendor": "", "tags": [], "productType": "", "descriptionHtml": ""},
    computed=frozenset({"shopify_status", "price", "max_price", "currency", "variants", "sku"}),
)


class ShopifyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shop_url: HttpUrl = Field(description="e.g. https://acme.myshopify.com")
    access_token: SecretStr
    api_version: str = Field(default="2026-10", pattern=r"^\d{4}-(01|04|07|10)$")
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # Attempts after the first (throttles and 5xx of reads), within ONE_UPSTREAM_ATTEMPTS.
    max_retries: int = Field(default=6, ge=0, le=20)
    # The app's client secret (or the store's webhook signing key) that signs webhooks.
    webhook_secret: SecretStr | None = None


def _parse_local_id(id: str) -> str:
    match = _LOCAL_ID.fullmatch(id)
    if not match:
        raise InvalidInputError(
            f"'{excerpt(id)}' is not a Shopify id (product-<n> or order-<n>)", field="id"
        )
    return f"gid://shopify/{match.group(1).title()}/{match.group(2)}"


def _decode_cursor(cursor: str | None) -> str | None:
    """Shopify's own cursor, inside ours: one Shopify did not make is refused here, as the
    client's mistake, before it could become Shopify's refusal."""
    if cursor is None:
        return None
    value = decode_cursor_value(cursor)
    if not isinstance(value, str) or not 0 < len(value) <= 300:
        raise invalid_cursor()
    return value


def _product(id: str) -> str:
    """The gid of a product a write may change: orders are read-only here."""
    gid = _parse_local_id(id)
    if not gid.startswith("gid://shopify/Product/"):
        raise InvalidInputError("Shopify orders are read-only here", field="id")
    return gid


class ShopifyProvider:
    name = NAME
    thing_types = frozenset({"product", "order"})
    property_map = _PROPERTIES  # what a write stores, computes or refuses
    capabilities = Capabilities(
        read=True,
        search=True,
        write=True,
        batch_size=MAX_IDS,
        statuses=frozenset(_FROM_LIFECYCLE),
        search_detail=False,
    )

    def __init__(
        self, org_id: str, config: ShopifyConfig, upstreams: httpx.AsyncClient | Upstreams
    ) -> None:
        self.org_id = org_id
        base = str(config.shop_url).rstrip("/")
        self._endpoint = f"{base}/admin/api/{config.api_version}/graphql.json"
        self.upstream = Upstreams.of(upstreams).open(
            org_id=org_id,
            provider=NAME,
            label="Shopify",
            origin=base,
            timeout=config.timeout_seconds,
            attempts=config.max_retries + 1,
            headers={"X-Shopify-Access-Token": config.access_token.get_secret_value()},
        )
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
        results = await asyncio.gather(*(self._query(document, {"ids": b}, Nodes) for b in batches))
        found: dict[str, Thing] = {}
        for data in results:
            for node in data.nodes:
                if node is not None:
                    thing = node_to_thing(node, self.org_id)
                    found[thing.id] = thing
        return [found.get(id) for id in ids]

    async def page(self, query: ListQuery) -> Page[Thing]:
        if query.type not in self.thing_types:
            raise InvalidInputError(f"Shopify holds no '{query.type}' things", field="type")
        field = "products" if query.type == "product" else "orders"
        document = documents.page(field, detail=query.detail, relevance=bool(query.search))
        search = self._search(query, products=field == "products")
        items: list[Thing] = []
        cursors: list[str] = []
        after, has_next, total = _decode_cursor(query.after), False, 0
        # A page may cost more than one query may: fetch it in as many requests as it takes.
        per_node = max(estimate_cost(parse(document), {"first": 1}) - 3, 1)
        while True:
            want = min(query.first - len(items), MAX_IDS, (MAX_QUERY_COST - 3) // per_node)
            variables = {"first": max(want, 1), "after": after, "query": search}
            model = Products if field == "products" else Orders
            listed: Products | Orders = await self._query(document, variables, model)
            connection = listed.connection
            total = listed.count.count if listed.count else 0
            for edge in connection.edges[: max(want, 0)]:
                items.append(node_to_thing(edge.node, self.org_id))
                cursors.append(encode_cursor_value(edge.cursor))
            has_next = connection.pageInfo.hasNextPage or len(connection.edges) > max(want, 0)
            after = connection.pageInfo.endCursor
            if len(items) >= query.first or not has_next or not connection.edges:
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
        product = {
            "title": name,
            "status": _FROM_LIFECYCLE[status],
            **_PROPERTIES.fields(properties),
        }
        created = await self._query(documents.CREATE, {"product": product}, Created)
        return self._mutated(created.productCreate)

    async def update(
        self, id: str, *, name: str | None, properties: dict[str, Any] | None, merge: bool = True
    ) -> Thing:
        product: dict[str, Any] = {"id": _product(id)}
        if properties is not None:
            product.update(_PROPERTIES.fields(properties, merge=merge))
        if name is not None:
            product["title"] = name
        return await self._update(product)

    async def change_status(self, id: str, status: ThingStatus) -> Thing:
        return await self._update({"id": _product(id), "status": _FROM_LIFECYCLE[status]})

    async def _update(self, product: dict[str, Any]) -> Thing:
        updated = await self._query(documents.UPDATE, {"product": product}, Updated)
        return self._mutated(updated.productUpdate)

    def _mutated(self, payload: Payload) -> Thing:
        errors = payload.userErrors
        if errors:
            # userErrors are Shopify's answer to the merchant's own input, meant to be shown.
            first = errors[0]
            name = first.field[-1] if first.field else None
            raise InvalidInputError(
                f"Shopify rejected the product: {excerpt(first.message)}",
                field="name" if name == "title" else name,
                provider=NAME,
                errors=[{"field": e.field, "message": excerpt(e.message)} for e in errors],
            )
        if payload.product is None:
            raise self.upstream.bad_response()
        return node_to_thing(payload.product, self.org_id)

    # -- health --------------------------------------------------------------------------

    async def health(self) -> Health:
        return await check_health(self._query(documents.SHOP, {}, ShopName))

    # -- the wire ------------------------------------------------------------------------

    async def _query(self, document: str, variables: dict[str, Any], model: type[D]) -> D:
        if not self.bucket.known:
            # Until Shopify has reported the bucket, one request at a time: a burst sized for
            # our default guess could be throttled by a smaller real bucket.
            async with self._probe:
                if not self.bucket.known:
                    return await self._query_paced(document, variables, model)
        return await self._query_paced(document, variables, model)

    async def _query_paced(self, document: str, variables: dict[str, Any], model: type[D]) -> D:
        parsed = parse(document)
        cost = estimate_cost(parsed, variables)
        if cost > MAX_QUERY_COST:  # a bug in the caller, never a request Shopify would refuse
            raise ValueError(f"query cost {cost} exceeds Shopify's maximum {MAX_QUERY_COST}")

        reserved = 0  # by the attempt on its way

        async def reserve() -> None:
            nonlocal reserved
            # Called before each attempt: the previous attempt's answer (throttled, or a
            # failure to be retried) is back, so its points are no longer on their way.
            self.bucket.landed(reserved)
            reserved = 0
            try:
                await self.bucket.reserve(cost)
            except OverflowError as exc:
                raise ProviderRateLimitedError(f"Shopify: {exc}", provider=NAME) from None
            reserved = cost

        try:
            reply = await self.upstream.send(
                "POST",
                self._endpoint,
                json={"query": document, "variables": variables},
                read=not document.lstrip().startswith("mutation"),
                expect=reader(model),
                rejected=self._rejected,
                throttled=self._throttled,
                pace=reserve,
            )
        except ProviderAuthError:
            # Refused before any cost was charged: the points were never spent.
            self.bucket.landed(reserved, refund=True)
            reserved = 0
            raise
        finally:
            self.bucket.landed(reserved)
        result: Result[D] = reply.body
        if result.envelope.cost:
            self.bucket.observe(result.envelope.cost, cost)
        if result.envelope.errors:
            raise self._graphql_error(result.envelope)
        if result.data is None:
            raise self.upstream.bad_response()
        return result.data

    def _throttled(self, answer: Answer) -> float | None:
        """Seconds until the bucket holds the query's cost, when Shopify throttled it."""
        if b"THROTTLED" not in answer.content:
            return None
        envelope = envelope_of(answer)
        if envelope is None or "THROTTLED" not in envelope.codes():
            return None
        if envelope.cost:
            return self.bucket.throttled(envelope.cost)
        return max(retry_after(answer.headers) or 1.0, 0.05)

    def _rejected(self, answer: Answer) -> OneError | None:
        if answer.status in (401, 403):
            return ProviderAuthError(
                "Shopify refused the access token", provider=NAME, status=answer.status
            )
        # Our documents are valid: any other refusal says the shop URL or version is wrong.
        message = (
            "Shopify has no such endpoint (check the shop URL and API version)"
            if answer.status == 404
            else f"Shopify refused the request (HTTP {answer.status})"
        )
        return ProviderResponseError(message, provider=NAME, status=answer.status)

    def _graphql_error(self, envelope: Envelope) -> OneError:
        codes = [c for c in envelope.codes() if _CODE.fullmatch(c)]
        log.warning("shopify (org %s) refused a query: %s", self.org_id, str(envelope.errors)[:500])
        # Our documents are valid and within cost; an error here is Shopify's, not the user's.
        return ProviderResponseError(
            "Shopify refused the query", provider=NAME, upstream_code=codes[0] if codes else ""
        )


PROVIDER = ProviderFactory.of(ShopifyProvider, ShopifyConfig)
