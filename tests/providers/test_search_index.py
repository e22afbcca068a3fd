"""The store engines' search indexes, `Engine.search_text` and `Engine.nearest`, over every
engine as the store conformance suite runs (tests/providers/conftest.py): straight on the
engines, rows written (and deleted) with `Engine.transaction`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from providers.engine import Cond, Engine, Row, Where
from providers.mongodb import MongoEngine
from providers.native import NativeStore
from providers.records import utcnow
from providers.sqlite import SQLiteEngine
from tests.mongomock_async import AsyncMongomockClient

ORG, OTHER = "org-a", "org-b"


@pytest.fixture
def engine(store: NativeStore) -> Engine:
    return store.engine


def thing(id: str, name: str, *, org: str = ORG, **properties: Any) -> Row:
    now = utcnow()
    return {
        "id": id,
        "org_id": org,
        "type": "document",
        "name": name,
        "status": "draft",
        "properties": properties,
        "created_at": now,
        "updated_at": now,
    }


def chunk(
    id: str,
    text: str = "",
    *,
    org: str = ORG,
    vector: list[float] | None = None,
    model: str | None = "m",
    kind: str = "chunk",
    labels: tuple[str, ...] = (),
    source_ref: str | None = None,
) -> Row:
    return {
        "id": id,
        "org_id": org,
        "kind": kind,
        "text": text,
        "labels": list(labels),
        "embedding": vector,
        "embedding_model": model if vector is not None else None,
        "source_ref": source_ref,
        "created_at": utcnow(),
    }


async def add(engine: Engine, table: str, *rows: Row) -> None:
    async with engine.transaction() as tx:
        for row in rows:
            await tx.insert(table, row)


async def found(
    engine: Engine,
    query: str,
    *,
    table: str = "things",
    org: str = ORG,
    limit: int = 50,
    offset: int = 0,
) -> list[str]:
    where: Where = [Cond("org_id", "eq", org)]
    hits = await engine.search_text(table, where, query, limit=limit, offset=offset)
    return [h.row["id"] for h in hits]


async def nearest(
    engine: Engine,
    vector: list[float],
    *,
    model: str = "m",
    exact: bool = False,
    limit: int = 10,
    where: Where | None = None,
) -> list[str]:
    scope: Where = [Cond("org_id", "eq", ORG), *(where or [])]
    hits = await engine.nearest("knowledge", scope, vector, model=model, limit=limit, exact=exact)
    return [h.row["id"] for h in hits]


def finds_prefixes(engine: Engine) -> bool:
    """MongoDB's `$text` matches whole words only."""
    return getattr(engine, "text_search", None) != "$text"


# -- full text ----------------------------------------------------------------------------------


async def test_every_word_of_the_query_is_required(engine: Engine) -> None:
    await add(
        engine,
        "things",
        thing("t1", "Red apple", content="<p>A crisp fruit</p>"),
        thing("t2", "Green apple"),
        thing("t3", "Red pepper", description="hot"),
    )
    assert sorted(await found(engine, "apple")) == ["t1", "t2"]
    assert await found(engine, "red apple") == ["t1"]
    assert await found(engine, "apple RED") == ["t1"]
    assert await found(engine, "crisp red") == ["t1"]  # name and properties together
    assert await found(engine, "red hot") == ["t3"]
    assert await found(engine, "red banana") == []


async def test_case_diacritics_and_prefixes(engine: Engine) -> None:
    await add(engine, "things", thing("t1", "Crème Brûlée", content="a hammock for two"))
    await add(engine, "things", thing("t2", "snake_case x²", content="cafe\u0301 東京タワー"))
    assert await found(engine, "creme BRULEE") == ["t1"]
    assert await found(engine, "CRÈME") == ["t1"]
    assert await found(engine, "cre\u0300me") == ["t1"]  # the accent as a mark of its own
    assert await found(engine, "café x²") == ["t2"]
    assert await found(engine, "東京タワー") == ["t2"]
    if finds_prefixes(engine):
        assert await found(engine, "brûlée hamm") == ["t1"]
        assert await found(engine, "hamm two") == []  # only the last word is a prefix
        assert await found(engine, "snake") == await found(engine, "case snake_case") == ["t2"]


async def test_more_mentions_a_shorter_text_and_the_title_rank_higher(engine: Engine) -> None:
    filler = " ".join(f"word{i}" for i in range(40))
    await add(
        engine,
        "things",
        thing("a", "Notes", content="apple apple apple"),
        thing("b", "Notes", content="apple pie with flour sugar and butter"),
        thing("c", "Notes", content=f"apple {filler}"),
        thing("d", "Apple", content="pie"),
        *(thing(f"x{i}", "Notes", content=f"pear {i}") for i in range(6)),
    )
    hits = await engine.search_text("things", [Cond("org_id", "eq", ORG)], "apple", limit=10)
    assert [h.row["id"] for h in hits] == ["d", "a", "b", "c"]
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0


async def test_pages_follow_one_order_and_ties_go_by_id(engine: Engine) -> None:
    await add(engine, "things", *(thing(f"t{i}", "Same words here") for i in (3, 1, 4, 0, 2)))
    everything = await found(engine, "same words")
    assert everything == ["t0", "t1", "t2", "t3", "t4"]
    pages = [await found(engine, "same words", limit=2, offset=o) for o in (0, 2, 4, 6)]
    assert pages == [["t0", "t1"], ["t2", "t3"], ["t4"], []]


async def test_another_organizations_rows_are_never_found(engine: Engine) -> None:
    await add(
        engine,
        "things",
        thing("mine", "Shared secret words"),
        thing("theirs", "Shared secret words", org=OTHER),
    )
    assert await found(engine, "secret") == ["mine"]
    assert await found(engine, "secret", org=OTHER) == ["theirs"]
    assert await found(engine, "secret", org="org-c") == []
    with pytest.raises(ValueError, match="organization"):
        await engine.search_text("things", [], "secret", limit=10)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('"', []),
        ("*", []),
        ("-", []),
        (":", []),
        ("^", []),
        ("()", []),
        ("", []),
        ("   ", []),
        ('"apple', ["r1"]),
        ('apple"', ["r1"]),
        ("apple*", ["r1"]),
        ("-apple", ["r1"]),
        ("^apple", ["r1"]),
        ("apple:", ["r1"]),
        ("title:pear", []),  # "title" is a word, and no row has it
        ("apple OR pear", ["r1"]),  # three words: r1 holds "or", r2 no "apple"
        ("NEAR(apple pear)", ["r1"]),  # r1 holds "near"
        ("pear NOT apple", []),
        ("pear AND", []),
        ("pear -tart", ["r2"]),
        ("'; DROP TABLE things; --", []),
    ],
)
async def test_query_syntax_in_user_input_is_only_text(
    engine: Engine, query: str, expected: list[str]
) -> None:
    await add(
        engine,
        "things",
        thing("r1", "Apple pie", content="apple or pear near the tree"),
        thing("r2", "Pear tart", content="pear only"),
    )
    assert sorted(await found(engine, query)) == expected


async def test_an_update_drops_the_old_words_and_indexes_the_new(engine: Engine) -> None:
    await add(engine, "things", thing("t1", "Alpha", content="bravo charlie"))
    async with engine.transaction() as tx:
        await tx.update("things", "t1", {"properties": {"content": "delta"}})
    assert await found(engine, "bravo") == []
    assert await found(engine, "delta") == ["t1"]
    assert await found(engine, "alpha delta") == ["t1"]  # the name it kept
    async with engine.transaction() as tx:
        await tx.update("things", "t1", {"name": "Echo"})
    assert await found(engine, "alpha") == []
    assert await found(engine, "echo delta") == ["t1"]
    async with engine.transaction() as tx:
        await tx.update("things", "t1", {"name": "Foxtrot", "properties": {"body": "golf"}})
        await tx.update("things", "t1", {"status": "active"})  # no text: the index stays
    assert await found(engine, "echo") == [] and await found(engine, "delta") == []
    assert await found(engine, "foxtrot golf") == ["t1"]
    await add(engine, "knowledge", chunk("k1", "india juliet"))
    async with engine.transaction() as tx:
        await tx.update("knowledge", "k1", {"text": "kilo lima"})
    assert await found(engine, "juliet", table="knowledge") == []
    assert await found(engine, "kilo", table="knowledge") == ["k1"]


async def test_a_rolled_back_write_is_never_indexed(engine: Engine) -> None:
    await add(engine, "things", thing("t0", "Original words"))
    with pytest.raises(RuntimeError):
        async with engine.transaction() as tx:
            await tx.insert("things", thing("t1", "Zulu"))
            await tx.update("things", "t0", {"name": "Yankee"})
            await tx.insert("knowledge", chunk("k1", "xray", vector=[1.0, 0.0]))
            raise RuntimeError("rolled back")
    assert await found(engine, "zulu") == []
    assert await found(engine, "yankee") == []
    assert await found(engine, "original words") == ["t0"]
    assert await found(engine, "xray", table="knowledge") == []
    assert await nearest(engine, [1.0, 0.0], exact=True) == []


async def test_html_is_indexed_as_its_text(engine: Engine) -> None:
    content = '<p class="lead">Hello <a href="https://x.test/zebra">world</a></p><script>alert(1)</script>'
    await add(engine, "things", thing("t1", "Page", content=content))
    assert await found(engine, "hello world") == ["t1"]
    for markup in ("class", "lead", "href", "zebra", "alert", "script"):
        assert await found(engine, markup) == [], markup


async def test_snippets_are_escaped_with_the_matches_marked(engine: Engine) -> None:
    text = 'Tom & Jerry <3 hammocks <script>alert("x")</script> and a &lt;script&gt; tag'
    words = " ".join(f"w{i}" for i in range(60))
    await add(
        engine,
        "knowledge",
        chunk("k1", text),
        chunk("k2", "one two three hammock four"),
        chunk("k3", words.replace("w30", "hammock")),
    )
    where: Where = [Cond("org_id", "eq", ORG)]
    hits = {
        h.row["id"]: h for h in await engine.search_text("knowledge", where, "hammock", limit=5)
    }
    if finds_prefixes(engine):  # $text does not find "hammocks" for "hammock"
        assert hits["k1"].snippet == (
            "Tom &amp; Jerry &lt;3 <mark>hammocks</mark> and a &lt;script&gt; tag"
        )
    assert hits["k2"].snippet == "one two three <mark>hammock</mark> four"
    long = hits["k3"].snippet
    assert long.startswith("…") and long.endswith("…") and "<mark>hammock</mark>" in long
    assert 20 <= len(long.split()) <= 30
    script = await engine.search_text("knowledge", where, "script tag", limit=5)
    assert [h.row["id"] for h in script] == ["k1"]
    assert "<script" not in script[0].snippet and "alert" not in script[0].snippet
    assert "&lt;<mark>script</mark>&gt; <mark>tag</mark>" in script[0].snippet


async def test_mongodb_says_how_it_searches() -> None:
    engine = MongoEngine(AsyncMongomockClient(), "one_test")
    await engine.start()
    # mongomock has neither $text nor Atlas Search: the engine scans, and says so.
    assert (engine.text_search, engine.vector_search) == ("scan", "scan")
    await engine.close()


async def test_mongodb_indexes_the_rows_written_before_it_kept_their_text() -> None:
    client = AsyncMongomockClient()
    await client["one_test"]["things"].insert_one({**thing("old", "Ancient words"), "_id": "old"})
    engine = MongoEngine(client, "one_test")
    await engine.start()
    assert await found(engine, "ancient") == ["old"]
    assert "_fts" not in (await engine.find("things", [Cond("id", "eq", "old")]))[0]
    await engine.close()


async def test_sqlite_indexes_the_rows_of_an_older_database(tmp_path: Path) -> None:
    engine = SQLiteEngine(tmp_path / "one.db")
    await engine.start()
    await add(engine, "things", thing("old", "Ancient words"))
    await add(engine, "knowledge", chunk("k", "old chunk", vector=[1.0, 0.0]))

    def downgrade(conn: Any) -> None:
        for name in ("things_fts", "knowledge_fts", "knowledge_vectors"):
            conn.execute(f"DROP TABLE {name}")
        conn.execute("PRAGMA user_version=6")

    await engine._run(engine._writer, downgrade)
    await engine.close()
    engine = SQLiteEngine(tmp_path / "one.db")
    await engine.start()
    assert await found(engine, "ancient") == ["old"]
    assert await nearest(engine, [1.0, 0.1], exact=True) == ["k"]
    assert await nearest(engine, [1.0, 0.1]) == ["k"]
    await engine.close()


# -- vectors ------------------------------------------------------------------------------------


def at(degrees: float) -> list[float]:
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


@pytest.mark.parametrize("exact", [True, False])
async def test_nearest_by_cosine_first(engine: Engine, exact: bool) -> None:
    angles = {"a0": 0, "a20": 20, "a45": 45, "a90": 90, "a135": 135, "a180": 180}
    await add(engine, "knowledge", *(chunk(k, vector=at(d)) for k, d in angles.items()))
    await add(engine, "knowledge", chunk("scaled", vector=[10.0, 0.0]))  # length is not distance
    where: Where = [Cond("org_id", "eq", ORG)]
    hits = await engine.nearest("knowledge", where, at(5), model="m", limit=10, exact=exact)
    ids = [h.row["id"] for h in hits]
    assert set(ids[:2]) == {"a0", "scaled"}  # the same distance, give or take a rounding
    assert ids[2:] == ["a20", "a45", "a90", "a135", "a180"]
    for hit in hits:
        expected = 1 - math.cos(math.radians(angles.get(hit.row["id"], 0) - 5))
        assert hit.distance == pytest.approx(expected, abs=1e-5)
    assert hits[-1].distance == pytest.approx(2 - (1 - math.cos(math.radians(5))), abs=1e-5)
    assert set(await nearest(engine, at(5), exact=exact, limit=2)) == {"a0", "scaled"}


@pytest.mark.parametrize("exact", [True, False])
async def test_nearest_keeps_to_the_model_and_its_dimensions(engine: Engine, exact: bool) -> None:
    await add(
        engine,
        "knowledge",
        chunk("m-2", vector=[1.0, 0.0]),
        chunk("m-3", vector=[1.0, 0.0, 0.0]),
        chunk("n-2", vector=[1.0, 0.0], model="n"),
        chunk("n-256", vector=[1.0] * 256, model="n"),
        chunk("none", "no vector"),
        {**chunk("nameless", vector=[1.0, 0.0]), "embedding_model": None},
        chunk("theirs", vector=[1.0, 0.0], org=OTHER),
    )
    assert await nearest(engine, [1.0, 0.1], exact=exact) == ["m-2"]
    assert await nearest(engine, [1.0, 0.1, 0.0], exact=exact) == ["m-3"]
    assert await nearest(engine, [1.0, 0.1], model="n", exact=exact) == ["n-2"]
    assert await nearest(engine, [1.0] * 256, model="n", exact=exact) == ["n-256"]
    assert await nearest(engine, [1.0, 0.1, 0.0, 0.0], exact=exact) == []
    assert await nearest(engine, [1.0, 0.1], model="other", exact=exact) == []
    with pytest.raises(ValueError, match="organization"):
        await engine.nearest("knowledge", [], [1.0, 0.0], model="m", limit=5, exact=exact)


@pytest.mark.parametrize("exact", [True, False])
async def test_nearest_applies_the_rest_of_where(engine: Engine, exact: bool) -> None:
    await add(
        engine,
        "knowledge",
        chunk("c0", vector=at(0), labels=("tag:x",), source_ref="thing.native.s1"),
        chunk("l10", vector=at(10), kind="label", source_ref="thing.native.s1"),
        chunk("c20", vector=at(20), labels=("tag:y",), source_ref="thing.native.s2"),
        chunk("l30", vector=at(30), kind="label", labels=("tag:x",)),
    )
    labels: Where = [Cond("kind", "eq", "label")]
    assert await nearest(engine, at(0), exact=exact, where=labels) == ["l10", "l30"]
    source: Where = [Cond("source_ref", "eq", "thing.native.s1")]
    assert await nearest(engine, at(0), exact=exact, where=source) == ["c0", "l10"]
    tagged: Where = [Cond("labels", "contains", "tag:x"), Cond("kind", "in", {"chunk", "label"})]
    assert await nearest(engine, at(25), exact=exact, where=tagged) == ["l30", "c0"]
    assert await nearest(engine, at(25), exact=exact, where=tagged, limit=1) == ["l30"]


async def test_the_vector_index_follows_updates(engine: Engine) -> None:
    await add(engine, "knowledge", chunk("k1", vector=at(0)), chunk("k2", vector=at(40)))
    async with engine.transaction() as tx:
        await tx.update("knowledge", "k1", {"embedding": at(180)})
    assert await nearest(engine, at(0), exact=True) == ["k2", "k1"]
    assert await nearest(engine, at(0)) == ["k2", "k1"]
    async with engine.transaction() as tx:
        await tx.update("knowledge", "k2", {"embedding": at(0), "embedding_model": "n"})
    assert await nearest(engine, at(0)) == ["k1"]
    assert await nearest(engine, at(0), model="n") == ["k2"]
    with pytest.raises(RuntimeError):
        async with engine.transaction() as tx:
            await tx.update("knowledge", "k1", {"embedding": at(0), "embedding_model": "n"})
            raise RuntimeError("rolled back")
    assert await nearest(engine, at(0), model="n", exact=True) == ["k2"]
    assert await nearest(engine, at(0), exact=True) == ["k1"]


# -- delete -------------------------------------------------------------------------------------


async def test_a_delete_takes_the_row_out_of_both_indexes(engine: Engine) -> None:
    await add(
        engine,
        "knowledge",
        chunk("k1", "alpha bravo", vector=at(0)),
        chunk("k2", "alpha charlie", vector=at(40)),
    )
    await add(engine, "things", thing("t1", "Alpha thing"), thing("t2", "Alpha other"))
    async with engine.transaction() as tx:
        await tx.delete("knowledge", "k1")
        await tx.delete("things", "t1")
        assert await tx.find("knowledge", [Cond("id", "eq", "k1")]) == []  # seen inside
    assert await engine.find("knowledge", [Cond("id", "in", {"k1", "k2"})]) != []
    assert [r["id"] for r in await engine.find("knowledge", [Cond("org_id", "eq", ORG)])] == ["k2"]
    assert await engine.count("things", [Cond("org_id", "eq", ORG)]) == 1
    assert await found(engine, "alpha", table="knowledge") == ["k2"]
    assert await found(engine, "bravo", table="knowledge") == []
    assert await found(engine, "alpha") == ["t2"]
    assert await nearest(engine, at(0), exact=True) == ["k2"]
    assert await nearest(engine, at(0)) == ["k2"]
    # The id is free again, and a row made under it is indexed anew.
    await add(engine, "knowledge", chunk("k1", "delta", vector=at(90)))
    assert await found(engine, "delta", table="knowledge") == ["k1"]
    assert await found(engine, "bravo", table="knowledge") == []
    assert await nearest(engine, at(90), exact=True) == ["k1", "k2"]


async def test_a_rolled_back_delete_leaves_the_row_and_its_indexes(engine: Engine) -> None:
    await add(engine, "knowledge", chunk("k1", "alpha bravo", vector=at(0)))
    with pytest.raises(RuntimeError):
        async with engine.transaction() as tx:
            await tx.delete("knowledge", "k1")
            await tx.insert("knowledge", chunk("k2", "charlie", vector=at(10)))
            raise RuntimeError("rolled back")
    [row] = await engine.find("knowledge", [Cond("org_id", "eq", ORG)])
    assert row["id"] == "k1" and row["text"] == "alpha bravo" and row["embedding"] == at(0)
    assert "_fts" not in row
    assert await found(engine, "bravo", table="knowledge") == ["k1"]
    assert await found(engine, "charlie", table="knowledge") == []
    assert await nearest(engine, at(0), exact=True) == ["k1"]
    assert await nearest(engine, at(0)) == ["k1"]


async def test_deleting_a_missing_row_does_nothing(engine: Engine) -> None:
    await add(engine, "knowledge", chunk("k1", "alpha", vector=at(0)))
    async with engine.transaction() as tx:
        await tx.delete("knowledge", "nope")
        await tx.delete("knowledge", "k1")
        await tx.delete("knowledge", "k1")  # twice: the second finds nothing
    with pytest.raises(RuntimeError):
        async with engine.transaction() as tx:
            await tx.delete("knowledge", "nope")
            raise RuntimeError("rolled back")  # nothing to put back
    assert await engine.find("knowledge", []) == []
    assert await found(engine, "alpha", table="knowledge") == []


def clustered(rng: np.random.Generator, centers: Any, n: int) -> Any:
    """Points around random centers: what embeddings of texts on a few hundred topics are
    like (independent random vectors, all about equally far apart, are no such thing)."""
    picked = centers[rng.integers(0, len(centers), n)]
    return picked + rng.standard_normal((n, centers.shape[1])) / np.sqrt(centers.shape[1])


async def test_the_approximate_nearest_finds_most_of_the_exact(tmp_path: Path) -> None:
    engine = SQLiteEngine(tmp_path / "one.db")
    await engine.start()
    rng = np.random.default_rng(12)
    centers = rng.standard_normal((100, 128))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    vectors = clustered(rng, centers, 5_000)
    rows = [chunk(f"k{i:05d}", vector=v.tolist()) for i, v in enumerate(vectors)]
    async with engine.transaction() as tx:
        await tx.insert_many("knowledge", rows)
    recalls = []
    for query in clustered(rng, centers, 20):
        exact = await nearest(engine, query.tolist(), exact=True)
        approximate = await nearest(engine, query.tolist())
        assert len(exact) == len(approximate) == 10
        recalls.append(len(set(exact) & set(approximate)) / 10)
    assert float(np.mean(recalls)) >= 0.95
    await engine.close()
