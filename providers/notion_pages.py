"""Notion's answers as we read them (validated), pages as `document` things (titles, rich
text, flattened properties), and our cursors over Notion's lists."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter

from providers.cursors import decode_cursor_value, encode_cursor_value, invalid_cursor
from providers.records import Thing, ThingStatus
from providers.upstream import UtcDatetime

T = TypeVar("T")
MAX_TEXT = 2000
MAX_LISTED = 100  # the most a list answer holds
# The status select's option names, one per live lifecycle step; a trashed page is archived.
STATUS_NAMES = {
    ThingStatus.DRAFT: "Draft",
    ThingStatus.ACTIVE: "Active",
    ThingStatus.PUBLISHED: "Published",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class NotionPage(_Model):
    object: Literal["page"] = "page"
    id: str
    created_time: UtcDatetime | None = None
    last_edited_time: UtcDatetime | None = None
    archived: bool = False
    in_trash: bool = False
    url: str | None = None
    parent: dict[str, Any] = {}
    properties: dict[str, dict[str, Any]] = {}

    @property
    def database_id(self) -> str | None:
        value = self.parent.get("database_id")
        return value if isinstance(value, str) else None


class Listing(_Model, Generic[T]):
    object: Literal["list"] = "list"
    results: list[T]
    has_more: bool = False
    next_cursor: str | None = None


class NotionError(_Model):
    object: Literal["error"] = "error"
    status: int | None = None
    code: str = ""
    message: str = ""


PAGE = TypeAdapter(NotionPage)
PAGES = TypeAdapter(Listing[NotionPage])
BLOCKS = TypeAdapter(Listing[dict[str, Any]])
OBJECT = TypeAdapter(dict[str, Any])
ERROR = TypeAdapter(NotionError)


def plain_text(rich: Any) -> str:
    if not isinstance(rich, list):
        return ""
    texts = []
    for r in rich:
        if not isinstance(r, dict):
            continue
        text = r.get("text")
        texts.append(
            str(r.get("plain_text") or (text.get("content", "") if isinstance(text, dict) else ""))
        )
    return "".join(texts)


def rich_text(text: str) -> list[dict[str, Any]]:
    """Rich text within Notion's limits: 2000 characters an item."""
    return [
        {"type": "text", "text": {"content": text[i : i + MAX_TEXT]}}
        for i in range(0, len(text), MAX_TEXT)
    ] or [{"type": "text", "text": {"content": ""}}]


def block_text(block: dict[str, Any]) -> str:
    kind = block.get("type")
    content = block.get(kind) if isinstance(kind, str) else None
    return plain_text(content.get("rich_text")) if isinstance(content, dict) else ""


def _property_value(prop: dict[str, Any]) -> Any:
    """A property's value as plain JSON; what we cannot flatten (relations, rollups, files,
    or a shape we do not know) is None."""
    kind = prop.get("type")
    value = prop.get(kind) if isinstance(kind, str) else None
    if kind in ("title", "rich_text"):
        return plain_text(value)
    if kind in ("select", "status"):
        return value.get("name") if isinstance(value, dict) else None
    if kind == "multi_select":
        options = value if isinstance(value, list) else []
        return [o.get("name") for o in options if isinstance(o, dict)]
    if kind in ("number", "checkbox", "url", "email", "phone_number"):
        return value if isinstance(value, str | int | float | bool) else None
    if kind == "date":
        return value.get("start") if isinstance(value, dict) else None
    return None


def page_to_thing(
    page: NotionPage, org_id: str, *, title_property: str, status_property: str
) -> Thing:
    props = page.properties
    title = props.get(title_property) or next(
        (p for p in props.values() if p.get("type") == "title"), {}
    )
    status_name = _property_value(props.get(status_property) or {})
    by_name = {v.lower(): k for k, v in STATUS_NAMES.items()}
    status = by_name.get(str(status_name or "").lower(), ThingStatus.DRAFT)
    if page.archived or page.in_trash:
        status = ThingStatus.ARCHIVED
    flat = {name: _property_value(p) for name, p in props.items() if name != title_property}
    tags = flat.get("Tags")
    return Thing(
        id=page.id,
        org_id=org_id,
        type="document",
        name=plain_text(title.get("title")),
        status=status,
        provider="notion",
        external_id=page.id,
        properties={
            "url": page.url,
            "notion": flat,
            "tags": tags if isinstance(tags, list) else [],
        },
        created_at=page.created_time or datetime.now(UTC),
        updated_at=page.last_edited_time or datetime.now(UTC),
    )


# A cursor of ours: the start of a Notion page (Notion's own cursor) and how many of its items
# were seen, so that resuming after any item continues right after it.
def encode_cursor(start: str | None, skip: int) -> str:
    return encode_cursor_value({"c": start, "i": skip})


def decode_cursor(cursor: str | None) -> tuple[str | None, int]:
    """(the start of a Notion page, how many of its items were seen)."""
    if cursor is None:
        return None, 0
    value = decode_cursor_value(cursor)
    start = value.get("c") if isinstance(value, dict) else None
    skip = value.get("i") if isinstance(value, dict) else None
    if (start is None or (isinstance(start, str) and 0 < len(start) <= 200)) and (
        isinstance(skip, int) and not isinstance(skip, bool) and 0 <= skip <= MAX_LISTED
    ):
        return start, skip
    raise invalid_cursor()
