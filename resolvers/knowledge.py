"""Knowledge: labels and text chunks taken from things, searchable."""

from __future__ import annotations

from datetime import datetime

import strawberry

from providers.records import Kind
from providers.records import Knowledge as KnowledgeRecord
from providers.refs import Ref
from resolvers.context import Info
from resolvers.ids import global_id, parse_id
from resolvers.node import Node, load_node
from resolvers.permissions import Action, require
from resolvers.planning import SOURCE, Plan, below, plan_links, resolved


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


async def knowledge_search(info: Info, query: str, first: int = 20) -> list[Knowledge]:
    """Knowledge whose text contains `query` (case-insensitive), newest first."""
    actor = info.context.actor
    found = await info.context.store.knowledge.search(actor.org_id, query, first=first)
    result = [Knowledge.from_record(k) for k in found]
    await plan_links(info.context, result, below(info))
    return result


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
