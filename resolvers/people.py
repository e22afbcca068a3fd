"""People, their memberships, and `me`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from providers.records import Kind
from providers.records import Membership as MembershipRecord
from providers.records import Person as PersonRecord
from resolvers.context import Info
from resolvers.enums import Role
from resolvers.ids import global_id
from resolvers.node import Node

if TYPE_CHECKING:
    from resolvers.organizations import Organization


@strawberry.type(description="A person's membership in an organization.")
class Membership:
    role: Role
    since: datetime
    record: strawberry.Private[MembershipRecord]

    @strawberry.field
    async def organization(
        self, info: Info
    ) -> Annotated[Organization, strawberry.lazy("resolvers.organizations")] | None:
        from resolvers.organizations import Organization

        record = await info.context.loaders.by_id(Kind.ORGANIZATION).load(self.record.org_id)
        return Organization.from_record(record) if record else None

    @strawberry.field
    async def person(self, info: Info) -> Person | None:
        record = await info.context.loaders.by_id(Kind.PERSON).load(self.record.person_id)
        return Person.from_record(record) if record else None

    @classmethod
    def from_record(cls, record: MembershipRecord) -> Membership:
        return cls(role=record.role, since=record.since, record=record)


@strawberry.federation.type(
    keys=["id"], description="A person: a member of one or more organizations."
)
class Person(Node):
    email: str
    name: str
    created_at: datetime
    record: strawberry.Private[PersonRecord]

    @strawberry.field(description="The person's membership in your organization.")
    async def membership(self, info: Info) -> Membership | None:
        record = await info.context.loaders.memberships().load(self.record.id)
        return Membership.from_record(record) if record else None

    @strawberry.field(
        description="Your own memberships in every organization; for anyone else, only the "
        "one in your organization."
    )
    async def memberships(self, info: Info) -> list[Membership]:
        if self.record.id == info.context.actor.person_id:
            records = await info.context.store.people.own_memberships(self.record.id)
            return [Membership.from_record(r) for r in records]
        own = await info.context.loaders.memberships().load(self.record.id)
        return [Membership.from_record(own)] if own else []

    @classmethod
    def from_record(cls, record: PersonRecord) -> Person:
        return cls(
            id=global_id(Kind.PERSON, record.id),
            email=record.email,
            name=record.name,
            created_at=record.created_at,
            record=record,
        )


@strawberry.type(description="Who is asking: the person, organization and role of the token.")
class Actor:
    role: Role
    org_id: strawberry.Private[str]
    person_id: strawberry.Private[str | None]

    @strawberry.field
    async def person(self, info: Info) -> Person | None:
        if self.person_id is None:
            return None
        record = await info.context.loaders.by_id(Kind.PERSON).load(self.person_id)
        return Person.from_record(record) if record else None

    @strawberry.field
    async def organization(
        self, info: Info
    ) -> Annotated[Organization, strawberry.lazy("resolvers.organizations")]:
        from resolvers.organizations import Organization

        record = await info.context.loaders.by_id(Kind.ORGANIZATION).load(self.org_id)
        return Organization.from_record(record)


def me(info: Info) -> Actor:
    """The authenticated actor."""
    actor = info.context.actor
    return Actor(role=actor.role, org_id=actor.org_id, person_id=actor.person_id)
