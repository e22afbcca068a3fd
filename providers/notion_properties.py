"""A thing's properties as a write to a Notion page: database properties, typed, and the body.

What a write may name, as a `document`'s properties read back (`notion_pages.page_to_thing`):
every property of the database by its name, at the top level or inside `notion`; `tags` for
the database's `Tags`; `content` for the page's body, one paragraph block per blank-line-
separated paragraph. The title is the thing's name and the status select is the lifecycle's,
so a write leaves both alone, as it does `url` and what Notion computes (formulas, rollups,
relations, people, files, timestamps). Any other name is refused; a replace empties every
writable property it does not name, and the body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter

from providers.errors import InvalidInputError
from providers.notion_pages import rich_text
from providers.properties import refuse_unknown
from providers.validation import excerpt

NAME = "notion"
MAX_ITEMS = 100  # Notion's limit on every array: blocks per request, options, rich text items
_EMPTY: dict[str, Any] = {
    "rich_text": [],
    "number": None,
    "select": None,
    "status": None,
    "multi_select": [],
    "checkbox": False,
    "url": None,
    "email": None,
    "phone_number": None,
    "date": None,
}


class _Property(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str


class NotionDatabase(BaseModel):
    model_config = ConfigDict(extra="ignore")
    properties: dict[str, _Property]

    def types(self) -> dict[str, str]:
        """Property name -> Notion type."""
        return {name: p.type for name, p in self.properties.items()}


DATABASE = TypeAdapter(NotionDatabase)


@dataclass(frozen=True, slots=True)
class NotionWrite:
    properties: dict[str, Any]  # Notion property values, by property name
    content: str | None  # the new body; None leaves it as it is


def names_given(properties: Mapping[str, Any]) -> set[str]:
    return set(_flat(properties))


def notion_write(
    schema: Mapping[str, str],
    properties: Mapping[str, Any],
    *,
    merge: bool,
    title_property: str,
    status_property: str,
) -> NotionWrite:
    """The page write of `properties` for a database of `schema` (name -> type)."""
    flat = _flat(properties)
    if "tags" in flat and "Tags" in schema:
        flat["Tags"] = flat.pop("tags")
    writable = {
        name
        for name, kind in schema.items()
        if kind in _EMPTY and name not in (title_property, status_property)
    }
    computed = {name for name in schema if name not in writable and name != title_property}
    refuse_unknown(NAME, flat, writable | {"content"}, computed | {"url"})
    values = {} if merge else {name: {schema[name]: _EMPTY[schema[name]]} for name in writable}
    for name in writable & set(flat):
        values[name] = {schema[name]: _value(name, schema[name], flat[name])}
    content = flat.get("content", None if merge else "")
    if content is not None and not isinstance(content, str):
        raise InvalidInputError("'content' must be text", field="content", provider=NAME)
    return NotionWrite(values, content)


def paragraph_blocks(content: str) -> list[dict[str, Any]]:
    paragraphs = [p for p in content.split("\n\n") if p.strip()]
    if len(paragraphs) > MAX_ITEMS:
        raise InvalidInputError(
            f"Notion takes at most {MAX_ITEMS} blocks per request; content has "
            f"{len(paragraphs)} paragraphs",
            field="properties",
            provider=NAME,
        )
    return [
        {"object": "block", "type": "paragraph", "paragraph": {"rich_text": rich_text(p)}}
        for p in paragraphs
    ]


def _flat(properties: Mapping[str, Any]) -> dict[str, Any]:
    nested = properties.get("notion")
    if nested is not None and not isinstance(nested, dict):
        raise InvalidInputError("'notion' must be an object", field="notion", provider=NAME)
    return {**(nested or {}), **{k: v for k, v in properties.items() if k != "notion"}}


def _value(name: str, kind: str, value: Any) -> Any:
    """`value` as Notion's value of a `kind` property; None empties it."""
    if value is None:
        return _EMPTY[kind]
    if kind == "rich_text" and isinstance(value, str):
        return rich_text(value) if value else []
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if kind in ("select", "status") and isinstance(value, str):
        return {"name": value}
    if kind == "multi_select" and _names(value):
        return [{"name": v} for v in value]
    if kind == "checkbox" and isinstance(value, bool):
        return value
    if kind in ("url", "email", "phone_number") and isinstance(value, str):
        return value
    if kind == "date" and isinstance(value, str):
        return {"start": value}
    expected = {
        "number": "a number",
        "checkbox": "true or false",
        "multi_select": "a list of names",
    }
    raise InvalidInputError(
        f"'{excerpt(name)}' is a Notion {kind} property: give {expected.get(kind, 'text')}",
        field=name,
        provider=NAME,
    )


def _names(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) <= MAX_ITEMS
        and all(isinstance(v, str) and v for v in value)
    )
