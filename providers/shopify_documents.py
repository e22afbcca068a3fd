"""The GraphQL documents the Shopify provider sends. Each is valid against Shopify's 2025-04
Admin schema and uses no field deprecated there, so it stays valid in later versions
(`tests/providers/test_shopify.py` checks them all against the real SDL)."""

from __future__ import annotations

PRODUCT = """
  id legacyResourceId title handle status vendor tags productType createdAt updatedAt
  priceRangeV2 {
    minVariantPrice { amount currencyCode }
    maxVariantPrice { amount currencyCode }
  }
"""
PRODUCT_DETAIL = (
    PRODUCT
    + """
  descriptionHtml
  variants(first: 10) { edges { node { id sku price } } }
"""
)
ORDER = """
  id legacyResourceId name createdAt updatedAt displayFinancialStatus
  totalPriceSet { shopMoney { amount currencyCode } }
"""
USER_ERRORS = "userErrors { field message }"


def nodes(*, detail: bool) -> str:
    product = PRODUCT_DETAIL if detail else PRODUCT
    return f"""query Nodes($ids: [ID!]!) {{
  nodes(ids: $ids) {{ __typename ... on Product {{ {product} }} ... on Order {{ {ORDER} }} }}
}}"""


def page(field: str, *, detail: bool, relevance: bool = False) -> str:
    """`products` or `orders`, one page, with the count of everything the search matches;
    `relevance`: best match of a text search first (Shopify's `sortKey: RELEVANCE`)."""
    node = (PRODUCT_DETAIL if detail else PRODUCT) if field == "products" else ORDER
    sort = ", sortKey: RELEVANCE" if relevance else ""
    return f"""query Page($first: Int!, $after: String, $query: String) {{
  {field}(first: $first, after: $after, query: $query{sort}) {{
    edges {{ cursor node {{ {node} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
  {field}Count(query: $query) {{ count }}
}}"""


CREATE = f"""mutation Create($product: ProductCreateInput!) {{
  productCreate(product: $product) {{ product {{ {PRODUCT_DETAIL} }} {USER_ERRORS} }}
}}"""
UPDATE = f"""mutation Update($product: ProductUpdateInput!) {{
  productUpdate(product: $product) {{ product {{ {PRODUCT_DETAIL} }} {USER_ERRORS} }}
}}"""
SHOP = "query Shop { shop { name } }"

ALL = {
    "nodes": nodes(detail=True),
    "nodes_summary": nodes(detail=False),
    "products": page("products", detail=True),
    "products_summary": page("products", detail=False),
    "orders": page("orders", detail=False),
    "products_search": page("products", detail=True, relevance=True),
    "products_search_summary": page("products", detail=False, relevance=True),
    "orders_search": page("orders", detail=False, relevance=True),
    "create": CREATE,
    "update": UPDATE,
    "shop": SHOP,
}
