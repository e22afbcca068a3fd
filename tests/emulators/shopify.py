"""An emulator of Shopify's Admin GraphQL API, on loopback.

What it holds to, as Shopify documents it (../shared/UPSTREAMS.md and shopify.dev):
- `POST /admin/api/{YYYY-MM}/graphql.json`; a version outside the quarterly pattern is 404;
  `X-Shopify-Access-Token` must match, else 401 `{"errors": "[API] Invalid API key or access
  token (unrecognized login or wrong password)"}`.
- Every document is validated against Shopify's real Admin schema (2025-04 SDL), exactly as
  Shopify rejects an invalid one, then executed against it with in-memory products and orders.
- Calculated query cost: scalars and enums 0, objects 1, a connection 2 + `first` x the cost
  of its node, `nodes(ids:)` len(ids) x the node's cost, an abstract type the most expensive of
  its selections, a mutation field 10. A connection needs `first` or `last` (at most 250); an
  array input holds at most 250 items; a query may cost at most 1000 (`MAX_COST_EXCEEDED`).
- A leaky bucket per app and store (`maximum_available`, `restore_rate`, both configurable):
  the requested cost must be available or the answer is `THROTTLED`, no `data`, HTTP 200 or
  429 (`throttled_status`); a query is charged its actual cost. Every answer carries
  `extensions.cost { requestedQueryCost actualQueryCost throttleStatus {...} }`.
- Search syntax on `products(query:)`/`orders(query:)`: `field:value`, `field:>value`,
  `field:<value`, `'quoted values'`, free text against the title, terms joined by AND;
  `sortKey: RELEVANCE` orders by how often the free-text words occur (then by id).
- Webhooks: `webhookSubscriptionCreate(topic:, webhookSubscription: {callbackUrl:})` (or the
  `subscribe_webhook` helper); a product created, updated or deleted (by a mutation or a test
  helper) is POSTed to each subscriber of `products/create|update|delete` as Shopify's REST
  JSON, signed `X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of the raw body with the app
  secret), with `X-Shopify-Topic`, `-Shop-Domain`, `-Webhook-Id` (the same on retries),
  `-Triggered-At`, `-API-Version`; retried with backoff until answered 2xx.
Assumed where the documentation says nothing precise: the wording of the page-size error; a
callback URL may be plain `http://` (Shopify wants HTTPS; the loopback has no certificate).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import shlex
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    SelectionSetNode,
    build_schema,
    execute,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
    parse,
    validate,
    value_from_ast_untyped,
)
from graphql.language import FragmentSpreadNode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.emulators import Fault, injected
from tests.emulators.webhooks import Outbox, Render

SDL = Path(__file__).resolve().parents[3] / "shared" / "upstreams" / "shopify-admin-2025-04.graphql"
MAX_QUERY_COST = 1000
MAX_ARRAY = 250
MUTATION_COST = 10
_VERSION = re.compile(r"\d{4}-(01|04|07|10)")
_GID = re.compile(r"gid://shopify/(Product|Order)/(\d+)")


@cache
def admin_schema() -> GraphQLSchema:
    if not SDL.exists():
        raise FileNotFoundError(
            f"Shopify's Admin schema is read from {SDL}: the team's shared/ "
            "folder must sit beside this repository"
        )
    # Shopify's SDL breaks a newer spec rule about deprecations; it is valid as Shopify serves it.
    return build_schema(SDL.read_text(), assume_valid=True)


class ShopifyRejection(Exception):
    def __init__(self, message: str, code: str, **extensions: Any) -> None:
        super().__init__(message)
        self.error = {"message": message, "extensions": {"code": code, **extensions}}


@dataclass
class ShopifyEmulator:
    token: str = "shpat_test_token"
    app_secret: str = "shpss_emulator_app_secret"  # signs webhooks
    shop_domain: str = "one-test.myshopify.com"
    maximum_available: float = 1000.0
    restore_rate: float = 100.0
    throttled_status: int = 200
    products: dict[int, dict[str, Any]] = field(default_factory=dict)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    fault: Fault | None = None
    requests: int = 0
    throttled: int = 0
    documents: list[str] = field(default_factory=list)
    costs: list[int] = field(default_factory=list)  # requested cost of each executed query
    id_batches: list[list[str]] = field(default_factory=list)  # each nodes(ids:) call
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    outbox: Outbox = field(default_factory=Outbox)

    def __post_init__(self) -> None:
        self._available = self.maximum_available
        self._updated = time.monotonic()
        self._lock = threading.RLock()
        self._next_id = 1000
        self.app = Starlette(
            routes=[Route("/admin/api/{version}/graphql.json", self._graphql, methods=["POST"])]
        )

    # -- data ----------------------------------------------------------------------------

    def add_product(
        self,
        title: str,
        *,
        status: str = "ACTIVE",
        vendor: str = "Acme",
        tags: list[str] | None = None,
        prices: tuple[str, ...] = ("10.00",),
        currency: str = "USD",
        updated_at: str | None = None,
    ) -> int:
        id = self._new_id()
        now = updated_at or _now()
        handle = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or f"product-{id}"
        self.products[id] = {
            "id": id,
            "title": title,
            "handle": handle,
            "status": status,
            "vendor": vendor,
            "tags": tags or [],
            "descriptionHtml": f"<p>{title}</p>",
            "productType": "",
            "createdAt": now,
            "updatedAt": now,
            "currency": currency,
            "variants": [
                {"id": self._new_id(), "sku": f"SKU-{id}-{i}", "price": p}
                for i, p in enumerate(prices)
            ],
        }
        self._notify("products/create", self.products[id])
        return id

    def update_product(self, id: int, **fields: Any) -> None:
        """Change a product as a merchant would in the Shopify admin (`title`, `status`,
        `vendor`, `tags`, ...): `products/update` goes to the subscribers."""
        product = self.products[id]
        product.update(fields)
        product["updatedAt"] = _now()
        self._notify("products/update", product)

    def delete_product(self, id: int) -> None:
        self._notify("products/delete", self.products.pop(id))

    def subscribe_webhook(self, topic: str, url: str, api_version: str = "2025-04") -> int:
        """Subscribe `url` to `topic` (e.g. `products/update`), as `webhookSubscriptionCreate`."""
        id = self._new_id()
        now = _now()
        self.subscriptions.append(
            {
                "id": id,
                "topic": topic,
                "callbackUrl": url,
                "apiVersion": api_version,
                "createdAt": now,
                "updatedAt": now,
            }
        )
        return id

    def add_order(self, name: str, total: str, *, currency: str = "USD") -> int:
        id = self._new_id()
        now = _now()
        self.orders[id] = {
            "id": id,
            "name": name,
            "total": total,
            "currency": currency,
            "createdAt": now,
            "updatedAt": now,
            "financial": "PAID",
        }
        return id

    def drain(self) -> None:
        """Empty the bucket, as another app's burst on the same store would."""
        with self._lock:
            self._available = 0.0
            self._updated = time.monotonic()

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # -- the endpoint --------------------------------------------------------------------

    async def _graphql(self, request: Request) -> Response:
        self.requests += 1
        if (faulty := await injected(self.fault)) is not None:
            return faulty
        if not _VERSION.fullmatch(request.path_params["version"]):
            return JSONResponse({"errors": "Not Found"}, 404)
        if request.headers.get("x-shopify-access-token") != self.token:
            return JSONResponse(
                {
                    "errors": "[API] Invalid API key or access token "
                    "(unrecognized login or wrong password)"
                },
                401,
            )
        try:
            body = json.loads(await request.body())
            query, variables = body["query"], body.get("variables") or {}
            assert isinstance(query, str) and isinstance(variables, dict)
        except (ValueError, KeyError, AssertionError, TypeError):
            return JSONResponse({"errors": {"query": "Required parameter missing or invalid"}}, 400)
        self.documents.append(query)
        return JSONResponse(*self._run(query, variables, request.path_params["version"]))

    def _run(
        self, query: str, variables: dict[str, Any], version: str = "2025-04"
    ) -> tuple[dict[str, Any], int]:
        try:
            document = parse(query)
        except GraphQLError as exc:
            return {"errors": [exc.formatted]}, 200
        errors = validate(admin_schema(), document)
        if errors:
            return {"errors": [_shopify_validation_error(e) for e in errors]}, 200
        try:
            requested = query_cost(document, variables)
        except ShopifyRejection as exc:
            return {"errors": [exc.error]}, 200
        if requested > MAX_QUERY_COST:
            message = (
                f"Query cost is {requested}, which exceeds the single query max cost limit "
                f"({MAX_QUERY_COST}). See https://shopify.dev/concepts/about-apis/rate-limits "
                "for more information on how the cost of a query is calculated. To query "
                "larger amounts of data with fewer limits, bulk operations should be used "
                "instead."
            )
            error = {
                "message": message,
                "extensions": {
                    "code": "MAX_COST_EXCEEDED",
                    "cost": requested,
                    "maxCost": MAX_QUERY_COST,
                },
            }
            return {"errors": [error], "extensions": self._cost(requested, 0)}, 200
        with self._lock:
            self._refill()
            if requested > self._available:
                self.throttled += 1
                error = {
                    "message": "Throttled",
                    "extensions": {
                        "code": "THROTTLED",
                        "documentation": "https://shopify.dev/api/usage/rate-limits",
                    },
                }
                return (
                    {"errors": [error], "extensions": self._cost(requested, 0)},
                    self.throttled_status,
                )
            self._available -= requested
        self.costs.append(requested)
        result = execute(
            admin_schema(),
            document,
            root_value=self._root(document, version),
            variable_values=variables,
        )
        assert not asyncio.iscoroutine(result)
        actual = min(requested, query_cost(document, variables, result.data or {}))
        with self._lock:
            self._available = min(self.maximum_available, self._available + requested - actual)
        body: dict[str, Any] = {"data": result.data, "extensions": self._cost(requested, actual)}
        if result.errors:
            body["errors"] = [e.formatted for e in result.errors]
        return body, 200

    def _refill(self) -> None:
        now = time.monotonic()
        self._available = min(
            self.maximum_available, self._available + (now - self._updated) * self.restore_rate
        )
        self._updated = now

    def _cost(self, requested: int, actual: int) -> dict[str, Any]:
        with self._lock:
            self._refill()
            return {
                "cost": {
                    "requestedQueryCost": requested,
                    "actualQueryCost": actual if actual else None,
                    "throttleStatus": {
                        "maximumAvailable": self.maximum_available,
                        "currentlyAvailable": int(self._available),
                        "restoreRate": self.restore_rate,
                    },
                }
            }

    # -- resolvers (graphql-core's default resolver calls these with (info, **args)) -----

    def _root(self, document: DocumentNode, version: str) -> dict[str, Any]:
        return {
            "shop": self._shop(),
            "nodes": lambda info, ids: self._nodes(ids),
            "product": lambda info, id: self._node(id),
            "order": lambda info, id: self._node(id),
            "products": lambda info, **args: _connection(
                [
                    self._product(p)
                    for p in _search(self.products.values(), args.get("query"), args.get("sortKey"))
                ],
                args,
            ),
            "orders": lambda info, **args: _connection(
                [
                    self._order(o)
                    for o in _search(self.orders.values(), args.get("query"), args.get("sortKey"))
                ],
                args,
            ),
            "productsCount": lambda info, **args: {
                "count": len(_search(self.products.values(), args.get("query"))),
                "precision": "EXACT",
            },
            "ordersCount": lambda info, **args: {
                "count": len(_search(self.orders.values(), args.get("query"))),
                "precision": "EXACT",
            },
            "productCreate": lambda info, product=None, **_: self._create(product or {}),
            "productUpdate": lambda info, product=None, **_: self._update(product or {}),
            "productDelete": lambda info, input, **_: self._delete(input),
            "webhookSubscriptionCreate": lambda info, topic, webhookSubscription: self._subscribe(
                topic, webhookSubscription, version
            ),
        }

    def _shop(self) -> dict[str, Any]:
        return {
            "id": "gid://shopify/Shop/1",
            "name": "ONE test shop",
            "myshopifyDomain": self.shop_domain,
            "currencyCode": "USD",
        }

    def _nodes(self, ids: list[str]) -> list[dict[str, Any] | None]:
        self.id_batches.append(list(ids))
        return [self._node(i) for i in ids]

    def _node(self, gid: str) -> dict[str, Any] | None:
        match = _GID.fullmatch(gid)
        if match is None:
            raise GraphQLError(f"Invalid global id '{gid}'")
        kind, id = match.group(1), int(match.group(2))
        if kind == "Product" and id in self.products:
            return self._product(self.products[id])
        if kind == "Order" and id in self.orders:
            return self._order(self.orders[id])
        return None

    def _product(self, p: dict[str, Any]) -> dict[str, Any]:
        prices = sorted(float(v["price"]) for v in p["variants"]) or [0.0]
        money = lambda amount: {"amount": f"{amount:.2f}", "currencyCode": p["currency"]}  # noqa: E731
        variants = [
            {
                "__typename": "ProductVariant",
                "id": f"gid://shopify/ProductVariant/{v['id']}",
                "sku": v["sku"],
                "price": v["price"],
                "title": "Default",
            }
            for v in p["variants"]
        ]
        return {
            "__typename": "Product",
            "id": f"gid://shopify/Product/{p['id']}",
            "legacyResourceId": str(p["id"]),
            "title": p["title"],
            "handle": p["handle"],
            "status": p["status"],
            "vendor": p["vendor"],
            "tags": p["tags"],
            "descriptionHtml": p["descriptionHtml"],
            "productType": p["productType"],
            "createdAt": p["createdAt"],
            "updatedAt": p["updatedAt"],
            "onlineStoreUrl": None,
            "totalInventory": 0,
            "priceRangeV2": {
                "minVariantPrice": money(prices[0]),
                "maxVariantPrice": money(prices[-1]),
            },
            "variants": lambda info, **args: _connection(variants, args),
        }

    def _order(self, o: dict[str, Any]) -> dict[str, Any]:
        money = {"amount": o["total"], "currencyCode": o["currency"]}
        return {
            "__typename": "Order",
            "id": f"gid://shopify/Order/{o['id']}",
            "legacyResourceId": str(o["id"]),
            "name": o["name"],
            "createdAt": o["createdAt"],
            "updatedAt": o["updatedAt"],
            "displayFinancialStatus": o["financial"],
            "totalPriceSet": {"shopMoney": money, "presentmentMoney": money},
        }

    def _create(self, input: dict[str, Any]) -> dict[str, Any]:
        title = (input.get("title") or "").strip()
        if not title:
            return {
                "product": None,
                "userErrors": [{"field": ["title"], "message": "Title can't be blank"}],
            }
        handle = input.get("handle")
        if handle and any(p["handle"] == handle for p in self.products.values()):
            return {
                "product": None,
                "userErrors": [
                    {
                        "field": ["handle"],
                        "message": f"Handle '{handle}' already in use. Provide a new handle.",
                    }
                ],
            }
        id = self.add_product(
            title,
            status=input.get("status") or "ACTIVE",
            vendor=input.get("vendor") or "",
            tags=input.get("tags") or [],
        )
        stored = self.products[id]
        for key in ("descriptionHtml", "productType"):
            if input.get(key) is not None:
                stored[key] = input[key]
        if handle:
            stored["handle"] = handle
        return {"product": self._product(stored), "userErrors": []}

    def _update(self, input: dict[str, Any]) -> dict[str, Any]:
        match = _GID.fullmatch(str(input.get("id", "")))
        stored = self.products.get(int(match.group(2))) if match else None
        if stored is None:
            return {
                "product": None,
                "userErrors": [{"field": ["id"], "message": "Product does not exist"}],
            }
        if "title" in input and not (input["title"] or "").strip():
            return {
                "product": None,
                "userErrors": [{"field": ["title"], "message": "Title can't be blank"}],
            }
        for key in (
            "title",
            "status",
            "vendor",
            "tags",
            "descriptionHtml",
            "productType",
            "handle",
        ):
            if input.get(key) is not None:
                stored[key] = input[key]
        stored["updatedAt"] = _now()
        self._notify("products/update", stored)
        return {"product": self._product(stored), "userErrors": []}

    def _delete(self, input: dict[str, Any]) -> dict[str, Any]:
        match = _GID.fullmatch(str(input.get("id", "")))
        id = int(match.group(2)) if match and match.group(1) == "Product" else None
        if id is None or id not in self.products:
            return {
                "deletedProductId": None,
                "productDeleteOperation": None,
                "shop": self._shop(),
                "userErrors": [{"field": ["id"], "message": "Product does not exist"}],
            }
        self.delete_product(id)
        return {
            "deletedProductId": f"gid://shopify/Product/{id}",
            "productDeleteOperation": None,
            "shop": self._shop(),
            "userErrors": [],
        }

    # -- webhooks ------------------------------------------------------------------------

    def _subscribe(self, topic: str, input: dict[str, Any], version: str) -> dict[str, Any]:
        url = str(input.get("callbackUrl") or "")
        name = topic.lower().replace("_", "/", 1)  # PRODUCTS_UPDATE -> products/update
        error = None
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            error = "Address is invalid"
        elif any(s["topic"] == name and s["callbackUrl"] == url for s in self.subscriptions):
            error = "Address for this topic has already been taken"
        if error is not None:
            return {
                "webhookSubscription": None,
                "userErrors": [{"field": ["webhookSubscription", "callbackUrl"], "message": error}],
            }
        id = self.subscribe_webhook(name, url, version)
        stored = self.subscriptions[-1]
        return {
            "webhookSubscription": {
                "id": f"gid://shopify/WebhookSubscription/{id}",
                "legacyResourceId": str(id),
                "topic": topic,
                "callbackUrl": url,
                "endpoint": {"__typename": "WebhookHttpEndpoint", "callbackUrl": url},
                "format": "JSON",
                "filter": None,
                "includeFields": [],
                "metafieldNamespaces": [],
                "metafields": [],
                "apiVersion": {"handle": version, "displayName": version, "supported": True},
                "createdAt": stored["createdAt"],
                "updatedAt": stored["updatedAt"],
            },
            "userErrors": [],
        }

    def _notify(self, topic: str, product: dict[str, Any]) -> None:
        """Send `topic` about `product` to its subscribers, in the background."""
        payload = {"id": product["id"]} if topic == "products/delete" else _rest_product(product)
        body = json.dumps(payload).encode()
        signature = base64.b64encode(
            hmac.new(self.app_secret.encode(), body, hashlib.sha256).digest()
        ).decode()
        for subscription in self.subscriptions:
            if subscription["topic"] != topic:
                continue
            headers = {
                "Content-Type": "application/json",
                "X-Shopify-Topic": topic,
                "X-Shopify-Hmac-Sha256": signature,
                "X-Shopify-Shop-Domain": self.shop_domain,
                "X-Shopify-API-Version": subscription["apiVersion"],
                "X-Shopify-Webhook-Id": str(uuid.uuid4()),
                "X-Shopify-Event-Id": str(uuid.uuid4()),
                "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
            }
            self.outbox.send(subscription["callbackUrl"], _same(body, headers))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _same(body: bytes, headers: dict[str, str]) -> Render:
    """Shopify retries a delivery as it was first sent, webhook id and all."""
    return lambda attempt: (body, headers)


def _rest_time(value: str) -> str:
    return value.replace("Z", "+00:00")


def _rest_product(p: dict[str, Any]) -> dict[str, Any]:
    """A product as Shopify's webhooks carry it: the REST Admin API's representation."""
    gid = f"gid://shopify/Product/{p['id']}"
    return {
        "admin_graphql_api_id": gid,
        "body_html": p["descriptionHtml"],
        "created_at": _rest_time(p["createdAt"]),
        "handle": p["handle"],
        "id": p["id"],
        "product_type": p["productType"],
        "published_at": _rest_time(p["createdAt"]) if p["status"] == "ACTIVE" else None,
        "template_suffix": None,
        "title": p["title"],
        "updated_at": _rest_time(p["updatedAt"]),
        "vendor": p["vendor"],
        "status": p["status"].lower(),
        "published_scope": "global",
        "tags": ", ".join(p["tags"]),
        "variants": [
            {
                "admin_graphql_api_id": f"gid://shopify/ProductVariant/{v['id']}",
                "id": v["id"],
                "product_id": p["id"],
                "title": "Default Title",
                "price": v["price"],
                "sku": v["sku"],
                "created_at": _rest_time(p["createdAt"]),
                "updated_at": _rest_time(p["updatedAt"]),
            }
            for v in p["variants"]
        ],
        "options": [],
        "images": [],
        "image": None,
        "media": [],
        "variant_gids": [
            {
                "admin_graphql_api_id": f"gid://shopify/ProductVariant/{v['id']}",
                "updated_at": _rest_time(p["updatedAt"]),
            }
            for v in p["variants"]
        ],
    }


def _shopify_validation_error(error: GraphQLError) -> dict[str, Any]:
    formatted = dict(error.formatted)
    code = "undefinedField" if error.message.startswith("Cannot query field") else "validationError"
    formatted["extensions"] = {"code": code}
    return formatted


def _connection(items: list[dict[str, Any]], args: dict[str, Any]) -> dict[str, Any]:
    start = 0
    if args.get("after"):
        try:
            last = base64.b64decode(args["after"]).decode()
            start = next(i for i, item in enumerate(items) if item["id"] == last) + 1
        except (ValueError, StopIteration, UnicodeDecodeError):
            raise GraphQLError("Invalid cursor for current pagination sort.") from None
    if args.get("reverse"):
        items = list(reversed(items))
    page = items[start : start + int(args.get("first") or args.get("last") or 0)]
    cursor = lambda item: base64.b64encode(item["id"].encode()).decode()  # noqa: E731
    return {
        "edges": [{"cursor": cursor(i), "node": i} for i in page],
        "nodes": page,
        "pageInfo": {
            "hasNextPage": start + len(page) < len(items),
            "hasPreviousPage": start > 0,
            "startCursor": cursor(page[0]) if page else None,
            "endCursor": cursor(page[-1]) if page else None,
        },
    }


def _search(records: Any, query: str | None, sort_key: str | None = None) -> list[dict[str, Any]]:
    found = sorted(records, key=lambda r: r["id"])
    if not query:
        return found
    try:
        terms = shlex.split(query)
    except ValueError:
        terms = query.split()
    words: list[str] = []
    for term in terms:
        if term.upper() == "AND":
            continue
        key, sep, value = term.partition(":")
        if not sep:
            words.append(term.lower())
            found = [r for r in found if term.lower() in r.get("title", r.get("name", "")).lower()]
            continue
        op = value[:1] if value[:1] in "<>" else ""
        value = value[len(op) :].strip("'\"")
        found = [r for r in found if _matches(r, key.lower(), op, value)]
    if sort_key == "RELEVANCE" and words:
        # Our stand-in for Shopify's relevance: the more often the words occur in the title
        # and description, the better; then by id.
        def occurrences(record: dict[str, Any]) -> int:
            text = f"{record.get('title', '')} {record.get('descriptionHtml', '')}".lower()
            return sum(text.count(w) for w in words)

        found.sort(key=lambda r: -occurrences(r))
    return found


def _matches(record: dict[str, Any], key: str, op: str, value: str) -> bool:
    field_of = {
        "updated_at": "updatedAt",
        "created_at": "createdAt",
        "title": "title",
        "vendor": "vendor",
        "status": "status",
        "tag": "tags",
        "handle": "handle",
        "product_type": "productType",
        "name": "name",
    }
    have = record.get(field_of.get(key, key))
    if have is None:
        return False
    if key == "status":
        return str(have).lower() in {v.strip().lower() for v in value.split(",")}
    if key == "tag":
        return value.lower() in (t.lower() for t in have)
    if op == ">":
        return str(have) > value
    if op == "<":
        return str(have) < value
    return str(have).lower() == value.lower() if key != "title" else value.lower() in have.lower()


# -- calculated query cost ---------------------------------------------------------------


def query_cost(document: DocumentNode, variables: dict[str, Any], data: Any = None) -> int:
    """The cost of the document's operation by Shopify's published rules: requested (sized by
    `first` and `ids`), or, given the result `data`, actual (sized by what came back)."""
    schema = admin_schema()
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    if operation.operation.value == "mutation":
        return MUTATION_COST * len(operation.selection_set.selections)
    walker = _CostWalker(fragments, variables)
    return walker.children(operation.selection_set, schema.query_type, data)


@dataclass
class _CostWalker:
    fragments: dict[str, FragmentDefinitionNode]
    variables: dict[str, Any]

    def children(self, selection_set: SelectionSetNode | None, parent: Any, data: Any) -> int:
        if selection_set is None:
            return 0
        total = 0
        options: list[int] = []
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                key = (selection.alias or selection.name).value
                child = data.get(key) if isinstance(data, dict) else None
                total += self.field(selection, parent, child, sized=isinstance(data, dict))
            else:
                fragment = (
                    self.fragments[selection.name.value]
                    if isinstance(selection, FragmentSpreadNode)
                    else selection
                )
                condition = fragment.type_condition
                target = admin_schema().get_type(condition.name.value) if condition else parent
                options.append(self.children(fragment.selection_set, target, data))
        return total + (max(options) if options else 0)

    def field(self, node: FieldNode, parent: Any, data: Any, *, sized: bool) -> int:
        name = node.name.value
        if name.startswith("__"):
            return 0
        named = get_named_type(parent.fields[name].type)
        if is_leaf_type(named):
            return 0
        args = {
            a.name.value: value_from_ast_untyped(a.value, self.variables)
            for a in node.arguments or ()
        }
        for key, value in args.items():
            if isinstance(value, list) and len(value) > MAX_ARRAY:
                raise ShopifyRejection(
                    f"The input array size of {len(value)} is greater than the maximum allowed "
                    f"of {MAX_ARRAY}.",
                    "MAX_INPUT_SIZE_EXCEEDED",
                    argumentName=key,
                )
        if named.name.endswith("Connection"):
            return self.connection(node, named, args, data, sized=sized)
        own = 1 + self.children(node.selection_set, named, None)
        if is_abstract_type(named) and isinstance(args.get("ids"), list):
            count = len([d for d in data if d]) if sized and isinstance(data, list) else None
            return (len(args["ids"]) if count is None else count) * own
        return own

    def connection(
        self, node: FieldNode, named: Any, args: dict[str, Any], data: Any, *, sized: bool
    ) -> int:
        size = args.get("first") or args.get("last")
        if not size:
            raise ShopifyRejection(
                "you must provide one of first or last", "BAD_REQUEST", field=node.name.value
            )
        if int(size) > MAX_ARRAY:
            raise ShopifyRejection(
                f"The page size is too large: {size} is over {MAX_ARRAY}.",
                "BAD_REQUEST",
                field=node.name.value,
            )
        if sized:
            edges = data.get("edges") if isinstance(data, dict) else None
            size = len(edges) if isinstance(edges, list) else 0
        node_type = get_named_type(get_named_type(named.fields["edges"].type).fields["node"].type)
        node_cost = 0
        for selection in node.selection_set.selections if node.selection_set else ():
            if isinstance(selection, FieldNode) and selection.name.value in ("edges", "nodes"):
                inner = selection.selection_set
                if selection.name.value == "edges" and inner is not None:
                    inner = next(
                        (
                            s.selection_set
                            for s in inner.selections
                            if isinstance(s, FieldNode) and s.name.value == "node"
                        ),
                        None,
                    )
                node_cost = max(node_cost, 1 + self.children(inner, node_type, None))
        return 2 + int(size) * node_cost
