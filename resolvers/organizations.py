"""Organizations: the tenants, their hierarchy, plans, members; and their mutations.

Visibility: an actor sees its own organization and that organization's children (a parent's
members may list and name the children, but a child's members, usage and things stay with the
child's own members). A platform owner sees every organization.

An org owner's children stay within the parent: on a plan no higher than its plan, and no more
of them than its plan's `children` limit. `addMember` answers with the email and name the
caller gave, never what the person's record holds from another organization: one person record
per email is shared by all their organizations, and each sees the person as it added them
(see `providers.native.people`).
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import UNSET
from strawberry.scalars import JSON

from providers.errors import ForbiddenError, InvalidInputError, NotFoundError
from providers.records import Kind
from providers.records import Organization as OrganizationRecord
from resolvers.context import Actor, Info
from resolvers.enums import Role
from resolvers.ids import global_id, parse_id
from resolvers.node import Node
from resolvers.people import Membership, Person
from resolvers.permissions import Action, can, require, require_grant


def visible(info: Info, record: OrganizationRecord) -> bool:
    return visible_to(info.context.actor, record)


def visible_to(actor: Actor, record: OrganizationRecord) -> bool:
    return (
        actor.role is Role.PLATFORM_OWNER
        or record.id == actor.org_id
        or record.parent_id == actor.org_id
    )


async def _require_member(info: Info, org_id: str, what: str) -> None:
    actor = info.context.actor
    if actor.role is Role.PLATFORM_OWNER or org_id == actor.org_id:
        return
    if actor.person_id and await info.context.store.people.memberships(org_id, [actor.person_id]):
        return
    raise ForbiddenError(f"only this organization's own members may see its {what}")


@strawberry.type(description="How much of its plan an organization uses.")
class Usage:
    things: int
    members: int
    api_calls_today: int = strawberry.field(
        description="Counted per UTC day, by every replica when they share Redis."
    )


@strawberry.federation.type(
    keys=["id"], description="A tenant: owns its people, things, connections, events, knowledge."
)
class Organization(Node):
    name: str
    slug: str
    plan: str
    status: str
    limits: JSON
    created_at: datetime
    record: strawberry.Private[OrganizationRecord]

    @strawberry.field
    async def parent(self, info: Info) -> Organization | None:
        if self.record.parent_id is None:
            return None
        record = await info.context.loaders.by_id(Kind.ORGANIZATION).load(self.record.parent_id)
        return Organization.from_record(record) if record and visible(info, record) else None

    @strawberry.field
    async def children(self, info: Info) -> list[Organization]:
        if not visible(info, self.record):
            return []
        records = await info.context.store.organizations.all([self.record.id])
        return [Organization.from_record(r) for r in records]

    @strawberry.field
    async def members(self, info: Info) -> list[Membership]:
        await _require_member(info, self.record.id, "members")
        records = await info.context.store.people.members(self.record.id)
        return [Membership.from_record(r) for r in records]

    @strawberry.field
    async def usage(self, info: Info) -> Usage:
        await _require_member(info, self.record.id, "usage")
        store = info.context.store
        return Usage(
            things=await store.things.count(self.record.id),
            members=await store.people.count_members(self.record.id),
            api_calls_today=await info.context.api_calls_today(self.record.id),
        )

    @classmethod
    def from_record(cls, record: OrganizationRecord) -> Organization:
        return cls(
            id=global_id(Kind.ORGANIZATION, record.id),
            name=record.name,
            slug=record.slug,
            plan=record.plan,
            status=record.status,
            limits=JSON(record.limits),
            created_at=record.created_at,
            record=record,
        )


async def organization(info: Info, id: strawberry.ID | None = None) -> Organization | None:
    """An organization by id; without an id, your own."""
    actor = info.context.actor
    local_id = actor.org_id if id is None else parse_id(id, Kind.ORGANIZATION).local_id
    record = await info.context.loaders.by_id(Kind.ORGANIZATION).load(local_id)
    return Organization.from_record(record) if record and visible(info, record) else None


async def organizations(info: Info) -> list[Organization]:
    """The organizations you can see: yours and its children (every one, for a platform owner)."""
    actor = info.context.actor
    store = info.context.store
    if actor.role is Role.PLATFORM_OWNER:
        return [Organization.from_record(r) for r in await store.organizations.all()]
    own = await info.context.loaders.by_id(Kind.ORGANIZATION).load(actor.org_id)
    children = await store.organizations.all([actor.org_id])
    return [Organization.from_record(r) for r in [own, *children] if r is not None]


@strawberry.input
class CreateOrganizationInput:
    name: str
    slug: str = strawberry.field(description="2-63 lowercase letters, digits or dashes.")
    parent_id: strawberry.ID | None = strawberry.field(
        default=UNSET,
        description="Omitted: a child of your organization. null: a top-level organization "
        "(platform owners only).",
    )
    plan: str = "starter"


async def create_organization(info: Info, input: CreateOrganizationInput) -> Organization:
    """Create an organization and become its owner. An org owner creates children of their
    own organization, within its plan; a platform owner may create any."""
    actor = require(info.context.actor, Action.MANAGE_ORGANIZATIONS)
    anywhere = can(actor, Action.CREATE_ANY_ORGANIZATION)
    parent_id: str | None = actor.org_id
    if input.parent_id is None:
        parent_id = None
    elif input.parent_id is not UNSET:
        parent_id = parse_id(input.parent_id, Kind.ORGANIZATION, "parentId").local_id
    if not anywhere and parent_id != actor.org_id:
        raise ForbiddenError(
            "an org owner may only create children of their own organization", field="parentId"
        )
    record = await info.context.store.organizations.create(
        actor_ref=actor.ref,
        name=input.name,
        slug=input.slug,
        parent_id=parent_id,
        plan=input.plan,
        owner_id=actor.person_id,
        within_parent=not anywhere,
    )
    return Organization.from_record(record)


@strawberry.input
class AddMemberInput:
    email: str
    name: str
    role: Role
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to your organization."
    )


@strawberry.type
class AddMemberPayload:
    person: Person
    membership: Membership


async def add_member(info: Info, input: AddMemberInput) -> AddMemberPayload:
    """Add a person (created when new, matched by email otherwise) with a role; the answer
    shows the person as the caller gave them."""
    actor = require(info.context.actor, Action.MANAGE_MEMBERS)
    require_grant(actor, input.role)
    org_id = actor.org_id
    if input.organization_id is not None:
        org_id = parse_id(input.organization_id, Kind.ORGANIZATION, "organizationId").local_id
    if actor.role is not Role.PLATFORM_OWNER and org_id != actor.org_id:
        raise NotFoundError("organization not found", field="organizationId")
    person, membership = await info.context.store.people.add_member(
        org_id, actor_ref=actor.ref, email=input.email, name=input.name, role=input.role
    )
    return AddMemberPayload(
        person=Person.from_record(person), membership=Membership.from_record(membership)
    )


async def remove_member(info: Info, person_id: strawberry.ID) -> bool:
    """End a person's membership of your organization: their tokens stop working, and their
    subscriptions end, within seconds."""
    actor = require(info.context.actor, Action.MANAGE_MEMBERS)
    person = parse_id(person_id, Kind.PERSON, "personId").local_id
    if person == actor.person_id:
        raise InvalidInputError("you cannot remove yourself", field="personId")
    membership = (await info.context.store.people.memberships(actor.org_id, [person])).get(person)
    if membership is None:
        raise NotFoundError("no such member in this organization", field="personId")
    require_grant(actor, membership.role)  # nobody removes a role they could not give
    await info.context.store.people.remove_member(actor.org_id, person, actor_ref=actor.ref)
    return True
