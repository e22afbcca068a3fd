"""The indexer: each thing's text as knowledge chunks, kept up to date in the background.

    a thing's event commits ─► waiting, one entry per thing ─► `delay` seconds without a
    newer one (at most `MAX_DELAY` after the first) ─► load it through the thing service, as
    the system ─► chunk its text ─► replace its chunks ─► embed what lacks a vector of the
    organization's model, when it has an embedding provider

- Events: `entity_created` and `entity_updated` (re)index the thing they name, whichever
  provider holds it: native writes, upstream writes through the thing service, Shopify and
  Notion webhooks, WordPress polls. `entity_archived` and `entity_deleted` retire its chunks
  (an archived thing is final and hidden upstream: its text is no knowledge any more). A
  `settings_updated` of the embedding provider embeds the organization's knowledge again
  with the new model. A native thing whose insert carried no text costs nothing.
- Each process indexes the events committed in it (the store's `on_commit`): with several
  replicas, the one that took a write, webhook or poll indexes it; nothing is indexed twice.
- Nothing waits for it: listening is a dictionary write; the work runs in one task. At most
  `MAX_PENDING` things wait; beyond, changes are dropped and counted, for `reindex` to catch.
- A failure is logged and tried again (after 2, 4, 8... seconds, `ATTEMPTS` times) when it
  may pass (an upstream down, the store busy); else, and after the last attempt, it is left
  for `one-gateway reindex`. No failure ends the loop.
- `reindex` walks every thing of an organization across its providers and does the same for
  each: idempotent, it adds only what changed and embeds only what lacks a vector.

With `delay=None` nothing runs by itself: `settle()` indexes what waits (tests, tools).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from providers.embeddings import NAME as EMBEDDINGS
from providers.engine import Row
from providers.errors import OneError, ProviderError, StoreBusyError
from providers.native import NativeStore
from providers.native.chunking import chunks, thing_labels, thing_text
from providers.native.rows import MAX_PAGE_SIZE, to_thing
from providers.provider import ListQuery
from providers.records import NATIVE, Kind, Thing, ThingStatus
from providers.refs import Ref
from providers.registry import ProviderPool
from providers.things import ThingService
from resolvers.loaders import Loaders
from resolvers.router import ReadConfigs, Router

__all__ = ["Indexer", "Reindexed"]

log = logging.getLogger("one.indexer")

_INDEXED = frozenset({"entity_created", "entity_updated"})
_RETIRED = frozenset({"entity_archived", "entity_deleted"})
MAX_DELAY = 10.0  # seconds a thing edited without pause waits at most
MAX_PENDING = 10_000  # things waiting; changes of more are dropped (and counted)
ATTEMPTS = 5  # of a thing whose indexing fails in a way that may pass
EMBED_BATCH = 256  # texts handed to the embedding provider at once (it batches its requests)
EMBED_PER_PASS = 2_048  # vectors made before other organizations' things get a turn
_THING = f"{Kind.THING.value}."
_NATIVE = f"{Kind.THING.value}.{NATIVE}."


@dataclass
class Reindexed:
    """How far a `reindex` is: things walked of those the providers counted (None when one
    cannot count), chunks added and retired, vectors made, and failures (a thing, or a
    provider's listing, passed over)."""

    things: int = 0
    total: int | None = 0
    chunks: int = 0
    retired: int = 0
    embedded: int = 0
    failed: int = 0


@dataclass
class _Work:
    """A thing to index (`ref`), or the organization's knowledge to embed (`ref` "")."""

    org_id: str
    ref: str
    due: float
    first: float  # when the oldest change it holds came
    gone: bool = False  # deleted or archived: retire its chunks, load nothing
    inserted: Thing | None = None  # the native thing as its insert committed, if nothing since
    attempts: int = 0


@dataclass
class _Counts:
    chunks_added: int = 0
    chunks_retired: int = 0
    embeddings: int = 0
    failures: int = 0
    dropped: int = 0
    reindexed: int = 0  # things walked by reindexes in this process
    reindexing: int = 0  # reindexes running


class Indexer:
    """Example:
    indexer = Indexer(store, pool, delay=1.0)
    indexer.start()                        # with the app: listens, and indexes as things change
    done = await indexer.reindex(org_id, progress=lambda p: print(p.things, p.total))
    await indexer.stop()
    """

    def __init__(
        self,
        store: NativeStore,
        pool: ProviderPool,
        *,
        configs: ReadConfigs | None = None,
        delay: float | None = 1.0,
    ) -> None:
        self._store = store
        self._pool = pool
        self._configs = configs or store.provider_configs.active
        self.delay = delay
        self._waiting: dict[tuple[str, str], _Work] = {}
        self._wake = asyncio.Event()
        self._busy = False
        self._task: asyncio.Task[None] | None = None
        self.counts = _Counts()
        # Told of each organization whose knowledge the indexer changed (the response cache:
        # chunks and vectors are written without an event).
        self.changed: Callable[[str], None] | None = None

    # -- life ------------------------------------------------------------------------------

    def start(self) -> None:
        """Listen to what commits in this process, and index it in the background (once)."""
        self._store.engine.on_commit("things", self._inserted)
        self._store.engine.on_commit("events", self._committed)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """What still waits is left for `reindex`."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def pending(self) -> int:
        return len(self._waiting)

    async def settle(self) -> None:
        """Index everything waiting now, without waiting for its delay (tests, tools); what
        fails is tried again at once, until its attempts are spent."""
        while self._waiting or self._busy:
            for work in self._waiting.values():
                work.due = 0.0
            if self._task is None or self.delay is None:
                await self._index_due()
            else:
                self._wake.set()
                await asyncio.sleep(0.01)

    # -- listening (synchronous, on commit: dictionary writes only) -------------------------

    def _inserted(self, row: Row) -> None:
        thing = to_thing(row)
        self._want(thing.org_id, str(Ref(Kind.THING, NATIVE, thing.id)), inserted=thing)

    def _committed(self, row: Row) -> None:
        type, org_id, target = row["type"], row["org_id"], row["target_ref"]
        if type == "settings_updated":
            if (row["metadata"] or {}).get("provider") == EMBEDDINGS:
                self._want(org_id, "")
        elif not isinstance(target, str) or not target.startswith(_THING):
            return
        elif type in _RETIRED:
            self._want(org_id, target, gone=True)
        elif type in _INDEXED and not (type == "entity_created" and target.startswith(_NATIVE)):
            self._want(org_id, target)  # a native thing's creation: its insert said it all

    def _want(
        self, org_id: str, ref: str, *, gone: bool = False, inserted: Thing | None = None
    ) -> None:
        now = asyncio.get_running_loop().time()
        work = self._waiting.get((org_id, ref))
        if work is None:
            if len(self._waiting) >= MAX_PENDING:
                self.counts.dropped += 1
                if self.counts.dropped % 1000 == 1:
                    log.warning("%d things wait to be indexed: changes dropped", self.pending())
                return
            work = self._waiting[(org_id, ref)] = _Work(org_id, ref, now, now)
        work.gone, work.inserted, work.attempts = gone, inserted, 0
        work.due = min(now + (self.delay or 0.0), work.first + MAX_DELAY)
        self._wake.set()

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            soonest = min((w.due for w in self._waiting.values()), default=None)
            if self.delay is None:
                soonest = None  # only `settle` indexes
            elif soonest is not None and soonest <= loop.time():
                try:
                    await self._index_due()
                except Exception:
                    log.exception("indexing failed; the loop goes on")
                continue
            timeout = None if soonest is None else soonest - loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _index_due(self) -> None:
        now = asyncio.get_running_loop().time()
        due = [w for w in self._waiting.values() if w.due <= now]
        for work in due:
            del self._waiting[(work.org_id, work.ref)]
        by_org: dict[str, list[_Work]] = {}
        for work in due:
            by_org.setdefault(work.org_id, []).append(work)
        self._busy = True
        try:
            for org_id, works in by_org.items():
                try:
                    await self._index_organization(org_id, works)
                except Exception as exc:  # noqa: BLE001 - the other organizations go on
                    for work in works:
                        self._failed(work, exc)
        finally:
            self._busy = False

    async def _index_organization(self, org_id: str, works: list[_Work]) -> None:
        loaded = await self._load(
            org_id, [w.ref for w in works if w.ref and not w.gone and w.inserted is None]
        )
        embed = any(not w.ref for w in works)  # a pass was asked for
        for work in (w for w in works if w.ref):
            found = work.inserted or loaded.get(work.ref)
            try:
                if isinstance(found, Exception):
                    raise found
                thing = None if work.gone else found
                added, _ = await self._index(org_id, work.ref, thing, new=bool(work.inserted))
                embed = embed or added > 0
            except Exception as exc:  # noqa: BLE001 - logged, and tried again if it may pass
                self._failed(work, exc)
        if embed:
            await self._embed_pass(org_id)

    async def _load(self, org_id: str, refs: list[str]) -> dict[str, Thing | Exception | None]:
        """Things with their text, each in its provider: a provider's error is its things'."""
        try:
            found = await self._things(org_id).get_each([Ref.parse(r) for r in refs], detail=True)
        except Exception as exc:  # noqa: BLE001 - each of them fails, and is tried again
            return dict.fromkeys(refs, exc)
        return dict(zip(refs, found, strict=True))

    async def _index(
        self, org_id: str, ref: str, thing: Thing | None, *, new: bool = False
    ) -> tuple[int, int]:
        """Chunks added and retired for the thing `ref` names (None: it is gone). A `new`
        thing has no chunks yet."""
        if thing is None or thing.status is ThingStatus.ARCHIVED:
            found, labels = [], []
        else:
            found = chunks(thing_text(thing), org_id=org_id, source_ref=ref)
            labels = thing_labels(thing)
        if new and not found:
            return 0, 0
        done = await self._store.knowledge.replace_chunks(org_id, ref, found, labels)
        self.counts.chunks_added += done.added
        self.counts.chunks_retired += done.retired
        if done.added or done.retired:
            self._changed(org_id)
        return done.added, done.retired

    def _changed(self, org_id: str) -> None:
        if self.changed is not None:
            self.changed(org_id)

    def _failed(self, work: _Work, exc: Exception) -> None:
        work.attempts += 1
        again = _may_pass(exc) and work.attempts < ATTEMPTS
        what = work.ref or "the knowledge"
        reason = f"{exc.code}: {exc.message}" if isinstance(exc, OneError) else repr(exc)
        if not again:
            self.counts.failures += 1
            log.warning(
                "indexing %s of organization %s failed (%s); left for `one-gateway reindex`",
                what,
                work.org_id,
                reason,
            )
            return
        log.info(
            "indexing %s of organization %s failed (%s); again soon", what, work.org_id, reason
        )
        key = (work.org_id, work.ref)
        if key not in self._waiting:  # a newer change waits already: it goes instead
            work.due = asyncio.get_running_loop().time() + min(60.0, 2.0**work.attempts)
            self._waiting[key] = work

    # -- embeddings ------------------------------------------------------------------------

    async def embed_missing(
        self,
        org_id: str,
        *,
        limit: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Vectors for the organization's knowledge that has none of its embedding model
        (none, or another model's), `EMBED_BATCH` texts at a time, up to `limit`; 0 when it
        has no embedding provider. `progress` hears how many so far after each batch."""
        embedder = self._pool.embedder(await self._configs(org_id))
        if embedder is None:
            return 0
        knowledge = self._store.knowledge
        done = 0
        while limit is None or done < limit:
            batch = await knowledge.missing_embeddings(org_id, embedder.model, limit=EMBED_BATCH)
            if not batch:
                break
            vectors = await embedder.embed([k.text for k in batch])
            pairs = [(k.id, v) for k, v in zip(batch, vectors, strict=True)]
            recorded = await knowledge.set_embeddings(org_id, pairs, embedder.model)
            done += recorded
            self.counts.embeddings += recorded
            if recorded:
                self._changed(org_id)
            if progress is not None:
                progress(done)
            if recorded < len(batch) or len(batch) < EMBED_BATCH:
                break
        return done

    async def _embed_pass(self, org_id: str) -> None:
        """One bounded pass, so that other organizations' things are not kept waiting;
        another follows while more is missing."""
        try:
            done = await self.embed_missing(org_id, limit=EMBED_PER_PASS)
        except Exception as exc:  # noqa: BLE001 - logged, and tried again if it may pass
            now = asyncio.get_running_loop().time()
            self._failed(_Work(org_id, "", now, now), exc)
            return
        if done >= EMBED_PER_PASS:
            self._want(org_id, "")

    # -- reindexing ------------------------------------------------------------------------

    async def reindex(
        self, org_id: str, *, progress: Callable[[Reindexed], None] | None = None
    ) -> Reindexed:
        """Index every thing of the organization, in each of its providers, and embed what
        lacks a vector; `progress` hears after each page. A provider that fails is counted
        and passed over: the others are still indexed."""
        done = Reindexed()

        def embedded(count: int) -> None:
            done.embedded = count
            if progress is not None:
                progress(done)

        self.counts.reindexing += 1
        try:
            for type in await self._walked_types(org_id):
                await self._reindex_type(org_id, type, done, progress)
            try:
                await self.embed_missing(org_id, progress=embedded)
            except OneError as exc:
                done.failed += 1
                log.warning("embedding the knowledge of %s failed: %s", org_id, exc.message)
        finally:
            self.counts.reindexing -= 1
        return done

    async def _walked_types(self, org_id: str) -> list[str | None]:
        """None (every native thing), then each type routed to an upstream."""
        routed = [t for config in await self._configs(org_id) for t in config.routes]
        return [None, *dict.fromkeys(routed)]

    async def _reindex_type(
        self,
        org_id: str,
        type: str | None,
        done: Reindexed,
        progress: Callable[[Reindexed], None] | None,
    ) -> None:
        after: str | None = None
        while True:
            try:
                # Fresh loaders each page: a walk must not keep every thing.
                page = await self._things(org_id).page(
                    ListQuery(type=type, first=MAX_PAGE_SIZE, after=after, detail=True)
                )
                items = await self._with_text(org_id, page.items)
            except Exception as exc:  # noqa: BLE001 - this provider is passed over
                done.failed += 1
                log.warning("reindexing %s things of %s failed: %r", type or "native", org_id, exc)
                return
            if after is None:
                known = page.total_count
                done.total = None if known is None or done.total is None else done.total + known
            for item in items:
                ref = str(Ref(Kind.THING, item.provider, item.id))
                try:
                    added, retired = await self._index(org_id, ref, item)
                except Exception:
                    done.failed += 1
                    log.exception("reindexing %s failed", ref)
                    continue
                done.chunks += added
                done.retired += retired
            done.things += len(items)
            self.counts.reindexed += len(items)
            if progress is not None:
                progress(done)
            if not page.has_next_page or not page.cursors:
                return
            after = page.cursors[-1]

    async def _with_text(self, org_id: str, items: list[Thing]) -> list[Thing]:
        """A listing may leave bodies out (Notion's has no blocks): those without text are
        loaded again, with detail (by loaders the listing did not fill)."""
        bare = [t for t in items if t.provider != NATIVE and not thing_text(t)]
        if bare:
            refs = [Ref(Kind.THING, t.provider, t.id) for t in bare]
            loaded = await self._things(org_id).get_many(refs, detail=True)
            full = {t.id: f for t, f in zip(bare, loaded, strict=True) if f is not None}
            items = [full.get(t.id, t) for t in items]
        return items

    def _things(self, org_id: str) -> ThingService:
        """The thing service of the system (no actor) in the organization."""
        router = Router(self._store, self._pool, org_id, None, configs=self._configs)
        loaders = Loaders(self._store, org_id)
        return ThingService(router, loaders, self._store.events, org_id=org_id, actor_ref=None)


def _may_pass(exc: Exception) -> bool:
    """Whether trying again may help: an upstream that said so, a busy store, or an error
    that is not ours (a connection lost)."""
    if isinstance(exc, ProviderError):
        return exc.retryable
    if isinstance(exc, StoreBusyError):
        return True
    return not isinstance(exc, OneError)
