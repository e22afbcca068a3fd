"""Which role may do what. Checked in the resolvers, where every client's request passes."""

from __future__ import annotations

import enum

from providers.errors import ForbiddenError
from providers.records import Role
from resolvers.context import Actor


class Action(enum.StrEnum):
    READ = "read"
    WRITE = "write"  # create and update things, connections, knowledge
    PUBLISH = "publish"  # move a thing along its lifecycle, archive it
    MANAGE_MEMBERS = "manage_members"
    MANAGE_ORGANIZATIONS = "manage_organizations"
    MANAGE_PROVIDERS = "manage_providers"
    SEE_PROVIDER_HEALTH = "see_provider_health"
    MANAGE_API_KEYS = "manage_api_keys"


_ALLOWED: dict[Action, frozenset[Role]] = {
    Action.READ: frozenset(Role),
    Action.WRITE: frozenset({Role.PLATFORM_OWNER, Role.ORG_OWNER, Role.ORG_USER}),
    Action.PUBLISH: frozenset({Role.PLATFORM_OWNER, Role.ORG_OWNER, Role.ORG_USER}),
    Action.MANAGE_MEMBERS: frozenset({Role.PLATFORM_OWNER, Role.ORG_OWNER}),
    Action.MANAGE_ORGANIZATIONS: frozenset({Role.PLATFORM_OWNER, Role.ORG_OWNER}),
    Action.MANAGE_PROVIDERS: frozenset({Role.PLATFORM_OWNER, Role.ORG_OWNER}),
    Action.SEE_PROVIDER_HEALTH: frozenset({Role.PLATFORM_OWNER, Role.ORG_OWNER}),
    Action.MANAGE_API_KEYS: frozenset({Role.PLATFORM_OWNER, Role.ORG_OWNER}),
}


def require(actor: Actor, action: Action) -> Actor:
    if actor.role not in _ALLOWED[action]:
        raise ForbiddenError(
            f"a {actor.role.value} may not {action.value.replace('_', ' ')}",
            action=action.value,
            role=actor.role.value,
        )
    return actor
