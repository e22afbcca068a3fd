"""Shopify's answers as we read them (validated), and products and orders as things.

Every answer is an envelope (`data`, `errors`, `extensions.cost`); `data` is read with the
model of the document that asked, so an answer of the wrong shape is a bad response.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from providers.records import Thing, ThingStatus
from providers.upstream import Answer, UtcDatetime

NAME = "shopify"
D = TypeVar("D")
TO_LIFECYCLE = {
    "DRAFT": ThingStatus.DRAFT,
    "ACTIVE": ThingStatus.PUBLISHED,
    "ARCHIVED": ThingStatus.ARCHIVED,
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class GraphQLError(_Model):
    message: str = ""
    extensions: dict[str, Any] | None = None

    @property
    def code(self) -> str:
        value = (self.extensions or {}).get("code")
        return value if isinstance(value, str) else ""


class Envelope(_Model):
    data: dict[str, Any] | None = None
    # A list of GraphQL errors; Shopify's HTTP-level errors are a string or an object.
    errors: list[GraphQLError] | str | dict[str, Any] | None = None
    extensions: dict[str, Any] | None = None

    @property
    def cost(self) -> dict[str, Any]:
        cost = (self.extensions or {}).get("cost")
        return cost if isinstance(cost, dict) else {}

    def codes(self) -> list[str]:
        return [e.code for e in self.errors] if isinstance(self.errors, list) else []


class _Money(_Model):
    amount: float
    currencyCode: str


class _PriceRange(_Model):
    minVariantPrice: _Money
    maxVariantPrice: _Money


class _Variant(_Model):
    id: str
    sku: str | None = None
    price: float


class _VariantEdge(_Model):
    node: _Variant


class _Variants(_Model):
    edges: list[_VariantEdge]


class Product(_Model):
    id: str = Field(pattern=r"^gid://shopify/Product/[0-9]{1,20}$")
    title: str
    handle: str
    status: str
    vendor: str
    tags: list[str]
    productType: str | None = None
    createdAt: UtcDatetime | None = None
    updatedAt: UtcDatetime | None = None
    priceRangeV2: _PriceRange
    descriptionHtml: str | None = None
    variants: _Variants | None = None


class _ShopMoney(_Model):
    shopMoney: _Money


class Order(_Model):
    id: str = Field(pattern=r"^gid://shopify/Order/[0-9]{1,20}$")
    name: str
    createdAt: UtcDatetime | None = None
    updatedAt: UtcDatetime | None = None
    displayFinancialStatus: str | None = None
    totalPriceSet: _ShopMoney


class _PageInfo(_Model):
    hasNextPage: bool
    endCursor: str | None = None


class _Edge(_Model, Generic[D]):
    cursor: str
    node: D


class _Connection(_Model, Generic[D]):
    edges: list[_Edge[D]]
    pageInfo: _PageInfo


class _Count(_Model):
    count: int


class Nodes(_Model):
    nodes: list[Product | Order | None]


class Products(_Model):
    connection: _Connection[Product] = Field(alias="products")
    count: _Count | None = Field(default=None, alias="productsCount")


class Orders(_Model):
    connection: _Connection[Order] = Field(alias="orders")
    count: _Count | None = Field(default=None, alias="ordersCount")


class _UserError(_Model):
    field: list[str] | None = None
    message: str = ""


class Payload(_Model):
    product: Product | None = None
    userErrors: list[_UserError] = []


class Created(_Model):
    productCreate: Payload


class Updated(_Model):
    productUpdate: Payload


class _Shop(_Model):
    name: str


class ShopName(_Model):
    shop: _Shop


_ENVELOPE = TypeAdapter(Envelope)


@dataclass(frozen=True, slots=True)
class Result(Generic[D]):
    """An answer: its envelope, and its `data` read with the document's model (None when
    the answer carries errors instead)."""

    envelope: Envelope
    data: D | None


_READERS: dict[type[Any], Callable[[Answer], Any]] = {}


def reader(model: type[D]) -> Callable[[Answer], Result[D]]:
    """How to read an answer to a document whose `data` is a `model` (made once a model)."""
    found = _READERS.get(model)
    if found is None:
        found = _READERS[model] = _reader(model)
    return found


def _reader(model: type[D]) -> Callable[[Answer], Result[D]]:
    adapter = TypeAdapter(model)

    def read(answer: Answer) -> Result[D]:
        envelope = _ENVELOPE.validate_json(answer.content)
        if envelope.errors or envelope.data is None:
            return Result(envelope, None)
        return Result(envelope, adapter.validate_python(envelope.data))

    return read


def envelope_of(answer: Answer) -> Envelope | None:
    """The envelope of any answer, or None when it is not one."""
    try:
        return _ENVELOPE.validate_json(answer.content)
    except ValueError:
        return None


def node_to_thing(node: Product | Order, org_id: str) -> Thing:
    number = node.id.rsplit("/", 1)[1]
    created = node.createdAt or datetime.now(UTC)
    updated = node.updatedAt or datetime.now(UTC)
    if isinstance(node, Order):
        total = node.totalPriceSet.shopMoney
        return Thing(
            id=f"order-{number}",
            org_id=org_id,
            type="order",
            name=node.name,
            status=ThingStatus.PUBLISHED,
            properties={
                "total": total.amount,
                "currency": total.currencyCode,
                "financial_status": node.displayFinancialStatus,
            },
            provider=NAME,
            external_id=node.id,
            created_at=created,
            updated_at=updated,
        )
    low, high = node.priceRangeV2.minVariantPrice, node.priceRangeV2.maxVariantPrice
    properties: dict[str, Any] = {
        "shopify_status": node.status,
        "handle": node.handle,
        "vendor": node.vendor,
        "tags": node.tags,
        "product_type": node.productType,
        "price": low.amount,
        "max_price": high.amount,
        "currency": low.currencyCode,
    }
    if node.variants is not None:
        variants = [e.node for e in node.variants.edges]
        properties["variants"] = [{"id": v.id, "sku": v.sku, "price": v.price} for v in variants]
        properties["sku"] = next((v.sku for v in variants if v.sku), None)
    if "descriptionHtml" in node.model_fields_set:
        properties["description_html"] = node.descriptionHtml
    return Thing(
        id=f"product-{number}",
        org_id=org_id,
        type="product",
        name=node.title,
        status=TO_LIFECYCLE.get(node.status, ThingStatus.DRAFT),
        properties=properties,
        provider=NAME,
        external_id=node.id,
        created_at=created,
        updated_at=updated,
    )
