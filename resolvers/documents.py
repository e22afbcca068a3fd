"""Documents: parsed, checked and cached once, in time linear in their size.

A document passes, in order: a size limit and a token limit (enforced by the parser while it
reads, so a huge or token-heavy document costs no more than the limit), graphql-core's
validation, and the depth and alias limits. Depth and aliases are summed over the document as
executed, with every fragment spread expanded, but each fragment is measured once and its
summary reused, so `...F0 ...F0` twenty levels deep costs twenty steps, not a million.

Only documents under `cache_document_chars` are cached, in a cache bounded by the total size
of the documents it holds: distinct large documents cannot grow memory.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Generic, TypeVar

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import ASTValidationRule
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

V = TypeVar("V")
MAX_MESSAGE_CHARS = 300
_RULES: tuple[type[ASTValidationRule], ...] = (
    *specified_rules,
    MaybeNullValidationRule,
    OneOfInputValidationRule,
)


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """What one document may ask; every refusal has its own `extensions.code`."""

    max_document_chars: int = 100_000  # QUERY_TOO_LARGE
    max_tokens: int = 15_000  # TOO_MANY_TOKENS (Apollo Router's default)
    max_depth: int = 12  # QUERY_TOO_DEEP
    max_aliases: int = 50  # TOO_MANY_ALIASES
    # Selections in one selection set: graphql-core's overlap check compares them in pairs.
    max_selections: int = 100  # TOO_MANY_SELECTIONS
    cache_document_chars: int = 16 * 1024  # larger documents are checked every time
    cache_chars: int = 1024 * 1024  # all cached documents together


def refusal(message: str, code: str, **extensions: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **extensions})


@dataclass(frozen=True, slots=True)
class Checked:
    """A document that parsed, with its validation errors (none: it may run), and the cost of
    its operations where it does not depend on variables (filled in as they run)."""

    document: DocumentNode
    errors: tuple[GraphQLError, ...]
    costs: dict[str | None, int] = field(default_factory=dict)


class SizedCache(Generic[V]):
    """Values by key, least recently used first out, bounded by the sum of their sizes."""

    def __init__(self, max_size: int) -> None:
        self._max_size = max_size
        self._size = 0
        self._entries: OrderedDict[str, tuple[V, int]] = OrderedDict()

    def get(self, key: str) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: str, value: V, size: int) -> None:
        if key in self._entries or size > self._max_size:
            return
        self._entries[key] = (value, size)
        self._size += size
        while self._size > self._max_size:
            _, (_, evicted) = self._entries.popitem(last=False)
            self._size -= evicted

    def __len__(self) -> int:
        return len(self._entries)


@cache
def checker(schema: GraphQLSchema, limits: QueryLimits) -> DocumentChecker:
    """One checker, and so one cache, per schema and limits."""
    return DocumentChecker(schema, limits)


class DocumentChecker:
    """Parses and validates documents against one schema, within `QueryLimits`."""

    def __init__(self, schema: GraphQLSchema, limits: QueryLimits) -> None:
        self.schema = schema
        self.limits = limits
        self._cache: SizedCache[Checked] = SizedCache(limits.cache_chars)

    def check(self, text: str) -> Checked:
        """The checked document, or a `GraphQLError` (with its code) when it cannot parse."""
        checked = self._cache.get(text)
        if checked is not None:
            return checked
        checked = self._check(text)
        if len(text) <= self.limits.cache_document_chars:
            self._cache.put(text, checked, len(text))
        return checked

    def _check(self, text: str) -> Checked:
        limits = self.limits
        if len(text) > limits.max_document_chars:
            raise refusal(
                f"the document is over {limits.max_document_chars} characters",
                "QUERY_TOO_LARGE",
                limit=limits.max_document_chars,
            )
        try:
            document = parse(text, max_tokens=limits.max_tokens)
        except GraphQLError as exc:
            raise _parse_failure(exc, limits) from None
        widest = _widest_selection_set(document)
        if widest > limits.max_selections:
            raise refusal(
                f"a selection set has {widest} selections; at most {limits.max_selections}"
                " are allowed",
                "TOO_MANY_SELECTIONS",
                limit=limits.max_selections,
            )
        errors = [_validation_failure(e) for e in validate(self.schema, document, _RULES)]
        if not errors:
            errors = _shape_errors(document, limits)
        return Checked(document, tuple(errors))


def capped(message: str) -> str:
    """At most `MAX_MESSAGE_CHARS` of a message: graphql-core quotes the values it refuses."""
    return message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS] + "..."


def fragments_of(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def _widest_selection_set(document: DocumentNode) -> int:
    """The most selections any one selection set holds (a loop, not recursion: the parser
    allows nesting deeper than Python's stack would)."""
    widest = 0
    pending = [
        d.selection_set
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode | FragmentDefinitionNode)
    ]
    while pending:
        selections = pending.pop().selections
        widest = max(widest, len(selections))
        pending.extend(
            s.selection_set
            for s in selections
            if isinstance(s, FieldNode | InlineFragmentNode) and s.selection_set is not None
        )
    return widest


def _validation_failure(error: GraphQLError) -> GraphQLError:
    error.extensions = {**(error.extensions or {}), "code": "GRAPHQL_VALIDATION_FAILED"}
    error.message = capped(error.message)
    return error


def _parse_failure(error: GraphQLError, limits: QueryLimits) -> GraphQLError:
    message = error.message
    if "more than" in message and "tokens" in message:
        return refusal(
            f"the document has more than {limits.max_tokens} tokens",
            "TOO_MANY_TOKENS",
            limit=limits.max_tokens,
        )
    if "nested too deeply" in message:
        return refusal("the document is nested too deeply", "QUERY_TOO_DEEP")
    return GraphQLError(
        capped(message),
        source=error.source,
        positions=error.positions,
        extensions={"code": "GRAPHQL_PARSE_FAILED"},
    )


@dataclass(slots=True)
class _Shape:
    depth: int = 0
    aliases: int = 0
    introspection: int = 0  # the depth of `__schema` / `__type` subtrees, limited apart


# GraphiQL's introspection query is 15 levels deep (`ofType` nests for wrapped types); its
# size is bounded by the schema and its cost is counted (resolvers/cost.py).
INTROSPECTION_MAX_DEPTH = 20
_INTROSPECTION = frozenset({"__schema", "__type"})


def _shape_errors(document: DocumentNode, limits: QueryLimits) -> list[GraphQLError]:
    """Depth and aliases of each operation as executed; fragments measured once each.

    Runs after validation, so fragments are defined, acyclic and spread on fitting types.
    """
    fragments = fragments_of(document)
    shapes: dict[str, _Shape] = {}
    deepest = max(limits.max_depth, INTROSPECTION_MAX_DEPTH)
    cap = max(deepest, limits.max_aliases) + 1

    def fragment(name: str) -> _Shape:
        # Validation refused cycles, so this recursion follows a chain at most as long as
        # the number of fragments; measured ones are reused.
        shape = shapes.get(name)
        if shape is None:
            shape = shapes[name] = measure(fragments[name].selection_set, 0)
        return shape

    def measure(selections: SelectionSetNode, level: int) -> _Shape:
        shape = _Shape()
        if level > deepest:  # deep enough to refuse: no need to look further
            shape.depth = shape.introspection = cap
            return shape
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                inner = (
                    measure(selection.selection_set, level + 1)
                    if selection.selection_set
                    else _Shape()
                )
                if selection.name.value in _INTROSPECTION:
                    depth = max(inner.depth, inner.introspection) + 1
                    shape.introspection = max(shape.introspection, depth)
                else:
                    shape.depth = max(shape.depth, inner.depth + 1)
                    shape.introspection = max(shape.introspection, inner.introspection)
                shape.aliases += inner.aliases + (selection.alias is not None)
            else:
                if isinstance(selection, FragmentSpreadNode):
                    inner = fragment(selection.name.value)
                elif isinstance(selection, InlineFragmentNode):
                    inner = measure(selection.selection_set, level)
                else:
                    continue
                shape.depth = max(shape.depth, inner.depth)
                shape.introspection = max(shape.introspection, inner.introspection)
                shape.aliases += inner.aliases
            shape.aliases = min(shape.aliases, cap)  # saturate: a bomb stays a small int
        return shape

    errors = []
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        shape = measure(definition.selection_set, 0)
        if shape.depth > limits.max_depth or shape.introspection > INTROSPECTION_MAX_DEPTH:
            errors.append(
                refusal(
                    f"the query is deeper than {limits.max_depth} levels",
                    "QUERY_TOO_DEEP",
                    limit=limits.max_depth,
                )
            )
        if shape.aliases > limits.max_aliases:
            errors.append(
                refusal(
                    f"the query has more than {limits.max_aliases} aliases",
                    "TOO_MANY_ALIASES",
                    limit=limits.max_aliases,
                )
            )
    return errors
