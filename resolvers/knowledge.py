"""Knowledge: labels and text chunks taken from things, searchable."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from graphql import GraphQLError

from providers import validation
from providers.errors import OneError
from providers.records import Kind
from providers.records import Knowledge as KnowledgeRecord
from providers.refs import Ref
from providers.snippets import highlight
from resolvers.context import Info
from resolvers.errors import report_partial
from resolvers.ids import global_id, parse_id
from resolvers.node import Node, load_node
from resolvers.permissions import Action, require
from resolvers.planning import SOURCE, Plan, below, below_path, plan_links, resolved


@strawberry.type(description="A label or a chunk of text, linked to the thing it came from.")
class Knowledge(Node):
    kind: str
    text: str
    labels: list[str]
    created_at: datetime
    record: strawberry.Private[KnowledgeRecord]

    plan: strawberry.Private[Plan | None] = None  # see resolvers/planning.py

    @strawberry.field
    def source(self, info: Info) -> Node | None:
        return resolved(self.plan, SOURCE, lambda: self._source(info))

    async def _source(self, info: Info) -> Node | None:
        if self.record.source_ref is None:
            return None
        return await load_node(info, Ref.parse(self.record.source_ref))

    @classmethod
    def from_record(cls, record: KnowledgeRecord) -> Knowledge:
        return cls(
            id=global_id(Kind.KNOWLEDGE, record.id),
            kind=record.kind,
            text=record.text,
            labels=list(record.labels),
            created_at=record.created_at,
            record=record,
        )


@strawberry.enum(description="How `knowledgeSearch` ranks.")
class SearchMode(Enum):
    LEXICAL = "LEXICAL"  # BM25 over the words of the text
    SEMANTIC = "SEMANTIC"  # nearest embeddings of the organization's embedding provider
    HYBRID = "HYBRID"  # both lists fused by reciprocal rank


@strawberry.type
class KnowledgeHit:
    knowledge: Knowledge
    score: float = strawberry.field(
        description="Higher is better: BM25 (LEXICAL), cosine similarity (SEMANTIC) or the "
        "reciprocal-rank-fusion score (HYBRID). Comparable within one search."
    )
    snippet: str = strawberry.field(
        description="The passage that matched, as HTML: text escaped, query words in <mark>."
    )


@strawberry.type
class KnowledgeSearchResult:
    mode: SearchMode = strawberry.field(
        description="The mode that answered: LEXICAL when SEMANTIC or HYBRID was asked and the "
        "organization has no embedding provider (or it failed: see `errors`)."
    )
    hits: list[KnowledgeHit]


async def knowledge_search(
    info: Info,
    query: str,
    mode: SearchMode = SearchMode.HYBRID,
    first: int = 20,
    labels: list[str] | None = None,
    source_types: list[str] | None = None,
) -> KnowledgeSearchResult:
    """Your organization's knowledge (labels, and chunks of things' text) best matching
    `query`: by its words (LEXICAL), by meaning through the organization's embedding provider
    (SEMANTIC), or both fused (HYBRID). Every one of `labels` must be on a hit; `sourceTypes`
    keeps chunks of things of those types. `first` is at most 100."""
    context = info.context
    actor = context.actor
    vector: list[float] | None = None
    model: str | None = None
    if mode is not SearchMode.LEXICAL:
        vector, model = await _query_vector(info, query)
    found, used = await context.store.knowledge.search(
        actor.org_id,
        query,
        mode=mode.value,
        first=first,
        labels=labels or (),
        source_types=source_types or (),
        vector=vector,
        model=model,
    )
    hits = [
        KnowledgeHit(
            knowledge=Knowledge.from_record(k), score=score, snippet=highlight(k.text, query)
        )
        for k, score in found
    ]
    nodes = below_path(below(info), ("hits", "knowledge"))
    await plan_links(context, [h.knowledge for h in hits], nodes)
    return KnowledgeSearchResult(mode=SearchMode(used), hits=hits)


async def _query_vector(info: Info, query: str) -> tuple[list[float] | None, str | None]:
    """The query's embedding, or nothing when the organization has no embedding provider or
    it fails: the search is then lexical, and says so (with the failure in `errors`)."""
    context = info.context
    text = validation.text(query, "query")
    try:
        embedder = await context.router.embedder()
        if embedder is None:
            return None, None
        [vector] = await embedder.embed([text])
    except OneError as exc:
        report_partial(
            GraphQLError(
                f"knowledgeSearch answered lexically: {exc.message}",
                path=[info.path.key],
                extensions={**exc.extensions, "code": exc.code},
            )
        )
        return None, None
    return vector, embedder.model


@strawberry.input
class CreateKnowledgeInput:
    kind: str = strawberry.field(description="'label' or 'chunk'.")
    text: str
    labels: list[str] = strawberry.field(default_factory=list)
    source_id: strawberry.ID | None = None


async def create_knowledge(info: Info, input: CreateKnowledgeInput) -> Knowledge:
    """Add a label or chunk, optionally linked to the entity it came from."""
    actor = require(info.context.actor, Action.WRITE)
    source = str(parse_id(input.source_id, field="sourceId")) if input.source_id else None
    record = await info.context.store.knowledge.create(
        actor.org_id,
        actor_ref=actor.ref,
        kind=input.kind,
        text=input.text,
        labels=input.labels,
        source_ref=source,
    )
    return Knowledge.from_record(record)
