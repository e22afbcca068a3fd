"""The response cache: a query's answer, kept for the one who asked, until a write changes it.

**Key.** The organization (after `X-One-Organization`), the role, the person or API key, the
document's hash, the operation name and the canonical JSON of the variables. The person is
always in it: `me`, role-based visibility and `Person.memberships` answer per person, and
leaving the person out "where it does not matter" would need every resolver to say so.

**Invalidation: generations, not tags.** Every write (native mutations, upstream writes
through the gateway, webhooks, WordPress polls) records an event in its transaction. An entry
keeps its organization's generation from before its execution started and is stale once any
event of that organization has committed since (`gateway/cache_generations.py`; with
`ONE_REDIS_URL`, across replicas, one Redis GET per hit). So correctness does not depend on
the answer showing ids (`owner { name }` shows none): tags per entity would keep more entries
alive, but would be right only if every read of every resolver were tagged. An answer that
may show another organization (any field of `Organization` or `Membership`: parents,
children, `memberships`) keeps the generation of every organization instead.

**Time.** Upstream data changes without an event: an answer whose execution used an upstream
provider is kept at most that provider's `ONE_RESPONSE_CACHE_UPSTREAM_SECONDS`. An answer
expires when one of its organization's connections starts or ends (no event marks that), and
after `ONE_RESPONSE_CACHE_SECONDS` in any case; fields in `HINTS` shorten it (0: never kept).

**Passed by:** mutations (and SSE and WebSockets, which do not come here), answers with errors
or extensions (`extensions.cost`), refused actors, and requests with `Cache-Control: no-cache`
or `max-age=0` (no lookup) or `no-store` (neither lookup nor keep). Answers say
`Cache-Control: private`: no shared HTTP cache may keep them.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLSchema,
    OperationType,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    get_operation_ast,
    visit,
)
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request

from gateway.cache_generations import Generations, Snapshot
from gateway.settings import Settings
from providers.native import NativeStore
from providers.native.trusted_documents import document_hash
from providers.provider import Provider
from providers.records import ProviderConfig
from providers.registry import ProviderPool
from providers.upstream import CircuitState
from resolvers.context import Actor, Context
from resolvers.documents import Checked, SizedCache

log = logging.getLogger("one.cache")

# The longest an answer showing (type, field) may be kept, in seconds: our `@cacheControl`.
HINTS: dict[tuple[str, str], float] = {
    ("Usage", "apiCallsToday"): 0,  # moves with every request, without an event
    ("Query", "apiKeys"): 0,  # `lastUsedAt` moves with each use, without an event
    ("Query", "providers"): 0,  # circuits and health as this process sees them
    ("Query", "notionVerificationToken"): 0,  # a secret, read once
    ("Query", "trustedDocuments"): 0,  # owners' administration: rare, not worth keeping
    ("Query", "safelistMode"): 0,
}
EVERY_ORGANIZATION = frozenset({"Organization", "Membership"})
KEPT = "private, no-cache"  # never by a shared cache; a browser must ask again
NOT_KEPT = "private, no-store"


@dataclass(frozen=True, slots=True)
class Policy:
    """What a document allows: `max_age` 0 is never kept; `query` False is a mutation."""

    query: bool
    max_age: float
    every_organization: bool


class _Fields(Visitor):
    def __init__(self, type_info: TypeInfo, max_age: float) -> None:
        super().__init__()
        self.type_info = type_info
        self.max_age = max_age
        self.every_organization = False

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        parent = self.type_info.get_parent_type()
        returned = self.type_info.get_type()
        names = {parent.name if parent else "", get_named_type(returned).name if returned else ""}
        if names & EVERY_ORGANIZATION:
            self.every_organization = True
        hint = HINTS.get((parent.name if parent else "", node.name.value))
        if hint is not None:
            self.max_age = min(self.max_age, hint)


def policy_of(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None, max_age: float
) -> Policy:
    """The policy of the operation `operation_name`, from every field the document names
    (fragments and other operations included: more fields can only keep less)."""
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.QUERY:
        return Policy(query=False, max_age=0, every_organization=False)
    type_info = TypeInfo(schema)
    fields = _Fields(type_info, max_age)
    visit(document, TypeInfoVisitor(type_info, fields))
    return Policy(True, fields.max_age, fields.every_organization)


@dataclass(frozen=True, slots=True)
class _Entry:
    body: bytes
    org_id: str
    every_organization: bool
    local: int
    shared: bytes | None
    stored_at: float
    expires_at: float
    size: int


class _UpstreamsUsed(ProviderPool):
    """The pool as one request sees it, noting which upstream providers it used."""

    def __init__(self, pool: ProviderPool) -> None:  # shares the pool's state, not a copy
        self._pool = pool
        self.client, self.sealer, self.upstreams = pool.client, pool.sealer, pool.upstreams
        self.used: set[str] = set()

    def get(self, config: ProviderConfig) -> Provider:
        self.used.add(config.provider)
        return self._pool.get(config)

    def circuit(self, config: ProviderConfig) -> CircuitState | None:
        return self._pool.circuit(config)


class Lookup:
    """One request's passage through the cache: its `hit`, or what to keep after it runs."""

    def __init__(
        self,
        cache: ResponseCache | None = None,
        *,
        hit: bytes | None = None,
        key: tuple[str | None, ...] | None = None,
        policy: Policy | None = None,
        snapshot: Snapshot | None = None,
        header: str | None = None,
    ) -> None:
        self._cache = cache
        self.hit = hit
        self._key = key
        self._policy = policy
        self._snapshot = snapshot
        self._started = time.time()
        self._upstreams: _UpstreamsUsed | None = None
        self.headers = {"Cache-Control": header} if header else {}

    def watch(self, context: Context) -> None:
        """Note which upstream providers the execution uses (their data has a TTL)."""
        if self._key is not None:
            self._upstreams = _UpstreamsUsed(context.providers)
            context.providers = self._upstreams

    async def finish(self, body: dict[str, Any], content: bytes) -> bytes:
        """The bytes to send for the answer `body` (encoded as `content`), kept when it may be."""
        cache = self._cache
        if cache is None:
            return content
        if self._policy is None:  # a mutation: answered once Redis knows of its writes
            await cache.generations.settled()
            return content
        if self._key is not None and self._snapshot is not None and _keepable(body):
            cache.keep(self._key, content, self._policy, self._snapshot, self._expiry())
        return cache.debugged(content, "MISS") if "extensions" not in body else content

    def _expiry(self) -> float:
        assert self._policy is not None and self._snapshot is not None
        seconds = self._policy.max_age
        used = self._upstreams.used if self._upstreams is not None else set()
        assert self._cache is not None
        for provider in used:
            seconds = min(seconds, self._cache.upstream_seconds.get(provider, 0))
        return min(self._started + seconds, self._snapshot.boundary)


PASS = Lookup()


def _keepable(body: dict[str, Any]) -> bool:
    return body.keys() == {"data"} and body["data"] is not None


class ResponseCache:
    """Answers to queries, least recently used out first, within `response_cache_bytes`.

    Example (what `gateway/view.py` does):
        lookup = await cache.lookup(request, actor, checked, query, params)
        if lookup.hit is None:
            lookup.watch(context); ...execute...
            content = await lookup.finish(body, encoded)
    """

    def __init__(self, store: NativeStore, settings: Settings, schema: GraphQLSchema) -> None:
        self._schema = schema
        self._max_bytes = settings.response_cache_bytes
        self._max_age = settings.response_cache_seconds
        self._sweep_seconds = settings.relay_sweep_seconds
        self.upstream_seconds = settings.response_cache_upstream_seconds
        self.debug = settings.debug
        self._redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
        self.generations = Generations(store, self._redis)
        self._entries: OrderedDict[tuple[str | None, ...], _Entry] = OrderedDict()
        self._policies: SizedCache[Policy] = SizedCache(10_000)
        self.size = self.hits = self.misses = 0

    async def start(self) -> None:
        await self.generations.start(self._sweep_seconds)

    async def stop(self) -> None:
        await self.generations.stop()
        if self._redis is not None:
            await self._redis.aclose()

    def __len__(self) -> int:
        return len(self._entries)

    async def lookup(
        self,
        request: Request,
        actor: Actor | Exception,
        checked: Checked,
        query: str,
        params: dict[str, Any],
    ) -> Lookup:
        if not isinstance(actor, Actor):
            return Lookup(header=NOT_KEPT)
        name = params.get("operationName")
        digest = document_hash(query)
        found = self._policy(checked, digest, name)
        if not found.query:
            return Lookup(self, header=NOT_KEPT)
        directives = _directives(request.headers.get("cache-control"))
        cost = (params.get("extensions") or {}).get("cost")
        if found.max_age <= 0 or "no-store" in directives or cost:
            return Lookup(self, key=None, policy=found, header=NOT_KEPT)
        variables = json.dumps(
            params.get("variables") or {}, sort_keys=True, separators=(",", ":"), default=str
        )
        role = actor.role.value
        key = (actor.org_id, role, actor.person_id, actor.api_key_id, digest, name, variables)
        entry = self._entries.get(key)
        if entry is not None and "no-cache" not in directives:
            max_age = directives.get("max-age", math.inf)
            if time.time() - entry.stored_at < max_age and await self._fresh(key, entry):
                if key in self._entries:  # not dropped while Redis answered
                    self._entries.move_to_end(key)
                self.hits += 1
                return Lookup(hit=self.debugged(entry.body, "HIT"), header=KEPT)
        self.misses += 1
        try:
            snapshot = await self.generations.snapshot(actor.org_id, found.every_organization)
        except RedisError as exc:
            log.warning("the response cache cannot read Redis (%s): not keeping", exc)
            return Lookup(self, key=None, policy=found, header=KEPT)
        return Lookup(self, key=key, policy=found, snapshot=snapshot, header=KEPT)

    def keep(
        self,
        key: tuple[str | None, ...],
        content: bytes,
        policy: Policy,
        snapshot: Snapshot,
        expires_at: float,
    ) -> None:
        now = time.time()
        org_id = str(key[0])
        every = policy.every_organization
        if expires_at <= now or self.generations.local(org_id, every) != snapshot.local:
            return  # already stale: a write committed while it ran
        size = len(content) + sum(len(part or "") for part in key) + 200
        if size > self._max_bytes:
            return
        self._drop(key)
        entry = _Entry(
            content, org_id, every, snapshot.local, snapshot.shared, now, expires_at, size
        )
        self._entries[key] = entry
        self.size += size
        while self.size > self._max_bytes:
            self._drop(next(iter(self._entries)))

    def debugged(self, content: bytes, outcome: str) -> bytes:
        if not self.debug:
            return content
        return content[:-1] + b',"extensions":{"cache":"' + outcome.encode() + b'"}}'

    async def _fresh(self, key: tuple[str | None, ...], entry: _Entry) -> bool:
        every = entry.every_organization
        fresh = (
            entry.expires_at > time.time()
            and self.generations.local(entry.org_id, every) == entry.local
        )
        if fresh and self._redis is not None:
            try:
                fresh = await self.generations.shared(entry.org_id, every) == entry.shared
            except RedisError as exc:
                log.warning("the response cache cannot read Redis (%s): a miss", exc)
                return False
        if not fresh:
            self._drop(key)
        return fresh

    def _drop(self, key: tuple[str | None, ...]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size -= entry.size

    def _policy(self, checked: Checked, digest: str, name: str | None) -> Policy:
        key = f"{digest}:{name}"
        found = self._policies.get(key)
        if found is None:
            found = policy_of(self._schema, checked.document, name, self._max_age)
            self._policies.put(key, found, 1)
        return found


def _directives(header: str | None) -> dict[str, float]:
    """The request's `Cache-Control` directives: `no-cache`, `no-store`, `max-age` (seconds;
    0 counts as `no-cache`)."""
    found: dict[str, float] = {}
    for part in (header or "").lower().split(","):
        name, _, value = part.strip().partition("=")
        if name in ("no-cache", "no-store"):
            found[name] = 0
        elif name == "max-age":
            try:
                found["max-age"] = float(value.strip().strip('"'))
            except ValueError:
                continue
            if found["max-age"] <= 0:
                found["no-cache"] = 0
    return found
