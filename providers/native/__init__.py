"""The native store: the ontology's rules written once over an `Engine`.

Every method that reads or writes an organization's data takes that organization, and every
query it makes is filtered by it, so no caller can forget the scope. Every write commits
together with its ontology event.
"""

from __future__ import annotations

from providers.engine import Engine
from providers.native.api_keys import ApiKeys
from providers.native.change_watermarks import ChangeWatermarks
from providers.native.connections import Connections, Direction
from providers.native.events import EventQuery, Events
from providers.native.knowledge import KnowledgeBase
from providers.native.migrations import Migrations
from providers.native.organizations import Organizations
from providers.native.people import People
from providers.native.provider_configs import ProviderConfigs
from providers.native.rows import MAX_PAGE_SIZE
from providers.native.scope import PLAN_LIMITS
from providers.native.things import ThingQuery, Things
from providers.native.trusted_documents import TrustedDocuments
from providers.native.webhook_deliveries import WebhookDeliveries

__all__ = [
    "MAX_PAGE_SIZE",
    "PLAN_LIMITS",
    "Direction",
    "EventQuery",
    "NativeStore",
    "ThingQuery",
]


class NativeStore:
    """The six dimensions over one engine (`SQLiteEngine` or `MongoEngine`).

    Example:
        store = NativeStore(SQLiteEngine(Path(".one/one.db")))
        await store.start()
        page = await store.things.page(org_id, ThingQuery(type="blog_post", first=10))
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.organizations = Organizations(engine)
        self.people = People(engine)
        self.things = Things(engine)
        self.connections = Connections(engine)
        self.events = Events(engine)
        self.knowledge = KnowledgeBase(engine)
        self.provider_configs = ProviderConfigs(engine)
        self.api_keys = ApiKeys(engine)
        self.trusted_documents = TrustedDocuments(engine)
        self.change_watermarks = ChangeWatermarks(engine)
        self.webhook_deliveries = WebhookDeliveries(engine)
        self.migrations = Migrations(engine)

    async def start(self) -> None:
        await self.engine.start()

    async def close(self) -> None:
        await self.engine.close()
