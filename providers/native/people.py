"""The people dimension, and membership: a `member_of` connection that carries the role.

One person record per email, shared by every organization the person belongs to. So that no
organization learns what another stored about that person, an organization sees a person as
it knows them (`as_member`): with the email it gave (the record's, since emails are matched
normalized), the name it gave when it added them (kept on its membership), and, as created,
no earlier than when they joined it. `addMember` answers with that view too, and its event
does not say whether the person existed before. A person's own memberships are theirs alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from providers import validation
from providers.engine import Cond, Engine, Order, Row, Transaction, Where
from providers.errors import ConflictError, NotFoundError
from providers.native.events import record_event
from providers.native.rows import in_order, to_row
from providers.native.scope import membership_where, require_quota, valid_at
from providers.records import Connection, Kind, Membership, Person, Role, utcnow
from providers.refs import Ref, native_ref, new_local_id


def to_membership(row: Row) -> Membership:
    return Membership(
        person_id=Ref.parse(row["from_ref"]).local_id,
        org_id=row["org_id"],
        role=Role(row["metadata"]["role"]),
        since=row["valid_from"],
        name=row["metadata"].get("name"),
    )


def as_member(person: Person, membership: Membership) -> Person:
    """`person` as the organization of `membership` knows them (see the module docstring)."""
    return replace(
        person,
        name=membership.name or person.name,
        created_at=max(person.created_at, membership.since),
    )


class People:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def get_many(self, org_id: str, ids: Sequence[str]) -> list[Person | None]:
        """People by id who are members of `org_id`; anyone else is `None`."""
        members = await self.memberships(org_id, ids)
        if not members:
            return [None] * len(ids)
        rows = await self._engine.find("people", [Cond("id", "in", set(members))])
        return in_order(ids, (as_member(Person(**r), members[r["id"]]) for r in rows))

    async def get_by_email(self, org_id: str, email: str) -> Person | None:
        rows = await self._engine.find(
            "people", [Cond("email", "eq", validation.email(email))], limit=1
        )
        members = await self.memberships(org_id, [rows[0]["id"]]) if rows else {}
        if not members:
            return None
        return as_member(Person(**rows[0]), members[rows[0]["id"]])

    async def memberships(self, org_id: str, person_ids: Sequence[str]) -> dict[str, Membership]:
        """The current membership in `org_id` of each of `person_ids` that has one."""
        refs = {native_ref(Kind.PERSON, p) for p in person_ids}
        where = [*membership_where(org_id, utcnow()), Cond("from_ref", "in", refs)]
        rows = await self._engine.find("connections", where)
        return {m.person_id: m for m in map(to_membership, rows)}

    async def own_memberships(self, person_id: str) -> list[Membership]:
        """Every organization `person_id` belongs to. Crosses organizations: for that person
        themselves only (the caller's check), never for someone else."""
        where: Where = [
            Cond("relationship_type", "eq", "member_of"),
            Cond("from_ref", "eq", native_ref(Kind.PERSON, person_id)),
            *valid_at(utcnow()),
        ]
        rows = await self._engine.find("connections", where, order=Order("valid_from"))
        return [to_membership(r) for r in rows]

    async def members(self, org_id: str) -> list[Membership]:
        where = membership_where(org_id, utcnow())
        rows = await self._engine.find("connections", where, order=Order("valid_from"))
        return [to_membership(r) for r in rows]

    async def count_members(self, org_id: str) -> int:
        return await self._engine.count("connections", membership_where(org_id, utcnow()))

    async def add_member(
        self, org_id: str, *, actor_ref: str | None, email: str, name: str, role: Role
    ) -> tuple[Person, Membership]:
        """Add a person (created if new, found by email otherwise) to `org_id` with `role`,
        known there by `name`; returns the person as `org_id` now sees them."""
        email = validation.email(email)
        name = validation.name(name)
        async with self._engine.transaction() as tx:
            if not await tx.find("organizations", [Cond("id", "eq", org_id)], limit=1):
                raise NotFoundError("organization not found", field="organizationId")
            found = await tx.find("people", [Cond("email", "eq", email)], limit=1)
            person = Person(**found[0]) if found else Person(new_local_id(), email, name)
            if not found:
                await tx.insert("people", to_row(person))
            membership = await join(tx, org_id, person.id, role, actor_ref=actor_ref, name=name)
        return as_member(person, membership), membership

    async def remove_member(self, org_id: str, person_id: str, *, actor_ref: str | None) -> None:
        """End `person_id`'s membership of `org_id` now (kept, with its end, as history), with
        its `user_left_org` event; their tokens stop working with their next check."""
        person_ref = native_ref(Kind.PERSON, person_id)
        async with self._engine.transaction() as tx:
            where = [*membership_where(org_id, utcnow()), Cond("from_ref", "eq", person_ref)]
            found = await tx.find("connections", where, limit=1)
            if not found:
                raise NotFoundError("no such member in this organization", field="personId")
            await tx.update("connections", found[0]["id"], {"valid_to": utcnow()})
            await record_event(
                tx,
                org_id,
                "user_left_org",
                actor_ref=actor_ref,
                target_ref=person_ref,
                metadata={"connection_id": found[0]["id"]},
            )


async def join(
    tx: Transaction,
    org_id: str,
    person_id: str,
    role: Role,
    *,
    actor_ref: str | None,
    name: str | None = None,
) -> Membership:
    """Make `person_id` a member of `org_id` inside `tx`, known there by `name` (default: their
    own), with its `user_joined_org` event."""
    person_ref = native_ref(Kind.PERSON, person_id)
    where = [*membership_where(org_id, utcnow()), Cond("from_ref", "eq", person_ref)]
    if await tx.find("connections", where, limit=1):
        raise ConflictError("this person is already a member of this organization", field="email")
    await require_quota(
        tx, org_id, "members", await tx.count("connections", membership_where(org_id, utcnow()))
    )
    edge = Connection(
        id=new_local_id(),
        org_id=org_id,
        from_ref=person_ref,
        to_ref=native_ref(Kind.ORGANIZATION, org_id),
        relationship_type="member_of",
        metadata={"role": role.value} if name is None else {"role": role.value, "name": name},
    )
    await tx.insert("connections", to_row(edge))
    await record_event(
        tx,
        org_id,
        "user_joined_org",
        actor_ref=actor_ref,
        target_ref=person_ref,
        metadata={"role": role.value, "connection_id": edge.id},
    )
    return to_membership(to_row(edge))
