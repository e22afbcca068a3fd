"""The knowledge dimension: labels and text chunks, linked to the things they came from.

Chunks taken from a thing's text (`providers/native/chunking.py`, kept up to date by
`gateway/indexer.py`) are the indexer's: each has a `position`, which knowledge written by
hand (`create`) has not, and labels that say where it came from (`thing_labels`:
`type:<thing type>`, `provider:...`, `status:...`, `tag:...`).
`replace_chunks` keeps the rows of unchanged chunks (and their embeddings), adds the new ones
and deletes the stale ones (their text and vector leave the search indexes with them).

Search (`search`):
    LEXICAL   BM25 over the text, every word of the query in it (the engine's text index)
    SEMANTIC  nearest by cosine to the query's vector, among vectors of the same model
    HYBRID    both lists fused by reciprocal rank (k = 60)
Without a vector, SEMANTIC and HYBRID answer LEXICAL and say so: the mode answered is returned.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Literal

from providers import validation
from providers.engine import AnyOf, Cond, Engine, Order, Row, Where
from providers.errors import InvalidInputError, NotFoundError
from providers.native.chunking import Chunk, type_label
from providers.native.events import record_event
from providers.native.rows import in_order, page_size, to_row
from providers.native.scope import exists_in_org
from providers.records import Kind, Knowledge, utcnow
from providers.refs import Ref, native_ref, new_local_id

Mode = Literal["LEXICAL", "SEMANTIC", "HYBRID"]
MODES: tuple[Mode, ...] = ("LEXICAL", "SEMANTIC", "HYBRID")
RRF_K = 60  # reciprocal rank fusion: a hit's score is the sum of 1 / (RRF_K + its rank)
_KINDS = frozenset({"label", "chunk"})
_FIELDS = tuple(f.name for f in fields(Knowledge))
_MAX_SCANNED = 1_000  # lexical hits read to fill a page whose labels the engine cannot check


@dataclass(frozen=True, slots=True)
class Replaced:
    """What `replace_chunks` changed: chunks added, kept (relabelled or moved, or not), and
    retired: deleted, their source's text no longer holding them."""

    added: int
    kept: int
    retired: int


class KnowledgeBase:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def get_many(self, org_id: str, ids: Sequence[str]) -> list[Knowledge | None]:
        where: Where = [Cond("org_id", "eq", org_id), Cond("id", "in", set(ids))]
        rows = await self._engine.find("knowledge", where)
        return in_order(ids, (_knowledge(r) for r in rows))

    async def of_sources(
        self, org_id: str, source_refs: Sequence[str]
    ) -> dict[str, list[Knowledge]]:
        where: Where = [Cond("org_id", "eq", org_id), Cond("source_ref", "in", set(source_refs))]
        rows = await self._engine.find("knowledge", where)
        found: dict[str, list[Knowledge]] = defaultdict(list)
        for row in sorted(rows, key=_in_source_order):
            item = _knowledge(row)
            found[item.source_ref or ""].append(item)
        return {ref: found.get(ref, []) for ref in source_refs}

    async def search(
        self,
        org_id: str,
        query: str,
        *,
        mode: Mode = "LEXICAL",
        first: int = 20,
        labels: Sequence[str] = (),
        source_types: Sequence[str] = (),
        vector: Sequence[float] | None = None,
        model: str | None = None,
    ) -> tuple[list[tuple[Knowledge, float]], Mode]:
        """The best `first` items for `query`, each with its score (higher is better: BM25,
        cosine similarity, or the fused rank), and the mode that answered. Every one of
        `labels` is on each item; with `source_types`, each came from a thing of one of them.
        SEMANTIC and HYBRID need the query's `vector` and its `model`; without them the
        answer is LEXICAL."""
        query = validation.text(query, "query")
        first = page_size(first)
        if mode not in MODES:
            raise InvalidInputError(f"'mode' must be one of {', '.join(MODES)}", field="mode")
        wanted = [validation.name(label, "labels") for label in labels]
        types = [validation.thing_type(t, "sourceTypes") for t in source_types]
        where, keep = _filters(org_id, wanted, types)
        if mode == "LEXICAL" or vector is None or model is None:
            return await self._lexical(where, keep, query, first), "LEXICAL"
        if mode == "SEMANTIC":
            return await self._semantic(where, keep, vector, model, first), mode
        depth = max(first, 50)  # candidates from each list: a hit ranked low in one still counts
        fused = _fuse(
            await self._lexical(where, keep, query, depth),
            await self._semantic(where, keep, vector, model, depth),
        )
        return fused[:first], mode

    async def _lexical(
        self, where: Where, keep: Callable[[Row], bool], query: str, limit: int
    ) -> list[tuple[Knowledge, float]]:
        found: list[tuple[Knowledge, float]] = []
        offset = 0
        while len(found) < limit and offset < _MAX_SCANNED:
            hits = await self._engine.search_text(
                "knowledge", where, query, limit=limit, offset=offset
            )
            found += [(_knowledge(h.row), h.score) for h in hits if keep(h.row)]
            if len(hits) < limit:
                break
            offset += limit
        return found[:limit]

    async def _semantic(
        self,
        where: Where,
        keep: Callable[[Row], bool],
        vector: Sequence[float],
        model: str,
        limit: int,
    ) -> list[tuple[Knowledge, float]]:
        hits = await self._engine.nearest("knowledge", where, vector, model=model, limit=limit)
        return [(_knowledge(h.row), 1.0 - h.distance) for h in hits if keep(h.row)][:limit]

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
        if kind not in _KINDS:
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

    # -- the indexer's chunks ------------------------------------------------------------------
    # No event tells of them: they are derived from a thing whose own event told of the
    # change, and `one-gateway reindex` makes them again from the things.

    async def replace_chunks(
        self, org_id: str, source_ref: str, chunks: Sequence[Chunk], labels: Sequence[str]
    ) -> Replaced:
        """Make the chunks of `source_ref` these, in one transaction: rows whose id is among
        them are kept with their embedding (their position and labels brought up to date),
        the others are added, and the source's chunks not among them deleted. No chunks:
        the source's are all deleted. Knowledge written by hand about the source is left."""
        labels = [validation.name(label, "labels") for label in labels]
        rows = await self._engine.find("knowledge", _indexed(org_id, source_ref))
        if not any(_plan(rows, chunks, labels)):
            return Replaced(0, len(chunks), 0)
        async with self._engine.transaction() as tx:
            # Read again in the transaction: another process may have indexed it meanwhile.
            rows = await tx.find("knowledge", _indexed(org_id, source_ref))
            new, changed, stale = _plan(rows, chunks, labels)
            now = utcnow()
            for chunk in new:
                item = Knowledge(
                    id=chunk.id,
                    org_id=org_id,
                    kind="chunk",
                    text=chunk.text,
                    labels=labels,
                    source_ref=source_ref,
                    created_at=now,
                )
                await tx.insert("knowledge", {**to_row(item), "position": chunk.position})
            for id, fields in changed:
                await tx.update("knowledge", id, fields)
            for id in stale:
                await tx.delete("knowledge", id)
        return Replaced(len(new), len(chunks) - len(new), len(stale))

    async def remove_chunks(self, org_id: str, source_ref: str) -> int:
        """Delete every chunk taken from `source_ref` (it was deleted or archived); returns how
        many there were."""
        return (await self.replace_chunks(org_id, source_ref, (), ())).retired

    async def missing_embeddings(self, org_id: str, model: str, *, limit: int) -> list[Knowledge]:
        """Up to `limit` items without a vector of `model` (none, or another model's)."""
        other_model = AnyOf(
            (
                Cond("embedding_model", "eq", None),
                Cond("embedding_model", "lt", model),
                Cond("embedding_model", "gt", model),
            )
        )
        where: Where = [Cond("org_id", "eq", org_id), other_model]
        rows = await self._engine.find("knowledge", where, order=Order("created_at"), limit=limit)
        return [_knowledge(r) for r in rows]

    async def set_embeddings(
        self, org_id: str, vectors: Sequence[tuple[str, Sequence[float]]], model: str
    ) -> int:
        """Record each (id, vector) as made by `model`, in one transaction; ids that are not
        the organization's are passed over. Returns how many were recorded."""
        if not vectors:
            return 0
        async with self._engine.transaction() as tx:
            where: Where = [Cond("org_id", "eq", org_id), Cond("id", "in", {i for i, _ in vectors})]
            mine = {r["id"] for r in await tx.find("knowledge", where)}
            for id, vector in vectors:
                if id in mine:
                    fields = {"embedding": [float(x) for x in vector], "embedding_model": model}
                    await tx.update("knowledge", id, fields)
        return len(mine)


def _knowledge(row: Row) -> Knowledge:
    return Knowledge(**{name: row[name] for name in _FIELDS if name in row})


def _indexed(org_id: str, source_ref: str) -> Where:
    """The indexer's rows of a source: those with a position."""
    return [
        Cond("org_id", "eq", org_id),
        Cond("source_ref", "eq", source_ref),
        Cond("position", "ge", 0),
    ]


def _in_source_order(row: Row) -> tuple[object, ...]:
    # Written by hand (no position) in the order written, then the chunks in text order.
    position = row.get("position")
    return (position is not None, position if position is not None else 0, row["created_at"])


def _plan(
    rows: list[Row], chunks: Sequence[Chunk], labels: list[str]
) -> tuple[list[Chunk], list[tuple[str, Row]], list[str]]:
    """What makes a source's rows these chunks: chunks to add, (id, fields) of rows to bring
    up to date (position, labels), ids of rows to delete."""
    by_id = {r["id"]: r for r in rows}
    new: list[Chunk] = []
    changed: list[tuple[str, Row]] = []
    for chunk in chunks:
        row = by_id.pop(chunk.id, None)
        if row is None:
            new.append(chunk)
            continue
        wanted: Row = {"position": chunk.position, "labels": labels}
        fields = {k: v for k, v in wanted.items() if row.get(k) != v}
        if fields:
            changed.append((chunk.id, fields))
    return new, changed, list(by_id)


def _filters(
    org_id: str, labels: list[str], types: list[str]
) -> tuple[Where, Callable[[Row], bool]]:
    """Conditions for the engine, and the exact check of each row it answers. Labels are a
    JSON list, which the engine matches only as text (`contains`): a superset, narrowed here."""
    where: Where = [Cond("org_id", "eq", org_id)]
    where += [Cond("labels", "contains", label) for label in labels if _matchable(label)]
    if types:
        where.append(AnyOf(tuple(Cond("labels", "contains", type_label(t)) for t in types)))
    required = set(labels)
    allowed = {type_label(t) for t in types}

    def keep(row: Row) -> bool:
        held = set(row.get("labels") or ())
        return required <= held and (not allowed or bool(allowed & held))

    return where, keep


def _matchable(label: str) -> bool:
    # SQLite holds a JSON list as text, with non-ASCII characters and quotes escaped: such a
    # label is not found as it is written, so only the exact check looks for it.
    return label.isascii() and '"' not in label and "\\" not in label


def _fuse(*ranked: list[tuple[Knowledge, float]]) -> list[tuple[Knowledge, float]]:
    """Reciprocal rank fusion: best first, ties in the order first met."""
    scores: dict[str, float] = {}
    items: dict[str, Knowledge] = {}
    for hits in ranked:
        for rank, (item, _) in enumerate(hits, start=1):
            scores[item.id] = scores.get(item.id, 0.0) + 1.0 / (RRF_K + rank)
            items.setdefault(item.id, item)
    order = sorted(scores, key=lambda id: -scores[id])
    return [(items[id], scores[id]) for id in order]
