"""Notion page objects as `document` things: titles, rich text, flattened properties."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from providers.errors import ProviderResponseError
from providers.records import Thing, ThingStatus

MAX_TEXT = 2000
# The status select's option names, one per live lifecycle step; a trashed page is archived.
STATUS_NAMES = {
    ThingStatus.DRAFT: "Draft",
    ThingStatus.ACTIVE: "Active",
    ThingStatus.PUBLISHED: "Published",
}


def _time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def plain_text(rich: Any) -> str:
    if not isinstance(rich, list):
        return ""
    return "".join(
        str(r.get("plain_text") or (r.get("text") or {}).get("content", ""))
        for r in rich
        if isinstance(r, dict)
    )


def rich_text(text: str) -> list[dict[str, Any]]:
    """Rich text within Notion's limits: 2000 characters an item."""
    return [
        {"type": "text", "text": {"content": text[i : i + MAX_TEXT]}}
        for i in range(0, len(text), MAX_TEXT)
    ] or [{"type": "text", "text": {"content": ""}}]


def _property_value(prop: dict[str, Any]) -> Any:
    kind = prop.get("type")
    value = prop.get(kind) if isinstance(kind, str) else None
    if kind in ("title", "rich_text"):
        return plain_text(value)
    if kind in ("select", "status"):
        return (value or {}).get("name")
    if kind == "multi_select":
        return [o.get("name") for o in value or []]
    if kind in ("number", "checkbox", "url", "email", "phone_number"):
        return value
    if kind == "date":
        return (value or {}).get("start")
    return None  # relations, rollups, files...: not flattened


def page_to_thing(
    page: dict[str, Any], org_id: str, *, title_property: str, status_property: str
) -> Thing:
    try:
        props = page.get("properties") or {}
        title: dict[str, Any] = props.get(title_property) or next(
            (p for p in props.values() if p.get("type") == "title"), {}
        )
        status_name = _property_value(props.get(status_property) or {})
        by_name = {v.lower(): k for k, v in STATUS_NAMES.items()}
        status = by_name.get(str(status_name or "").lower(), ThingStatus.DRAFT)
        if page.get("archived") or page.get("in_trash"):
            status = ThingStatus.ARCHIVED
        flat = {name: _property_value(p) for name, p in props.items() if name != title_property}
        tags = flat.get("Tags")
        return Thing(
            id=page["id"],
            org_id=org_id,
            type="document",
            name=plain_text(title.get("title")),
            status=status,
            provider="notion",
            external_id=page["id"],
            properties={
                "url": page.get("url"),
                "notion": flat,
                "tags": tags if isinstance(tags, list) else [],
            },
            created_at=_time(page.get("created_time")),
            updated_at=_time(page.get("last_edited_time")),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ProviderResponseError(
            f"Notion sent a page we cannot read: {exc}", provider="notion"
        ) from None
