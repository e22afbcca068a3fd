"""Static query cost: what a query may cost, known before it runs.

The model follows IBM's GraphQL cost directives and Shopify's calculated query cost:

- a scalar or enum field costs 0; a field returning an object costs 1, and one returning a
  thing or a node costs `UPSTREAM_WEIGHT` (it may be fetched from WordPress, Shopify or Notion);
- a list multiplies the cost of what it holds by its size: the `first` argument (its value or
  its default, at most `MAX_PAGE_SIZE`) when it has one, else an assumed size;
- a page (`things(first: 10) { edges { ... } }`) is sized by its `first`, which slices its
  `edges`; a `first` given by a variable is priced at the variable's value, or its default;
- `__schema` and `__type` (introspection) cost `INTROSPECTION_COST` each;
- fragments are measured once per size of the list around them, so the cost of a document is
  computed in time linear in its length, however its fragments are spread.

`actual_cost` applies the same weights to the response, with the lists' real lengths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
    value_from_ast_untyped,
)

from resolvers.documents import fragments_of

UPSTREAM_WEIGHT = 2
INTROSPECTION_COST = 100  # `__schema` / `__type`: bounded by the schema, but not small
MAX_PAGE_SIZE = 100
ASSUMED_LIST_SIZE = 10
# Types a provider other than the native store may serve.
_UPSTREAM_TYPES = frozenset({"Thing", "BlogPost", "Product", "Document", "GenericThing", "Node"})
_SLICING_ARGUMENT = "first"
_INTROSPECTION = frozenset({"__schema", "__type"})
_SLICED_LIST = "edges"  # a page's list, sized by the page's `first`


class QueryCost:
    """The cost of one operation of a document, for given variables."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
    ) -> None:
        self._schema = schema
        self._variables = variables or {}
        self._fragments = fragments_of(document)
        self._memo: dict[tuple[str, int | None], int] = {}
        self._operation = _operation(document, operation_name)
        self.uses_variables = False  # False: the cost is the same for any variables

    def requested(self) -> int:
        if self._operation is None:
            return 0
        root = self._schema.get_root_type(self._operation.operation)
        return self._selections(self._operation.selection_set, root, None) if root else 0

    def _selections(
        self, selections: SelectionSetNode, parent: GraphQLNamedType, slice_size: int | None
    ) -> int:
        total = 0
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                total += self._field(selection, parent, slice_size)
            elif isinstance(selection, FragmentSpreadNode):
                total += self._fragment(selection.name.value, slice_size)
            elif isinstance(selection, InlineFragmentNode):
                inner = _condition_type(self._schema, selection, parent)
                total += self._selections(selection.selection_set, inner, slice_size)
        return total

    def _fragment(self, name: str, slice_size: int | None) -> int:
        key = (name, slice_size)
        if key not in self._memo:
            definition = self._fragments.get(name)
            parent = _fragment_type(self._schema, definition)
            self._memo[key] = (
                self._selections(definition.selection_set, parent, slice_size)
                if definition and parent
                else 0
            )
        return self._memo[key]

    def _field(self, node: FieldNode, parent: GraphQLNamedType, slice_size: int | None) -> int:
        if node.name.value in _INTROSPECTION:
            return INTROSPECTION_COST
        definition = _field_definition(parent, node.name.value)
        if definition is None:  # __typename, and what lies inside introspection
            return 0
        named = get_named_type(definition.type)
        if is_leaf_type(named) or node.selection_set is None:
            return 0
        weight = _weight(named)
        first = self._first(node, definition)
        is_list = isinstance(get_nullable_type(definition.type), GraphQLList)
        if is_list:
            if node.name.value == "_entities":  # a router's batch: as many as it sends
                size = self._representations(node)
            elif first is not None:
                size = first
            elif node.name.value == _SLICED_LIST and slice_size is not None:
                size = slice_size
            else:
                size = ASSUMED_LIST_SIZE
            return size * (weight + self._selections(node.selection_set, named, None))
        # A page: its `first` sizes the list inside it.
        return weight + self._selections(node.selection_set, named, first)

    def _representations(self, node: FieldNode) -> int:
        """How many representations `_entities` is asked for (a federation router's batch)."""
        for argument in node.arguments or ():
            if argument.name.value != "representations":
                continue
            value = argument.value
            if isinstance(value, VariableNode):
                self.uses_variables = True
                given = self._variables.get(value.name.value)
                return len(given) if isinstance(given, list) else ASSUMED_LIST_SIZE
            if isinstance(value, ListValueNode):
                return len(value.values)
        return ASSUMED_LIST_SIZE

    def _variable(self, name: str, argument_default: Any) -> Any:
        """A variable's value as the operation will run it: sent, else the operation's
        default for it, else (not given at all) the argument's own default."""
        if name in self._variables:
            return self._variables[name]
        for definition in (self._operation.variable_definitions if self._operation else ()) or ():
            if definition.variable.name.value == name and definition.default_value is not None:
                return value_from_ast_untyped(definition.default_value)
        return argument_default

    def _first(self, node: FieldNode, definition: GraphQLField) -> int | None:
        argument = definition.args.get(_SLICING_ARGUMENT)
        if argument is None:
            return None
        value: Any = argument.default_value
        for given in node.arguments or ():
            if given.name.value != _SLICING_ARGUMENT:
                continue
            if isinstance(given.value, IntValueNode):
                value = int(given.value.value)
            elif isinstance(given.value, VariableNode):
                self.uses_variables = True
                value = self._variable(given.value.name.value, value)
        if not isinstance(value, int) or isinstance(value, bool):
            return MAX_PAGE_SIZE
        return max(0, min(value, MAX_PAGE_SIZE))


def actual_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    data: Mapping[str, Any] | None,
) -> int:
    """The cost of what was returned: the same weights, each list at its real length."""
    operation = _operation(document, operation_name)
    if operation is None or not data:
        return 0
    root = schema.get_root_type(operation.operation)
    fragments = fragments_of(document)

    def selections(nodes: SelectionSetNode, parent: GraphQLNamedType, value: Any) -> int:
        if not isinstance(value, Mapping):
            return 0
        total = 0
        for selection in nodes.selections:
            if isinstance(selection, FieldNode):
                total += field(selection, parent, value)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = fragments.get(selection.name.value)
                inner = _fragment_type(schema, fragment)
                if fragment and inner:
                    total += selections(fragment.selection_set, inner, value)
            elif isinstance(selection, InlineFragmentNode):
                inner = _condition_type(schema, selection, parent)
                total += selections(selection.selection_set, inner, value)
        return total

    def field(node: FieldNode, parent: GraphQLNamedType, value: Mapping[str, Any]) -> int:
        definition = _field_definition(parent, node.name.value)
        key = node.alias.value if node.alias else node.name.value
        result = value.get(key)
        if definition is None or node.selection_set is None or result is None:
            return 0
        named = get_named_type(definition.type)
        weight = _weight(named)
        items = result if isinstance(result, list) else [result]
        return sum(weight + selections(node.selection_set, named, item) for item in items if item)

    return selections(operation.selection_set, root, data) if root else 0


def _weight(named: GraphQLNamedType) -> int:
    """What one object of this type costs: more when an upstream may serve it."""
    return UPSTREAM_WEIGHT if named.name in _UPSTREAM_TYPES else 1


def _condition_type(
    schema: GraphQLSchema, node: InlineFragmentNode, parent: GraphQLNamedType
) -> GraphQLNamedType:
    """The type an inline fragment's selections are read on: its condition's, else the
    parent's."""
    condition = node.type_condition
    return (schema.get_type(condition.name.value) if condition else None) or parent


def _fragment_type(
    schema: GraphQLSchema, fragment: FragmentDefinitionNode | None
) -> GraphQLNamedType | None:
    return schema.get_type(fragment.type_condition.name.value) if fragment else None


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == name), None)


def _field_definition(parent: GraphQLNamedType, name: str) -> GraphQLField | None:
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        field: GraphQLField | None = parent.fields.get(name)
        return field
    return None
