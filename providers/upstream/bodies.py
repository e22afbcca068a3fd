"""What an upstream answered, and reading it: every body is validated by a pydantic model of
the connector's, so an answer of the wrong shape is always PROVIDER_BAD_RESPONSE."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Generic, TypeVar

import httpx
from pydantic import AfterValidator, TypeAdapter

T = TypeVar("T")

_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]*)*)")


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer, read in full (and no larger than the policy allows)."""

    status: int
    headers: httpx.Headers
    content: bytes
    url: httpx.URL

    def link(self, rel: str) -> str | None:
        """The target of the `Link` header entry with this `rel`, as written (unchecked)."""
        for header in self.headers.get_list("link"):
            for target, params in _LINK.findall(header):
                rels = re.findall(r'rel\s*=\s*"?([^";]+)"?', params)
                if any(rel in r.split() for r in rels):
                    return str(target).strip()
        return None

    def excerpt(self, limit: int = 300) -> str:
        """The start of the body, for the log only: upstream text never reaches a client."""
        return self.content[:limit].decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Reply(Generic[T]):
    status: int
    headers: httpx.Headers
    body: T


def json_body(adapter: TypeAdapter[T]) -> Callable[[Answer], T]:
    """A reader that validates the answer's JSON with `adapter` (ValueError when it does not
    fit, which the client reports as a bad response)."""

    def read(answer: Answer) -> T:
        return adapter.validate_json(answer.content)

    return read


def _utc(value: datetime) -> datetime:
    # WordPress's *_gmt fields carry no zone: they are UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
"""An upstream timestamp, aware and in UTC, whatever zone (or none) it was written in."""


def retry_after(headers: httpx.Headers) -> float | None:
    """`Retry-After` in seconds (a number, or an HTTP date), or None when absent or unreadable."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(float(when.timestamp()) - time.time(), 0.0)
