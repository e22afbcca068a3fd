"""Opaque cursors: a small JSON value, base64url-encoded without padding.

Decoding is bounded (a cursor longer than `MAX_CURSOR_CHARS`, or one whose JSON nests past
the parser's stack, is refused like any other cursor this API did not return), so a forged
cursor is always BAD_USER_INPUT and never a crash.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from providers.errors import InvalidInputError

MAX_CURSOR_CHARS = 512


def encode_cursor_value(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor_value(cursor: str) -> Any:
    """The JSON value inside `cursor`, or `InvalidInputError` naming `after`."""
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise invalid_cursor() from None


def invalid_cursor() -> InvalidInputError:
    return InvalidInputError("'after' is not a cursor this API returned", field="after")
