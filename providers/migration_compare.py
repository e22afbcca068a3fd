"""Shadow reads' comparison: a thing as the current backend serves it against the same thing
read from the backend it is migrating to, field by field.

Only what a person would call a difference counts: each backend's rendering is set aside
(WordPress's `<p>`, entities, typographic quotes and dashes; Shopify's "49.00" for 49), and so
are the fields a backend derives on its own (keys only the candidate has), ids and
timestamps. It runs on every sampled read: one walk over the current record, no I/O.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from providers.lifecycle import EVERY_STATUS, LIVE
from providers.records import Thing, ThingStatus

SHOWN_CHARS = 200  # a diff's strings are cut to this length, "…" included

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
# What WordPress's texturize makes of plain typing, undone on both sides: curly quotes, "..."
# as an ellipsis, "--" and " - " as dashes, "2x4" as a multiplication sign.
_TYPOGRAPHY = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2026": "...",
        "\u2013": "-",
        "\u2014": "-",
        "\u00d7": "x",
        "\u00a0": " ",
    }
)
_DASHES = re.compile(r"-{2,}")
_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)


def map_status(status: ThingStatus, steps: frozenset[ThingStatus]) -> ThingStatus:
    """The step a backend with `steps` holds `status` at: the same one, else its nearest earlier
    live step, else its next later one (Shopify has no 'active': active -> draft)."""
    if status is ThingStatus.ARCHIVED or status in steps:
        return status
    at = LIVE.index(status)
    earlier = [s for s in LIVE[:at] if s in steps]
    later = [s for s in LIVE[at + 1 :] if s in steps]
    return earlier[-1] if earlier else later[0] if later else status


@dataclass(frozen=True, slots=True)
class FieldDiff:
    """One field that differs: its path (`name`, `properties.seo.title`, `properties.tags[1]`)
    and both normalized values, strings cut to `SHOWN_CHARS`."""

    path: str
    current: Any
    candidate: Any


def compare(
    current: Thing,
    candidate: Thing,
    *,
    candidate_statuses: frozenset[ThingStatus] = EVERY_STATUS,
    current_statuses: frozenset[ThingStatus] = EVERY_STATUS,
) -> list[FieldDiff]:
    """The fields where `candidate` differs from `current`, by path (keys alphabetically, list
    items by index); empty when they are the same thing. A status is the same when either
    backend's steps make them so (Shopify's draft is the native store's active, moved back).

    Example: a WordPress name of `"<p>Tea &amp; cake</p>\\n"` is the same as `"Tea & cake"`.
    """
    diffs: list[FieldDiff] = []
    _walk("name", current.name, candidate.name, diffs)
    _walk("properties", current.properties, candidate.properties, diffs)
    expected = map_status(current.status, candidate_statuses)
    if not same_status(current.status, candidate.status, current_statuses, candidate_statuses):
        diffs.append(FieldDiff("status", expected.value, candidate.status.value))
    return diffs


def same_status(
    a: ThingStatus, b: ThingStatus, a_steps: frozenset[ThingStatus], b_steps: frozenset[ThingStatus]
) -> bool:
    """Whether `a` (on a backend with `a_steps`) and `b` (with `b_steps`) are one step."""
    return map_status(a, b_steps) is b or map_status(b, a_steps) is a


def _walk(path: str, current: Any, candidate: Any, diffs: list[FieldDiff]) -> None:
    if isinstance(current, dict):
        if _leaf(candidate) is None:
            candidate = {}
        if isinstance(candidate, dict):
            # Only the current side's keys: the candidate's others are derived (url, slug).
            for key in sorted(current, key=str):
                _walk(f"{path}.{key}", current[key], candidate.get(key), diffs)
            return
    elif isinstance(current, list | tuple):
        items = () if _leaf(candidate) is None else candidate
        if isinstance(items, list | tuple) and len(current) == len(items):
            for i, (mine, theirs) in enumerate(zip(current, items, strict=True)):
                _walk(f"{path}[{i}]", mine, theirs, diffs)
            return
    elif type(current) is type(candidate) and current == candidate:
        return  # the same before normalizing: the common case, spared the work
    elif _same(_leaf(current), _leaf(candidate)):
        return
    diffs.append(FieldDiff(path, _shown(current), _shown(candidate)))


def _leaf(value: Any) -> Any:
    """A scalar as compared: text plain, numbers (and strings of one) Decimal, "" None."""
    if isinstance(value, str):
        if "<" in value or "&" in value:  # else it holds no markup: spare the work
            # Tags out by a regular expression, not a parser: only the words are compared,
            # on both sides alike, and a shadow read compares every field of every thing.
            value = html.unescape(_TAGS.sub(" ", value))
        text = _DASHES.sub("-", " ".join(value.translate(_TYPOGRAPHY).split()))
        if _NUMBER.fullmatch(text):
            return Decimal(text)
        return text or None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float) and math.isfinite(value):
        return Decimal(repr(value))  # repr: 0.1 is "0.1", not its binary expansion
    return value


def _same(a: Any, b: Any) -> bool:
    # bool is an int, and True == Decimal(1): a flag is never a number.
    return bool(a == b) and isinstance(a, bool) is isinstance(b, bool)


def _shown(value: Any) -> Any:
    """A value as a diff reports it: normalized, JSON-ready, strings cut."""
    if isinstance(value, dict):
        return {str(k): _shown(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_shown(v) for v in value]
    value = _leaf(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return value[: SHOWN_CHARS - 1] + "…"
    return value
