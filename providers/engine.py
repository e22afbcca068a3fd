"""The storage engine protocol: the few primitives the native store is written on.

The native store's rules (lifecycle, events, validation, scoping) are written once in
`providers.native` over these primitives, so SQLite and MongoDB cannot drift apart; each
engine only translates conditions and rows. A row is a dict of plain Python values
(`str`, `datetime`, `dict`, `list`, `None`).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from providers.errors import ConflictError

Row = dict[str, Any]
Op = Literal["eq", "in", "lt", "le", "gt", "ge", "null_or_gt", "contains"]
ColumnType = Literal["text", "json", "datetime"]


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
    name: str
    columns: dict[str, ColumnType]
    indexes: tuple[tuple[str, ...], ...] = ()
    unique: tuple[str, ...] = ()


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
            },
            indexes=(
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
            },
            indexes=(("org_id", "source_ref"), ("org_id", "created_at", "id")),
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
    )
}


@dataclass(frozen=True, slots=True)
class Order:
    """Keyset order: by `field` then `id`; `after` is the (field value, id) of the last row seen."""

    field: str
    descending: bool = False
    after: tuple[Any, str] | None = None


class Reader(Protocol):
    async def find(
        self, table: str, where: Where, *, order: Order | None = None, limit: int | None = None
    ) -> list[Row]: ...

    async def count(self, table: str, where: Where) -> int: ...


class Transaction(Reader, Protocol):
    """Writes that commit together or not at all; reads inside see the writes so far."""

    async def insert(self, table: str, row: Row) -> None: ...

    async def update(self, table: str, id: str, fields: Row) -> None: ...


class Engine(Reader, Protocol):
    name: str
    queries: int  # store round trips since start: what benchmarks and tests count

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...

    async def find_top(
        self, table: str, where: Where, *, per: str, order: Order, limit: int
    ) -> list[Row]:
        """The first `limit` rows by `order` for each value of `per`, in one query."""
        ...


def conflict(table: str, field: str | None) -> ConflictError:
    """The error for a write that breaks a unique index of `table`."""
    noun = "person" if table == "people" else table.removesuffix("s")
    return ConflictError(f"a {noun} with this {field or 'id'} already exists", field=field)
