"""GraphQL ids are global references (see `providers.refs`)."""

from __future__ import annotations

import strawberry

from providers.records import Kind
from providers.refs import Ref, native_ref


def global_id(kind: Kind, local_id: str) -> strawberry.ID:
    return strawberry.ID(native_ref(kind, local_id))


def parse_id(value: str, expect: Kind | None = None, field: str = "id") -> Ref:
    """A validated reference; a malformed id raises `InvalidInputError` (BAD_USER_INPUT)."""
    return Ref.parse(value, expect=expect, field=field)
