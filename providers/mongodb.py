"""The MongoDB engine, through PyMongo's async API (`pymongo.AsyncMongoClient`).

Indexes are created at start. On a replica set (or sharded cluster) a transaction is a real
multi-document transaction. A standalone server has none, so there the engine keeps an undo
journal for the transaction's writes and applies it when the transaction fails: the change
and its event still land together or not at all, though a crash between two writes can leave
the first one behind (the README says to run a replica set in production, and the compose file
does).

Search:
- full text: each row of a table with `Table.text` carries `_fts` (title and body, the plain
  text of `indexed_text`, kept up to date by insert and update, left out of every read), under
  a `$text` index (no language: words are neither stemmed nor dropped; case and diacritics
  aside) weighing the title `TITLE_WEIGHT` times the body. Every word of a query is quoted, so
  all are required, as whole words (`$text` matches no prefixes); MongoDB's text score ranks.
  Where the server has no `$text` (mongomock, some MongoDB-compatible services) the engine says
  so (`text_search == "scan"`) and scans the rows matching `where` instead, with SQLite's
  rules (the last word a prefix too) and BM25 computed over those rows.
- vectors: `$vectorSearch` on Atlas, for each dimension that has a queryable vector search
  index on `embedding` (named as you like, with `org_id` and `embedding_model` as filter
  fields: `{"fields": [{"type": "vector", "path": "embedding", "numDimensions": 1536,
  "similarity": "cosine"}, {"type": "filter", "path": "org_id"}, {"type": "filter", "path":
  "embedding_model"}]}`); elsewhere an exact comparison with the newest `vector_candidates`
  rows that match (numpy), which is exact only while there are no more (a warning says when
  there were). `vector_search` says which way the engine goes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from pymongo import ASCENDING, DESCENDING, TEXT, ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError, OperationFailure

from providers.engine import (
    TABLES,
    TITLE_WEIGHT,
    AnyOf,
    Cond,
    Order,
    Row,
    Table,
    TextHit,
    VectorHit,
    Where,
    committed,
    conflict,
    indexed_text,
    organization_of,
    query_words,
    text_columns,
    text_hit,
)
from providers.snippets import fold

log = logging.getLogger(__name__)

_MONGO_OPS = {"lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}


def _filter(where: Where) -> dict[str, Any]:
    clauses = [_cond_filter(c) for c in where]
    if not clauses:
        return {}
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _field(name: str) -> str:
    return "_id" if name == "id" else name


def _cond_filter(cond: Cond | AnyOf) -> dict[str, Any]:
    if isinstance(cond, AnyOf):
        return {"$or": [_cond_filter(c) for c in cond.conds]}
    field = _field(cond.field)
    if cond.op == "eq":
        return {field: cond.value}
    if cond.op == "in":
        return {field: {"$in": list(cond.value)}}
    if cond.op == "null_or_gt":
        return {"$or": [{field: None}, {field: {"$gt": cond.value}}]}
    if cond.op == "contains":
        return {field: {"$regex": re.escape(str(cond.value)), "$options": "i"}}
    return {field: {_MONGO_OPS[cond.op]: cond.value}}


def _keyset(order: Order) -> dict[str, Any] | None:
    if order.after is None:
        return None
    value, last_id = order.after
    op = "$lt" if order.descending else "$gt"
    field = _field(order.field)
    return {"$or": [{field: {op: value}}, {field: value, "_id": {op: last_id}}]}


def _to_row(doc: dict[str, Any]) -> Row:
    row = {"id": doc.pop("_id")}
    row.update(doc)
    return row


def _to_doc(row: Row) -> dict[str, Any]:
    doc = {"_id": row["id"]}
    doc.update((k, v) for k, v in row.items() if k != "id")
    return doc


def _fts(table: Table, row: Row) -> dict[str, str]:
    """What a row's `_fts` holds: the text its full-text index reads."""
    title, body = indexed_text(table, row)
    return {"title": title, "body": body}


def _hidden(table: str) -> dict[str, int] | None:
    """The projection that leaves `_fts` out of what is read."""
    return {"_fts": 0} if TABLES[table].text else None


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


class MongoEngine:
    """The native store's MongoDB engine.

    Args:
        client: an `AsyncMongoClient` created with `tz_aware=True` (or an object that speaks
            the same subset of its API, as the tests' mongomock-based client does).
        database: the database name.

    Example:
        engine = MongoEngine(AsyncMongoClient(uri, tz_aware=True), "one")
    """

    name = "mongodb"

    def __init__(self, client: Any, database: str, *, vector_candidates: int = 20_000) -> None:
        self._client = client
        self._db = client[database]
        self.queries = 0
        self.transactions_supported = False
        # How the search methods answer here; `start` finds out what the server offers.
        self.text_search: str = "$text"  # or "scan"
        self.vector_search: str = "scan"  # or "$vectorSearch" (for `_vector_indexes`' dims)
        self.vector_candidates = vector_candidates
        self._vector_indexes: dict[int, str] = {}  # dimensions -> Atlas vector search index
        self._listeners: dict[str, list[Callable[[Row], None]]] = {}
        self._sequence_lock = asyncio.Lock()

    async def start(self) -> None:
        hello = await self._client.admin.command("hello")
        self.transactions_supported = "setName" in hello or hello.get("msg") == "isdbgrid"
        for table in TABLES.values():
            collection = self._db[table.name]
            for fields in table.indexes:
                keys = [(_field(f), ASCENDING) for f in fields]
                await collection.create_index(keys, name=f"ix_{'_'.join(fields)}")
            for field in table.unique:
                await collection.create_index([(field, ASCENDING)], name=f"ux_{field}", unique=True)
            if table.text:
                await collection.create_index(
                    [("_fts.title", TEXT), ("_fts.body", TEXT)],
                    name="tx_fts",
                    weights={"_fts.title": TITLE_WEIGHT, "_fts.body": 1},
                    default_language="none",
                )
                await self._index_text(table)
        await self._find_search_support()
        log.info(
            "mongodb engine ready (transactions: %s, text search: %s, vector search: %s)",
            self.transactions_supported,
            self.text_search,
            self.vector_search,
        )

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
                [UpdateOne({"_id": d["_id"]}, {"$set": {"_fts": _fts(table, d)}}) for d in docs],
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

    async def close(self) -> None:
        await self._client.close()

    async def find(
        self, table: str, where: Where, *, order: Order | None = None, limit: int | None = None
    ) -> list[Row]:
        return await self._find(table, where, order, limit, None)

    async def count(self, table: str, where: Where) -> int:
        return await self._count(table, where, None)

    async def find_top(
        self, table: str, where: Where, *, per: str, order: Order, limit: int
    ) -> list[Row]:
        direction = DESCENDING if order.descending else ASCENDING
        pipeline = [
            {"$match": _filter(where)},
            {"$sort": {_field(order.field): direction, "_id": direction}},
            {"$group": {"_id": f"${_field(per)}", "rows": {"$push": "$$ROOT"}}},
            {"$project": {"rows": {"$slice": ["$rows", limit]}}},
            {"$unwind": "$rows"},
            {"$replaceRoot": {"newRoot": "$rows"}},
            {"$sort": {_field(order.field): direction, "_id": direction}},
        ]
        hidden = _hidden(table)
        if hidden is not None:
            pipeline.insert(1, {"$project": hidden})
        self.queries += 1
        cursor = await self._db[table].aggregate(pipeline)
        return [_to_row(doc) for doc in await cursor.to_list(None)]

    async def _find(
        self,
        table: str,
        where: Where,
        order: Order | None,
        limit: int | None,
        session: Any,
    ) -> list[Row]:
        query = _filter(where)
        sort: list[tuple[str, int]] = []
        if order is not None:
            keyset = _keyset(order)
            if keyset is not None:
                query = {"$and": [query, keyset]} if query else keyset
            direction = DESCENDING if order.descending else ASCENDING
            sort = [(_field(order.field), direction), ("_id", direction)]
        cursor = self._db[table].find(query, _hidden(table), session=session)
        if sort:
            cursor = cursor.sort(sort)
        if limit is not None:
            cursor = cursor.limit(limit)
        self.queries += 1
        return [_to_row(doc) for doc in await cursor.to_list(None)]

    async def _count(self, table: str, where: Where, session: Any) -> int:
        self.queries += 1
        return int(await self._db[table].count_documents(_filter(where), session=session))

    def on_commit(self, table: str, listener: Callable[[Row], None]) -> None:
        self._listeners.setdefault(table, []).append(listener)

    async def search_text(
        self, table: str, where: Where, query: str, *, limit: int, offset: int = 0
    ) -> list[TextHit]:
        spec = TABLES[table]
        if not spec.text:
            raise ValueError(f"{table} has no full-text index")
        words = query_words(query)
        organization_of(where)
        if not words or limit <= 0:
            return []
        self.queries += 1
        if self.text_search == "$text":
            phrases = " ".join(f'"{w}"' for w in words)
            relevance = {"$meta": "textScore"}
            cursor = (
                self._db[table]
                .find(
                    {**_filter(where), "$text": {"$search": phrases}},
                    {"_fts": 0, "_score": relevance},
                )
                .sort([("_score", relevance), ("_id", ASCENDING)])
                .skip(offset)
                .limit(limit)
            )
            rows = [_to_row(doc) for doc in await cursor.to_list(None)]
            return [text_hit(spec, row, float(row.pop("_score")), query) for row in rows]
        docs = await self._db[table].find(_filter(where)).to_list(None)
        found = sorted(_bm25(docs, words), key=lambda hit: (-hit[0], hit[1]["_id"]))
        hits = []
        for score, doc in found[offset : offset + limit]:
            doc.pop("_fts", None)
            hits.append(text_hit(spec, _to_row(doc), score, query))
        return hits

    async def nearest(
        self,
        table: str,
        where: Where,
        vector: Sequence[float],
        *,
        model: str,
        limit: int,
        exact: bool = False,
    ) -> list[VectorHit]:
        if table != "knowledge":
            raise ValueError(f"{table} has no vector index")
        org_id = organization_of(where)
        query = np.asarray(vector, dtype=np.float64)
        if limit <= 0 or not query.size:
            return []
        index = self._vector_indexes.get(query.size)
        if index is not None:
            try:
                return await self._vector_search(index, org_id, where, query, model, limit, exact)
            except OperationFailure as exc:
                log.warning("$vectorSearch failed (%s): nearest scans instead", exc)
        return await self._nearest_by_scan(where, query, model, limit)

    async def _vector_search(
        self,
        index: str,
        org_id: str,
        where: Where,
        query: Any,
        model: str,
        limit: int,
        exact: bool,
    ) -> list[VectorHit]:
        """Atlas: the index filters by organization and model; the rest of `where` is applied
        to the hits it gives (ten times `limit` of them, when there is a rest)."""
        rest = [c for c in where if c != Cond("org_id", "eq", org_id)]
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
            pipeline.append({"$match": _filter(rest)})
        pipeline += [
            {"$limit": limit},
            {"$project": {"_fts": 0, "_score": {"$meta": "vectorSearchScore"}}},
        ]
        self.queries += 1
        cursor = await self._db["knowledge"].aggregate(pipeline)
        rows = [_to_row(doc) for doc in await cursor.to_list(None)]
        # Atlas scores cosine as (1 + cos) / 2.
        return [VectorHit(row, 2.0 - 2.0 * float(row.pop("_score"))) for row in rows]

    async def _nearest_by_scan(
        self, where: Where, query: Any, model: str, limit: int
    ) -> list[VectorHit]:
        filter = _filter([*where, Cond("embedding_model", "eq", model)])
        filter = {"$and": [filter, {"embedding": {"$size": int(query.size)}}]}
        cursor = (
            self._db["knowledge"]
            .find(filter, {"_fts": 0})
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(self.vector_candidates)
        )
        self.queries += 1
        rows = [_to_row(doc) for doc in await cursor.to_list(None)]
        if len(rows) >= self.vector_candidates:
            log.warning(
                "nearest compared only the newest %d vectors of %s: older ones were left out",
                self.vector_candidates,
                model,
            )
        if not rows:
            return []
        vectors = np.asarray([r["embedding"] for r in rows], dtype=np.float64)
        norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(query)
        with np.errstate(divide="ignore", invalid="ignore"):
            distances = 1.0 - (vectors @ query) / norms
        ranked = sorted(
            (float(d), r["id"], i)
            for i, (d, r) in enumerate(zip(distances, rows, strict=True))
            if np.isfinite(d)
        )
        return [VectorHit(rows[i], d) for d, _, i in ranked[:limit]]

    async def raise_to(self, table: str, id: str, field: str, value: int) -> None:
        await self._db[table].update_one({"_id": id}, {"$max": {field: value}}, upsert=True)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_MongoTransaction]:
        if not self.transactions_supported:
            tx = _MongoTransaction(self, session=None)
            try:
                yield tx
            except BaseException:
                await tx.undo()
                tx.release()
                raise
        else:
            async with self._client.start_session() as session:
                tx = _MongoTransaction(self, session=session)
                try:
                    async with await session.start_transaction():
                        yield tx
                except BaseException:
                    tx.release()
                    raise
        committed(self._listeners, tx.inserted)
        tx.release()


class _MongoTransaction:
    def __init__(self, engine: MongoEngine, session: Any) -> None:
        self._engine = engine
        self._session = session
        self._undo: list[Callable[[], Awaitable[Any]]] = []
        self.inserted: list[tuple[str, Row]] = []  # rows of watched tables, for on_commit
        self._sequenced = False

    def release(self) -> None:
        if self._sequenced:
            self._sequenced = False
            self._engine._sequence_lock.release()

    async def find(
        self, table: str, where: Where, *, order: Order | None = None, limit: int | None = None
    ) -> list[Row]:
        return await self._engine._find(table, where, order, limit, self._session)

    async def count(self, table: str, where: Where) -> int:
        return await self._engine._count(table, where, self._session)

    async def insert(self, table: str, row: Row) -> None:
        collection = self._engine._db[table]
        doc = _to_doc(row)
        if TABLES[table].text:
            doc["_fts"] = _fts(TABLES[table], row)
        self._engine.queries += 1
        try:
            await collection.insert_one(doc, session=self._session)
        except DuplicateKeyError:
            field = next((f for f in TABLES[table].unique if row.get(f) is not None), None)
            raise conflict(table, field) from None
        if self._session is None:
            self._undo.append(lambda: collection.delete_one({"_id": row["id"]}))
        if table in self._engine._listeners:
            self.inserted.append((table, row))

    async def increment(self, table: str, id: str, field: str) -> int:
        collection = self._engine._db[table]
        if not self._sequenced:
            # Numbers must follow commit order: one sequenced transaction at a time in this
            # process (on a replica set, another process's is refused with a write conflict
            # rather than interleaved).
            await self._engine._sequence_lock.acquire()
            self._sequenced = True
        self._engine.queries += 1
        after = await collection.find_one_and_update(
            {"_id": id},
            {"$inc": {field: 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=self._session,
        )
        # A failed transaction leaves a number unused, never given twice: readers of the
        # sequence skip holes.
        return int(after[field])

    async def update(self, table: str, id: str, fields: Row) -> None:
        collection = self._engine._db[table]
        spec = TABLES[table]
        changes = dict(fields)
        # The indexed text follows: made from `fields` when they hold all it reads, else from
        # the row as it now is (a second write).
        reads = set(text_columns(spec))
        retext = bool(reads & fields.keys())
        if retext and reads <= fields.keys():
            changes["_fts"] = _fts(spec, fields)
        self._engine.queries += 1
        before = await collection.find_one_and_update(
            {"_id": id}, {"$set": changes}, session=self._session
        )
        if before is None:
            return
        if retext and "_fts" not in changes:
            changes["_fts"] = _fts(spec, {**before, **fields})
            self._engine.queries += 1
            await collection.update_one(
                {"_id": id}, {"$set": {"_fts": changes["_fts"]}}, session=self._session
            )
        if self._session is None:
            previous = {k: before.get(k) for k in changes}
            self._undo.append(lambda: collection.update_one({"_id": id}, {"$set": previous}))

    async def undo(self) -> None:
        for step in reversed(self._undo):
            try:
                await step()
            except Exception:
                log.exception("could not undo a write of a failed transaction")
