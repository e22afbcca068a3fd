"""The organizations dimension: tenants, their hierarchy and their plans."""

from __future__ import annotations

from collections.abc import Sequence

from providers import validation
from providers.engine import Cond, Engine, Order, Row, Transaction, Where
from providers.errors import ForbiddenError, InvalidInputError, NotFoundError
from providers.native.events import record_event
from providers.native.people import join
from providers.native.rows import in_order, to_row
from providers.native.scope import PLAN_LIMITS, require_quota
from providers.records import Kind, Organization, Role
from providers.refs import native_ref, new_local_id

_PLAN_RANK = {plan: rank for rank, plan in enumerate(PLAN_LIMITS)}


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
        within_parent: bool = False,
    ) -> Organization:
        """Create an organization; `owner_id`, when given, joins it as its `org_owner` in the
        same transaction. `within_parent`: on a plan no higher than the parent's, and no more
        children than the parent's plan allows."""
        if plan not in PLAN_LIMITS:
            raise InvalidInputError(
                f"unknown plan '{validation.excerpt(plan)}'; plans: {', '.join(PLAN_LIMITS)}",
                field="plan",
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
            if parent_id is not None:
                parent = await tx.find("organizations", [Cond("id", "eq", parent_id)], limit=1)
                if not parent:
                    raise NotFoundError("parent organization not found", field="parentId")
                if within_parent:
                    await _require_room(tx, parent[0], plan)
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
                await join(tx, org.id, owner_id, Role.ORG_OWNER, actor_ref=actor_ref)
        return org


async def _require_room(tx: Transaction, parent: Row, plan: str) -> None:
    """Refuse a child above its parent's plan, or one more than the parent's plan allows."""
    parent_plan = str(parent.get("plan"))
    if _PLAN_RANK[plan] > _PLAN_RANK.get(parent_plan, -1):
        raise ForbiddenError(
            f"a child of a {parent_plan} organization may be on a plan up to {parent_plan}",
            field="plan",
        )
    used = await tx.count("organizations", [Cond("parent_id", "eq", parent["id"])])
    await require_quota(tx, parent["id"], "children", used)
