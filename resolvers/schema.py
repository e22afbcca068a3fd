"""The ONE schema: the six dimensions' root fields, put together."""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.types.execution import ExecutionContext

from resolvers import (
    api_keys,
    connections,
    events,
    knowledge,
    node,
    organizations,
    people,
    provider_settings,
    search,
    subscriptions,
    things,
    trusted_documents,
    webhooks,
)
from resolvers import migrations as migration_fields
from resolvers.errors import code_errors
from resolvers.guard import RequestGuard
from resolvers.scalars import DateTime
from resolvers.shared_events import SharedEventExecutor
from resolvers.subgraph import SubgraphSchema


def _query(resolver: Any) -> Any:
    return strawberry.field(resolver=resolver, description=inspect.getdoc(resolver))


def _mutation(resolver: Any) -> Any:
    return strawberry.mutation(resolver=resolver, description=inspect.getdoc(resolver))


@strawberry.type
class Query:
    me = _query(people.me)
    organization = _query(organizations.organization)
    organizations = _query(organizations.organizations)
    node = _query(node.node)
    thing = _query(things.thing)
    things = _query(things.things)
    connections = _query(connections.connections)
    events = _query(events.events)
    search = _query(search.search)
    knowledge_search = _query(knowledge.knowledge_search)
    providers = _query(provider_settings.providers)
    migrations = _query(migration_fields.migrations)
    migration = _query(migration_fields.migration)
    api_keys = _query(api_keys.api_keys)
    safelist_mode = _query(trusted_documents.safelist_mode)
    trusted_documents = _query(trusted_documents.trusted_documents)
    notion_verification_token = _query(webhooks.notion_verification_token)


@strawberry.type
class Mutation:
    create_organization = _mutation(organizations.create_organization)
    add_member = _mutation(organizations.add_member)
    remove_member = _mutation(organizations.remove_member)
    create_thing = _mutation(things.create_thing)
    update_thing = _mutation(things.update_thing)
    change_thing_status = _mutation(things.change_thing_status)
    archive_thing = _mutation(things.archive_thing)
    create_connection = _mutation(connections.create_connection)
    delete_connection = _mutation(connections.delete_connection)
    create_knowledge = _mutation(knowledge.create_knowledge)
    configure_provider = _mutation(provider_settings.configure_provider)
    test_provider_connection = _mutation(provider_settings.test_provider_connection)
    rollback_provider = _mutation(provider_settings.rollback_provider)
    start_migration = _mutation(migration_fields.start_migration)
    set_migration_rollout = _mutation(migration_fields.set_migration_rollout)
    promote_migration = _mutation(migration_fields.promote_migration)
    abort_migration = _mutation(migration_fields.abort_migration)
    resume_migration = _mutation(migration_fields.resume_migration)
    create_api_key = _mutation(api_keys.create_api_key)
    revoke_api_key = _mutation(api_keys.revoke_api_key)
    register_trusted_documents = _mutation(trusted_documents.register_trusted_documents)
    remove_trusted_documents = _mutation(trusted_documents.remove_trusted_documents)
    set_safelist_mode = _mutation(trusted_documents.set_safelist_mode)


@strawberry.type
class Subscription:
    event_added = strawberry.subscription(
        resolver=subscriptions.event_added, description=inspect.getdoc(subscriptions.event_added)
    )
    thing_changed = strawberry.subscription(
        resolver=subscriptions.thing_changed,
        description=inspect.getdoc(subscriptions.thing_changed),
    )


class OneSchema(SubgraphSchema):
    """Served as a Federation v2 subgraph: see resolvers/subgraph.py."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        code_errors(errors, execution_context)


def build_schema(**kwargs: Any) -> OneSchema:
    return OneSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[
            things.BlogPost,
            things.Product,
            things.Document,
            things.GenericThing,
            people.Person,
            organizations.Organization,
            connections.Connection,
            events.Event,
            knowledge.Knowledge,
        ],
        config=StrawberryConfig(scalar_map={datetime: DateTime}),
        # Parses, validates (cached), checks limits and cost: see resolvers/guard.py.
        extensions=[RequestGuard],
        # Each subscription event executed once for the subscribers it gives one answer.
        execution_context_class=SharedEventExecutor,
        **kwargs,
    )


schema = build_schema()
