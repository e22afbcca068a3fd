"""The data layer's enums, registered once with Strawberry (every module that uses them in a
type imports them from here, so registration cannot depend on import order)."""

from __future__ import annotations

import strawberry

from providers.native.migrations import MigrationState
from providers.records import Role, SafelistMode, ThingStatus

strawberry.enum(Role, description="A member's role in an organization.")
strawberry.enum(ThingStatus, description="draft -> active -> published -> archived (final).")
strawberry.enum(
    SafelistMode,
    description="Which requests may run only trusted documents: none (OFF), those made with an "
    "API key (API_KEYS), or every member's except owners' (ALL).",
)

strawberry.enum(
    MigrationState,
    description="copying -> shadow -> rollout -> promoted; paused (rolled back on its own), "
    "aborted; planned (a dry run).",
)

__all__ = ["MigrationState", "Role", "SafelistMode", "ThingStatus"]
