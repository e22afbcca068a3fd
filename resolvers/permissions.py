"""Which role may do what. Checked in the resolvers, where every client's request passes.

Some actions need a person: a partner's API key (even an owner's) may not mint keys, create
organizations or make owners, so a leaked key cannot outgrow itself.

Events tell of everything, so they are shown by role too (`hidden_event_types`,
`event_metadata`). The configuration events: provider settings and health, API keys, security
alerts, trusted documents and the safelist mode.

| event metadata                      | customer | org_user                             | owners |
|-------------------------------------|----------|--------------------------------------|--------|
| every other event                   | all      | all                                  | all    |
| settings_updated                    | -        | provider, routes, from, to, rollback | all    |
| communication_event, security_alert | -        | provider                             | all    |
| api_key_created, api_key_revoked    | -        | key_id                               | all    |
| trusted_documents_registered        | -        | count, scope                         | all    |
| trusted_documents_removed           | -        | count                                | all    |
| safelist_mode_changed               | -        | from, to                             | all    |

"-": the event is not listed, counted nor found by id. Org users see which providers serve
which types (as `providers` shows them) but not config ids, timings, health details, alert
reasons, nor a key's name, prefix or role; the keys shown are an allow-list, so a field added
to an event later stays with owners until it is listed here.
"""

from __future__ import annotations

import enum

from providers.errors import ForbiddenError
from providers.records import JSONObject, Role
from resolvers.context import Actor


class Action(enum.StrEnum):
    READ = "read"
    WRITE = "write"  # create and update things, connections, knowledge
    PUBLISH = "publish"  # move a thing along its lifecycle, archive it
    MANAGE_MEMBERS = "manage_members"
    GRANT_ORG_OWNER = "grant_org_owner"
    GRANT_PLATFORM_OWNER = "grant_platform_owner"
    MANAGE_ORGANIZATIONS = "manage_organizations"
    # top level or under any parent, on any plan, beyond the parent plan's number of children
    CREATE_ANY_ORGANIZATION = "create_any_organization"
    MANAGE_PROVIDERS = "manage_providers"
    SEE_PROVIDER_HEALTH = "see_provider_health"
    MANAGE_API_KEYS = "manage_api_keys"
    SEE_CONFIGURATION_EVENTS = "see_configuration_events"
    SEE_CONFIGURATION_DETAILS = "see_configuration_details"


_OWNERS = frozenset({Role.PLATFORM_OWNER, Role.ORG_OWNER})
_STAFF = frozenset({Role.PLATFORM_OWNER, Role.ORG_OWNER, Role.ORG_USER})
_ALLOWED: dict[Action, frozenset[Role]] = {
    Action.READ: frozenset(Role),
    Action.WRITE: _STAFF,
    Action.PUBLISH: _STAFF,
    Action.MANAGE_MEMBERS: _OWNERS,
    Action.GRANT_ORG_OWNER: _OWNERS,
    Action.GRANT_PLATFORM_OWNER: frozenset({Role.PLATFORM_OWNER}),
    Action.MANAGE_ORGANIZATIONS: _OWNERS,
    Action.CREATE_ANY_ORGANIZATION: frozenset({Role.PLATFORM_OWNER}),
    Action.MANAGE_PROVIDERS: _OWNERS,
    Action.SEE_PROVIDER_HEALTH: _OWNERS,
    Action.MANAGE_API_KEYS: _OWNERS,
    Action.SEE_CONFIGURATION_EVENTS: _STAFF,
    Action.SEE_CONFIGURATION_DETAILS: _OWNERS,
}
_PEOPLE_ONLY = frozenset(
    {
        Action.MANAGE_API_KEYS,
        Action.MANAGE_ORGANIZATIONS,
        Action.GRANT_ORG_OWNER,
        Action.GRANT_PLATFORM_OWNER,
    }
)
_GRANTS = {Role.ORG_OWNER: Action.GRANT_ORG_OWNER, Role.PLATFORM_OWNER: Action.GRANT_PLATFORM_OWNER}

# Configuration event type -> what of its metadata an org user sees.
_SHOWN_WITHOUT_DETAILS: dict[str, frozenset[str]] = {
    "settings_updated": frozenset({"provider", "routes", "from", "to", "rollback"}),
    "communication_event": frozenset({"provider"}),
    "security_alert": frozenset({"provider"}),
    "api_key_created": frozenset({"key_id"}),
    "api_key_revoked": frozenset({"key_id"}),
    "trusted_documents_registered": frozenset({"count", "scope"}),
    "trusted_documents_removed": frozenset({"count"}),
    "safelist_mode_changed": frozenset({"from", "to"}),
}
CONFIGURATION_EVENTS = frozenset(_SHOWN_WITHOUT_DETAILS)


def can(actor: Actor, action: Action) -> bool:
    if action in _PEOPLE_ONLY and actor.api_key_id is not None:
        return False
    return actor.role in _ALLOWED[action]


def require(actor: Actor, action: Action, *, field: str | None = None) -> Actor:
    if not can(actor, action):
        who = "an API key" if actor.role in _ALLOWED[action] else f"a {actor.role.value}"
        extensions = {} if field is None else {"field": field}
        raise ForbiddenError(
            f"{who} may not {action.value.replace('_', ' ')}",
            action=action.value,
            role=actor.role.value,
            **extensions,
        )
    return actor


def require_grant(actor: Actor, role: Role) -> None:
    """Refuse to make someone a member with `role` when `actor` may not grant it."""
    if role in _GRANTS:
        require(actor, _GRANTS[role], field="role")


def hidden_event_types(actor: Actor) -> frozenset[str]:
    """The event types `actor` may not see at all (see the module docstring)."""
    return frozenset() if can(actor, Action.SEE_CONFIGURATION_EVENTS) else CONFIGURATION_EVENTS


def event_metadata(actor: Actor, type: str, metadata: JSONObject) -> JSONObject:
    """What `actor` may see of an event's metadata (see the module docstring)."""
    shown = _SHOWN_WITHOUT_DETAILS.get(type)
    if shown is None or can(actor, Action.SEE_CONFIGURATION_DETAILS):
        return metadata
    return {key: value for key, value in metadata.items() if key in shown}
