"""WordPress change detection: WordPress cannot push a change, so every site is polled.

Every `seconds`, for each organization with an active WordPress config, the types it routes
there (posts, pages) are listed from the organization's mark on (`modified_after`, oldest
change first), through its provider, and each change becomes an event of the thing it names
(`thing.wordpress.post-12`), with metadata {provider, thing_type, source: "poll", version: the
post's `modified_gmt`}:

    status trash                         entity_archived
    an id not known before               entity_created
    any other change                     entity_updated
    a known id no listing has any more   entity_deleted  (no version; every `relist_every` rounds)

- Known ids are every id the site had at the first poll, and every id seen since. That first
  poll takes the ids and the newest change as its starting point and records nothing: a
  site's history is not news.
- A change whose thing's newest event has the same version is the gateway's own write, which
  the thing service recorded already: it is not recorded twice.
- Events and the mark commit together (`ChangeWatermarks.advance`), so a restart neither
  loses nor repeats a change.
- With Redis, one replica polls a site: the holder of its lock (`SET NX PX`, renewed while it
  polls and from round to round, deleted by its holder only, when it stops). Without Redis this
  process is the only poller.
- A site that fails is logged and counted, and tried again next round; it holds up no other
  site, and no error ends the loop.

A change is seen within one interval and one round's requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError

from providers.errors import OneError
from providers.native import NativeStore
from providers.native.change_watermarks import ChangeWatermark
from providers.records import Kind, ProviderConfig, Thing, ThingStatus
from providers.refs import Ref
from providers.registry import ProviderPool
from providers.thing_events import ThingEvent, same_version
from providers.wordpress import WordPressProvider
from providers.wordpress_posts import NAME

__all__ = ["Round", "SiteLocks", "WordPressChanges"]

log = logging.getLogger("one.wordpress_changes")

BATCH = 100  # changes per transaction (and per query of their newest events)
_ID_PREFIXES = {"blog_post": "post-", "page": "page-"}  # the provider's local ids, by type
_REDIS_TIMEOUT = 2.0


@dataclass
class Round:
    """What one round did, counted in sites and in changes."""

    polled: int = 0  # sites read by this process
    skipped: int = 0  # sites another replica polls
    failed: int = 0  # sites that failed; tried again next round
    recorded: int = 0  # events written
    echoes: int = 0  # changes the gateway made itself, recorded already


class WordPressChanges:
    """Polls every organization's WordPress for changes and records them as events.

    Example:
        changes = WordPressChanges(store, pool, seconds=30, redis_url=settings.redis_url)
        changes.start()           # or: await changes.poll_once() -> Round(polled=1, ...)
        ...
        await changes.stop()      # at shutdown: ends the loop, lets go of the locks
    """

    def __init__(
        self,
        store: NativeStore,
        pool: ProviderPool,
        *,
        seconds: float,
        redis_url: str | None = None,
        relist_every: int = 10,
        concurrency: int = 10,
    ) -> None:
        self.seconds = seconds
        self._store = store
        self._pool = pool
        self._marks = store.change_watermarks
        # Held from round to round; a replica that dies leaves its sites after a few rounds.
        lock_seconds = max(3 * seconds, 30.0)
        self._locks = SiteLocks(redis_url, lock_seconds) if redis_url else None
        self._relist_every = relist_every
        self._rounds: dict[str, int] = {}  # rounds polled by this process, by organization
        self._slots = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._locks is not None:
            await self._locks.close()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.seconds)
            try:
                await self.poll_once()
            except Exception:
                # A failed round must not end the loop: the next one may well succeed.
                log.exception("a round of WordPress change detection failed")

    async def poll_once(self) -> Round:
        """One round over every site, at most `concurrency` at a time."""
        configs = await self._store.provider_configs.every(active_only=True)
        done = Round()
        await asyncio.gather(*(self._site(c, done) for c in configs if c.provider == NAME))
        return done

    async def _site(self, config: ProviderConfig, done: Round) -> None:
        async with self._slots:
            try:
                async with self._holding(config) as mine:
                    if not mine:
                        done.skipped += 1
                        return
                    await self._poll(config, done)
                done.polled += 1
            except OneError as exc:
                # Our errors say what failed without a secret (never the config).
                done.failed += 1
                log.warning(
                    "WordPress changes of organization %s not read (%s: %s); next round again",
                    config.org_id,
                    exc.code,
                    exc.message,
                )
            except RedisError as exc:
                done.failed += 1  # nobody can tell who polls the site: nobody does
                log.warning("Redis did not answer for organization %s: %s", config.org_id, exc)
            except Exception:
                done.failed += 1
                log.exception("WordPress changes of organization %s not read", config.org_id)

    @asynccontextmanager
    async def _holding(self, config: ProviderConfig) -> AsyncIterator[bool]:
        if self._locks is None:
            yield True
            return
        site = hashlib.sha256(str(config.config.get("base_url")).encode()).hexdigest()[:16]
        async with self._locks.holding(f"one:wordpress-changes:{config.org_id}:{site}") as mine:
            yield mine

    async def _poll(self, config: ProviderConfig, done: Round) -> None:
        provider = self._pool.get(config)
        if not isinstance(provider, WordPressProvider):
            raise TypeError(f"the wordpress provider is a {type(provider).__name__}")
        types = sorted(set(config.routes) & provider.thing_types)
        mark = await self._marks.get(config.org_id, NAME)
        if mark is None:
            await self._marks.advance(await _starting_point(config.org_id, provider, types))
            return
        rounds = self._rounds[config.org_id] = self._rounds.get(config.org_id, -1) + 1
        changes = [t for type in types for t in await provider.changed_since(type, mark.mark)]
        changes.sort(key=lambda t: (t.updated_at, t.id))
        for start in range(0, len(changes), BATCH):
            mark = await self._take(mark, changes[start : start + BATCH], done)
        if rounds % self._relist_every == 0:
            await self._find_deleted(mark, provider, types, done)

    async def _take(
        self, mark: ChangeWatermark, things: list[Thing], done: Round
    ) -> ChangeWatermark:
        """Record a batch of changes (oldest first) and move the mark past them."""
        # The mark's own second is read again each round: leave out what was taken from it.
        fresh = [t for t in things if t.updated_at != mark.mark or t.id not in mark.at_mark]
        if not fresh:
            return mark
        refs = [_ref(t.id) for t in fresh]
        newest = await self._store.events.of_targets(mark.org_id, refs, limit=1)
        events = []
        for thing, ref in zip(fresh, refs, strict=True):
            if same_version(newest[ref], thing.updated_at):
                done.echoes += 1
            else:
                events.append(_change(thing, known=thing.id in mark.known))
        last = max(t.updated_at for t in fresh)
        if mark.mark is not None and last < mark.mark:
            last = mark.mark  # an answer out of order never moves the mark back
        at_mark = {t.id for t in fresh if t.updated_at == last}
        if last == mark.mark:
            at_mark |= mark.at_mark
        moved = replace(
            mark,
            mark=last,
            at_mark=frozenset(at_mark),
            known=mark.known | {t.id for t in fresh},
        )
        await self._marks.advance(moved, events)
        done.recorded += len(events)
        return moved

    async def _find_deleted(
        self, mark: ChangeWatermark, provider: WordPressProvider, types: list[str], done: Round
    ) -> None:
        """A permanently deleted post leaves no trace but its absence: list every id."""
        listed: dict[str, datetime] = {}
        for type in types:
            listed.update(await provider.versions(type))
        prefixes = tuple(_ID_PREFIXES[t] for t in types)
        missing = [i for i in mark.known if i.startswith(prefixes) and i not in listed]
        if missing:
            # A deletion while the listing paged shifts a page and hides an id from it: ask
            # for the missing ones by id before calling them deleted.
            found = await provider.get_many(missing, detail=False)
            missing = [i for i, thing in zip(missing, found, strict=True) if thing is None]
        # Ids older than the mark are history nobody recorded (a type routed here later);
        # newer ones are left for the next round to record as created.
        history = {i for i, at in listed.items() if mark.mark is not None and at < mark.mark}
        if not missing and history <= mark.known:
            return
        gone = frozenset(missing)
        moved = replace(mark, known=(mark.known | history) - gone, at_mark=mark.at_mark - gone)
        await self._marks.advance(moved, [_deleted(i) for i in sorted(gone)])
        done.recorded += len(gone)


async def _starting_point(
    org_id: str, provider: WordPressProvider, types: list[str]
) -> ChangeWatermark:
    versions: dict[str, datetime] = {}
    for type in types:
        versions.update(await provider.versions(type))
    newest = max(versions.values(), default=None)
    return ChangeWatermark(
        org_id=org_id,
        provider=NAME,
        mark=newest,
        at_mark=frozenset(i for i, at in versions.items() if at == newest),
        known=frozenset(versions),
    )


def _ref(local_id: str) -> str:
    return str(Ref(Kind.THING, NAME, local_id))


def _change(thing: Thing, *, known: bool) -> ThingEvent:
    if thing.status is ThingStatus.ARCHIVED:
        type = "entity_archived"
    else:
        type = "entity_updated" if known else "entity_created"
    metadata = {
        "provider": NAME,
        "thing_type": thing.type,
        "source": "poll",
        "version": thing.updated_at.isoformat(),
    }
    return ThingEvent(type, _ref(thing.id), metadata)


def _deleted(local_id: str) -> ThingEvent:
    type = next(t for t, prefix in _ID_PREFIXES.items() if local_id.startswith(prefix))
    metadata = {"provider": NAME, "thing_type": type, "source": "poll"}
    return ThingEvent("entity_deleted", _ref(local_id), metadata)


# Only the holder's token may extend or delete a lock.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class SiteLocks:
    """Which replica polls a site: the one whose token its Redis key holds. A lock is taken
    with `SET NX PX`, kept while it is in use and from round to round, and given back when
    this process stops; a replica that dies loses its sites when their keys expire."""

    def __init__(self, url: str, seconds: float) -> None:
        self._redis = Redis.from_url(
            url, socket_timeout=_REDIS_TIMEOUT, socket_connect_timeout=_REDIS_TIMEOUT
        )
        self._token = secrets.token_hex(16)
        self._ms = int(seconds * 1000)
        self._renew = self._redis.register_script(_RENEW)
        self._release = self._redis.register_script(_RELEASE)
        self._held: set[str] = set()

    @asynccontextmanager
    async def holding(self, key: str) -> AsyncIterator[bool]:
        """Whether this process holds `key` for the block; raises `RedisError` when Redis
        does not answer (nobody can tell who polls, so nobody should)."""
        taken = await self._redis.set(key, self._token, nx=True, px=self._ms)
        if not taken and not await self._renew(keys=[key], args=[self._token, self._ms]):
            yield False
            return
        self._held.add(key)
        keeping = asyncio.get_running_loop().create_task(self._keep(key))
        try:
            yield True
        finally:
            keeping.cancel()

    async def _keep(self, key: str) -> None:
        while True:
            await asyncio.sleep(self._ms / 3000)
            try:
                if not await self._renew(keys=[key], args=[self._token, self._ms]):
                    log.warning("the polling lock %s was lost while polling", key)
                    return
            except RedisError as exc:
                log.warning("could not renew the polling lock %s: %s", key, exc)

    async def close(self) -> None:
        for key in self._held:
            try:
                await self._release(keys=[key], args=[self._token])
            except RedisError as exc:
                log.warning("could not release the polling lock %s (it expires): %s", key, exc)
        self._held.clear()
        await self._redis.aclose()
