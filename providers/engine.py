"""The storage engine protocol: the few primitives the native store is written on.

The native store's rules (lifecycle, events, validation, scoping) are written once in
`providers.native` over these primitives, so SQLite and MongoDB cannot drift apart; each
engine only translates conditions and rows. A row is a dict of plain Python values
(`str`, `datetime`, `dict`, `list`, `None`).

Each engine also keeps two indexes in step with the rows, inside the writing transaction:
a full-text index over each table's `Table.text` (`Engine.search_text`) and a vector index
over knowledge embeddings (`Engine.nearest`). What the full-text index holds is made here
(`indexed_text`), and so are the snippets (`text_hit`), so both engines index and mark the
same words.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from providers.errors import ConflictError
from providers.snippets import highlight, plain_text

log = logging.getLogger("one.store")

Row = dict[str, Any]
Op = Literal["eq", "in", "lt", "le", "gt", "ge", "null_or_gt", "contains"]
ColumnType = Literal["text", "json", "datetime", "integer"]


@dataclass(frozen=True, slots=True)
class Cond:
    """`field <op> value`; `null_or_gt` is true when the field is null or greater."""

    field: str
    op: Op
    value: Any


@dataclass(frozen=True, slots=True)
class AnyOf:
    """True when any of its conditions is."""

    conds: tuple[Cond, ...]


Where = list[Cond | AnyOf]


@dataclass(frozen=True, slots=True)
class Table:
    """A table (a collection on MongoDB). `text` is what its full-text index covers: columns,
    or paths into a json column ("properties.content"), each indexed as plain text (HTML
    tags and scripts left out) when it holds a string. The first is the row's title: a word
    found there weighs `TITLE_WEIGHT` times as much."""

    name: str
    columns: dict[str, ColumnType]
    indexes: tuple[tuple[str, ...], ...] = ()
    unique: tuple[str, ...] = ()
    text: tuple[str, ...] = ()


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "organizations",
            {
                "id": "text",
                "name": "text",
                "slug": "text",
                "parent_id": "text",
                "plan": "text",
                "limits": "json",
                "usage": "json",
                "status": "text",
                "created_at": "datetime",
            },
            indexes=(("parent_id",),),
            unique=("slug",),
        ),
        Table(
            "people",
            {"id": "text", "email": "text", "name": "text", "created_at": "datetime"},
            unique=("email",),
        ),
        Table(
            "things",
            {
                "id": "text",
                "org_id": "text",
                "type": "text",
                "name": "text",
                "status": "text",
                "properties": "json",
                "provider": "text",
                "external_id": "text",
                "created_at": "datetime",
                "updated_at": "datetime",
            },
            indexes=(("org_id", "created_at", "id"), ("org_id", "type", "created_at", "id")),
            text=(
                "name",
                "properties.content",
                "properties.description",
                "properties.excerpt",
                "properties.body",
                "properties.text",
            ),
        ),
        Table(
            "connections",
            {
                "id": "text",
                "org_id": "text",
                "from_ref": "text",
                "to_ref": "text",
                "relationship_type": "text",
                "metadata": "json",
                "valid_from": "datetime",
                "valid_to": "datetime",
                "created_at": "datetime",
            },
            indexes=(("org_id", "from_ref"), ("org_id", "to_ref")),
        ),
        Table(
            "events",
            {
                "id": "text",
                "org_id": "text",
                "type": "text",
                "actor_ref": "text",
                "target_ref": "text",
                "timestamp": "datetime",
                "metadata": "json",
                # The event's place in its organization's stream: 1, 2, 3... in commit order
                # (see `event_streams`); what subscribers resume from.
                "seq": "integer",
            },
            indexes=(
                ("org_id", "seq"),
                ("org_id", "timestamp", "id"),
                ("org_id", "target_ref", "timestamp"),
                ("org_id", "actor_ref", "timestamp"),
            ),
        ),
        Table(
            "knowledge",
            {
                "id": "text",
                "org_id": "text",
                "kind": "text",
                "text": "text",
                "labels": "json",
                "embedding": "json",
                "source_ref": "text",
                "created_at": "datetime",
                # The model that made `embedding` (its dimension is the vector's length), and a
                # chunk's place among the chunks of its source.
                "embedding_model": "text",
                "position": "integer",
            },
            indexes=(("org_id", "source_ref"), ("org_id", "created_at", "id")),
            text=("text",),
        ),
        Table(
            "provider_configs",
            {
                "id": "text",
                "org_id": "text",
                "provider": "text",
                "config": "json",
                "routes": "json",
                "status": "text",
                "created_at": "datetime",
                "updated_at": "datetime",
                "health": "json",
            },
            indexes=(("org_id", "status"),),
        ),
        Table(
            "api_keys",
            {
                "id": "text",
                "org_id": "text",
                "name": "text",
                "role": "text",
                "prefix": "text",
                "key_hash": "text",
                "created_by": "text",
                "created_at": "datetime",
                "last_used_at": "datetime",
                "revoked_at": "datetime",
            },
            indexes=(("org_id", "created_at"),),
            unique=("key_hash",),
        ),
        Table(
            "trusted_documents",
            {
                "id": "text",
                "org_id": "text",
                "scope_key": "text",  # a hash of (org, sha256, key scope): one row for each
                "sha256": "text",
                "document": "text",
                "name": "text",
                "api_key_id": "text",
                "created_by": "text",
                "created_at": "datetime",
                "removed_at": "datetime",
            },
            indexes=(("org_id", "sha256"), ("org_id", "created_at", "id")),
            unique=("scope_key",),
        ),
        Table(
            # One row per organization (id = the organization's id), for settings that are
            # not part of its plan.
            "organization_settings",
            {"id": "text", "safelist_mode": "text", "updated_at": "datetime"},
        ),
        Table(
            # One row per organization (id = the organization's id): the last sequence number
            # given to its events, and the last one known to be published to subscribers.
            "event_streams",
            {"id": "text", "last_seq": "integer", "published_seq": "integer"},
        ),
        Table(
            # Webhook deliveries already taken in (id = a hash of provider, organization and
            # the delivery's own id), so a retried delivery is not processed twice.
            "webhook_deliveries",
            {"id": "text", "org_id": "text", "provider": "text", "received_at": "datetime"},
            indexes=(("received_at",),),
        ),
        Table(
            # Where change detection stands for an organization's provider (id =
            # "<org id>:<provider>"): a high-water mark, and the ids it has seen.
            "change_watermarks",
            {
                "id": "text",
                "org_id": "text",
                "provider": "text",
                "watermark": "text",
                "known_ids": "json",
                "updated_at": "datetime",
            },
        ),
        Table(
            # Moving a thing type from one backend to another (providers/native/migrations.py):
            # where the copy stands, the rollout, the shadow reads' tallies.
            "migrations",
            {
                "id": "text",
                "org_id": "text",
                "type": "text",
                "source": "text",
                "target": "text",
                "state": "text",
                "dry_run": "integer",
                "rollout_percent": "integer",
                "sample_percent": "integer",
                "thresholds": "json",
                "progress": "json",
                "checkpoint": "json",
                "failures": "json",
                "shadow": "json",
                "paused_reason": "text",
                # The process copying it, and until when (another waits or takes over then).
                "lease_owner": "text",
                "lease_until": "datetime",
                "created_by": "text",
                "created_at": "datetime",
                "updated_at": "datetime",
            },
            indexes=(("org_id", "state"),),
        ),
        Table(
            # A copied thing's old global id -> its copy's (id = a hash of organization, old
            # reference and target provider, so copying it again finds the same row).
            "id_aliases",
            {
                "id": "text",
                "org_id": "text",
                "old_ref": "text",
                "new_ref": "text",
                "migration_id": "text",
                "source_updated_at": "text",
                "created_at": "datetime",
                "updated_at": "datetime",
            },
            indexes=(("org_id", "old_ref"), ("org_id", "new_ref")),
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Order:
    """Keyset order: by `field` then `id`; `after` is the (field value, id) of the last row seen."""

    field: str
    descending: bool = False
    after: tuple[Any, str] | None = None


@dataclass(frozen=True, slots=True)
class TextHit:
    row: Row
    score: float  # relevance, higher is better: BM25 (MongoDB's own text score on a server)
    snippet: str  # about 24 words around the matches: escaped HTML, matches in <mark>


@dataclass(frozen=True, slots=True)
class VectorHit:
    row: Row
    distance: float  # cosine distance: 0 for the same direction, 2 for the opposite


class Reader(Protocol):
    async def find(
        self, table: str, where: Where, *, order: Order | None = None, limit: int | None = None
    ) -> list[Row]: ...

    async def count(self, table: str, where: Where) -> int: ...


class Transaction(Reader, Protocol):
    """Writes that commit together or not at all; reads inside see the writes so far."""

    async def insert(self, table: str, row: Row) -> None: ...

    async def update(self, table: str, id: str, fields: Row) -> None: ...

    async def delete(self, table: str, id: str) -> None:
        """Remove row `id` of `table`, and with it its text and vector from the search
        indexes. A row that is not there is no error: there is nothing to remove."""
        ...

    async def increment(self, table: str, id: str, field: str) -> int:
        """Add one to the integer `field` of row `id` (made, at 1, when missing) and return the
        new value. The row stays locked until the transaction ends, so two transactions that
        increment the same row commit in the order of the numbers they got."""
        ...


class Engine(Reader, Protocol):
    name: str
    # Store round trips since start: what benchmarks and tests count. The relay's bookkeeping
    # (`raise_to`) runs beside requests and is not counted.
    queries: int

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...

    async def find_top(
        self, table: str, where: Where, *, per: str, order: Order, limit: int
    ) -> list[Row]:
        """The first `limit` rows by `order` for each value of `per`, in one query."""
        ...

    async def raise_to(self, table: str, id: str, field: str, value: int) -> None:
        """Set the integer `field` of row `id` to `value` unless it is already higher (made
        when missing): a mark that several processes move and none moves back."""
        ...

    def on_commit(self, table: str, listener: Callable[[Row], None]) -> None:
        """Call `listener` with each row inserted into `table`, in insertion order, once the
        transaction that inserted it has committed (never for one that rolled back)."""
        ...

    async def search_text(
        self, table: str, where: Where, query: str, *, limit: int, offset: int = 0
    ) -> list[TextHit]:
        """Rows of `table` matching `where` whose text (`Table.text`) holds every word of
        `query`, case and diacritics aside, the last word also as the start of a longer one;
        the most relevant first (BM25), ties by id. `where` must name the organization
        (`org_id` eq). `query` is free text, never query syntax: one without words finds
        nothing. A committed write is found at once."""
        ...

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
        """Rows of `table` matching `where` whose `embedding` was made by `model` and has as
        many dimensions as `vector`, nearest to it by cosine first, ties by id. `where` must
        name the organization (`org_id` eq). `exact` compares `vector` with every such row;
        by default an index picks candidates first: much faster, and it may miss a few of
        the true nearest (see each engine for how, and where its `where` is applied)."""
        ...


def committed(
    listeners: dict[str, list[Callable[[Row], None]]], inserted: list[tuple[str, Row]]
) -> None:
    """Tell `on_commit` listeners of a committed transaction's rows. The transaction stands
    whatever a listener does, so a listener's failure is logged, not raised."""
    for table, row in inserted:
        for listener in listeners.get(table, ()):
            try:
                listener(row)
            except Exception:
                log.exception("an on_commit listener of %s failed", table)


TITLE_WEIGHT = 3


def text_columns(table: Table) -> tuple[str, ...]:
    """The columns `table.text` reads."""
    return tuple(dict.fromkeys(entry.split(".", 1)[0] for entry in table.text))


def indexed_text(table: Table, row: Row) -> tuple[str, str]:
    """What the full-text index holds for `row`: its title (the first of `table.text`) and
    the rest, one line each, as plain text. `row` needs only the `text_columns`."""
    parts: list[str] = []
    for entry in table.text:
        column, *path = entry.split(".")
        value = row.get(column)
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        # Composed: an accent typed as a mark of its own would otherwise split the word.
        parts.append(
            unicodedata.normalize("NFC", plain_text(value)) if isinstance(value, str) else ""
        )
    title, *rest = parts or [""]
    return title, "\n".join(p for p in rest if p)


def text_hit(table: Table, row: Row, score: float, query: str) -> TextHit:
    """A hit with its snippet, made from the text the index holds."""
    title, body = indexed_text(table, row)
    return TextHit(row, score, highlight(f"{title}\n{body}" if body else title, query))


def organization_of(where: Where) -> str:
    """The organization `where` is scoped to, which the search indexes are partitioned by."""
    for cond in where:
        if isinstance(cond, Cond) and cond.field == "org_id" and cond.op == "eq":
            return str(cond.value)
    raise ValueError("a search needs the organization: Cond('org_id', 'eq', ...)")


def conflict(table: str, field: str | None) -> ConflictError:
    """The error for a write that breaks a unique index of `table`."""
    noun = "person" if table == "people" else table.removesuffix("s")
    return ConflictError(f"a {noun} with this {field or 'id'} already exists", field=field)
