"""What every resolver receives: the store, the authenticated actor, this request's loaders
and its thing service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import strawberry

from providers.errors import OneError, UnauthenticatedError
from providers.migrating import MigrationMonitor, MigrationView
from providers.native import NativeStore
from providers.native.migrations import Migration
from providers.records import Event, Kind, Role
from providers.refs import native_ref
from providers.registry import ProviderPool
from providers.things import ThingService
from resolvers.documents import Checked, QueryLimits
from resolvers.loaders import Loaders
from resolvers.router import ReadConfigs, Router


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is asking: a person (or an API key, which has none) acting in one organization."""

    org_id: str
    role: Role
    person_id: str | None = None
    api_key_id: str | None = None  # set when a partner's key, not a person, is acting

    @property
    def ref(self) -> str | None:
        return native_ref(Kind.PERSON, self.person_id) if self.person_id else None


async def _zero() -> int:
    return 0


class LiveFeed(Protocol):
    """An organization's events as they commit (gateway/live_events.py)."""

    def follow(
        self, org_id: str, after: int | None
    ) -> AbstractAsyncContextManager[AsyncIterator[Event | None]]:
        """Events after `after` (or from now), in order; `None` when a while passed without."""
        ...


@dataclass
class Live:
    """What a subscription needs besides the request's context: set by the transports."""

    feed: LiveFeed
    # The actor as the connection's credentials name them now (a revoked key or membership
    # gives its error), from a check at most a second old and started after the event
    # (its `seq`) passed in: 0 for any.
    current_actor: Callable[[int], Awaitable[Actor | OneError]]
    max_subscriptions: int = 20  # on one connection
    open_subscriptions: int = 0
    resume_after: str | None = None  # SSE's Last-Event-ID
    position: str | None = None  # the cursor of the event just yielded (SSE's `id:`)


@dataclass
class Context:
    """Built fresh for each request (or WebSocket operation) by the gateway."""

    store: NativeStore
    providers: ProviderPool
    actor_or_error: Actor | OneError = field(
        default_factory=lambda: UnauthenticatedError(
            "authentication required: send 'Authorization: Bearer <token>'"
        )
    )
    request: Any = None
    response: Any = None
    api_calls_today: Callable[[str], Awaitable[int]] = field(default=lambda org_id: _zero())
    connection_params: dict[str, Any] | None = None  # a WebSocket's connection_init payload
    limits: QueryLimits = field(default_factory=QueryLimits)
    cost_budget: int = 1_000  # the most a query may cost (resolvers/cost.py)
    request_id: str | None = None
    # Over WebSocket, each operation is admitted (rate and daily calls) when it starts.
    admit: Callable[[], Awaitable[None]] | None = None
    # Over WebSocket, whether the organization's safelist lets a document run.
    trusted: Callable[[str], Awaitable[bool]] | None = None
    checked: Checked | None = None  # the document, already checked by the HTTP view
    live: Live | None = None  # on WebSockets and SSE streams
    # The organization's active provider configs, as the gateway keeps them (default: read
    # from the store by each request's router).
    provider_configs: ReadConfigs | None = None
    # Migrations in progress (providers/migrating.py): the process's monitor, and the
    # organization's migrations as the gateway keeps them (default: read from the store).
    migration_monitor: MigrationMonitor | None = None
    read_migrations: Callable[[str], Awaitable[list[Migration]]] | None = None
    kick_migrations: Callable[[], None] | None = None  # the runner looks at once
    planning: bool = True  # planned execution of nested fields (resolvers/planning.py)
    search_deadline: float = 3.0  # seconds a backend has to answer a federated search

    def renew(self, actor: Actor) -> None:
        """A long-lived context (a subscription) before it resolves the next event: the
        actor as they are now, and fresh loaders so nothing read for an earlier event is
        served again."""
        self.actor_or_error = actor
        for name in ("loaders", "router", "things", "migrations"):
            self.__dict__.pop(name, None)

    @property
    def actor(self) -> Actor:
        """The actor, or the reason there is none as an `UnauthenticatedError`."""
        if isinstance(self.actor_or_error, OneError):
            raise self.actor_or_error
        return self.actor_or_error

    @cached_property
    def loaders(self) -> Loaders:
        migrations = self.migrations
        formers = migrations.formers_of if migrations is not None else None
        return Loaders(self.store, self.actor.org_id, formers)

    @cached_property
    def router(self) -> Router:
        actor = self.actor
        return Router(
            self.store, self.providers, actor.org_id, actor.ref, configs=self.provider_configs
        )

    @cached_property
    def migrations(self) -> MigrationView | None:
        """The organization's migrations as this actor reads them (None without a monitor)."""
        if self.migration_monitor is None:
            return None
        actor = self.actor
        read = self.read_migrations or self.store.migrations.of_org
        return MigrationView(
            self.store,
            self.migration_monitor,
            self.router.named,
            actor.org_id,
            actor.person_id or actor.api_key_id or f"org:{actor.org_id}",
            lambda: read(actor.org_id),
            self.router.configured,
        )

    @cached_property
    def things(self) -> ThingService:
        """Every thing operation, over every provider (see `providers/things.py`)."""
        actor = self.actor
        return ThingService(
            self.router,
            self.loaders,
            self.store.events,
            org_id=actor.org_id,
            actor_ref=actor.ref,
            migrations=self.migrations,
        )


Info = strawberry.Info[Context, None]
