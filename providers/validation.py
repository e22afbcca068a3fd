"""Input checks shared by every write of the native store; each failure names its field.

Names (of organizations, people, things, keys, labels) and emails are normalized before they
are stored or compared: Unicode NFC (so "é" typed either way is one name), trimmed, and refused
when they hold a control or format character (NUL, BOM, zero-width and bidi marks): such
characters make two values that look alike differ, or hide text. Emails are then lowercased
whole. RFC 5321 lets a mailbox's local part be case-sensitive, but no mail service we know
treats it so, and two accounts differing only in case are far likelier one person than two.

Error messages quote user input through `excerpt`, never more than a short prefix of it.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from providers.errors import InvalidInputError
from providers.records import (
    EVENT_TYPES,
    RELATIONSHIP_TYPES,
    THING_TYPES,
    JSONObject,
    Role,
    ThingStatus,
)

MAX_NAME_LENGTH = 200
MAX_TEXT_LENGTH = 100_000
MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32  # MongoDB takes 100 levels; nobody's properties need more than a few
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
# Unicode control and format characters, and lone surrogates (not text; no store takes them)
_INVISIBLE = frozenset({"Cc", "Cf", "Cs"})
EXCERPT_LENGTH = 40


def excerpt(value: str, limit: int = EXCERPT_LENGTH) -> str:
    """A short, printable prefix of user input, to quote in an error message."""
    shown = "".join(c if c.isprintable() else "?" for c in value[:limit])
    return shown + "…" if len(value) > limit else shown


def _normalized(value: str, field: str) -> str:
    cleaned = unicodedata.normalize("NFC", value).strip()
    for char in cleaned:
        if unicodedata.category(char) in _INVISIBLE:
            raise InvalidInputError(
                f"'{field}' must not contain control or invisible characters "
                f"(found U+{ord(char):04X})",
                field=field,
            )
    return cleaned


def name(value: str, field: str = "name") -> str:
    cleaned = _normalized(value, field)
    if not cleaned:
        raise InvalidInputError(f"'{field}' must not be empty", field=field)
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidInputError(
            f"'{field}' is {len(cleaned)} characters long; at most {MAX_NAME_LENGTH} are allowed",
            field=field,
        )
    return cleaned


def text(value: str, field: str = "text") -> str:
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise InvalidInputError(f"'{field}' is not valid Unicode text", field=field)
    if not value.strip():
        raise InvalidInputError(f"'{field}' must not be empty", field=field)
    if len(value) > MAX_TEXT_LENGTH:
        raise InvalidInputError(
            f"'{field}' is {len(value)} characters long; at most {MAX_TEXT_LENGTH} are allowed",
            field=field,
        )
    return value


def json_object(value: Any, field: str) -> JSONObject:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(
            f"'{field}' must be a JSON object, not {type(value).__name__}", field=field
        )
    if _depth(value) > MAX_JSON_DEPTH:
        raise InvalidInputError(f"'{field}' nests deeper than {MAX_JSON_DEPTH} levels", field=field)
    try:
        size = len(json.dumps(value, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"'{field}' is not valid JSON: {exc}", field=field) from None
    if size > MAX_JSON_BYTES:
        raise InvalidInputError(
            f"'{field}' is {size} bytes of JSON; at most {MAX_JSON_BYTES} are allowed",
            field=field,
        )
    return value


def _depth(value: Any) -> int:
    """How deep lists and objects nest in `value` (a loop: it may nest past Python's stack)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_JSON_DEPTH:
                pending.extend(
                    (v, level + 1) for v in (item.values() if isinstance(item, dict) else item)
                )
    return deepest


def slug(value: str, field: str = "slug") -> str:
    if not _SLUG.fullmatch(value):
        raise InvalidInputError(
            f"'{field}' must be 2-63 lowercase letters, digits or dashes, starting with a "
            "letter or digit",
            field=field,
        )
    return value


def email(value: str, field: str = "email") -> str:
    cleaned = _normalized(value, field).lower()
    if len(cleaned) > 254 or not _EMAIL.fullmatch(cleaned):
        raise InvalidInputError(f"'{field}' is not an email address", field=field)
    return cleaned


def thing_type(value: str, field: str = "type") -> str:
    if value not in THING_TYPES:
        raise InvalidInputError(
            f"unknown thing type '{excerpt(value)}'; known types: {', '.join(sorted(THING_TYPES))}",
            field=field,
        )
    return value


def relationship_type(value: str, field: str = "relationshipType") -> str:
    if value not in RELATIONSHIP_TYPES:
        raise InvalidInputError(
            f"unknown relationship type '{excerpt(value)}'; known types: "
            f"{', '.join(sorted(RELATIONSHIP_TYPES))}",
            field=field,
        )
    return value


def event_type(value: str, field: str = "type") -> str:
    if value not in EVENT_TYPES:
        raise InvalidInputError(
            f"unknown event type '{excerpt(value)}'; known types: {', '.join(sorted(EVENT_TYPES))}",
            field=field,
        )
    return value


def role(value: str, field: str = "role") -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidInputError(
            f"unknown role '{excerpt(value)}'; roles: {', '.join(r.value for r in Role)}",
            field=field,
        ) from None


def status(value: str, field: str = "status") -> ThingStatus:
    try:
        return ThingStatus(value)
    except ValueError:
        raise InvalidInputError(
            f"unknown status '{excerpt(value)}'; "
            f"statuses: {', '.join(s.value for s in ThingStatus)}",
            field=field,
        ) from None
