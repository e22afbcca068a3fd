"""The indexer over the real app: things' text becomes knowledge chunks as things change
(native writes, upstream writes, upstream change events), edits keep unchanged chunks,
archived and deleted things lose theirs, organizations stay apart; `reindex` from the CLI;
the counters on /metrics; embeddings from the organization's embedding provider."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.demo import seed_demo
from gateway.indexer import Indexer
from gateway.store import started_store
from providers.engine import Cond
from providers.records import Kind
from providers.refs import Ref
from providers.registry import validate_config
from tests.conftest import Api, app_settings, seeded_api
from tests.emulators import Fault, serve
from tests.emulators.embeddings import EmbeddingsEmulator, embedding
from tests.emulators.notion import NotionEmulator
from tests.emulators.shopify import ShopifyEmulator
from tests.providers.test_embeddings import KEY
from tests.providers.test_embeddings import configure as configure_embedder

ROOT = Path(__file__).resolve().parents[2]
CREATE = """mutation($input: CreateThingInput!) { createThing(input: $input) { id } }"""
UPDATE = """mutation($id: ID!, $p: JSON) { updateThing(id: $id, input: {properties: $p}) {
  id } }"""
KNOWLEDGE = """query($id: ID!) { thing(id: $id) { knowledge { id kind text labels } } }"""
NODE = """query($id: ID!) { node(id: $id) { id } }"""


def paragraph(topic: str, sentences: int = 12) -> str:
    return " ".join(
        f"The {topic} note number {i} says something about {topic} and its many uses."
        for i in range(sentences)
    )


ARTICLE = [paragraph(t) for t in ("gardens", "kitchens", "bicycles", "harbours", "violins")]


def indexer(api: Api) -> Indexer:
    found: Indexer = api.client.app.state.indexer  # type: ignore[attr-defined]
    return found


def settle(api: Api) -> None:
    api.run(indexer(api).settle)


def create(api: Api, content: str | None, *, type: str = "blog_post", **props: Any) -> str:
    properties = {**({"content": content} if content is not None else {}), **props}
    input = {"type": type, "name": "Field notes", "properties": properties}
    thing: str = api.data(CREATE, {"input": input})["createThing"]["id"]
    return thing


def knowledge(api: Api, id: str, **kw: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.data(KNOWLEDGE, {"id": id}, **kw)["thing"]["knowledge"]
    return found


def chunks_of(api: Api, id: str) -> list[dict[str, Any]]:
    return [k for k in knowledge(api, id) if "type:blog_post" in k["labels"]]


def acme(api: Api) -> str:
    org = api.run(api.store.organizations.get_by_slug, "acme")
    assert org is not None
    return str(org.id)


def configure(api: Api, provider: str, routes: list[str], **config: Any) -> None:
    """acme's `provider`, saved as it is (no connection test)."""
    api.run(
        api.store.provider_configs.save,
        acme(api),
        actor_ref=None,
        provider=provider,
        config=validate_config(provider, config, routes),
        routes=routes,
    )


def changed_upstream(api: Api, type: str, target: str, thing_type: str) -> None:
    """The event of a change an upstream told of, as a webhook or a poll records it."""
    provider = Ref.parse(target).provider
    api.run(
        api.store.events.append,
        acme(api),
        type,
        actor_ref=None,
        target_ref=target,
        metadata={"provider": provider, "thing_type": thing_type, "source": "webhook"},
    )


def test_a_new_thing_with_text_gets_chunks_linked_to_it(api: Api) -> None:
    settle(api)  # the demo's things
    added = indexer(api).counts.chunks_added
    post = create(api, "<p>Spring is here.</p><p>Tulips &amp; daffodils.</p>", tags=["spring"])
    assert knowledge(api, post) == []  # nothing waits for the indexer
    settle(api)
    [chunk] = knowledge(api, post)
    assert chunk["kind"] == "chunk"
    assert chunk["text"] == "Field notes\n\nSpring is here.\n\nTulips & daffodils."
    assert chunk["labels"] == ["type:blog_post", "provider:native", "status:draft", "tag:spring"]
    assert indexer(api).counts.chunks_added == added + 1


def test_an_edit_replaces_the_changed_chunks_and_keeps_the_others(api: Api) -> None:
    post = create(api, "\n\n".join(ARTICLE))
    settle(api)
    before = chunks_of(api, post)
    assert len(before) >= 4
    assert all(c["text"].count("note number") <= 14 for c in before)  # about 200 tokens each
    edited = list(ARTICLE)
    edited[2] = paragraph("tandems")
    api.data(UPDATE, {"id": post, "p": {"content": "\n\n".join(edited)}})
    settle(api)
    after = chunks_of(api, post)
    kept = {c["id"] for c in before} & {c["id"] for c in after}
    gone = [c for c in before if c["id"] not in kept]
    new = [c for c in after if c["id"] not in kept]
    assert kept and gone and new
    assert all("bicycles" in c["text"] for c in gone)
    assert all("tandems" in c["text"] for c in new)
    assert not any("bicycles" in c["text"] for c in after)
    assert after[0]["text"].startswith("Field notes\n\n")  # in the text's order
    for old in gone:  # a stale chunk is nowhere to be read
        assert api.post(NODE, {"id": old["id"]})["data"]["node"] is None
    for same in kept:
        assert api.data(NODE, {"id": same})["node"] == {"id": same}
    # Indexing the same text again changes nothing.
    added = indexer(api).counts.chunks_added
    api.data(UPDATE, {"id": post, "p": {"unrelated": 1}})
    settle(api)
    assert [c["id"] for c in chunks_of(api, post)] == [c["id"] for c in after]
    assert indexer(api).counts.chunks_added == added


def test_archived_and_deleted_things_lose_their_chunks_not_handwritten_knowledge(
    api: Api,
) -> None:
    post = create(api, "A short note about lighthouses.")
    note = create(api, "Another note, about canals.")
    settle(api)
    retired = indexer(api).counts.chunks_retired
    chunk_rows = api.run(indexed, api)
    label = api.data(
        """mutation($s: ID) { createKnowledge(input: {kind: "label", text: "nautical",
        sourceId: $s}) { id } }""",
        {"s": post},
    )["createKnowledge"]["id"]
    assert len(knowledge(api, post)) == 2
    api.data("mutation($id: ID!) { archiveThing(id: $id) { status } }", {"id": post})
    settle(api)
    assert [k["id"] for k in knowledge(api, post)] == [label]

    # An upstream deletion arrives as an event naming the thing (a webhook, a poll).
    changed_upstream(api, "entity_deleted", note, "blog_post")
    settle(api)
    assert knowledge(api, note) == []
    assert indexer(api).counts.chunks_retired == retired + 2
    assert api.run(indexed, api) == chunk_rows - 2  # deleted from the store, not hidden


def test_other_organizations_never_see_the_chunks(api: Api) -> None:
    post = create(api, "The acme secret recipe uses saffron.")
    settle(api)
    [chunk] = knowledge(api, post)
    assert api.post(NODE, {"id": chunk["id"]}, org="globex")["data"]["node"] is None
    assert api.error(KNOWLEDGE, {"id": post}, org="globex")["extensions"]["code"] == "NOT_FOUND"
    globex = api.run(api.store.organizations.get_by_slug, "globex")
    found = api.run(api.store.knowledge.of_sources, globex.id, [post])
    assert found == {post: []}


def test_a_thing_without_text_costs_no_store_query(api: Api) -> None:
    settle(api)  # the demo data
    create(api, None, type="task")
    before = api.store.engine.queries
    settle(api)
    assert api.store.engine.queries == before


def test_changes_are_coalesced_and_indexed_in_the_background(tmp_path: Path) -> None:
    app = create_app(app_settings(tmp_path))
    app.state.indexer.delay = 0.3
    with seeded_api(app) as api:
        post = create(api, "First draft about otters.")
        api.data(UPDATE, {"id": post, "p": {"content": "Second draft about otters."}})
        api.data(UPDATE, {"id": post, "p": {"content": "Final text about otters."}})
        deadline = time.monotonic() + 10
        while not knowledge(api, post) and time.monotonic() < deadline:
            time.sleep(0.05)
        [chunk] = knowledge(api, post)
        assert chunk["text"] == "Field notes\n\nFinal text about otters."
        settle(api)
        # The drafts were never indexed: nothing was added only to be retired.
        counts = indexer(api).counts
        assert counts.chunks_retired == 0 and counts.chunks_added == api.run(indexed, api)


async def indexed(api: Api) -> int:
    rows = await api.store.engine.find("knowledge", [])
    return sum(1 for r in rows if r.get("position") is not None)


def test_an_upstream_thing_is_indexed_from_its_provider(api: Api) -> None:
    shop = ShopifyEmulator(token="shpat_index")
    number = shop.add_product("Hammock")
    shop.update_product(number, descriptionHtml="<p>A <b>hammock</b> for two.</p>")
    ref = str(Ref(Kind.THING, "shopify", f"product-{number}"))
    with serve(shop.app) as url:
        configure(api, "shopify", ["product"], shop_url=url, access_token="shpat_index")
        changed_upstream(api, "entity_updated", ref, "product")
        settle(api)
        [chunk] = knowledge(api, ref)
        assert chunk["text"] == "Hammock\n\nA hammock for two."
        assert "provider:shopify" in chunk["labels"] and "type:product" in chunk["labels"]
        # A write through the gateway is indexed too.
        api.data(
            'mutation($id: ID!) { updateThing(id: $id, input: {name: "Hammock XL"}) { id } }',
            {"id": ref},
        )
        settle(api)
        [chunk] = knowledge(api, ref)
        assert chunk["text"].startswith("Hammock XL\n\n")
        # A reindex walks the shop's products too, and finds nothing left to do.
        done = api.run(indexer(api).reindex, acme(api))
        assert (done.things, done.total, done.chunks, done.failed) == (10, 10, 0, 0)


def test_a_failure_is_logged_and_the_indexer_goes_on(api: Api) -> None:
    # Notion is not configured for acme: NOT_FOUND, which trying again would not mend.
    gone = str(Ref(Kind.THING, "notion", "0f8fad5b-d9cb-469f-a165-70867728950e"))
    changed_upstream(api, "entity_updated", gone, "document")
    post = create(api, "Still indexed after a failure.")
    settle(api)
    assert indexer(api).counts.failures == 1
    assert len(knowledge(api, post)) == 1


def test_metrics_count_chunks_and_embeddings(api: Api) -> None:
    create(api, "Something to count.")
    settle(api)
    metrics = api.client.get("/metrics").text
    added = indexer(api).counts.chunks_added
    assert f"one_knowledge_chunks_indexed_total {float(added)}" in metrics
    assert "one_knowledge_embeddings_total 0.0" in metrics
    assert "one_knowledge_index_pending 0.0" in metrics
    assert "one_knowledge_reindexed_things_total" in metrics


# -- reindexing ------------------------------------------------------------------------------


def cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args, "--data-dir", str(data_dir)],
        env={**os.environ, "ONE_ENV": "development"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def seed_without_indexing(data_dir: Path) -> None:
    async with started_store(app_settings(data_dir)) as store:
        await seed_demo(store)


def test_reindex_from_the_cli_shows_progress_and_is_idempotent(tmp_path: Path) -> None:
    import asyncio

    asyncio.run(seed_without_indexing(tmp_path))
    first = cli("reindex", "--org", "acme", data_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "reindexing acme" in first.stderr and "things" in first.stderr  # the bar
    # Nine things, three with text (two posts, one document).
    assert first.stdout.strip() == (
        "reindexed 9 things of acme: 3 chunks added, 0 retired, 0 embedded"
    )
    again = cli("reindex", "--org", "acme", data_dir=tmp_path)
    assert again.stdout.strip() == (
        "reindexed 9 things of acme: 0 chunks added, 0 retired, 0 embedded"
    )
    missing = cli("reindex", "--org", "nowhere", data_dir=tmp_path)
    assert missing.returncode == 2 and "no organization with slug 'nowhere'" in missing.stderr


def test_reindex_in_process_counts_its_progress(api: Api) -> None:
    seen: list[tuple[int, int | None]] = []
    done = api.run(
        indexer(api).reindex, acme(api), progress=lambda p: seen.append((p.things, p.total))
    )
    assert done.things == 9 and done.total == 9 and done.failed == 0
    assert seen[-1] == (9, 9)
    assert indexer(api).counts.reindexed == 9 and indexer(api).counts.reindexing == 0
    metrics = api.client.get("/metrics").text
    assert "one_knowledge_reindexed_things_total 9.0" in metrics


# -- embeddings ------------------------------------------------------------------------------


@pytest.fixture
def emulator() -> Iterator[tuple[EmbeddingsEmulator, str]]:
    served = EmbeddingsEmulator(api_key=KEY)
    with serve(served.app) as url:
        yield served, url


def configure_embeddings(api: Api, url: str, model: str) -> None:
    body = configure_embedder(api, url, model=model, dimensions=64)
    assert "errors" not in body, body


async def vectors(api: Api, slug: str) -> dict[str, tuple[str | None, list[float] | None]]:
    org = await api.store.organizations.get_by_slug(slug)
    assert org is not None
    rows = await api.store.engine.find("knowledge", [Cond("org_id", "eq", org.id)])
    return {r["id"]: (r.get("embedding_model"), r.get("embedding")) for r in rows}


def test_chunks_are_embedded_with_the_organizations_model_and_again_when_it_changes(
    api: Api, emulator: tuple[EmbeddingsEmulator, str]
) -> None:
    served, url = emulator
    configure_embeddings(api, url, "text-embedding-3-small")
    post = create(api, "A comfy couch for the garden.")
    settle(api)
    [chunk] = knowledge(api, post)
    found = api.run(vectors, api, "acme")
    assert found[Ref.parse(chunk["id"]).local_id] == (
        "text-embedding-3-small",
        pytest.approx(embedding(chunk["text"], model="text-embedding-3-small", dimensions=64)),
    )
    # Everything the organization knows has a vector of its model now, the demo's too.
    assert {model for model, _ in found.values()} == {"text-embedding-3-small"}
    assert api.run(vectors, api, "globex") and all(
        model is None for model, _ in api.run(vectors, api, "globex").values()
    )
    embedded = indexer(api).counts.embeddings
    assert embedded == len(found)
    # An unchanged chunk is not embedded again.
    calls = len(served.calls)
    api.data(UPDATE, {"id": post, "p": {"unrelated": True}})
    settle(api)
    assert len(served.calls) == calls and indexer(api).counts.embeddings == embedded

    configure_embeddings(api, url, "text-embedding-3-large")  # a model change
    settle(api)
    again = api.run(vectors, api, "acme")
    assert {model for model, _ in again.values()} == {"text-embedding-3-large"}
    assert indexer(api).counts.embeddings == 2 * embedded
    metrics = api.client.get("/metrics").text
    assert f"one_knowledge_embeddings_total {float(2 * embedded)}" in metrics


SEARCH = """query($q: String!, $mode: SearchMode!, $types: [String!]) {
  knowledgeSearch(query: $q, mode: $mode, sourceTypes: $types) { mode hits { score
  knowledge { text labels source { ... on Thing { id } } } } } }"""


def search(api: Api, query: str, mode: str = "HYBRID", **kw: Any) -> dict[str, Any]:
    types = kw.pop("types", None)
    found: dict[str, Any] = api.data(SEARCH, {"q": query, "mode": mode, "types": types}, **kw)[
        "knowledgeSearch"
    ]
    return found


def test_indexed_chunks_are_searched_and_stay_in_their_organization(
    api: Api, emulator: tuple[EmbeddingsEmulator, str]
) -> None:
    post = create(api, "A comfy couch for the garden.")
    settle(api)
    lexical = search(api, "couch")
    assert lexical["mode"] == "LEXICAL"  # no embedding provider: said, not pretended
    assert [h["knowledge"]["source"]["id"] for h in lexical["hits"]] == [post]
    assert search(api, "couch", types=["document"])["hits"] == []
    assert search(api, "sofa", "SEMANTIC")["hits"] == []  # lexically, no such word
    assert search(api, "couch", org="globex")["hits"] == []

    _, url = emulator
    configure_embeddings(api, url, "text-embedding-3-small")
    settle(api)
    semantic = search(api, "cozy sofa", "SEMANTIC")
    assert semantic["mode"] == "SEMANTIC"
    assert semantic["hits"][0]["knowledge"]["source"]["id"] == post
    hybrid = search(api, "garden sofa", "HYBRID", types=["blog_post"])
    assert hybrid["mode"] == "HYBRID"
    assert hybrid["hits"][0]["knowledge"]["source"]["id"] == post
    assert search(api, "cozy sofa", "SEMANTIC", org="globex")["hits"] == []


def test_a_reindex_reads_the_blocks_of_notion_pages(api: Api) -> None:
    notion = NotionEmulator(token="secret_notion_index", rate=1000, burst=1000)
    database = notion.add_database("Docs")
    page = notion.add_page(
        database, "Handbook", tags=["hr"], paragraphs=["Welcome aboard.", "Holidays: 25 days."]
    )
    with serve(notion.app) as url:
        config = {"token": "secret_notion_index", "database_id": database, "base_url": url}
        configure(api, "notion", ["document"], **config)
        done = api.run(indexer(api).reindex, acme(api))
    assert done.failed == 0 and done.total is None  # Notion does not count
    ref = f"thing.notion.{page}"
    [chunk] = api.run(api.store.knowledge.of_sources, acme(api), [ref])[ref]
    assert chunk.text == "Handbook\n\nWelcome aboard.\n\nHolidays: 25 days."
    assert chunk.labels == ["type:document", "provider:notion", "status:published", "tag:hr"]


def test_a_failing_embedding_provider_answers_lexically_and_says_why(
    api: Api, emulator: tuple[EmbeddingsEmulator, str]
) -> None:
    served, url = emulator
    post = create(api, "A comfy couch for the garden.")
    configure_embeddings(api, url, "text-embedding-3-small")
    settle(api)
    served.fault = Fault(status=401, body=b'{"error": {"message": "bad key"}}')
    body = api.post(SEARCH, {"q": "couch", "mode": "SEMANTIC", "types": None})
    found = body["data"]["knowledgeSearch"]
    assert found["mode"] == "LEXICAL"  # never a pseudo-semantic answer
    assert [h["knowledge"]["source"]["id"] for h in found["hits"]] == [post]
    [error] = body["errors"]
    assert error["path"] == ["knowledgeSearch"]
    assert error["extensions"]["code"] == "PROVIDER_UNAUTHORIZED"
    assert KEY not in str(body)
