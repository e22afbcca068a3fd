"""The MongoDB engine's search (`providers/mongodb.py` runs it), over filters it has made.

- full text: each row of a table with `Table.text` carries `_fts` (title and body, the plain
  text of `indexed_text`, kept up to date by insert and update, gone with a delete, left out
  of every read), under a `$text` index (no language: words are neither stemmed nor dropped;
  case and diacritics aside) weighing the title `TITLE_WEIGHT` times the body. Every word of a
  query is quoted, so all are required, as whole words (`$text` matches no prefixes);
  MongoDB's text score ranks. Where the server has no `$text` (mongomock, some
  MongoDB-compatible services) the search says so (`text_search == "scan"`) and scans the rows
  matching `where` instead, with SQLite's rules (the last word a prefix too) and BM25 computed
  over those rows.
- vectors: `$vectorSearch` on Atlas, for each dimension that has a queryable vector search
  index on `embedding` (named as you like, with `org_id` and `embedding_model` as filter
  fields: `{"fields": [{"type": "vector", "path": "embedding", "numDimensions": 1536,
  "similarity": "cosine"}, {"type": "filter", "path": "org_id"}, {"type": "filter", "path":
  "embedding_model"}]}`); elsewhere an exact comparison with the newest `vector_candidates`
  rows that match (numpy), which is exact only while there are no more (a warning says when
  there were). `vector_search` says which way the search goes.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any, Protocol

import numpy as np
from pymongo import ASCENDING, DESCENDING, TEXT, UpdateOne
from pymongo.errors import OperationFailure

from providers.engine import TABLES, TITLE_WEIGHT, Row, Table, indexed_text, text_columns
from providers.snippets import fold

log = logging.getLogger(__name__)

Doc = dict[str, Any]


def fts(table: Table, row: Row) -> dict[str, str]:
    """What a row's `_fts` holds: the text its full-text index reads."""
    title, body = indexed_text(table, row)
    return {"title": title, "body": body}


def hidden(table: str) -> dict[str, int] | None:
    """The projection that leaves `_fts` out of what is read."""
    return {"_fts": 0} if TABLES[table].text else None


class _Counted(Protocol):
    queries: int  # the engine's count of store round trips


class MongoSearch:
    """The text and vector search of a database; `start` finds out what its server offers.
    Each search takes the MongoDB filter of its `where` and answers documents (with `_id`)."""

    def __init__(self, db: Any, engine: _Counted, *, vector_candidates: int) -> None:
        self._db = db
        self._engine = engine
        self.text_search: str = "$text"  # or "scan"
        self.vector_search: str = "scan"  # or "$vectorSearch" (for `_vector_indexes`' dims)
        self.vector_candidates = vector_candidates
        self._vector_indexes: dict[int, str] = {}  # dimensions -> Atlas vector search index

    async def start(self) -> None:
        for table in TABLES.values():
            if table.text:
                await self._db[table.name].create_index(
                    [("_fts.title", TEXT), ("_fts.body", TEXT)],
                    name="tx_fts",
                    weights={"_fts.title": TITLE_WEIGHT, "_fts.body": 1},
                    default_language="none",
                )
                await self._index_text(table)
        await self._find_search_support()

    async def _index_text(self, table: Table) -> None:
        """Give `_fts` to the rows written before the engine kept it."""
        collection = self._db[table.name]
        projection = dict.fromkeys(text_columns(table), 1)
        while True:
            cursor = collection.find({"_fts": {"$exists": False}}, projection).limit(1000)
            docs = await cursor.to_list(None)
            if not docs:
                return
            await collection.bulk_write(
                [UpdateOne({"_id": d["_id"]}, {"$set": {"_fts": fts(table, d)}}) for d in docs],
                ordered=False,
            )

    async def _find_search_support(self) -> None:
        try:
            await self._db["things"].find({"$text": {"$search": '"one"'}}).limit(1).to_list(None)
        except (NotImplementedError, OperationFailure) as exc:
            self.text_search = "scan"
            log.warning("no $text on this server (%s): text search scans the rows", exc)
        try:
            cursor = await self._db["knowledge"].list_search_indexes()
            indexes = await cursor.to_list(None)
        except (AttributeError, NotImplementedError, OperationFailure):
            indexes = []  # not Atlas (nor a server with Atlas Search)
        for index in indexes:
            if index.get("type") != "vectorSearch" or not index.get("queryable"):
                continue
            for field in index.get("latestDefinition", {}).get("fields", []):
                if field.get("type") == "vector" and field.get("path") == "embedding":
                    self._vector_indexes[int(field["numDimensions"])] = index["name"]
        if self._vector_indexes:
            self.vector_search = "$vectorSearch"

    async def text(
        self, table: str, filter: Doc, words: list[str], *, limit: int, offset: int
    ) -> list[tuple[float, Doc]]:
        """The documents matching `filter` that hold every one of `words`, most relevant
        first, ties by id, each with its score; without `_fts`."""
        self._engine.queries += 1
        if self.text_search == "$text":
            phrases = " ".join(f'"{w}"' for w in words)
            relevance = {"$meta": "textScore"}
            cursor = (
                self._db[table]
                .find({**filter, "$text": {"$search": phrases}}, {"_fts": 0, "_score": relevance})
                .sort([("_score", relevance), ("_id", ASCENDING)])
                .skip(offset)
                .limit(limit)
            )
            return [(float(doc.pop("_score")), doc) for doc in await cursor.to_list(None)]
        docs = await self._db[table].find(filter).to_list(None)
        found = sorted(_bm25(docs, words), key=lambda hit: (-hit[0], hit[1]["_id"]))
        page = found[offset : offset + limit]
        for _, doc in page:
            doc.pop("_fts", None)
        return page

    async def nearest(
        self,
        org_id: str,
        model: str,
        query: Any,
        *,
        limit: int,
        exact: bool,
        within: Doc,
        rest: Doc,
    ) -> list[tuple[float, Doc]]:
        """The knowledge nearest to `query` (float64) by cosine among the organization's
        vectors of `model` with as many dimensions, each with its distance; `within` is the
        filter of all that (the dimensions aside), `rest` the filter of the conditions beyond
        the organization ({} for none)."""
        index = self._vector_indexes.get(query.size)
        if index is not None:
            try:
                return await self._vector_search(index, org_id, model, query, limit, exact, rest)
            except OperationFailure as exc:
                log.warning("$vectorSearch failed (%s): nearest scans instead", exc)
        return await self._nearest_by_scan(within, query, model, limit)

    async def _vector_search(
        self, index: str, org_id: str, model: str, query: Any, limit: int, exact: bool, rest: Doc
    ) -> list[tuple[float, Doc]]:
        """Atlas: the index filters by organization and model; `rest` is applied to the hits
        it gives (ten times `limit` of them, when there is a rest)."""
        wanted = min(limit * 10, 10_000) if rest else limit
        stage: dict[str, Any] = {
            "index": index,
            "path": "embedding",
            "queryVector": [float(x) for x in query],
            "filter": {"org_id": org_id, "embedding_model": model},
            "limit": wanted,
        }
        if exact:
            stage["exact"] = True
        else:
            stage["numCandidates"] = min(max(wanted * 10, 100), 10_000)
        pipeline: list[dict[str, Any]] = [{"$vectorSearch": stage}]
        if rest:
            pipeline.append({"$match": rest})
        pipeline += [
            {"$limit": limit},
            {"$project": {"_fts": 0, "_score": {"$meta": "vectorSearchScore"}}},
        ]
        self._engine.queries += 1
        cursor = await self._db["knowledge"].aggregate(pipeline)
        docs = await cursor.to_list(None)
        # Atlas scores cosine as (1 + cos) / 2.
        return [(2.0 - 2.0 * float(doc.pop("_score")), doc) for doc in docs]

    async def _nearest_by_scan(
        self, within: Doc, query: Any, model: str, limit: int
    ) -> list[tuple[float, Doc]]:
        filter = {"$and": [within, {"embedding": {"$size": int(query.size)}}]}
        cursor = (
            self._db["knowledge"]
            .find(filter, {"_fts": 0})
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(self.vector_candidates)
        )
        self._engine.queries += 1
        docs = await cursor.to_list(None)
        if len(docs) >= self.vector_candidates:
            log.warning(
                "nearest compared only the newest %d vectors of %s: older ones were left out",
                self.vector_candidates,
                model,
            )
        if not docs:
            return []
        vectors = np.asarray([d["embedding"] for d in docs], dtype=np.float64)
        norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(query)
        with np.errstate(divide="ignore", invalid="ignore"):
            distances = 1.0 - (vectors @ query) / norms
        ranked = sorted(
            (float(d), doc["_id"], i)
            for i, (d, doc) in enumerate(zip(distances, docs, strict=True))
            if np.isfinite(d)
        )
        return [(d, docs[i]) for d, _, i in ranked[:limit]]


_TOKEN = re.compile(r"[^\W_]+")  # a word as SQLite's unicode61 sees it: "_" parts words
_BM25_K1, _BM25_B = 1.2, 0.75  # FTS5's


def _bm25(docs: list[dict[str, Any]], words: list[str]) -> list[tuple[float, dict[str, Any]]]:
    """The documents holding every one of `words` (the last also as a prefix), each with its
    BM25 score as SQLite's FTS5 computes it (title weighing `TITLE_WEIGHT`), the statistics
    being those of `docs`."""
    terms = list(dict.fromkeys(t for w in words for t in _TOKEN.findall(fold(w))))
    last = len(terms) - 1
    counted: list[tuple[list[float], int, dict[str, Any]]] = []
    total = 0
    for doc in docs:
        fts = doc.get("_fts") or {}
        title = _TOKEN.findall(fold(fts.get("title", "")))
        body = _TOKEN.findall(fold(fts.get("body", "")))
        total += len(title) + len(body)
        freqs: list[float] = [
            TITLE_WEIGHT * _count(title, term, i == last) + _count(body, term, i == last)
            for i, term in enumerate(terms)
        ]
        counted.append((freqs, len(title) + len(body), doc))
    if not counted:
        return []
    rows = len(counted)
    average = max(total / rows, 1.0)
    idf = []
    for i in range(len(terms)):
        hits = sum(1 for counts, _, _ in counted if counts[i] > 0)
        idf.append(max(math.log((rows - hits + 0.5) / (hits + 0.5)), 1e-6))
    found = []
    for freqs, length, doc in counted:
        if all(f > 0 for f in freqs):
            norm = _BM25_K1 * (1 - _BM25_B + _BM25_B * length / average)
            score = sum(
                w * f * (_BM25_K1 + 1) / (f + norm) for w, f in zip(idf, freqs, strict=True)
            )
            found.append((score, doc))
    return found


def _count(tokens: list[str], term: str, prefix: bool) -> int:
    if prefix:
        return sum(1 for t in tokens if t.startswith(term))
    return tokens.count(term)
