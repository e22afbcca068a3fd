"""The embedded engine: SQLite in WAL mode, a file under the data directory.

Reads run on a small pool of reader threads, each with its own connection, so they never see
an uncommitted write. Writes run on one writer thread under an asyncio lock: SQLite allows a
single writer, and holding the lock for the whole transaction keeps concurrent mutations from
interleaving inside one another's transaction. (aiosqlite hands out one statement per await
on a shared connection, which gives neither guarantee, hence these thirty lines.)

SQLite is sqlean.py's build (it can load extensions, which Python's often cannot), with
sqlite-vec loaded on every connection. Triggers keep two indexes in step with the rows, in
the writing transaction, so a committed write is searchable at once and a rolled-back one
never was:
- full text: an FTS5 table per table with `Table.text` (`<table>_fts`, contentless, words
  folded by unicode61 without diacritics; columns title and body from `indexed_text`, through
  the `one_text` function each connection defines), and `<table>_fts_rows` giving the row id
  and organization of each of its integer rowids;
- vectors: each knowledge embedding that has a model, as float32 (`knowledge_vectors`) and
  as a code of a few hundred bytes (`knowledge_vector_codes`, see `_code`), both keyed by
  organization, model, dimensions and id. `nearest` compares float32 vectors by cosine
  (`vec_distance_cosine`): all of the organization's (exact), or the `_CANDIDATES` whose codes
  are nearest by Hamming distance (approximate: a scan of the codes, and a float32 vector
  read for each candidate only).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from statistics import NormalDist
from typing import Any, TypeVar

import numpy as np
import sqlean as sqlite3  # type: ignore[import-untyped]
import sqlite_vec  # type: ignore[import-untyped]

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
from providers.errors import StoreBusyError

T = TypeVar("T")

_SQL_OPS = {"eq": "=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_SCHEMA_VERSION = 7  # 2: provider_configs; 3: provider_configs.health; 4: api_keys;
# 5: trusted_documents, organization_settings; 6: events.seq, event_streams, webhook_deliveries,
# change_watermarks; 7: knowledge.embedding_model and .position, the full-text and vector indexes
# (made again from the rows at every upgrade)
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


def _text_index_ddl(table: Table) -> list[str]:
    """The full-text index of `table` made anew: its tables, triggers and every row's text."""
    fts, ids, name = f"{table.name}_fts", f"{table.name}_fts_rows", table.name
    columns = text_columns(table)

    def text(row: str) -> str:
        values = ", ".join(f'{row}."{c}"' for c in columns)
        return f"one_text('{name}', 0, {values}), one_text('{name}', 1, {values})"

    rowid = f'(SELECT n FROM "{ids}" WHERE id = new.id)'
    old_rowid = f'(SELECT n FROM "{ids}" WHERE id = old.id)'
    watched = (*columns, "org_id")
    changed = " OR ".join(f'old."{c}" IS NOT new."{c}"' for c in watched)
    of = ", ".join(f'"{c}"' for c in watched)
    return [
        *(f'DROP TRIGGER IF EXISTS "{fts}_{event}"' for event in ("insert", "update", "delete")),
        f'DROP TABLE IF EXISTS "{fts}"',
        f'DROP TABLE IF EXISTS "{ids}"',
        # Contentless: the text is not kept twice, and the old text need not be known to take
        # a row out (contentless_delete). Snippets are made from the rows themselves.
        f"CREATE VIRTUAL TABLE \"{fts}\" USING fts5(title, body, content='', "
        "contentless_delete=1, tokenize='unicode61 remove_diacritics 2')",
        # The organization beside each id: a search reads only its own organization's hits.
        f'CREATE TABLE "{ids}" (n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, org_id TEXT)',
        f'INSERT INTO "{ids}" (id, org_id) SELECT id, org_id FROM "{name}"',
        f'INSERT INTO "{fts}" (rowid, title, body) SELECT r.n, {text("t")} '
        f'FROM "{name}" t JOIN "{ids}" r ON r.id = t.id',
        f'CREATE TRIGGER "{fts}_insert" AFTER INSERT ON "{name}" BEGIN '
        f'INSERT INTO "{ids}" (id, org_id) VALUES (new.id, new.org_id); '
        f'INSERT INTO "{fts}" (rowid, title, body) VALUES ({rowid}, {text("new")}); END',
        f'CREATE TRIGGER "{fts}_update" AFTER UPDATE OF {of} ON "{name}" WHEN {changed} BEGIN '
        f'DELETE FROM "{fts}" WHERE rowid = {old_rowid}; '
        f'UPDATE "{ids}" SET org_id = new.org_id WHERE id = new.id; '
        f'INSERT INTO "{fts}" (rowid, title, body) VALUES ({rowid}, {text("new")}); END',
        f'CREATE TRIGGER "{fts}_delete" AFTER DELETE ON "{name}" BEGIN '
        f'DELETE FROM "{fts}" WHERE rowid = {old_rowid}; '
        f'DELETE FROM "{ids}" WHERE id = old.id; END',
    ]


def _vector_index_ddl() -> list[str]:
    """The knowledge vector index made anew: its two tables, triggers and every vector."""
    key = "org_id TEXT NOT NULL, model TEXT NOT NULL, dims INTEGER NOT NULL, id TEXT NOT NULL"
    primary = "PRIMARY KEY (org_id, model, dims, id)"

    def add(row: str, source: str = "") -> list[str]:
        values = (
            f"{row}.org_id, {row}.embedding_model, json_array_length({row}.embedding), {row}.id"
        )
        where = (
            f"WHERE {row}.embedding_model IS NOT NULL AND json_array_length({row}.embedding) > 0"
        )
        return [
            f"INSERT INTO knowledge_vectors SELECT {values}, vec_f32({row}.embedding) "
            f"{source} {where}",
            f"INSERT INTO knowledge_vector_codes SELECT {values}, "
            f"one_code(vec_f32({row}.embedding)) {source} {where}",
        ]

    remove = [
        f"DELETE FROM {t} WHERE org_id = old.org_id AND model = old.embedding_model "
        "AND dims = json_array_length(old.embedding) AND id = old.id"
        for t in ("knowledge_vectors", "knowledge_vector_codes")
    ]

    def trigger(event: str, steps: list[str]) -> str:
        on = "UPDATE OF org_id, embedding, embedding_model" if event == "update" else event.upper()
        body = "".join(f"{step}; " for step in steps)
        return f"CREATE TRIGGER knowledge_vectors_{event} AFTER {on} ON knowledge BEGIN {body}END"

    return [
        *(f"DROP TRIGGER IF EXISTS knowledge_vectors_{e}" for e in ("insert", "update", "delete")),
        "DROP TABLE IF EXISTS knowledge_vectors",
        "DROP TABLE IF EXISTS knowledge_vector_codes",
        # A rowid table: a vector of a kilobyte or more would spill each row of a WITHOUT ROWID
        # table onto an overflow page of its own (four times the space, and a page per read).
        f"CREATE TABLE knowledge_vectors ({key}, vector BLOB NOT NULL)",
        "CREATE UNIQUE INDEX knowledge_vectors_key ON knowledge_vectors (org_id, model, dims, id)",
        # Apart from the vectors, so that the scan of the approximate search reads few pages.
        f"CREATE TABLE knowledge_vector_codes ({key}, code BLOB NOT NULL, {primary}) WITHOUT ROWID",
        *add("k", "FROM knowledge k"),
        trigger("insert", add("new")),
        trigger("update", [*remove, *add("new")]),
        trigger("delete", remove),
    ]


def _one_text(table_name: str, part: int, *values: Any) -> str:
    """SQL `one_text(table, 0 | 1, <its text columns>)`: the title or the body the full-text
    index holds for a row (`indexed_text`)."""
    table = TABLES[table_name]
    row = {
        column: _json(value) if value is not None and table.columns[column] == "json" else value
        for column, value in zip(text_columns(table), values, strict=True)
    }
    return indexed_text(table, row)[part]


_CODE_BITS = 2048  # a code's length, about: a few hundred bytes to read for each row


@functools.cache
def _cuts(dims: int) -> Any:
    """Where a component's levels part: at the quantiles of a standard normal, 2 to 16 levels,
    as many as `_CODE_BITS` allows for `dims` (a sign for 1,536 dimensions, 8 levels for 256)."""
    levels = max(2, min(16, _CODE_BITS // dims + 1))
    return np.array([NormalDist().inv_cdf(i / levels) for i in range(1, levels)])


def _code(vector: Any) -> bytes:
    """A float32 vector (SQL `one_code`) in about `_CODE_BITS` bits: each component, scaled as
    in a unit vector of standard normal components, given the level it falls in (`_cuts`) as
    that many bits set among one per cut. The Hamming distance of two codes is then the L1
    distance between their levels: small for vectors close by cosine."""
    values = np.frombuffer(vector, dtype="<f4") if isinstance(vector, bytes) else vector
    values = np.asarray(values, dtype=np.float64)
    norm = float(np.linalg.norm(values))
    scaled = values * (np.sqrt(values.size) / norm) if norm > 0 else values
    bits = scaled[np.newaxis, :] > _cuts(values.size)[:, np.newaxis]
    return bytes(np.packbits(bits).tobytes())


_CANDIDATES = 800  # compared by cosine in an approximate `nearest`; or 40 for each row asked
_OVERSAMPLE = 40


def _ranked_sql(
    table: Table, candidates: str, where: Where, params: list[Any], *, descending: bool
) -> str:
    """Rows of `table` among `candidates` (SQL giving one_id, one_rank) that match `where`, in
    rank order then by id, with their rank as `one_rank`; LIMIT and OFFSET are the last two
    parameters. The candidates are sorted first and the table read in that order (SQLite
    keeps a subquery's order when it has a LIMIT, here none: -1), so that only as many rows
    are read as the page needs: a row is costly to find when a large column (an embedding,
    a post's HTML) spills it over several pages."""
    direction = "DESC" if descending else "ASC"
    return (
        f"SELECT t.*, c.one_rank FROM (SELECT one_id, one_rank FROM ({candidates}) "
        f"WHERE one_rank IS NOT NULL ORDER BY one_rank {direction}, one_id LIMIT -1) c "
        f'CROSS JOIN "{table.name}" t ON t.id = c.one_id '
        f"WHERE {_where_sql(table, where, params)} "
        f"ORDER BY c.one_rank {direction}, c.one_id LIMIT ? OFFSET ?"
    )


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
            # What the index triggers call: every connection that writes needs them.
            conn.create_function("one_text", -1, _one_text, deterministic=True)
            conn.create_function("one_code", 1, _code, deterministic=True)
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
            for table in TABLES.values():
                for statement in _text_index_ddl(table) if table.text else ():
                    conn.execute(statement)
            for statement in _vector_index_ddl():
                conn.execute(statement)
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
        """FTS5: every word a quoted phrase (so nothing in it is syntax), the last one a prefix
        too; ranked by bm25() with the title weighing `TITLE_WEIGHT`, filtered by `where` in
        the same query. BM25's statistics are those of the whole table, every organization's
        rows together (they weigh words, and never let a row of another organization in)."""
        table = TABLES[table_name]
        words = query_words(query)
        if not table.text:
            raise ValueError(f"{table.name} has no full-text index")
        if not words or limit <= 0:
            return []
        fts, ids = f"{table.name}_fts", f"{table.name}_fts_rows"
        match = " ".join(f'"{w}"' for w in words) + "*"
        candidates = (
            f'SELECT m.id AS one_id, -bm25("{fts}", {TITLE_WEIGHT}, 1) AS one_rank '
            f'FROM "{fts}" CROSS JOIN "{ids}" m ON m.n = "{fts}".rowid '
            f'WHERE "{fts}" MATCH ? AND m.org_id = ?'
        )
        params: list[Any] = [match, organization_of(where)]
        sql = _ranked_sql(table, candidates, where, params, descending=True)
        params += [limit, offset]
        self.queries += 1
        rows = _decode(
            table, await self._run(self._readers, lambda c: c.execute(sql, params).fetchall())
        )
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
        cosine; approximate, the `_CANDIDATES` nearest by their codes (Hamming distance), then
        those by cosine. `where` beyond the organization is applied in the same query, to the
        candidates in order until `limit` rows pass: approximate, a filter that few rows pass
        may leave fewer than `limit`."""
        if table_name != "knowledge":
            raise ValueError(f"{table_name} has no vector index")
        table = TABLES[table_name]
        org_id = organization_of(where)
        query = np.asarray(vector, dtype="<f4")
        if limit <= 0 or not query.size:
            return []
        partition = [org_id, model, int(query.size)]
        if exact:
            candidates = (
                "SELECT id AS one_id, vec_distance_cosine(vector, ?) AS one_rank "
                "FROM knowledge_vectors WHERE org_id = ? AND model = ? AND dims = ?"
            )
            params: list[Any] = [query.tobytes(), *partition]
        else:
            candidates = (
                "SELECT v.id AS one_id, vec_distance_cosine(v.vector, ?) AS one_rank FROM "
                "(SELECT id FROM knowledge_vector_codes WHERE org_id = ? AND model = ? "
                "AND dims = ? ORDER BY vec_distance_hamming(vec_bit(code), vec_bit(?)) "
                "LIMIT ?) s CROSS JOIN knowledge_vectors v ON v.org_id = ? AND v.model = ? "
                "AND v.dims = ? AND v.id = s.id"
            )
            size = max(_CANDIDATES, _OVERSAMPLE * limit)
            params = [query.tobytes(), *partition, _code(query), size, *partition]
        rest = [c for c in where if c != Cond("org_id", "eq", org_id)]
        sql = _ranked_sql(table, candidates, rest, params, descending=False)
        params += [limit, 0]
        self.queries += 1
        rows = _decode(
            table, await self._run(self._readers, lambda c: c.execute(sql, params).fetchall())
        )
        return [VectorHit(row, row.pop("one_rank")) for row in rows]

    async def optimize(self) -> None:
        """Merge each full-text index into one segment, and refresh the query planner's
        statistics: worth it after a bulk load."""
        statements = [
            f'INSERT INTO "{t.name}_fts" ("{t.name}_fts") VALUES (\'optimize\')'
            for t in TABLES.values()
            if t.text
        ]

        def run(conn: sqlite3.Connection) -> None:
            for statement in [*statements, "PRAGMA optimize"]:
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

    async def _execute(self, table: Table, sql: str, params: list[Any]) -> None:
        await self._write(table, lambda c: c.execute(sql, params))

    async def _write(self, table: Table, write: Callable[[sqlite3.Connection], Any]) -> None:
        self._engine.queries += 1
        try:
            await self._engine._run(self._engine._writer, write)
        except sqlite3.IntegrityError as exc:
            field = next((f for f in table.unique if f"{table.name}.{f}" in str(exc)), None)
            raise conflict(table.name, field) from None
