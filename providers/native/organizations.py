"""The organizations dimension: tenants, their hierarchy and their plans."""

from __future__ import annotations

from collections.abc import Sequence

from providers import validation
from providers.engine import Cond, Engine, Order, Where
from providers.errors import InvalidInputError, NotFoundError
from providers.native.events import record_event
from providers.native.people import join
from providers.native.rows import in_order, to_row
from providers.records import JSONObject, Kind, Organization, Role
from providers.refs import native_ref, new_local_id

PLAN_LIMITS: dict[str, JSONObject] = {
    "starter": {"things": 1_000, "members": 10, "api_calls_per_day": 10_000},
    "growth": {"things": 50_000, "members": 100, "api_calls_per_day": 500_000},
    "enterprise": {"things": 5_000_000, "members": 10_000, "api_calls_per_day": 50_000_000},
}


class Organizations:
    """Organizations are the scope itself: who may see which one is the caller's decision."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def get_many(self, ids: Sequence[str]) -> list[Organization | None]:
        rows = await self._engine.find("organizations", [Cond("id", "in", set(ids))])
        return in_order(ids, (Organization(**r) for r in rows))

    async def get_by_slug(self, slug: str) -> Organization | None:
        rows = await self._engine.find("organizations", [Cond("slug", "eq", slug)], limit=1)
        return Organization(**rows[0]) if rows else None

    async def all(self, parent_ids: Sequence[str] | None = None) -> list[Organization]:
        """All organizations, or the children of `parent_ids`, oldest first."""
        where: Where = [] if parent_ids is None else [Cond("parent_id", "in", set(parent_ids))]
        rows = await self._engine.find("organizations", where, order=Order("created_at"))
        return [Organization(**r) for r in rows]

    async def create(
        self,
        *,
        actor_ref: str | None,
        name: str,
        slug: str,
        parent_id: str | None = None,
        plan: str = "starter",
        owner_id: str | None = None,
    ) -> Organization:
        """Create an organization; `owner_id`, when given, joins it as its `org_owner` in the
        same transaction."""
        if plan not in PLAN_LIMITS:
            raise InvalidInputError(
                f"unknown plan '{plan[:40]}'; plans: {', '.join(PLAN_LIMITS)}", field="plan"
            )
        org = Organization(
            id=new_local_id(),
            name=validation.name(name),
            slug=validation.slug(slug),
            parent_id=parent_id,
            plan=plan,
            limits=dict(PLAN_LIMITS[plan]),
        )
        async with self._engine.transaction() as tx:
            if parent_id is not None and not await tx.find(
                "organizations", [Cond("id", "eq", parent_id)], limit=1
            ):
                raise NotFoundError("parent organization not found", field="parentId")
            await tx.insert("organizations", to_row(org))
            await record_event(
                tx,
                org.id,
                "organization_created",
                actor_ref=actor_ref,
                target_ref=native_ref(Kind.ORGANIZATION, org.id),
                metadata={"name": org.name, "slug": org.slug, "parent_id": parent_id, "plan": plan},
            )
            if owner_id is not None:
                await join(tx, org.id, owner_id, Role.ORG_OWNER, actor_ref=actor_ref, new=False)
        return org
