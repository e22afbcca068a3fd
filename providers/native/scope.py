"""What exists in an organization: the checks every native write makes on the ids it is given."""

from __future__ import annotations

from datetime import datetime

from providers.engine import AnyOf, Cond, Reader, Where
from providers.errors import QuotaExceededError
from providers.records import JSONObject, Kind
from providers.refs import Ref, native_ref

# The plans, cheapest first: a plan ranks by its place here. An organization keeps the limits
# of its plan as they were when it was created; a limit it lacks is its plan's current one.
PLAN_LIMITS: dict[str, JSONObject] = {
    "starter": {"things": 1_000, "members": 10, "children": 3, "api_calls_per_day": 10_000},
    "growth": {"things": 50_000, "members": 100, "children": 25, "api_calls_per_day": 500_000},
    "enterprise": {
        "things": 5_000_000,
        "members": 10_000,
        "children": 1_000,
        "api_calls_per_day": 50_000_000,
    },
}

_TABLES = {
    Kind.THING: "things",
    Kind.KNOWLEDGE: "knowledge",
    Kind.EVENT: "events",
    Kind.CONNECTION: "connections",
}


def valid_at(at: datetime) -> list[Cond | AnyOf]:
    """Conditions on a connection that hold while it is in force at `at`."""
    return [Cond("valid_from", "le", at), Cond("valid_to", "null_or_gt", at)]


def membership_where(org_id: str, at: datetime) -> Where:
    return [
        Cond("org_id", "eq", org_id),
        Cond("relationship_type", "eq", "member_of"),
        Cond("to_ref", "eq", native_ref(Kind.ORGANIZATION, org_id)),
        *valid_at(at),
    ]


async def exists_in_org(reader: Reader, org_id: str, ref: Ref, at: datetime) -> bool:
    """Whether `ref` names something of `org_id`. Other providers' refs are the caller's to
    check, so they pass."""
    if ref.provider != "native":
        return True
    if ref.kind is Kind.ORGANIZATION:
        return ref.local_id == org_id
    if ref.kind is Kind.PERSON:
        where = [*membership_where(org_id, at), Cond("from_ref", "eq", str(ref))]
        return bool(await reader.find("connections", where, limit=1))
    where = [Cond("org_id", "eq", org_id), Cond("id", "eq", ref.local_id)]
    return bool(await reader.find(_TABLES[ref.kind], where, limit=1))


async def require_quota(reader: Reader, org_id: str, quota: str, used: int) -> None:
    """Refuse one more of `quota` ("things", "members", "children") when `used` is at the
    plan's limit. Called inside the write's transaction, so two writers cannot both take the
    last one."""
    rows = await reader.find("organizations", [Cond("id", "eq", org_id)], limit=1)
    if not rows:
        return
    limits = {**PLAN_LIMITS.get(rows[0].get("plan") or "", {}), **(rows[0].get("limits") or {})}
    limit = limits.get(quota)
    if isinstance(limit, int) and used >= limit:
        raise QuotaExceededError(
            f"the {rows[0].get('plan', 'current')} plan allows {limit} {quota}; "
            f"this organization has {used}",
            quota=quota,
            limit=limit,
            used=used,
        )
