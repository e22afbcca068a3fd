"""The knowledge dimension: labels and text chunks, linked to the things they came from."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from providers import validation
from providers.engine import Cond, Engine, Order, Where
from providers.errors import InvalidInputError, NotFoundError
from providers.native.events import record_event
from providers.native.rows import in_order, page_size, to_row
from providers.native.scope import exists_in_org
from providers.records import Kind, Knowledge, utcnow
from providers.refs import Ref, native_ref, new_local_id


class KnowledgeBase:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def get_many(self, org_id: str, ids: Sequence[str]) -> list[Knowledge | None]:
        where: Where = [Cond("org_id", "eq", org_id), Cond("id", "in", set(ids))]
        rows = await self._engine.find("knowledge", where)
        return in_order(ids, (Knowledge(**r) for r in rows))

    async def of_sources(
        self, org_id: str, source_refs: Sequence[str]
    ) -> dict[str, list[Knowledge]]:
        where: Where = [Cond("org_id", "eq", org_id), Cond("source_ref", "in", set(source_refs))]
        rows = await self._engine.find("knowledge", where, order=Order("created_at"))
        found: dict[str, list[Knowledge]] = defaultdict(list)
        for item in (Knowledge(**r) for r in rows):
            found[item.source_ref or ""].append(item)
        return {ref: found.get(ref, []) for ref in source_refs}

    async def search(self, org_id: str, text: str, *, first: int) -> list[Knowledge]:
        """Knowledge whose text contains `text`, case-insensitively, newest first."""
        where: Where = [
            Cond("org_id", "eq", org_id),
            Cond("text", "contains", validation.text(text, "query")),
        ]
        order = Order("created_at", descending=True)
        rows = await self._engine.find("knowledge", where, order=order, limit=page_size(first))
        return [Knowledge(**r) for r in rows]

    async def create(
        self,
        org_id: str,
        *,
        actor_ref: str | None,
        kind: str,
        text: str,
        labels: Sequence[str] = (),
        source_ref: str | None = None,
    ) -> Knowledge:
        if kind not in ("label", "chunk"):
            raise InvalidInputError("'kind' must be 'label' or 'chunk'", field="kind")
        item = Knowledge(
            id=new_local_id(),
            org_id=org_id,
            kind=kind,
            text=validation.text(text),
            labels=[validation.name(label, "labels") for label in labels],
            source_ref=source_ref,
        )
        async with self._engine.transaction() as tx:
            if source_ref is not None and not await exists_in_org(
                tx, org_id, Ref.parse(source_ref, field="sourceId"), utcnow()
            ):
                raise NotFoundError(
                    "'sourceId' names nothing in this organization", field="sourceId"
                )
            await tx.insert("knowledge", to_row(item))
            await record_event(
                tx,
                org_id,
                "knowledge_created",
                actor_ref=actor_ref,
                target_ref=native_ref(Kind.KNOWLEDGE, item.id),
                metadata={"kind": kind, "source": source_ref},
            )
        return item
