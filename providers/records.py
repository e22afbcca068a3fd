"""The ontology records every provider speaks: plain dataclasses, no GraphQL."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

JSONObject = dict[str, Any]
NATIVE = "native"  # the provider name of the native store, where every unrouted thing lives


def utcnow() -> datetime:
    """Now, in UTC, at millisecond precision: what every engine can store exactly."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class Role(enum.StrEnum):
    PLATFORM_OWNER = "platform_owner"
    ORG_OWNER = "org_owner"
    ORG_USER = "org_user"
    CUSTOMER = "customer"


class SafelistMode(enum.StrEnum):
    """Which of an organization's requests may run only its trusted documents."""

    OFF = "off"
    API_KEYS = "api_keys"  # requests authenticated by an API key
    ALL = "all"  # every member's request, except owners'


class ThingStatus(enum.StrEnum):
    """draft -> active -> published -> archived: the rules are in `providers.lifecycle`."""

    DRAFT = "draft"
    ACTIVE = "active"
    PUBLISHED = "published"
    ARCHIVED = "archived"


THING_TYPES: frozenset[str] = frozenset(
    {
        # core and agents
        "creator",
        "ai_clone",
        "audience_member",
        "agent",
        "external_agent",
        # content
        "blog_post",
        "page",
        "video",
        "podcast",
        "social_post",
        "email",
        "newsletter",
        "document",
        "course",
        "lesson",
        "template",
        "website",
        "landing_page",
        "livestream",
        "media_asset",
        # commerce
        "product",
        "order",
        "subscription",
        "invoice",
        "payment",
        "token",
        "contract",
        # work and knowledge
        "project",
        "task",
        "campaign",
        "report",
        "dataset",
        # platform
        "external_connection",
        "notification",
        "integration",
    }
)

RELATIONSHIP_TYPES: frozenset[str] = frozenset(
    {
        "owns",
        "created_by",
        "authored",
        "member_of",
        "part_of",
        "references",
        "clone_of",
        "trained_on",
        "powers",
        "generated_by",
        "published_to",
        "holds_tokens",
        "purchased",
        "enrolled_in",
        "completed",
        "following",
        "moderates",
        "participated_in",
        "manages",
        "reports_to",
        "collaborates_with",
        "transacted",
        "notified",
        "referred",
        "communicated",
        "delegated",
        "approved",
        "fulfilled",
        "configured_by",
        "related_to",
    }
)

EVENT_TYPES: frozenset[str] = frozenset(
    {
        "organization_created",
        "organization_updated",
        "user_joined_org",
        "user_left_org",
        "entity_created",
        "entity_updated",
        "entity_archived",
        "entity_deleted",
        "connection_created",
        "connection_updated",
        "connection_deleted",
        "knowledge_created",
        "settings_updated",
        "communication_event",
        "security_alert",
        "api_key_created",
        "api_key_revoked",
        "trusted_documents_registered",
        "trusted_documents_removed",
        "safelist_mode_changed",
    }
)


class Kind(enum.StrEnum):
    """The dimension a global reference points into."""

    ORGANIZATION = "org"
    PERSON = "person"
    THING = "thing"
    CONNECTION = "connection"
    EVENT = "event"
    KNOWLEDGE = "knowledge"


@dataclass(frozen=True, slots=True)
class Organization:
    id: str
    name: str
    slug: str
    parent_id: str | None = None
    plan: str = "starter"
    limits: JSONObject = field(default_factory=dict)
    usage: JSONObject = field(default_factory=dict)
    status: str = "active"
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    email: str
    name: str
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class Membership:
    """A person's `member_of` connection to an organization, with its role, and the name the
    organization gave the person when it added them (`None`: the person's own)."""

    person_id: str
    org_id: str
    role: Role
    since: datetime
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Thing:
    id: str
    org_id: str
    type: str
    name: str
    status: ThingStatus = ThingStatus.DRAFT
    properties: JSONObject = field(default_factory=dict)
    provider: str = NATIVE
    external_id: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class Connection:
    """A typed, temporal edge. `from_ref`/`to_ref` are global references (see `refs`)."""

    id: str
    org_id: str
    from_ref: str
    to_ref: str
    relationship_type: str
    metadata: JSONObject = field(default_factory=dict)
    valid_from: datetime = field(default_factory=utcnow)
    valid_to: datetime | None = None
    created_at: datetime = field(default_factory=utcnow)

    def is_valid_at(self, at: datetime) -> bool:
        return self.valid_from <= at and (self.valid_to is None or at < self.valid_to)


@dataclass(frozen=True, slots=True)
class Event:
    """Append-only. `actor_ref` and `target_ref` are global references."""

    id: str
    org_id: str
    type: str
    actor_ref: str | None
    target_ref: str | None
    timestamp: datetime = field(default_factory=utcnow)
    metadata: JSONObject = field(default_factory=dict)
    seq: int | None = None  # its place in the organization's event stream (1, 2, 3...)


@dataclass(frozen=True, slots=True)
class Knowledge:
    id: str
    org_id: str
    kind: str  # "label" or "chunk"
    text: str
    labels: list[str] = field(default_factory=list)
    embedding: list[float] | None = None
    source_ref: str | None = None
    created_at: datetime = field(default_factory=utcnow)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, with an opaque cursor per item; `total_count` is None where the
    backend cannot count (Notion)."""

    items: list[T]
    cursors: list[str]
    has_next_page: bool
    total_count: int | None


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """An organization's configuration of one provider, and the thing types routed to it."""

    id: str
    org_id: str
    provider: str
    config: JSONObject
    routes: list[str]
    status: str = "active"  # "active" | "inactive"
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    health: JSONObject | None = None  # the last connection test: status, response_ms, at


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A partner's key: one organization, one role. Only a hash of the key is ever stored."""

    id: str
    org_id: str
    name: str
    role: Role
    prefix: str  # the first characters, so people can tell their keys apart
    key_hash: str
    created_by: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TrustedDocument:
    """A GraphQL document an owner approved, known by the SHA-256 of its text (the hash
    Apollo's persisted queries send). `api_key_id` narrows it to one key's requests."""

    id: str
    org_id: str
    sha256: str
    document: str
    name: str | None = None
    api_key_id: str | None = None
    created_by: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    removed_at: datetime | None = None
