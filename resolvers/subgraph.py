"""ONE Gateway as an Apollo Federation v2 subgraph.

A router (Apollo Router, Hive Gateway, Cosmo) composes what `_service { sdl }` answers with
its other subgraphs, then fetches our entities, `Thing` (and each of its types), `Person` and
`Organization`, keyed by their global `id`, through `_entities(representations:)`. Each
representation is answered as `node(id:)` answers its id, for the actor whose token the router
forwarded: all of them in one batch through the request's loaders and thing service, and what
is selected below them in one plan (resolvers/planning.py). A malformed id, or a type that is
not an entity, is BAD_USER_INPUT; what does not exist, is another organization's, or is not
of the representation's type is null with NOT_FOUND.

`as_str()` (`schema.graphql`) stays the SDL clients and their tools build from, without the
`@link`, `@key`, `_service` and `_entities` that only a router reads; `subgraph_sdl()` is the
router's, what `_service { sdl }` answers.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any, Final, cast

import strawberry
from graphql import DirectiveNode, Visitor, parse, visit
from strawberry.federation.schema import FederationAny
from strawberry.federation.schema_directives import FederationDirective
from strawberry.printer import print_schema
from strawberry.schema.config import StrawberryConfig

from providers.errors import InvalidInputError
from providers.records import Kind
from providers.refs import Ref
from resolvers.context import Info
from resolvers.ids import parse_id
from resolvers.node import Node
from resolvers.organizations import Organization
from resolvers.people import Person
from resolvers.planning import below, load_nodes, not_found, plan_nodes, wants_detail
from resolvers.things import Thing

# The first version with `@key` on an interface (`Thing`); the lowest a router must support.
FEDERATION_VERSION: Final = "2.3"
_ENTITY_KINDS: Mapping[type, Kind] = {
    Thing: Kind.THING,
    Person: Kind.PERSON,
    Organization: Kind.ORGANIZATION,
}


class SubgraphSchema(strawberry.federation.Schema):
    """A schema served as a Federation v2 subgraph, whose entities resolve as `node(id:)`."""

    def __init__(
        self,
        *,
        query: type,
        mutation: type | None = None,
        subscription: type | None = None,
        types: Iterable[type] = (),
        config: StrawberryConfig | None = None,
        **kwargs: Any,
    ) -> None:
        types = list(types)
        super().__init__(
            query=query,
            mutation=mutation,
            subscription=subscription,
            types=types,
            config=config,
            federation_version=FEDERATION_VERSION,
            **kwargs,
        )
        # The same schema without federation, built to print only when asked (`as_str`).
        self._plain = partial(
            strawberry.Schema,
            query=query,
            mutation=mutation,
            subscription=subscription,
            types=types,
            config=config,
        )
        self._client_sdl = ""
        # Each entity's GraphQL name -> its class and the kind of id that names it.
        self._entity_types = {
            name: (origin, kind)
            for name, graphql_type in self.schema_converter.type_map.items()
            if isinstance(origin := getattr(graphql_type.definition, "origin", None), type)
            for cls, kind in _ENTITY_KINDS.items()
            if issubclass(origin, cls)
        }

    def subgraph_sdl(self) -> str:
        """The SDL a router composes: what `_service { sdl }` answers."""
        return print_schema(self)

    def as_str(self) -> str:
        """The SDL clients see (`schema.graphql`): the subgraph's without federation."""
        if not self._client_sdl:
            with warnings.catch_warnings():
                # Federation's directives are printed on the types, and cut below.
                warnings.filterwarnings("ignore", "Federation directive found in schema")
                plain = self._plain()
            used = {
                d.imported_from.name
                for d in self.schema_directives_in_use
                if isinstance(d, FederationDirective)
            }
            self._client_sdl = _without_directives(print_schema(plain), used)
        return self._client_sdl

    __str__ = as_str

    # Strawberry calls each type's `resolve_reference` one representation at a time; this
    # answers them all at once, as `node(id:)` answers one.
    async def entities_resolver(  # type: ignore[override]
        self, info: Info, representations: list[FederationAny]
    ) -> list[FederationAny]:
        info.context.actor  # noqa: B018 - authentication before anything else
        wanted = [self._reference(r) for r in representations]
        selections = below(info)
        refs = [want[0] for want in wanted if not isinstance(want, Exception)]
        found = await load_nodes(info.context, refs, detail=wants_detail(selections))
        answers: list[Node | Exception] = []
        for want in wanted:
            if isinstance(want, Exception):
                answers.append(want)
                continue
            ref, entity = want
            node = found[str(ref)]
            answers.append(node if isinstance(node, Exception | entity) else not_found(ref))
        await plan_nodes(info.context, [a for a in answers if isinstance(a, Node)], selections)
        return cast(list[FederationAny], answers)

    def _reference(self, representation: object) -> tuple[Ref, type] | InvalidInputError:
        """The reference a representation names, and the class its object must be."""
        fields = representation if isinstance(representation, dict) else {}
        typename, id = fields.get("__typename"), fields.get("id")
        if typename not in self._entity_types:
            return InvalidInputError(
                f"'{typename}' is not an entity of this subgraph", field="__typename"
            )
        entity, kind = self._entity_types[typename]
        if not isinstance(id, str):
            return InvalidInputError(f"a {typename} representation needs its `id`", field="id")
        try:
            return parse_id(id, kind), entity
        except InvalidInputError as exc:
            return exc


class _Directives(Visitor):
    def __init__(self, names: set[str]) -> None:
        super().__init__()
        self.names = names
        self.found: list[DirectiveNode] = []

    def enter_directive(self, node: DirectiveNode, *_: object) -> None:
        if node.name.value in self.names:
            self.found.append(node)


def _without_directives(sdl: str, names: set[str]) -> str:
    """`sdl` without the applications of the directives `names` (and the space before each)."""
    directives = _Directives(names)
    visit(parse(sdl), directives)
    spans = sorted(((n.loc.start, n.loc.end) for n in directives.found if n.loc), reverse=True)
    for start, end in spans:
        sdl = sdl[:start].removesuffix(" ") + sdl[end:]
    return sdl
