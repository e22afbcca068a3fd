"""`search`: one query over every backend of the organization, fused (providers/search.py)."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError

from providers import validation
from providers.errors import InvalidInputError
from providers.search import FusedPage, federated_search
from resolvers.context import Info
from resolvers.errors import report_partial
from resolvers.events import PageInfo
from resolvers.planning import below, below_path, plan_things
from resolvers.things import Thing, thing_from_record


@strawberry.type(description="A thing that matched a search, and why.")
class SearchHit:
    thing: Thing
    provider: str = strawberry.field(description="The backend the thing lives in.")
    score: float = strawberry.field(
        description="Its reciprocal-rank-fusion score: 1 / (60 + its rank in its backend's "
        "own order of relevance). Higher is better; comparable within one search."
    )
    snippet: str = strawberry.field(
        description="The passage that matched, as HTML: text escaped, matched words in <mark>."
    )


@strawberry.type
class SearchEdge:
    cursor: str
    node: SearchHit


@strawberry.type(description="A backend whose hits are missing from this page, and why.")
class SearchFailure:
    provider: str
    source: str = strawberry.field(description="The backend and type asked, e.g. wordpress:page.")
    code: str
    message: str
    retryable: bool


@strawberry.type
class SearchPage:
    edges: list[SearchEdge]
    page_info: PageInfo
    failures: list[SearchFailure] = strawberry.field(
        description="Backends that failed or passed the deadline: their hits are left out of "
        "this page (each also reported in `errors`); the next page asks them again."
    )


async def search(
    info: Info,
    query: str,
    types: list[str] | None = None,
    first: int = 20,
    after: str | None = None,
) -> SearchPage:
    """Things matching every word of `query`, from every backend of your organization at
    once (the native store, WordPress, Shopify, Notion), best first: each backend ranks its
    own hits and the lists are merged by reciprocal rank fusion. `types` narrows it to some
    thing types; `first` is at most 100."""
    context = info.context
    context.actor  # noqa: B018 - authentication before anything else
    text = validation.text(query, "query")
    if not any(c.isalnum() for c in text):
        raise InvalidInputError("'query' needs at least one word", field="query")
    wanted = frozenset(validation.thing_type(t) for t in types) if types is not None else None
    sources = await context.router.search_sources(text, wanted)
    fused = await federated_search(
        text, sources, first=first, after=after, deadline=context.search_deadline
    )
    page = _page(fused)
    for failure in fused.failures:
        error = failure.error
        report_partial(
            GraphQLError(
                f"search: {error.message}",
                path=[info.path.key],
                extensions={**error.extensions, "code": error.code, "source": failure.source},
            )
        )
    nodes = below_path(below(info), ("edges", "node", "thing"))
    await plan_things(context, [e.node.thing for e in page.edges], nodes)
    return page


def _page(fused: FusedPage) -> SearchPage:
    edges = [
        SearchEdge(
            cursor=h.cursor,
            node=SearchHit(
                thing=thing_from_record(h.hit.thing),
                provider=h.provider,
                score=h.score,
                snippet=h.hit.snippet,
            ),
        )
        for h in fused.hits
    ]
    failures = [
        SearchFailure(
            provider=f.provider,
            source=f.source,
            code=f.error.code,
            message=f.error.message,
            retryable=bool(f.error.extensions.get("retryable", False)),
        )
        for f in fused.failures
    ]
    return SearchPage(
        edges=edges,
        page_info=PageInfo(has_next_page=fused.has_next_page, end_cursor=fused.end_cursor),
        failures=failures,
    )
