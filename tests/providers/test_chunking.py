"""Things as text, and text as chunks: sizes, overlap, stable ids, HTML made text; and chunks
as knowledge on every engine: replaced in place, the stale deleted, embedded per model."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from providers.engine import Cond
from providers.errors import InvalidInputError
from providers.mongodb import MongoEngine
from providers.native import NativeStore
from providers.native.chunking import (
    MAX_CHUNKS,
    Chunk,
    chunks,
    count_tokens,
    html_text,
    thing_labels,
    thing_text,
)
from providers.native.knowledge import Replaced
from providers.records import Kind, Thing, ThingStatus, utcnow
from providers.refs import native_ref
from providers.sqlite import SQLiteEngine
from tests.mongomock_async import AsyncMongomockClient
from tests.providers.test_store_conformance import make_org


def sentences(start: int, count: int, words: int = 8) -> str:
    return " ".join(
        f"Sentence {i} " + " ".join(f"w{i}x{j}" for j in range(words - 3)) + "."
        for i in range(start, start + count)
    )


def split(text: str, size: int = 200, overlap: int = 40) -> list[Chunk]:
    return chunks(text, org_id="org", source_ref="thing.native.a", size=size, overlap=overlap)


def test_tokens_are_words_and_punctuation() -> None:
    assert count_tokens("Hello, world! It's 2025.") == 9  # Hello , world ! It ' s 2025 .
    assert count_tokens("  ") == 0


def test_chunks_hold_whole_sentences_up_to_the_size() -> None:
    text = sentences(0, 60)  # 60 sentences of 9 tokens
    found = split(text, size=50, overlap=10)
    assert [c.position for c in found] == list(range(len(found)))
    assert all(c.tokens <= 50 and c.tokens == count_tokens(c.text) for c in found)
    assert all(c.text.startswith("Sentence") and c.text.endswith(".") for c in found)
    assert found[0].text.startswith("Sentence 0 ") and found[-1].text.endswith("w59x4.")
    # Together they hold every sentence, in order.
    seen = [s for c in found for s in c.text.split(". ")]
    numbers = [int(s.split()[1]) for s in seen]
    assert sorted(set(numbers)) == list(range(60))
    assert numbers == sorted(numbers)


def test_each_chunk_begins_with_the_last_sentences_of_the_one_before() -> None:
    found = split(sentences(0, 60), size=50, overlap=20)
    for before, after in itertools.pairwise(found):
        last_two = ". ".join(before.text.split(". ")[-2:])
        assert after.text.startswith(last_two), (before.text, after.text)
    # Without overlap, nothing is repeated.
    plain = split(sentences(0, 60), size=50, overlap=0)
    assert sum(c.tokens for c in plain) == count_tokens(sentences(0, 60))


def test_a_sentence_longer_than_a_chunk_is_cut_between_tokens() -> None:
    long = " ".join(f"word{i}" for i in range(500)) + "."
    found = split(long, size=100, overlap=20)
    assert all(c.tokens <= 100 for c in found)
    assert found[0].text.startswith("word0 ") and found[-1].text.endswith("word499.")
    # Cut into pieces of `overlap` tokens: each chunk repeats the previous one's last piece.
    assert found[1].text.split()[0] == found[0].text.split()[-20]


def test_chunks_end_at_paragraphs_when_they_are_half_full() -> None:
    paragraphs = [sentences(10 * p, 4) for p in range(6)]  # 36 tokens each
    found = split("\n\n".join(paragraphs), size=100, overlap=0)
    for chunk in found:
        assert chunk.text.endswith(".") and chunk.text.split()[-1].endswith("x4.")
    # Two paragraphs (72 tokens) fit; a third would not: each chunk is two whole paragraphs.
    assert [c.text for c in found] == ["\n\n".join(paragraphs[i : i + 2]) for i in (0, 2, 4)]


def test_ids_are_stable_and_change_only_with_their_chunk() -> None:
    paragraphs = [sentences(10 * p, 6) for p in range(8)]
    before = split("\n\n".join(paragraphs), size=60, overlap=10)
    assert [c.id for c in before] == [c.id for c in split("\n\n".join(paragraphs), 60, 10)]
    assert len({c.id for c in before}) == len(before)
    edited = list(paragraphs)
    edited[3] = edited[3].replace("Sentence 32", "Sentence thirty-two")
    after = split("\n\n".join(edited), size=60, overlap=10)
    changed = {c.id for c in after} - {c.id for c in before}
    assert changed and all("thirty-two" in c.text for c in after if c.id in changed)
    assert len(changed) <= 2
    # The id names the organization and the source too.
    other = chunks("\n\n".join(paragraphs), org_id="org2", source_ref="thing.native.a", size=60)
    assert not {c.id for c in other} & {c.id for c in before}


def test_a_repeated_passage_gets_an_id_each_time() -> None:
    text = "\n\n".join(["The same words again and again."] * 3)
    found = split(text, size=8, overlap=0)
    assert len(found) == 3 and len({c.id for c in found}) == 3


def test_no_text_no_chunks_and_the_cap() -> None:
    assert split("") == [] and split(" \n\n ") == [] and split("— …") == []
    huge = " ".join(["word"] * 10) + ". "
    assert len(split(huge * (MAX_CHUNKS * 2), size=10, overlap=0)) == MAX_CHUNKS
    with pytest.raises(ValueError):
        split("text", size=10, overlap=10)


def test_html_becomes_text_with_its_paragraphs() -> None:
    html = (
        "<h2>Title</h2><p>First &amp; <b>bold</b>\n   paragraph.<br>Next line</p>"
        "<ul><li>one</li><li>two</li></ul><script>alert('x')</script><style>p{}</style>"
        "<p>Caf&eacute; &#8212; done</p>"
    )
    assert html_text(html) == (
        "Title\n\nFirst & bold paragraph.\nNext line\n\none\ntwo\n\nCafé — done"
    )


def thing(provider: str, properties: dict[str, object], name: str = "Post") -> Thing:
    return Thing(
        id="x",
        org_id="org",
        type="blog_post",
        name=name,
        status=ThingStatus.PUBLISHED,
        properties=properties,
        provider=provider,
    )


def test_thing_text_of_each_provider() -> None:
    # WordPress: rendered HTML; the excerpt is the content's start, said once.
    post = thing(
        "wordpress",
        {
            "content": "<p>Spring is here.</p>\n<p>Flowers.</p>",
            "excerpt": "<p>Spring is [&hellip;]</p>",
        },
    )
    assert thing_text(post) == "Post\n\nSpring is here.\n\nFlowers."
    # Shopify: the description's HTML.
    product = thing("shopify", {"description_html": "<p>A <em>comfy</em> couch</p>", "tags": []})
    assert thing_text(product) == "Post\n\nA comfy couch"
    # Notion: the page's blocks, one paragraph each (loaded with detail).
    page = thing(
        "notion", {"content": "First block\n\nSecond block", "notion": {"Status": "Draft"}}
    )
    assert thing_text(page) == "Post\n\nFirst block\n\nSecond block"
    # Native: any of the text properties, plain or HTML; other properties are not text.
    native = thing(
        "native", {"description": "Plain  words\n\nhere", "body": "<p>Body</p>", "sku": "X"}
    )
    assert thing_text(native) == "Post\n\nBody\n\nPlain words\n\nhere"
    # No text: nothing to index, not even the name.
    assert thing_text(thing("native", {"price": 3, "content": "  "})) == ""


def test_labels_say_where_a_chunk_came_from() -> None:
    tagged = thing("shopify", {"tags": ["summer", " Sale ", 3, "", "x" * 300, "bad\u200btag"]})
    assert thing_labels(tagged) == [
        "type:blog_post",
        "provider:shopify",
        "status:published",
        "tag:summer",
        "tag:Sale",
    ]


# -- chunks as knowledge, on every engine ----------------------------------------------------


async def org_with_post(store: NativeStore, slug: str = "acme") -> tuple[str, str]:
    org, owner = await make_org(store, slug)
    post = await store.things.create(org.id, actor_ref=owner, type="blog_post", name="Post")
    return org.id, native_ref(Kind.THING, post.id)


async def test_replacing_chunks_keeps_unchanged_rows_and_deletes_the_others(
    store: NativeStore,
) -> None:
    org, ref = await org_with_post(store)
    kb = store.knowledge
    hand = await kb.create(org, actor_ref=None, kind="label", text="by hand", source_ref=ref)
    text = "\n\n".join(sentences(10 * p, 6) for p in range(5))
    first = chunks(text, org_id=org, source_ref=ref, size=60, overlap=0)
    labels = ["type:blog_post", "provider:native"]
    assert await kb.replace_chunks(org, ref, first, labels) == Replaced(len(first), 0, 0)
    assert await kb.replace_chunks(org, ref, first, labels) == Replaced(0, len(first), 0)
    vectors = [(first[0].id, [1.0, 0.0]), (first[1].id, [0.0, 1.0])]
    assert await kb.set_embeddings(org, vectors, "m1") == 2

    edited = text.replace("Sentence 0 ", "Sentence zero ")
    second = chunks(edited, org_id=org, source_ref=ref, size=60, overlap=0)
    assert second[0].id != first[0].id and second[1:] == first[1:]
    replaced = await kb.replace_chunks(org, ref, second, [*labels, "status:published"])
    assert replaced == Replaced(1, len(first) - 1, 1)
    found = (await kb.of_sources(org, [ref]))[ref]
    assert found[0] == hand  # written by hand: left, and first
    assert [k.id for k in found[1:]] == [c.id for c in second]
    assert all(k.labels == [*labels, "status:published"] for k in found[1:])
    assert await kb.get_many(org, [first[0].id]) == [None]
    assert await store.engine.find("knowledge", [Cond("id", "eq", first[0].id)]) == []
    [kept] = await kb.get_many(org, [first[1].id])
    assert kept is not None and kept.embedding == [0.0, 1.0]  # kept, with its vector
    where = [Cond("org_id", "eq", org)]
    deleted = await store.engine.nearest("knowledge", where, [1.0, 0.0], model="m1", limit=5)
    assert [h.row["id"] for h in deleted] == [first[1].id]  # the deleted one's vector went

    # The old text back: its chunk is added again, to be embedded again.
    assert await kb.replace_chunks(org, ref, first, labels) == Replaced(1, len(first) - 1, 1)
    [row] = await store.engine.find("knowledge", [Cond("id", "eq", first[0].id)])
    assert row["kind"] == "chunk" and row["position"] == 0 and row["embedding"] is None
    assert first[0].id in {k.id for k in await kb.missing_embeddings(org, "m1", limit=100)}
    assert await kb.remove_chunks(org, ref) == len(first)
    assert (await kb.of_sources(org, [ref]))[ref] == [hand]
    left = await store.engine.find("knowledge", [Cond("source_ref", "eq", ref)])
    assert [r["id"] for r in left] == [hand.id]


async def test_chunks_retired_by_an_older_version_are_deleted_at_start(tmp_path: Path) -> None:
    # Stale chunks were once kept, as knowledge of kind "retired", and left out of reads.
    now = utcnow()
    rows = [
        {"id": id, "org_id": "o", "kind": kind, "text": f"{kind} text", "labels": []}
        | {"source_ref": "thing.native.t", "created_at": now, "position": 0}
        for id, kind in (("old", "retired"), ("live", "chunk"))
    ]
    sqlite = SQLiteEngine(tmp_path / "one.db")
    await sqlite.start()
    async with sqlite.transaction() as tx:
        await tx.insert_many("knowledge", rows)
    await sqlite._run(sqlite._writer, lambda conn: conn.execute("PRAGMA user_version=7"))
    await sqlite.close()
    client = AsyncMongomockClient()
    for row in rows:
        await client["one_test"]["knowledge"].insert_one({**row, "_id": row["id"]})
    for engine in (SQLiteEngine(tmp_path / "one.db"), MongoEngine(client, "one_test")):
        await engine.start()
        assert [r["id"] for r in await engine.find("knowledge", [])] == ["live"]
        hits = await engine.search_text("knowledge", [Cond("org_id", "eq", "o")], "text", limit=5)
        assert [h.row["id"] for h in hits] == ["live"]
        await engine.close()


async def test_embeddings_are_missing_until_made_by_the_current_model(store: NativeStore) -> None:
    org, ref = await org_with_post(store)
    other, other_ref = await org_with_post(store, "globex")
    kb = store.knowledge
    mine = chunks(sentences(0, 30), org_id=org, source_ref=ref, size=50)
    await kb.replace_chunks(org, ref, mine, [])
    await kb.replace_chunks(
        other, other_ref, chunks("Theirs.", org_id=other, source_ref=other_ref), []
    )
    missing = await kb.missing_embeddings(org, "m1", limit=100)
    assert {k.id for k in missing} == {c.id for c in mine}
    assert len(await kb.missing_embeddings(org, "m1", limit=2)) == 2
    theirs = (await kb.missing_embeddings(other, "m1", limit=10))[0].id
    pairs = [(k.id, [0.5, 0.5]) for k in missing] + [(theirs, [9.0, 9.0])]
    assert await kb.set_embeddings(org, pairs, "m1") == len(mine)  # not another's
    assert await kb.missing_embeddings(org, "m1", limit=100) == []
    assert [k.id for k in await kb.missing_embeddings(other, "m1", limit=10)] == [theirs]
    # Another model: all of them again.
    assert len(await kb.missing_embeddings(org, "m2", limit=100)) == len(mine)


async def test_search_by_words_meaning_or_both_with_labels_and_source_types(
    store: NativeStore,
) -> None:
    org, post = await org_with_post(store)
    other, other_post = await org_with_post(store, "globex")
    kb = store.knowledge
    doc = await store.things.create(org, actor_ref=None, type="document", name="Doc")
    doc_ref = native_ref(Kind.THING, doc.id)
    texts = {
        post: "A comfy couch for the garden. Cushions included.",
        doc_ref: "Garden tools: a rake and a spade.",
        other_post: "A garden couch, elsewhere.",
    }
    for source, text in texts.items():
        owner_org = other if source == other_post else org
        type = "document" if source == doc_ref else "blog_post"
        found = chunks(text, org_id=owner_org, source_ref=source)
        await kb.replace_chunks(owner_org, source, found, [f"type:{type}", "tag:Café"])
    hits, mode = await kb.search(org, "garden", first=10)
    assert mode == "LEXICAL" and {k.source_ref for k, _ in hits} == {post, doc_ref}
    assert all(score > 0 for _, score in hits)
    hits, _ = await kb.search(org, "garden", first=10, source_types=["document"])
    assert [k.source_ref for k, _ in hits] == [doc_ref]
    hits, _ = await kb.search(org, "garden", first=10, labels=["tag:Café", "type:blog_post"])
    assert [k.source_ref for k, _ in hits] == [post]
    assert (await kb.search(org, "garden", first=10, labels=["tag:cafe"]))[0] == []
    assert (await kb.search(org, "garden", first=0))[0] == []

    # Without a vector, SEMANTIC and HYBRID answer lexically, and say so.
    assert (await kb.search(org, "garden", mode="SEMANTIC", first=10))[1] == "LEXICAL"
    ids = {k.id: k for k, _ in (await kb.search(org, "garden", first=10))[0]}
    couch, tools = (next(k for k in ids.values() if k.source_ref == s) for s in (post, doc_ref))
    await kb.set_embeddings(org, [(couch.id, [1.0, 0.0]), (tools.id, [0.0, 1.0])], "m1")
    hits, mode = await kb.search(
        org, "sofa", mode="SEMANTIC", first=10, vector=[0.9, 0.1], model="m1"
    )
    assert mode == "SEMANTIC" and [k.id for k, _ in hits] == [couch.id, tools.id]
    assert hits[0][1] > hits[1][1]
    assert (await kb.search(org, "sofa", mode="SEMANTIC", first=10, vector=[1, 0], model="m2"))[
        0
    ] == []  # another model's vectors are not comparable
    hits, mode = await kb.search(
        org, "spade", mode="HYBRID", first=10, vector=[0.9, 0.1], model="m1"
    )
    # Fused: first in one list and second in the other beats second in one alone.
    assert mode == "HYBRID" and [k.id for k, _ in hits] == [tools.id, couch.id]
    assert hits[0][1] == pytest.approx(1 / 61 + 1 / 62) and hits[1][1] == pytest.approx(1 / 61)
    with pytest.raises(InvalidInputError):
        await kb.search(org, "garden", mode="FUZZY", first=10)  # type: ignore[arg-type]
