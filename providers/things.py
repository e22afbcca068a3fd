"""The thing service: every thing operation over every provider, its rules written once.

    get, get_many   through the request's loaders: one batch per (provider, detail)
    page            from the provider the type is routed to (the native store for every type)
    create          validate -> the backend has the status -> provider -> event
    update          validate -> current (NOT_FOUND) -> archived is final -> provider, merging
                    or replacing the properties -> event
    change_status   current -> the lifecycle, with the backend's steps -> provider -> event
    archive         change_status(archived): final

Events: a provider that `records_events` (the native store) commits each in the transaction
of its write; for the others the service appends it once the upstream accepted the write, so
a write that failed tells of nothing. The lifecycle is `providers/lifecycle.py`. A service is
made per request, for one organization and one actor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from providers import validation
from providers.errors import InvalidInputError, NotFoundError
from providers.lifecycle import require_changeable, require_creatable, require_transition
from providers.migrating import MigrationView
from providers.native.events import Events
from providers.native.rows import page_size
from providers.provider import ListQuery, Provider
from providers.records import Page, Thing, ThingStatus
from providers.refs import Ref
from providers.thing_events import ThingEvent, created, status_changed, updated


class Routes(Protocol):
    """Which provider holds what, in the organization (the request's router)."""

    async def for_type(self, type: str | None) -> Provider:
        """The provider a type is routed to; the native store when none is, or for `None`
        (a listing of every type)."""
        ...

    async def named(self, name: str) -> Provider: ...


class Batch(Protocol):
    def load(self, key: str) -> Awaitable[Any]: ...

    def prime(self, key: str, value: Any) -> object: ...

    def clear(self, key: str) -> object: ...


class Batches(Protocol):
    """The request's loaders of things, one per (provider, detail)."""

    def things(self, provider: Provider, *, detail: bool) -> Batch: ...


class ThingService:
    """Every thing operation of one request, whichever provider holds the thing.

    Example:
        things = ThingService(router, loaders, store.events, org_id=org, actor_ref=me)
        post = await things.create(type="blog_post", name="Hello")  # wherever posts live
        await things.archive(Ref(Kind.THING, post.provider, post.id))
    """

    def __init__(
        self,
        routes: Routes,
        batches: Batches,
        events: Events,
        *,
        org_id: str,
        actor_ref: str | None,
        migrations: MigrationView | None = None,
    ) -> None:
        self._routes = routes
        self._batches = batches
        self._events = events
        self._org_id = org_id
        self._actor_ref = actor_ref
        self._migrations = migrations

    # -- reads ---------------------------------------------------------------------------

    async def get(self, ref: Ref, *, detail: bool = True) -> Thing | None:
        """The thing `ref` names, or None when it does not exist or is not the organization's.
        A thing copied to another backend is read where the actor reads its type (an old id
        names the copy once the migration is promoted)."""
        migrations = self._migrations
        if migrations is None:
            provider = await self._routes.named(ref.provider)
            found: Thing | None = await self._batches.things(provider, detail=detail).load(
                ref.local_id
            )
            return found
        served, migration = await migrations.resolve(ref)
        provider = await self._routes.named(served.provider)
        load = self._batches.things(provider, detail=detail).load(served.local_id)
        if migration is not None:  # an actor in a rollout: the new backend's reads are watched
            return await migrations.serve_get(migration, load)
        found = await load
        if found is not None:
            shadowed = await migrations.reading(found.type)
            if shadowed is not None and shadowed.source == provider.name:
                migrations.shadow_things(shadowed, [found])
        return found

    async def get_many(self, refs: Sequence[Ref], *, detail: bool = True) -> list[Thing | None]:
        """In the order asked, None where missing: one batch per provider."""
        return list(await asyncio.gather(*(self.get(r, detail=detail) for r in refs)))

    async def get_each(
        self, refs: Sequence[Ref], *, detail: bool = True
    ) -> list[Thing | Exception | None]:
        """As `get_many`, with the error of each lookup in its place instead of raised (a
        provider that fails fails only its own things): one batch per provider."""
        if self._migrations is not None and await self._migrations.all():
            refs = [r for r, _ in await asyncio.gather(*map(self._migrations.resolve, refs))]
        providers: dict[str, Provider | Exception] = {}
        for name in dict.fromkeys(r.provider for r in refs):
            try:
                providers[name] = await self._routes.named(name)
            except Exception as exc:  # noqa: BLE001 - handed to each of its things
                providers[name] = exc
        loads: list[Awaitable[Any]] = []
        for ref in refs:
            provider = providers[ref.provider]
            if isinstance(provider, Exception):
                loads.append(_failed(provider))
            else:
                loads.append(self._batches.things(provider, detail=detail).load(ref.local_id))
        return list(await asyncio.gather(*loads, return_exceptions=True))

    async def require(self, ref: Ref, *, detail: bool = True) -> Thing:
        found = await self.get(ref, detail=detail)
        if found is None:
            raise missing(ref)
        return found

    async def page(self, query: ListQuery) -> Page[Thing]:
        if query.type is not None:
            query = replace(query, type=validation.thing_type(query.type))
        page_size(query.first)
        provider = await self._routes.for_type(query.type)
        if query.search and not provider.capabilities.search:
            raise InvalidInputError(f"{provider.name} cannot search", field="search")
        if query.status is not None and query.status not in provider.capabilities.statuses:
            return Page([], [], False, 0)  # no thing of this backend has a step it lacks
        migration = None
        if self._migrations is not None:
            migration = await self._migrations.reading(query.type)
        if migration is not None and self._migrations is not None:
            if self._migrations.to_target(migration):
                provider = await self._routes.named(migration.target)
                page = await self._migrations.serve_page(migration, query)
            else:
                page = await provider.page(query)
                if provider.name == migration.source:
                    self._migrations.shadow_things(migration, page.items)
        else:
            page = await provider.page(query)
        self._remember(provider, page.items, detail=query.detail)
        return page

    # -- writes --------------------------------------------------------------------------

    async def create(
        self,
        *,
        type: str,
        name: str,
        status: ThingStatus = ThingStatus.DRAFT,
        properties: Any = None,
    ) -> Thing:
        type = validation.thing_type(type)
        provider = await self._routes.for_type(type)
        _require_write(provider)
        require_creatable(status, provider.capabilities.statuses, provider.name)
        thing = await provider.create(
            type=type,
            name=validation.name(name),
            status=status,
            properties=validation.json_object(properties, "properties"),
        )
        return await self._written(provider, thing, created(thing))

    async def update(
        self, ref: Ref, *, name: str | None = None, properties: Any = None, merge: bool = True
    ) -> Thing:
        """Rename, or write properties: merged into the current ones, or replacing them."""
        name = validation.name(name) if name is not None else None
        given = validation.json_object(properties, "properties") if properties is not None else None
        if name is None and given is None:
            raise InvalidInputError("nothing to update: give a name or properties")
        ref = await self._writable(ref)
        provider = await self._routes.named(ref.provider)
        _require_write(provider)
        current = await self._current(provider, ref)
        require_changeable(current.status)
        thing = await provider.update(ref.local_id, name=name, properties=given, merge=merge)
        fields = [k for k, v in (("name", name), ("properties", given)) if v is not None]
        return await self._written(provider, thing, updated(thing, fields))

    async def change_status(self, ref: Ref, status: ThingStatus) -> Thing:
        """Move a thing along its lifecycle, within the steps its backend has."""
        ref = await self._writable(ref)
        provider = await self._routes.named(ref.provider)
        _require_write(provider)
        current = await self._current(provider, ref)
        require_transition(current.status, status, provider.capabilities.statuses, provider.name)
        thing = await provider.change_status(ref.local_id, status)
        return await self._written(provider, thing, status_changed(thing, current.status))

    async def archive(self, ref: Ref) -> Thing:
        return await self.change_status(ref, ThingStatus.ARCHIVED)

    # -- steps ---------------------------------------------------------------------------

    async def _writable(self, ref: Ref) -> Ref:
        """Where a write of `ref` goes: the copy an old id names after promotion, the
        original of a copy while its migration runs (see `providers/migrating.py`)."""
        if self._migrations is None:
            return ref
        served, _ = await self._migrations.resolve(ref)
        return await self._migrations.writable(served)

    async def _current(self, provider: Provider, ref: Ref) -> Thing:
        found: Thing | None = await self._batches.things(provider, detail=False).load(ref.local_id)
        if found is None:
            raise missing(ref)
        return found

    async def _written(self, provider: Provider, thing: Thing, event: ThingEvent) -> Thing:
        if not provider.capabilities.records_events:
            await self._events.append(
                self._org_id,
                event.type,
                actor_ref=self._actor_ref,
                target_ref=event.target_ref,
                metadata=event.metadata,
            )
        # What a write returned is the thing now, for later reads of this request; its heavy
        # fields may be missing, so only the summary loader learns it.
        self._batches.things(provider, detail=True).clear(thing.id)
        self._remember(provider, [thing], detail=False)
        if self._migrations is not None:
            await self._migrations.written(provider, thing)
        return thing

    def _remember(self, provider: Provider, things: list[Thing], *, detail: bool) -> None:
        """Things a listing returned, for later lookups of this request: listed with their
        heavy fields, they serve lookups that want them and ones that do not."""
        for with_detail in (True, False) if detail else (False,):
            batch = self._batches.things(provider, detail=with_detail)
            for thing in things:
                batch.clear(thing.id)
                batch.prime(thing.id, thing)


def _require_write(provider: Provider) -> None:
    if not provider.capabilities.write:
        raise InvalidInputError(
            f"{provider.name} things are read-only here", provider=provider.name
        )


async def _failed(error: Exception) -> None:
    raise error


def missing(ref: Ref) -> NotFoundError:
    return NotFoundError(
        f"no thing with id '{validation.excerpt(str(ref))}' in your organization", id=str(ref)
    )
