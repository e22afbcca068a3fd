"""The SQLite engine's search indexes (`providers/sqlite.py` runs them): their tables and
triggers, the SQL functions the triggers call, and the candidates of each search.

Triggers keep two indexes in step with the rows, in the writing transaction, so a committed
write is searchable at once, a deleted row no longer, and a rolled-back write never was:
- full text: an FTS5 table per table with `Table.text` (`<table>_fts`, contentless, words
  folded by unicode61 without diacritics; columns title and body from `indexed_text`, through
  the `one_text` function each connection defines), and `<table>_fts_rows` giving the row id
  and organization of each of its integer rowids. A search matches every word as a quoted
  phrase (so nothing in it is syntax), the last one as a prefix too, and ranks by bm25() with
  the title weighing `TITLE_WEIGHT`. BM25's statistics are those of the whole table, every
  organization's rows together (they weigh words, and never let a row of another
  organization in).
- vectors: each knowledge embedding that has a model, as float32 (`knowledge_vectors`) and
  as a code of a few hundred bytes (`knowledge_vector_codes`, see `_code`), both keyed by
  organization, model, dimensions and id. `nearest` compares float32 vectors by cosine
  (`vec_distance_cosine`): all of the organization's (exact), or the `_CANDIDATES` whose codes
  are nearest by Hamming distance (approximate: a scan of the codes, and a float32 vector
  read for each candidate only).
"""

from __future__ import annotations

import functools
import json
from statistics import NormalDist
from typing import Any

import numpy as np
import sqlean as sqlite3  # type: ignore[import-untyped]

from providers.engine import TABLES, TITLE_WEIGHT, Table, indexed_text, text_columns


def define_functions(conn: sqlite3.Connection) -> None:
    """What the index triggers call: every connection that writes needs them."""
    conn.create_function("one_text", -1, _one_text, deterministic=True)
    conn.create_function("one_code", 1, _code, deterministic=True)


def index_ddl() -> list[str]:
    """Every search index made anew from the rows: its tables, triggers and contents."""
    text = [s for t in TABLES.values() if t.text for s in _text_index_ddl(t)]
    return [*text, *_vector_index_ddl()]


def optimize_ddl() -> list[str]:
    """Each full-text index merged into one segment: worth it after a bulk load."""
    return [
        f'INSERT INTO "{t.name}_fts" ("{t.name}_fts") VALUES (\'optimize\')'
        for t in TABLES.values()
        if t.text
    ]


def text_candidates(table: Table, words: list[str], org_id: str) -> tuple[str, list[Any]]:
    """The organization's rows of `table` holding every one of `words` (the last also as a
    prefix), as SQL giving one_id and one_rank (BM25, higher is better), and its parameters."""
    fts, ids = f"{table.name}_fts", f"{table.name}_fts_rows"
    match = " ".join(f'"{w}"' for w in words) + "*"
    sql = (
        f'SELECT m.id AS one_id, -bm25("{fts}", {TITLE_WEIGHT}, 1) AS one_rank '
        f'FROM "{fts}" CROSS JOIN "{ids}" m ON m.n = "{fts}".rowid '
        f'WHERE "{fts}" MATCH ? AND m.org_id = ?'
    )
    return sql, [match, org_id]


def vector_candidates(
    org_id: str, model: str, query: Any, *, limit: int, exact: bool
) -> tuple[str, list[Any]]:
    """The organization's knowledge with a vector of `model` as long as `query` (float32), as
    SQL giving one_id and one_rank (cosine distance), and its parameters: every one (exact),
    or the `_CANDIDATES` (or `_OVERSAMPLE` for each of `limit`) nearest by their codes."""
    partition = [org_id, model, int(query.size)]
    if exact:
        sql = (
            "SELECT id AS one_id, vec_distance_cosine(vector, ?) AS one_rank "
            "FROM knowledge_vectors WHERE org_id = ? AND model = ? AND dims = ?"
        )
        return sql, [query.tobytes(), *partition]
    sql = (
        "SELECT v.id AS one_id, vec_distance_cosine(v.vector, ?) AS one_rank FROM "
        "(SELECT id FROM knowledge_vector_codes WHERE org_id = ? AND model = ? "
        "AND dims = ? ORDER BY vec_distance_hamming(vec_bit(code), vec_bit(?)) "
        "LIMIT ?) s CROSS JOIN knowledge_vectors v ON v.org_id = ? AND v.model = ? "
        "AND v.dims = ? AND v.id = s.id"
    )
    size = max(_CANDIDATES, _OVERSAMPLE * limit)
    return sql, [query.tobytes(), *partition, _code(query), size, *partition]


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
        c: json.loads(v) if v is not None and table.columns[c] == "json" else v
        for c, v in zip(text_columns(table), values, strict=True)
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


def ranked_sql(table: Table, candidates: str, where_sql: str, *, descending: bool) -> str:
    """Rows of `table` among `candidates` (SQL giving one_id, one_rank) that match `where_sql`,
    in rank order then by id, with their rank as `one_rank`; LIMIT and OFFSET are the last two
    parameters. The candidates are sorted first and the table read in that order (SQLite
    keeps a subquery's order when it has a LIMIT, here none: -1), so that only as many rows
    are read as the page needs: a row is costly to find when a large column (an embedding,
    a post's HTML) spills it over several pages."""
    direction = "DESC" if descending else "ASC"
    return (
        f"SELECT t.*, c.one_rank FROM (SELECT one_id, one_rank FROM ({candidates}) "
        f"WHERE one_rank IS NOT NULL ORDER BY one_rank {direction}, one_id LIMIT -1) c "
        f'CROSS JOIN "{table.name}" t ON t.id = c.one_id WHERE {where_sql} '
        f"ORDER BY c.one_rank {direction}, c.one_id LIMIT ? OFFSET ?"
    )
