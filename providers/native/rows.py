"""Records to engine rows and back, and the keyset paging every list shares."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from providers.cursors import decode_cursor_value, encode_cursor_value, invalid_cursor
from providers.engine import Engine, Order, Row, Where
from providers.errors import InvalidInputError
from providers.records import Thing, ThingStatus

MAX_PAGE_SIZE = 100
R = TypeVar("R")


def to_row(record: Any) -> Row:
    row: Row = {}
    for f in fields(record):
        value = getattr(record, f.name)
        row[f.name] = value.value if isinstance(value, Enum) else value
    return row


def to_thing(row: Row) -> Thing:
    return Thing(**{**row, "status": ThingStatus(row["status"])})


def in_order(ids: Sequence[str], records: Iterable[R], key: str = "id") -> list[R | None]:
    """`records` arranged as `ids` asks, `None` where one is missing."""
    by_id = {getattr(r, key): r for r in records}
    return [by_id.get(i) for i in ids]


def encode_cursor(value: datetime, id: str) -> str:
    return encode_cursor_value([value.isoformat(), id])


def decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        value, id = decode_cursor_value(cursor)
        return datetime.fromisoformat(value), str(id)
    except (ValueError, TypeError):
        raise invalid_cursor() from None


def page_size(first: int) -> int:
    if not 0 <= first <= MAX_PAGE_SIZE:
        raise InvalidInputError(
            f"'first' must be between 0 and {MAX_PAGE_SIZE}, not {first}", field="first"
        )
    return first


async def fetch_page(
    engine: Engine, table: str, where: Where, order: Order, first: int
) -> tuple[list[Row], bool, int]:
    """One page of rows (`first` of them), whether more follow, and the total count."""
    rows = await engine.find(table, where, order=order, limit=page_size(first) + 1)
    total = await engine.count(table, where)
    return rows[:first], len(rows) > first, total
