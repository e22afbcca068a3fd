"""Federated search: one query over every backend that holds an organization's things.

Each *source* (the native store, or one type of one upstream: `wordpress:blog_post`) is asked
in parallel for its best matches, in its own order of relevance: BM25 over the native store's
full-text index, WordPress `search=` by relevance, Shopify's `query:` search, Notion's search
endpoint (its own order, most recently edited first). The lists are merged by reciprocal rank
fusion (Cormack, Clarke & Büttcher, 2009): a hit at rank r of its list scores 1 / (60 + r).

Paging: a cursor records, for each source, how many of its hits have been handed out, the
source's own cursor after the last of them and whether it is exhausted. A page asks each
source for `first` hits after its position, fuses them and hands out the best `first`; each
source moves on by exactly the hits taken from it, so a thing is never handed out twice nor
skipped (as long as each backend's own order holds between requests). A hit's RRF score
depends only on its rank in its list, so the fused order is the same whatever the page size.

A source that fails or is not back by the deadline leaves its hits out of that page, with a
`SourceFailure` saying why, and stays where it stood: the next page asks it again.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import heapq
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from providers.errors import InvalidInputError, OneError, ProviderUnavailableError
from providers.native.chunking import thing_text
from providers.provider import Hit, ListQuery, Provider, SearchQuery
from providers.records import Page
from providers.snippets import highlight

RRF_K = 60  # the constant of reciprocal rank fusion: flattens the head of each list
MAX_FIRST = 100

Fetch = Callable[[SearchQuery], Awaitable[Page[Hit]]]


@dataclass(frozen=True, slots=True)
class Source:
    key: str  # "native", "wordpress:blog_post", ...
    provider: str
    query: SearchQuery  # without `first`/`after`, which each page sets
    fetch: Fetch


@dataclass(frozen=True, slots=True)
class FusedHit:
    hit: Hit
    provider: str
    source: str
    rank: int  # 1-based, within its source's list
    score: float  # its RRF score
    cursor: str  # the search resumes right after this hit


@dataclass(frozen=True, slots=True)
class SourceFailure:
    source: str
    provider: str
    error: OneError


@dataclass(frozen=True, slots=True)
class FusedPage:
    hits: list[FusedHit]
    has_next_page: bool
    end_cursor: str  # where the next page starts (the last hit's cursor, if any)
    failures: list[SourceFailure] = field(default_factory=list)


@dataclass(slots=True)
class _Position:
    taken: int = 0  # hits handed out so far
    after: str | None = None  # the source's own cursor after the last of them
    done: bool = False  # nothing more to hand out

    def encode(self) -> list[Any]:
        return [self.taken, self.after, self.done]


async def upstream_hits(provider: Provider, query: SearchQuery) -> Page[Hit]:
    """An upstream's search (`things(search:)`'s request), each thing with its snippet."""
    listing = ListQuery(
        type=query.type,
        search=query.text,
        first=query.first,
        after=query.after,
        detail=provider.capabilities.search_detail,
    )
    page = await provider.page(listing)
    hits = [
        Hit(thing, highlight(thing_text(thing) or thing.name, query.text)) for thing in page.items
    ]
    return Page(hits, page.cursors, page.has_next_page, page.total_count)


def rrf(rank: int) -> float:
    return 1.0 / (RRF_K + rank)


def _fingerprint(text: str, sources: Sequence[Source]) -> str:
    # A cursor belongs to one query over one set of sources.
    basis = json.dumps([text, sorted(s.key for s in sources)])
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


def _encode(fingerprint: str, positions: dict[str, _Position]) -> str:
    state = {"q": fingerprint, "s": {k: p.encode() for k, p in positions.items()}}
    raw = json.dumps(state, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str | None, fingerprint: str, keys: Sequence[str]) -> dict[str, _Position]:
    positions = {k: _Position() for k in keys}
    if cursor is None:
        return positions
    bad = InvalidInputError("'after' is not a cursor of this search", field="after")
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(state, dict) or state.get("q") != fingerprint:
            raise bad
        for key, value in dict(state["s"]).items():
            taken, after, done = value
            if key not in positions or not isinstance(taken, int) or taken < 0:
                raise bad
            if not (after is None or isinstance(after, str)) or not isinstance(done, bool):
                raise bad
            positions[key] = _Position(taken, after, done)
    except (ValueError, TypeError, KeyError):
        raise bad from None
    return positions


async def federated_search(
    text: str,
    sources: Sequence[Source],
    *,
    first: int = 20,
    after: str | None = None,
    deadline: float = 3.0,
) -> FusedPage:
    if not 1 <= first <= MAX_FIRST:
        raise InvalidInputError(f"'first' must be between 1 and {MAX_FIRST}", field="first")
    fingerprint = _fingerprint(text, sources)
    positions = _decode(after, fingerprint, [s.key for s in sources])
    asked = [s for s in sources if not positions[s.key].done]

    async def ask(source: Source) -> Page[Hit]:
        query = replace(source.query, first=first, after=positions[source.key].after)
        return await asyncio.wait_for(source.fetch(query), deadline)

    answers = await asyncio.gather(*(ask(s) for s in asked), return_exceptions=True)
    failures: list[SourceFailure] = []
    pages: dict[str, Page[Hit]] = {}
    for source, answer in zip(asked, answers, strict=True):
        if isinstance(answer, Page):
            pages[source.key] = answer
        elif isinstance(answer, TimeoutError):
            error = ProviderUnavailableError(
                f"{source.provider} did not answer the search within {deadline:g} s",
                provider=source.provider,
            )
            failures.append(SourceFailure(source.key, source.provider, error))
        elif isinstance(answer, OneError):
            failures.append(SourceFailure(source.key, source.provider, answer))
        elif isinstance(answer, BaseException):
            raise answer

    # Fuse: every candidate by RRF score, ties by source order then rank (deterministic).
    order = {s.key: i for i, s in enumerate(sources)}
    candidates: list[tuple[float, int, int, Source, int]] = []
    by_key = {s.key: s for s in sources}
    for key, page in pages.items():
        base = positions[key].taken
        for i in range(len(page.items)):
            rank = base + i + 1
            candidates.append((-rrf(rank), order[key], rank, by_key[key], i))
    chosen = heapq.nsmallest(first, candidates)

    hits: list[FusedHit] = []
    taken = dict.fromkeys(pages, 0)
    for negative, _, rank, source, i in chosen:
        page = pages[source.key]
        position = positions[source.key]
        position.taken += 1
        position.after = page.cursors[i]
        taken[source.key] += 1
        # Exhausted once its last hit is out and the backend has no more.
        position.done = taken[source.key] == len(page.items) and not page.has_next_page
        hits.append(
            FusedHit(
                hit=page.items[i],
                provider=source.provider,
                source=source.key,
                rank=rank,
                score=-negative,
                cursor=_encode(fingerprint, positions),
            )
        )
    for key, page in pages.items():
        if not page.items and not page.has_next_page:
            positions[key].done = True
    # A failed source does not keep the search open (a client would page on through empty
    # pages while it stays down); a later page still asks it again.
    has_next = any(not positions[key].done for key in pages)
    return FusedPage(hits, has_next, _encode(fingerprint, positions), failures)
