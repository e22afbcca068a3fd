"""Federated `search`: the native store (full-text index), the real WordPress and the Shopify
and Notion emulators in one query, fused by reciprocal rank, paged without repeats or gaps."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from providers.records import ThingStatus
from providers.wordpress import WordPressConfig, WordPressProvider
from tests.backends import Backends, four_backends, route_and_connect
from tests.conftest import Api, app_settings, seeded_api
from tests.emulators import Fault
from tests.emulators.shopify import admin_schema
from tests.wordpress import WordPress

SEARCH = """query($q: String!, $first: Int!, $after: String, $types: [String!]) {
  search(query: $q, first: $first, after: $after, types: $types) {
    edges { cursor node { provider score snippet thing { id name type provider } } }
    pageInfo { hasNextPage endCursor }
    failures { provider source code retryable }
  }
}"""


@pytest.fixture
def backends(wordpress: WordPress) -> Iterator[Backends]:
    admin_schema()  # the emulator's first answer builds Shopify's schema: not in a deadline
    with four_backends(wordpress) as backends:
        yield backends


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with seeded_api(create_app(app_settings(tmp_path, search_deadline_seconds=1.5))) as api:
        yield api


def word() -> str:
    """A word no other test's data holds (WordPress is shared by the whole run)."""
    return "teak" + uuid.uuid4().hex[:8]


def wordpress_post(backends: Backends, name: str, content: str) -> str:
    async def create() -> str:
        async with httpx.AsyncClient() as client:
            config = WordPressConfig.model_validate(backends.wordpress.config())
            post = await WordPressProvider("acme", config, client).create(
                type="blog_post",
                name=name,
                status=ThingStatus.PUBLISHED,
                properties={"content": content},
            )
        return f"thing.wordpress.{post.id}"

    return asyncio.run(create())


def setup(api: Api, backends: Backends, term: str) -> dict[str, set[str]]:
    """`term` in 4 native courses, 3 WordPress posts, 3 Shopify products, 3 Notion pages of
    the configured database, and in places search must not reach."""

    async def route() -> None:
        org = await api.store.organizations.get_by_slug("acme")
        assert org is not None
        await route_and_connect(api.store, org.id, backends)

    api.run(route)
    expected: dict[str, set[str]] = {"native": set(), "wordpress": set(), "shopify": set()}
    for i in range(4):
        made = api.data(
            """mutation($input: CreateThingInput!) { createThing(input: $input) { id } }""",
            {
                "input": {
                    "type": "course",
                    "name": f"Joinery {i}",
                    "properties": {"content": f"Working {term} by hand, lesson {i}. " * (i + 1)},
                }
            },
        )
        expected["native"].add(made["createThing"]["id"])
    for i in range(3):
        expected["wordpress"].add(
            wordpress_post(backends, f"{term.title()} bench {i}", f"<p>A {term} bench.</p>")
        )
    for i in range(3):
        product = backends.shopify.add_product(f"{term.title()} chair {i}", prices=("99.00",))
        expected["shopify"].add(f"thing.shopify.product-{product}")
    expected["notion"] = {
        f"thing.notion.{backends.notion.add_page(backends.notion_database, f'{term} oil {i}')}"
        for i in range(3)
    }
    # Not to be found: a page of another Notion database, another organization's thing.
    other = backends.notion.add_database("Someone else's notes")
    backends.notion.add_page(other, f"{term} elsewhere")
    api.data(
        'mutation($n: String!) { createThing(input: {type: "course", name: $n}) { id } }',
        {"n": f"{term} secret"},
        org="globex",
    )
    return expected


def search(api: Api, term: str, first: int, after: str | None = None, **kw: Any) -> Any:
    variables = {"q": term, "first": first, "after": after, **kw}
    return api.post(SEARCH, variables)


def every_page(api: Api, term: str, first: int) -> list[dict[str, Any]]:
    hits: list[dict[str, Any]] = []
    after = None
    for _ in range(20):
        body = search(api, term, first, after)
        assert "errors" not in body, body["errors"]
        page = body["data"]["search"]
        hits += [e["node"] | {"cursor": e["cursor"]} for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return hits
        after = page["pageInfo"]["endCursor"]
    raise AssertionError("the search never ended")


def test_one_search_fuses_all_four_backends_and_pages_without_repeats_or_gaps(
    api: Api, backends: Backends
) -> None:
    term = word()
    expected = setup(api, backends, term)
    everything = set().union(*expected.values())

    whole = every_page(api, term, 50)
    assert len(whole) == len(everything) == 13
    assert {h["thing"]["id"] for h in whole} == everything
    assert {h["provider"] for h in whole} == {"native", "wordpress", "shopify", "notion"}
    for hit in whole:
        assert hit["thing"]["id"] in expected[hit["provider"]]
        assert hit["thing"]["provider"] == hit["provider"]
        assert "<mark>" in hit["snippet"] and term in hit["snippet"].lower(), hit
    scores = [h["score"] for h in whole]
    assert scores == sorted(scores, reverse=True)
    # Reciprocal rank fusion: the first of each backend's list scores 1/61.
    assert scores[:4] == [pytest.approx(1 / 61)] * 4

    # Paged three at a time: the same hits in the same order, none twice, none missing.
    paged = every_page(api, term, 3)
    assert [h["thing"]["id"] for h in paged] == [h["thing"]["id"] for h in whole]
    # Resuming from any hit's cursor continues right after it.
    middle = paged[5]["cursor"]
    rest = search(api, term, 50, middle)["data"]["search"]["edges"]
    assert [e["node"]["thing"]["id"] for e in rest] == [h["thing"]["id"] for h in whole[6:]]

    # The native store ranks by BM25: the course saying the word most often comes first.
    native = [h["thing"]["name"] for h in whole if h["provider"] == "native"]
    assert native == ["Joinery 3", "Joinery 2", "Joinery 1", "Joinery 0"]

    # `types` narrows the backends asked.
    body = search(api, term, 50, types=["product", "course"])
    found = {e["node"]["provider"] for e in body["data"]["search"]["edges"]}
    assert found == {"native", "shopify"}


def test_a_failing_or_slow_backend_leaves_only_its_hits_out(api: Api, backends: Backends) -> None:
    term = word()
    expected = setup(api, backends, term)
    backends.shopify.fault = Fault(status=401, body=b'{"errors":"[API] Invalid API key"}')
    backends.notion.fault = Fault(delay=3.0)  # past the 1.5 s deadline
    body = search(api, term, 50)
    page = body["data"]["search"]
    found = {e["node"]["thing"]["id"] for e in page["edges"]}
    assert found == expected["native"] | expected["wordpress"]
    failures = {f["provider"]: f for f in page["failures"]}
    assert failures["shopify"]["code"] == "PROVIDER_UNAUTHORIZED"
    assert failures["notion"]["code"] == "PROVIDER_UNAVAILABLE"
    assert failures["notion"]["retryable"] is True
    errors = {e["extensions"]["provider"]: e for e in body["errors"]}
    assert set(errors) == {"shopify", "notion"}
    assert all(e["path"] == ["search"] for e in errors.values())
    assert errors["shopify"]["extensions"]["code"] == "PROVIDER_UNAUTHORIZED"
    # The backend back: the next search has its hits again.
    backends.shopify.fault = backends.notion.fault = None
    assert {h["thing"]["id"] for h in every_page(api, term, 50)} == set().union(*expected.values())


def test_an_edited_wordpress_post_is_found_by_its_new_text_not_its_old(
    api: Api, backends: Backends
) -> None:
    old, new = word(), word()
    setup(api, backends, old)
    post = wordpress_post(backends, "Garden diary", f"<p>Notes on {old} oil.</p>")
    assert post in {h["thing"]["id"] for h in every_page(api, old, 50)}
    api.data(
        """mutation($id: ID!, $p: JSON!) {
          updateThing(id: $id, input: {properties: $p}) { id }
        }""",
        {"id": post, "p": {"content": f"<p>Notes on {new} wax.</p>"}},
    )
    assert post not in {h["thing"]["id"] for h in every_page(api, old, 50)}
    hits = every_page(api, new, 50)
    assert [h["thing"]["id"] for h in hits] == [post]
    assert f"<mark>{new}</mark>" in hits[0]["snippet"]


def test_search_of_the_native_store_updates_with_its_writes(api: Api) -> None:
    term, other = word(), word()
    made = api.data(
        """mutation($n: String!) { createThing(input: {type: "course", name: $n}) { id } }""",
        {"n": f"{term} basics"},
    )["createThing"]["id"]
    assert [h["thing"]["id"] for h in every_page(api, term, 10)] == [made]
    api.data(
        """mutation($id: ID!, $n: String!) { updateThing(id: $id, input: {name: $n}) { id } }""",
        {"id": made, "n": f"{other} basics"},
    )
    assert every_page(api, term, 10) == []
    assert [h["thing"]["id"] for h in every_page(api, other, 10)] == [made]
    # Markup in the text never comes back as markup; only the marks are HTML.
    api.data(
        """mutation($n: String!) { createThing(input: {type: "course", name: $n}) { id } }""",
        {"n": f"{term} <b>bold</b> & co"},
    )
    snippet = every_page(api, term, 10)[0]["snippet"]
    assert "<b>" not in snippet and "&amp; co" in snippet
    assert snippet.startswith(f"<mark>{term}</mark>")


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"q": "  ", "first": 5}, "query"),
        ({"q": "***", "first": 5}, "query"),
        ({"q": "teak", "first": 0}, "first"),
        ({"q": "teak", "first": 101}, "first"),
        ({"q": "teak", "first": 5, "after": "not-a-cursor"}, "after"),
        ({"q": "teak", "first": 5, "types": ["no such type"]}, None),
    ],
)
def test_bad_input_is_a_clear_error(api: Api, variables: dict[str, Any], field: str) -> None:
    body = api.post(SEARCH, variables)
    assert body["data"] is None or body["data"]["search"] is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    if field:
        assert error["extensions"]["field"] == field


def test_a_cursor_of_another_search_is_refused(api: Api) -> None:
    for i in range(3):
        api.data(
            """mutation($n: String!) { createThing(input: {type: "course", name: $n}) { id } }""",
            {"n": f"Lathe {i}"},
        )
    cursor = search(api, "lathe", 1)["data"]["search"]["pageInfo"]["endCursor"]
    body = search(api, "chisel", 1, cursor)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    # FTS syntax in a query is only words.
    for query in ['"lathe', "(lathe", "lathe*", "-lathe", "lathe:", "^lathe", "lathe'"]:
        body = search(api, query, 10)
        assert "errors" not in body, (query, body)
        assert len(body["data"]["search"]["edges"]) == 3, query


def test_partial_errors_stay_with_their_operation_over_a_websocket(
    api: Api, backends: Backends
) -> None:
    # The operations of a WebSocket share one context: a search's errors must not leak into
    # the next operation's answer.
    term = word()
    setup(api, backends, term)
    backends.shopify.fault = Fault(status=401, body=b'{"errors":"[API] Invalid API key"}')
    init = {"Authorization": f"Bearer {api.token('acme')}"}
    with api.client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": init})
        assert ws.receive_json()["type"] == "connection_ack"
        operations = [
            {"query": SEARCH, "variables": {"q": term, "first": 50}},
            {"query": "{ me { role } }"},
            {"query": SEARCH, "variables": {"q": term, "first": 50}},
        ]
        answers = []
        for i, payload in enumerate(operations):
            ws.send_json({"type": "subscribe", "id": str(i), "payload": payload})
            message = ws.receive_json()
            assert message["type"] == "next" and message["id"] == str(i)
            assert ws.receive_json() == {"type": "complete", "id": str(i)}
            answers.append(message["payload"])
    failed = ["shopify:order", "shopify:product"]  # Shopify's two types, each a source
    assert sorted(e["extensions"]["source"] for e in answers[0]["errors"]) == failed
    assert answers[1] == {"data": {"me": {"role": "ORG_OWNER"}}}
    assert sorted(e["extensions"]["source"] for e in answers[2]["errors"]) == failed
