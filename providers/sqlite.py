"""The embedded engine: SQLite in WAL mode, a file under the data directory.

Reads run on a small pool of reader threads, each with its own connection, so they never see
an uncommitted write. Writes run on one writer thread under an asyncio lock: SQLite allows a
single writer, and holding the lock for the whole transaction keeps concurrent mutations from
interleaving inside one another's transaction. (aiosqlite hands out one statement per await
on a shared connection, which gives neither guarantee, hence these thirty lines.)

SQLite is sqlean.py's build (it can load extensions, which Python's often cannot), with
sqlite-vec loaded on every connection: the full-text and vector indexes, kept in step with
the rows by triggers, are `providers/sqlite_search.py`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import sqlean as sqlite3  # type: ignore[import-untyped]
import sqlite_vec  # type: ignore[import-untyped]

from providers.engine import (
    TABLES,
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
    organization_of,
    text_hit,
)
from providers.errors import StoreBusyError
from providers.snippets import query_words
from providers.sqlite_search import (
    define_functions,
    index_ddl,
    optimize_ddl,
    ranked_sql,
    text_candidates,
    vector_candidates,
)

T = TypeVar("T")

_SQL_OPS = {"eq": "=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_SCHEMA_VERSION = 9  # 2: provider_configs; 3: provider_configs.health; 4: api_keys;
# 5: trusted_documents, organization_settings; 6: events.seq, event_streams, webhook_deliveries,
# change_watermarks; 7: knowledge.embedding_model and .position, the full-text and vector indexes
# (made again from the rows at every upgrade); 8: stale chunks deleted, no longer kept as
# knowledge of kind "retired"; 9: migrations, id_aliases
_SQL_TYPES = {"text": "TEXT", "json": "TEXT", "datetime": "TEXT", "integer": "INTEGER"}


def _encode(table: Table, row: Row) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in row.items():
        kind = table.columns[name]
        if value is None:
            out[name] = None
        elif kind == "json":
            out[name] = json.dumps(value, separators=(",", ":"))
        elif kind == "datetime":
            out[name] = _encode_datetime(value)
        else:
            out[name] = value
    return out


def _encode_datetime(value: datetime) -> str:
    # Fixed width, UTC: ISO strings then sort and compare like the instants they name.
    return value.isoformat(timespec="microseconds")


def _encode_value(table: Table, field: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return _encode_datetime(value)
    if table.columns[field] == "json":
        return json.dumps(value, separators=(",", ":"))
    return value


def _json(value: str) -> Any:
    if value == "{}":  # most properties and metadata
        return {}
    return json.loads(value)


_DECODERS: dict[str, Callable[[Any], Any] | None] = {
    "json": _json,
    "datetime": datetime.fromisoformat,
}


def _decode(table: Table, rows: list[sqlite3.Row]) -> list[Row]:
    """Rows as dicts of Python values; each column's decoder looked up once per query."""
    if not rows:
        return []
    columns = [
        (i, name, _DECODERS.get(table.columns.get(name, "")))
        for i, name in enumerate(rows[0].keys())
    ]
    decoded: list[Row] = []
    for row in rows:
        out: Row = {}
        for i, name, decode in columns:
            value = row[i]
            out[name] = decode(value) if decode is not None and value is not None else value
        decoded.append(out)
    return decoded


def _where_sql(table: Table, where: Where, params: list[Any]) -> str:
    parts = [_cond_sql(table, c, params) for c in where]
    return " AND ".join(parts) if parts else "1"


def _cond_sql(table: Table, cond: Cond | AnyOf, params: list[Any]) -> str:
    if isinstance(cond, AnyOf):
        return "(" + " OR ".join(_cond_sql(table, c, params) for c in cond.conds) + ")"
    if cond.field not in table.columns:
        raise ValueError(f"{table.name} has no column {cond.field!r}")
    column = f'"{cond.field}"'
    if cond.op == "in":
        values: Sequence[Any] = list(cond.value)
        if not values:
            return "0"
        params.extend(_encode_value(table, cond.field, v) for v in values)
        return f"{column} IN ({','.join('?' * len(values))})"
    if cond.op == "null_or_gt":
        params.append(_encode_value(table, cond.field, cond.value))
        return f"({column} IS NULL OR {column} > ?)"
    if cond.op == "contains":
        params.append(str(cond.value).lower())
        return f"instr(lower({column}), ?) > 0"
    if cond.op == "eq" and cond.value is None:
        return f"{column} IS NULL"
    params.append(_encode_value(table, cond.field, cond.value))
    return f"{column} {_SQL_OPS[cond.op]} ?"


def _select_sql(
    table: Table, where: Where, order: Order | None, limit: int | None
) -> tuple[str, list[Any]]:
    params: list[Any] = []
    sql = f'SELECT * FROM "{table.name}" WHERE {_where_sql(table, where, params)}'
    if order is not None:
        direction = "DESC" if order.descending else "ASC"
        if order.after is not None:
            value, last_id = order.after
            sql += f' AND ("{order.field}", id) {"<" if order.descending else ">"} (?, ?)'
            params += [_encode_value(table, order.field, value), last_id]
        sql += f' ORDER BY "{order.field}" {direction}, id {direction}'
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params


def _ddl(table: Table) -> list[str]:
    columns = ", ".join(
        f'"{name}" {_SQL_TYPES[kind]}{" PRIMARY KEY" if name == "id" else ""}'
        for name, kind in table.columns.items()
    )
    statements = [f'CREATE TABLE IF NOT EXISTS "{table.name}" ({columns}) WITHOUT ROWID']
    for fields in table.indexes:
        name = f"ix_{table.name}_{'_'.join(fields)}"
        cols = ", ".join(f'"{f}"' for f in fields)
        statements.append(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table.name}" ({cols})')
    for field in table.unique:
        statements.append(
            f'CREATE UNIQUE INDEX IF NOT EXISTS "ux_{table.name}_{field}" '
            f'ON "{table.name}" ("{field}")'
        )
    return statements


class SQLiteEngine:
    """The native store's embedded engine. `path` is the database file."""

    name = "sqlite"

    def __init__(self, path: Path, *, readers: int = 2, busy_seconds: float = 5.0) -> None:
        self.path = path
        self._busy_ms = int(busy_seconds * 1000)
        self.queries = 0
        self._local = threading.local()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="one-sqlite-writer")
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="one-sqlite-reader")
        self._write_lock = asyncio.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._listeners: dict[str, list[Callable[[Row], None]]] = {}

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.enable_load_extension(True)
            sqlite_vec.load(conn)
            conn.enable_load_extension(False)
            define_functions(conn)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, lambda: fn(self._connection()))
        except sqlite3.OperationalError as exc:
            # Another process held the file's write lock past busy_timeout: the transaction
            # rolls back whole, and the client may try again.
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreBusyError() from exc
            raise

    async def start(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._make_private()

        def migrate(conn: sqlite3.Connection) -> None:
            if conn.execute("PRAGMA user_version").fetchone()[0] >= _SCHEMA_VERSION:
                return
            conn.execute("BEGIN IMMEDIATE")
            # Again under the lock: another process may have migrated the file meanwhile.
            if conn.execute("PRAGMA user_version").fetchone()[0] >= _SCHEMA_VERSION:
                conn.execute("ROLLBACK")
                return
            for table in TABLES.values():
                for statement in _ddl(table):
                    conn.execute(statement)
                # Migrations only ever add columns: add the ones an older file lacks.
                have = {row[1] for row in conn.execute(f'PRAGMA table_info("{table.name}")')}
                for column in table.columns.keys() - have:
                    kind = _SQL_TYPES[table.columns[column]]
                    conn.execute(f'ALTER TABLE "{table.name}" ADD COLUMN "{column}" {kind}')
            # The indexes follow the schema: made again, from the rows, at every upgrade.
            for statement in index_ddl():
                conn.execute(statement)
            # Chunks retired before version 8 go (and the triggers take them out of the indexes).
            conn.execute("DELETE FROM knowledge WHERE kind = 'retired'")
            conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            conn.execute("COMMIT")

        await self._run(self._writer, migrate)

    def _make_private(self) -> None:
        """The database and its `-wal` and `-shm` files, readable by this user only. SQLite
        gives the two the database file's mode, so the file is made here, before SQLite would
        make it under the umask; chmod tightens files that an older gateway left open."""
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{self.path}{suffix}", 0o600)

    async def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    async def find(
        self, table: str, where: Where, *, order: Order | None = None, limit: int | None = None
    ) -> list[Row]:
        return await self._find(self._readers, table, where, order, limit)

    async def count(self, table: str, where: Where) -> int:
        return await self._count(self._readers, table, where)

    async def find_top(
        self, table_name: str, where: Where, *, per: str, order: Order, limit: int
    ) -> list[Row]:
        table = TABLES[table_name]
        params: list[Any] = []
        columns = ", ".join(f'"{c}"' for c in table.columns)
        direction = "DESC" if order.descending else "ASC"
        ranking = f'ORDER BY "{order.field}" {direction}, id {direction}'
        sql = (
            f"SELECT {columns} FROM (SELECT {columns}, ROW_NUMBER() OVER "
            f'(PARTITION BY "{per}" {ranking}) AS one_rank FROM "{table.name}" '
            f"WHERE {_where_sql(table, where, params)}) WHERE one_rank <= ? {ranking}"
        )
        params.append(limit)
        self.queries += 1
        rows = await self._run(self._readers, lambda c: c.execute(sql, params).fetchall())
        return _decode(table, rows)

    async def _find(
        self,
        pool: ThreadPoolExecutor,
        table_name: str,
        where: Where,
        order: Order | None,
        limit: int | None,
    ) -> list[Row]:
        table = TABLES[table_name]
        sql, params = _select_sql(table, where, order, limit)
        self.queries += 1
        rows = await self._run(pool, lambda c: c.execute(sql, params).fetchall())
        return _decode(table, rows)

    async def _count(self, pool: ThreadPoolExecutor, table_name: str, where: Where) -> int:
        table = TABLES[table_name]
        params: list[Any] = []
        sql = f'SELECT COUNT(*) FROM "{table.name}" WHERE {_where_sql(table, where, params)}'
        self.queries += 1
        return int(await self._run(pool, lambda c: c.execute(sql, params).fetchone()[0]))

    def on_commit(self, table: str, listener: Callable[[Row], None]) -> None:
        self._listeners.setdefault(table, []).append(listener)

    async def search_text(
        self, table_name: str, where: Where, query: str, *, limit: int, offset: int = 0
    ) -> list[TextHit]:
        """FTS5, ranked by bm25() (`sqlite_search`), filtered by `where` in the same query."""
        table = TABLES[table_name]
        words = query_words(query)
        if not table.text:
            raise ValueError(f"{table.name} has no full-text index")
        if not words or limit <= 0:
            return []
        candidates, params = text_candidates(table, words, organization_of(where))
        rows = await self._ranked(table, candidates, params, where, limit, offset, desc=True)
        return [text_hit(table, row, row.pop("one_rank"), query) for row in rows]

    async def nearest(
        self,
        table_name: str,
        where: Where,
        vector: Sequence[float],
        *,
        model: str,
        limit: int,
        exact: bool = False,
    ) -> list[VectorHit]:
        """The organization's vectors of `model` with as many dimensions: exact, every one by
        cosine; approximate, the candidates nearest by their codes (`sqlite_search`), then
        those by cosine. `where` beyond the organization is applied in the same query, to the
        candidates in order until `limit` rows pass: approximate, a filter that few rows pass
        may leave fewer than `limit`."""
        if table_name != "knowledge":
            raise ValueError(f"{table_name} has no vector index")
        org_id = organization_of(where)
        query = np.asarray(vector, dtype="<f4")
        if limit <= 0 or not query.size:
            return []
        candidates, params = vector_candidates(org_id, model, query, limit=limit, exact=exact)
        rest = [c for c in where if c != Cond("org_id", "eq", org_id)]
        rows = await self._ranked(TABLES[table_name], candidates, params, rest, limit, 0)
        return [VectorHit(row, row.pop("one_rank")) for row in rows]

    async def _ranked(
        self,
        table: Table,
        candidates: str,
        params: list[Any],
        where: Where,
        limit: int,
        offset: int,
        *,
        desc: bool = False,
    ) -> list[Row]:
        sql = ranked_sql(table, candidates, _where_sql(table, where, params), descending=desc)
        params += [limit, offset]
        self.queries += 1
        rows = await self._run(self._readers, lambda c: c.execute(sql, params).fetchall())
        return _decode(table, rows)

    async def optimize(self) -> None:
        """Merge each full-text index into one segment, and refresh the query planner's
        statistics: worth it after a bulk load."""

        def run(conn: sqlite3.Connection) -> None:
            for statement in [*optimize_ddl(), "PRAGMA optimize"]:
                conn.execute(statement)

        async with self._write_lock:
            await self._run(self._writer, run)

    async def raise_to(self, table_name: str, id: str, field: str, value: int) -> None:
        table = TABLES[table_name]
        if table.columns.get(field) != "integer":
            raise ValueError(f"{table.name}.{field} is not an integer column")
        sql = (
            f'INSERT INTO "{table.name}" (id, "{field}") VALUES (?, ?) ON CONFLICT(id) DO UPDATE '
            f'SET "{field}" = max(coalesce("{field}", 0), excluded."{field}")'
        )
        async with self._write_lock:
            await self._run(self._writer, lambda c: c.execute(sql, [id, value]))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SQLiteTransaction]:
        async with self._write_lock:
            await self._run(self._writer, lambda c: c.execute("BEGIN IMMEDIATE"))
            tx = _SQLiteTransaction(self)
            try:
                yield tx
            except BaseException:
                await asyncio.shield(self._run(self._writer, lambda c: c.execute("ROLLBACK")))
                raise
            await asyncio.shield(self._run(self._writer, lambda c: c.execute("COMMIT")))
            # Still under the lock: listeners hear transactions in the order they committed.
            committed(self._listeners, tx.inserted)


class _SQLiteTransaction:
    def __init__(self, engine: SQLiteEngine) -> None:
        self._engine = engine
        self.inserted: list[tuple[str, Row]] = []  # rows of watched tables, for on_commit

    async def find(
        self, table: str, where: Where, *, order: Order | None = None, limit: int | None = None
    ) -> list[Row]:
        return await self._engine._find(self._engine._writer, table, where, order, limit)

    async def count(self, table: str, where: Where) -> int:
        return await self._engine._count(self._engine._writer, table, where)

    async def insert(self, table_name: str, row: Row) -> None:
        await self.insert_many(table_name, [row])

    async def insert_many(self, table_name: str, rows: Sequence[Row]) -> None:
        """Insert `rows` in one round trip (rows with the same columns share one statement)."""
        table = TABLES[table_name]
        batches: dict[tuple[str, ...], list[list[Any]]] = {}
        for row in rows:
            values = _encode(table, row)
            batches.setdefault(tuple(values), []).append(list(values.values()))
        statements = []
        for names, batch in batches.items():
            columns = ", ".join(f'"{c}"' for c in names)
            marks = ",".join("?" * len(names))
            statements.append((f'INSERT INTO "{table.name}" ({columns}) VALUES ({marks})', batch))

        def run(conn: sqlite3.Connection) -> None:
            for sql, batch in statements:
                conn.executemany(sql, batch)

        await self._write(table, run)
        if table_name in self._engine._listeners:
            self.inserted += [(table_name, row) for row in rows]

    async def increment(self, table_name: str, id: str, field: str) -> int:
        table = TABLES[table_name]
        if table.columns.get(field) != "integer":
            raise ValueError(f"{table.name}.{field} is not an integer column")
        sql = (
            f'INSERT INTO "{table.name}" (id, "{field}") VALUES (?, 1) ON CONFLICT(id) DO UPDATE '
            f'SET "{field}" = coalesce("{field}", 0) + 1 RETURNING "{field}"'
        )
        self._engine.queries += 1
        row = await self._engine._run(
            self._engine._writer, lambda c: c.execute(sql, [id]).fetchone()
        )
        return int(row[0])

    async def update(self, table_name: str, id: str, fields: Row) -> None:
        table = TABLES[table_name]
        values = _encode(table, fields)
        assignments = ", ".join(f'"{c}" = ?' for c in values)
        sql = f'UPDATE "{table.name}" SET {assignments} WHERE id = ?'
        await self._execute(table, sql, [*values.values(), id])

    async def delete(self, table_name: str, id: str) -> None:
        # The index triggers (`<table>_fts_delete`, `knowledge_vectors_delete`) take it out.
        table = TABLES[table_name]
        await self._execute(table, f'DELETE FROM "{table.name}" WHERE id = ?', [id])

    async def _execute(self, table: Table, sql: str, params: list[Any]) -> None:
        await self._write(table, lambda c: c.execute(sql, params))

    async def _write(self, table: Table, write: Callable[[sqlite3.Connection], Any]) -> None:
        self._engine.queries += 1
        try:
            await self._engine._run(self._engine._writer, write)
        except sqlite3.IntegrityError as exc:
            field = next((f for f in table.unique if f"{table.name}.{f}" in str(exc)), None)
            raise conflict(table.name, field) from None
