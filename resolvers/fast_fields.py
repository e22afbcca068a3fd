"""Completing planned answers without graphql-core's per-field machinery.

graphql-core completes every field of a response the same way: a resolve info object,
Strawberry's resolver wrapper (arguments converted, an `Info` made), the awaitable check,
then completion through the non-null, list, abstract and leaf steps. For a page of 100
things with their owners and connections that is some 1,400 fields, and it was most of the
request (issue 11). Once the planner (resolvers/planning.py) has loaded every level, the
answer is already in the objects; `PlannedExecutor.complete_value` then builds the response
straight from them:

- a scalar or enum field that Strawberry calls basic (no resolver, no extension): the
  attribute, coerced by its type;
- any other basic field (`edges`, `node`, `pageInfo`): the attribute, completed the same way;
- a resolver that needs nothing (no arguments, no `info`, synchronous, e.g. `content`): called;
- a planned field (`owner`, `connections(...)`, `to`, ...): the value in the object's plan,
  under the key its arguments give;
- `__typename`; fragments, `@skip` and `@include` as graphql-core collects them.

Anything else stops the short path for that object (`_Unfit`) and graphql-core completes it
as always: a field the plan lacks, a planned error, a null where none may be, a value its
scalar refuses, an abstract value of an unexpected type, `@defer`, a schema extension that
wraps resolvers. The short path computes nothing the general one would not, and it writes
nothing before it succeeds, so where it gives up the response is the general path's, errors
included. A field node that gave up once in a request is not tried again in that request.

Objects that the short path does not complete still save on their scalar fields:
`execute_field` reads and coerces basic scalar fields directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

from graphql import (
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    is_abstract_type,
    is_leaf_type,
)
from graphql.execution.values import get_argument_values
from graphql.pyutils import Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.field import StrawberryField

from resolvers.planning import planned_key

_BACKREF = "strawberry-definition"


class _Unfit(Exception):
    """The short path cannot complete this object: graphql-core does."""


class _Field:
    """How the short path completes one field of one object type."""

    __slots__ = ("coerce", "name", "non_null", "read", "type")

    def __init__(
        self,
        name: str,
        type_: GraphQLOutputType,
        read: Callable[[Any], Any] | None,
    ) -> None:
        self.name = name
        self.type = type_
        self.read = read  # None: a planned field
        self.non_null = isinstance(type_, GraphQLNonNull)
        of_type = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        leaf: GraphQLLeafType | None = of_type if is_leaf_type(of_type) else None
        self.coerce = leaf.coerce_output_value if leaf is not None else None


_fields: WeakKeyDictionary[GraphQLSchema, dict[tuple[str, str], _Field]] = WeakKeyDictionary()
# (response key, how to complete the field or None for __typename, its nodes, its plan key
# or None when it is read off the object)
_Selected = tuple[str, _Field | None, Any, Any]


def _attribute(field: StrawberryField) -> Callable[[Any], Any]:
    resolver, name = field.default_resolver, field.python_name
    return lambda source: resolver(source, name)


def _simple_resolver(field: StrawberryField) -> Callable[[Any], Any] | None:
    """A resolver the short path may call with the object alone."""
    resolver = field.base_resolver
    if (
        resolver is None
        or field.extensions
        or resolver.is_async
        or resolver.arguments
        or resolver.info_parameter is not None
        or resolver.root_parameter is not None
        or resolver.self_parameter is None
    ):
        return None
    function: Callable[[Any], Any] = resolver.wrapped_func  # type: ignore[assignment]
    return lambda source: function(source)


def _schema_fields(schema: GraphQLSchema) -> dict[tuple[str, str], _Field]:
    found = _fields.get(schema)
    if found is not None:
        return found
    found = {}
    for type_ in schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType) or type_.name.startswith("__"):
            continue
        for name, field in type_.fields.items():
            definition = (field.extensions or {}).get(_BACKREF)
            if not isinstance(definition, StrawberryField):
                continue
            if definition.is_basic_field:
                found[type_.name, name] = _Field(name, field.type, _attribute(definition))
            elif (simple := _simple_resolver(definition)) is not None:
                found[type_.name, name] = _Field(name, field.type, simple)
            elif not definition.extensions:
                found[type_.name, name] = _Field(name, field.type, None)  # planned, maybe
    _fields[schema] = found
    return found


class PlannedExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor with the short path of the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        wrapped = self.middleware_manager is not None and self.middleware_manager.middlewares
        self._short = not wrapped and getattr(self.context_value, "planning", True) is True
        self._fields = _schema_fields(self.schema) if self._short else {}
        self._unfit: set[tuple[str, int]] = set()
        self._selections: dict[tuple[str, int], tuple[Any, list[_Selected]]] = {}

    # -- scalar fields of objects the general path completes ------------------------------

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Any,
        position_context: Any,
    ) -> Any:
        field = self._fields.get((parent_type.name, field_details_list[0].node.name.value))
        if field is not None and field.coerce is not None and field.read is not None:
            try:
                return self._leaf(field, field.read(source))
            except Exception:  # noqa: BLE001 - the general path reports it
                pass
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    # -- whole planned answers -------------------------------------------------------------

    def complete_value(
        self,
        return_type: GraphQLOutputType,
        field_details_list: Any,
        info: Any,
        path: Any,
        result: Any,
        position_context: Any,
    ) -> Any:
        if self._short and result is not None and not isinstance(result, Exception):
            key = (str(return_type), id(field_details_list[0].node))
            if key not in self._unfit:
                try:
                    return self._complete(return_type, field_details_list, result)
                except _Unfit:
                    self._unfit.add(key)
                except Exception:  # noqa: BLE001 - the general path reports it
                    self._unfit.add(key)
        return super().complete_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def _complete(self, type_: GraphQLOutputType, details: Any, result: Any) -> Any:
        if isinstance(type_, GraphQLNonNull):
            if result is None:
                raise _Unfit
            type_ = type_.of_type
        if result is None:
            return None
        if isinstance(type_, GraphQLList):
            if not isinstance(result, list | tuple):
                raise _Unfit
            item_type = type_.of_type
            return [self._complete(item_type, details, item) for item in result]
        if is_leaf_type(type_):
            coerced = type_.coerce_output_value(result)
            if coerced is None or coerced is Undefined:
                raise _Unfit
            return coerced
        definition = getattr(result, "__strawberry_definition__", None)
        if definition is None:
            raise _Unfit
        runtime = self.schema.get_type(definition.name)
        if not isinstance(runtime, GraphQLObjectType):
            raise _Unfit
        if is_abstract_type(type_):
            if not self.schema.is_sub_type(type_, runtime):
                raise _Unfit
        elif runtime is not type_:
            raise _Unfit
        return self._object(runtime, details, result)

    def _object(self, type_: GraphQLObjectType, details: Any, result: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        plan = None
        for response_key, field, field_details, key in self._selection(type_, details):
            if field is None:  # __typename
                out[response_key] = type_.name
                continue
            if key is None:
                value = field.read(result)  # type: ignore[misc]
            else:
                if plan is None:
                    plan = getattr(result, "plan", None)
                    if plan is None:
                        raise _Unfit
                value = plan.get(key, _Unfit)
                if value is _Unfit or isinstance(value, Exception):
                    raise _Unfit
            if field.coerce is not None:
                out[response_key] = self._leaf(field, value)
            else:
                out[response_key] = self._complete(field.type, field_details, value)
        return out

    def _selection(self, type_: GraphQLObjectType, details: Any) -> list[_Selected]:
        """The fields a selection asks of `type_`, each with how to complete it: worked out
        once per request for each selection (the variables do not change in a request)."""
        cache_key = (type_.name, id(details))
        found = self._selections.get(cache_key)
        if found is not None:
            if found[0] is not details:
                raise _Unfit  # pragma: no cover - an id reused; cannot happen while kept
            return found[1]
        grouped, deferred, _ = self.collect_subfields(type_, details)
        if deferred:
            raise _Unfit
        selected: list[_Selected] = []
        for response_key, field_details in grouped.items():
            node = field_details[0].node
            name = node.name.value
            if name == "__typename":
                selected.append((response_key, None, field_details, None))
                continue
            field = self._fields.get((type_.name, name))
            if field is None:
                raise _Unfit
            key = None
            if field.read is None:
                definition = type_.fields[name]
                args = (
                    get_argument_values(definition, node, self.variable_values)
                    if node.arguments or definition.args
                    else {}
                )
                key = planned_key(name, args)
                if key is None:
                    raise _Unfit
            selected.append((response_key, field, field_details, key))
        self._selections[cache_key] = (details, selected)
        return selected

    @staticmethod
    def _leaf(field: _Field, value: Any) -> Any:
        if value is None:
            if field.non_null:
                raise _Unfit
            return None
        assert field.coerce is not None
        coerced = field.coerce(value)
        if coerced is None or coerced is Undefined:
            raise _Unfit
        return coerced
