"""Whether a request may run now, and how much it may ask for.

Per request: one token from the actor's bucket (a person, an API key, or the client address
when there is no credential), then one of the organization's API calls for the day, of which
an actor who is not an owner may use only `actor_daily_share`. The organization's plan limits
are read from the store at most once a minute. The query cost budget is the role's budget
times the plan's factor (`query_cost_factor` in the organization's limits).
"""

from __future__ import annotations

import math

from gateway.expiring import Expiring
from gateway.rate_limits import RateLimits
from gateway.settings import Settings
from providers.native import NativeStore
from providers.records import Role
from resolvers.context import Actor

LIMITS_TTL = 60.0
_OWNERS = frozenset({Role.ORG_OWNER, Role.PLATFORM_OWNER})
PLAN_COST_FACTORS = {"starter": 1, "growth": 2, "enterprise": 4}


class Admission:
    def __init__(self, store: NativeStore, limits: RateLimits, settings: Settings) -> None:
        self._store = store
        self._limits = limits
        self._settings = settings
        self._plans: Expiring[str, dict[str, object]] = Expiring()

    async def admit_anonymous(self, address: str) -> None:
        """Raises `RateLimitedError` when this address sends too much without a credential."""
        s = self._settings
        await self._limits.enforce(f"ip:{address}", s.anonymous_rate, s.anonymous_burst)

    async def admit(self, actor: Actor) -> None:
        """Raises `RateLimitedError` or `QuotaExceededError` when `actor` may not run now."""
        s = self._settings
        key = f"key:{actor.api_key_id}" if actor.api_key_id else f"person:{actor.person_id}"
        limits = await self._plan(actor.org_id)
        org_limit = limits.get("api_calls_per_day")
        org_limit = org_limit if isinstance(org_limit, int) else None
        actor_limit = None
        # Owners (people, not their API keys) may spend the whole day; anyone else a share.
        if org_limit is not None and (actor.api_key_id is not None or actor.role not in _OWNERS):
            actor_limit = max(1, math.ceil(org_limit * s.actor_daily_share))
        # The token and the call in one step (one Redis round trip): no token, not counted.
        await self._limits.admit(
            key, s.actor_rate, s.actor_burst, actor.org_id, org_limit, actor_limit
        )

    async def cost_budget(self, actor: Actor | None) -> int:
        budgets = self._settings.query_cost_budgets
        if actor is None:
            return budgets.get("anonymous", 0)
        factor = (await self._plan(actor.org_id)).get("query_cost_factor", 1)
        base = budgets.get(actor.role.value, 0)
        return int(base * factor) if isinstance(factor, int | float) else base

    async def calls_today(self, org_id: str) -> int:
        return await self._limits.used_today(org_id)

    async def _plan(self, org_id: str) -> dict[str, object]:
        cached = self._plans.get(org_id, LIMITS_TTL)
        if cached is not None:
            return cached
        [org] = await self._store.organizations.get_many([org_id])
        limits: dict[str, object] = dict(org.limits) if org else {}
        if org is not None:
            limits.setdefault("query_cost_factor", PLAN_COST_FACTORS.get(org.plan, 1))
        return self._plans.put(org_id, limits)
