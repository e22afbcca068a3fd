"""The MongoDB engine, through PyMongo's async API (`pymongo.AsyncMongoClient`).

Indexes are created at start. On a replica set (or sharded cluster) a transaction is a real
multi-document transaction. A standalone server has none, so there the engine keeps an undo
journal for the transaction's writes and applies it when the transaction fails: the change
and its event still land together or not at all, though a crash between two writes can leave
the first one behind (the README says to run a replica set in production, and the compose file
does).

Search, text and vectors, is `providers/mongodb_search.py`'s: a row's indexed text lives in
the row (`_fts`), so it is written, and deleted, with it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from providers.engine import (
    TABLES,
    AnyOf,
    Cond,
    Order,
    Row,
    TextHit,
    VectorHit,
    Where,
    committed,
    conflict,
    organization_of,
    text_columns,
    text_hit,
)
from providers.mongodb_search import MongoSearch, fts, hidden
from providers.snippets import query_words

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
        self._search = MongoSearch(self._db, self, vector_candidates=vector_candidates)
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
        # Stale chunks were once kept as knowledge of kind "retired": now they are deleted.
        await self._db["knowledge"].delete_many({"kind": "retired"})
        await self._search.start()
        log.info(
            "mongodb engine ready (transactions: %s, text search: %s, vector search: %s)",
            self.transactions_supported,
            self.text_search,
            self.vector_search,
        )

    @property
    def text_search(self) -> str:
        """How `search_text` answers here: "$text", or "scan" (see `mongodb_search`)."""
        return self._search.text_search

    @property
    def vector_search(self) -> str:
        """How `nearest` answers here: "$vectorSearch", or "scan" (see `mongodb_search`)."""
        return self._search.vector_search

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
        projection = hidden(table)
        if projection is not None:
            pipeline.insert(1, {"$project": projection})
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
        cursor = self._db[table].find(query, hidden(table), session=session)
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
        found = await self._search.text(table, _filter(where), words, limit=limit, offset=offset)
        return [text_hit(spec, _to_row(doc), score, query) for score, doc in found]

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
        within = _filter([*where, Cond("embedding_model", "eq", model)])
        rest = _filter([c for c in where if c != Cond("org_id", "eq", org_id)])
        found = await self._search.nearest(
            org_id, model, query, limit=limit, exact=exact, within=within, rest=rest
        )
        return [VectorHit(_to_row(doc), distance) for distance, doc in found]

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
            doc["_fts"] = fts(TABLES[table], row)
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
            changes["_fts"] = fts(spec, fields)
        self._engine.queries += 1
        before = await collection.find_one_and_update(
            {"_id": id}, {"$set": changes}, session=self._session
        )
        if before is None:
            return
        if retext and "_fts" not in changes:
            changes["_fts"] = fts(spec, {**before, **fields})
            self._engine.queries += 1
            await collection.update_one(
                {"_id": id}, {"$set": {"_fts": changes["_fts"]}}, session=self._session
            )
        if self._session is None:
            previous = {k: before.get(k) for k in changes}
            self._undo.append(lambda: collection.update_one({"_id": id}, {"$set": previous}))

    async def delete(self, table: str, id: str) -> None:
        # `_fts` goes with the document, and the vector with it: both live in it.
        collection = self._engine._db[table]
        self._engine.queries += 1
        before = await collection.find_one_and_delete({"_id": id}, session=self._session)
        if before is not None and self._session is None:
            self._undo.append(lambda: collection.insert_one(before))

    async def undo(self) -> None:
        for step in reversed(self._undo):
            try:
                await step()
            except Exception:
                log.exception("could not undo a write of a failed transaction")
