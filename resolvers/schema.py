"""The ONE schema: the six dimensions' root fields, put together."""

from __future__ import annotations

import inspect
from functools import partial
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
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
    things,
)
from resolvers.errors import ErrorCodes, log_unexpected

# Deep enough for thing -> connections -> to -> owner -> membership -> organization -> ...,
# shallow enough that one request cannot fan out without bound.
MAX_QUERY_DEPTH = 12
MAX_ALIASES = 50
DOCUMENT_CACHE_SIZE = 1024
# Built once: ValidationCache keys on the rule classes, and the limiter extensions would make
# new ones for every request, so nothing would ever be found in the cache.
_LIMIT_RULES = (
    *QueryDepthLimiter(max_depth=MAX_QUERY_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
)


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
    knowledge_search = _query(knowledge.knowledge_search)
    providers = _query(provider_settings.providers)
    api_keys = _query(api_keys.api_keys)


@strawberry.type
class Mutation:
    create_organization = _mutation(organizations.create_organization)
    add_member = _mutation(organizations.add_member)
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
    create_api_key = _mutation(api_keys.create_api_key)
    revoke_api_key = _mutation(api_keys.revoke_api_key)


class OneSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        log_unexpected(errors, execution_context)


def build_schema(**kwargs: Any) -> strawberry.Schema:
    return OneSchema(
        query=Query,
        mutation=Mutation,
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
        extensions=[
            ErrorCodes,
            # Clients send the same few documents again and again: parse and validate once.
            partial(ParserCache, maxsize=DOCUMENT_CACHE_SIZE),
            partial(ValidationCache, maxsize=DOCUMENT_CACHE_SIZE),
            partial(AddValidationRules, list(_LIMIT_RULES)),
        ],
        **kwargs,
    )


schema = build_schema()
