"""Scalars with stricter rules than Strawberry's defaults."""

from __future__ import annotations

from datetime import datetime

import strawberry


def _aware(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("a DateTime is an ISO 8601 string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        # A naive instant means a different moment on every server: refuse it.
        raise ValueError("a DateTime needs a time zone, e.g. 2030-01-01T00:00:00Z")
    return parsed


DateTime = strawberry.scalar(
    name="DateTime",
    description="An instant, ISO 8601 with a time zone (2030-01-01T00:00:00Z).",
    serialize=lambda value: value.isoformat(),
    parse_value=_aware,
)
