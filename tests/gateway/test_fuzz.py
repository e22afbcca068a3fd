"""Fuzzing the exported schema over HTTP: operations generated from `schema.graphql`
(hypothesis-graphql), one root field each, their arguments written in the document or sent
as variables, by an owner, a platform owner, an org user, a customer and nobody; invalid
ones too. Whatever they ask, the gateway answers 200 or 400, every error carries
`extensions.code`, and none is INTERNAL_SERVER_ERROR.

IDs, Strings, DateTimes and JSON are drawn partly from the demo data (real ids of both
organizations, cursors, thing types), so the fuzzer reaches the resolvers, not only the
parsers. `ONE_FUZZ_EXAMPLES=5000` runs longer (examples per case; 50 by default).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import graphql
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.settings import load_settings
from gateway.view import GRAPHQL_RESPONSE
from providers.records import Role
from tests.conftest import JWT_SECRET, Api

T = TypeVar("T")
SCHEMA = (Path(__file__).parents[2] / "schema.graphql").read_text()
_ROOTS = graphql.build_schema(SCHEMA)
QUERIES = sorted(_ROOTS.query_type.fields) if _ROOTS.query_type else []
MUTATIONS = sorted(_ROOTS.mutation_type.fields) if _ROOTS.mutation_type else []

fuzzing = settings(
    max_examples=int(os.environ.get("ONE_FUZZ_EXAMPLES", "50")),
    deadline=None,
    # One app and its demo data per case, shared by its examples (one per example would cost
    # more than the requests); what the mutations change piles up, as it would in use.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# Who sends which root fields: the cases.
CASES = {
    "queries by an owner": (QUERIES, Mode.POSITIVE, Role.ORG_OWNER),
    "mutations by an owner": (MUTATIONS, Mode.POSITIVE, Role.ORG_OWNER),
    "anything by a platform owner": (QUERIES + MUTATIONS, Mode.POSITIVE, Role.PLATFORM_OWNER),
    "anything by an org user": (QUERIES + MUTATIONS, Mode.POSITIVE, Role.ORG_USER),
    "anything by a customer": (QUERIES + MUTATIONS, Mode.POSITIVE, Role.CUSTOMER),
    "anything without a token": (QUERIES + MUTATIONS, Mode.POSITIVE, None),
    # All root fields at once: many have no argument to break.
    "invalid operations by an owner": (None, Mode.NEGATIVE, Role.ORG_OWNER),
}

TRUSTED = "query Me { me { role } }"
# What the gateway reads in strings: thing types, relationships, knowledge kinds, providers,
# plans, emails, slugs, a document and its hash.
WORDS = [
    "blog_post", "product", "document", "course", "lesson", "task",
    "authored", "purchased", "enrolled_in", "references", "label", "chunk",
    "native", "wordpress", "shopify", "notion", "starter", "growth", "enterprise",
    "new@acme.example", "olivia@acme.example", "acme", "globex",
    TRUSTED, hashlib.sha256(TRUSTED.encode()).hexdigest(),
]  # fmt: skip
KINDS = ["org", "person", "thing", "connection", "event", "knowledge"]

JSON_LEAVES = st.one_of(
    st.booleans().map(nodes.Boolean),
    st.integers().map(nodes.Int),
    st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
    st.one_of(st.sampled_from(WORDS), st.text(max_size=30)).map(nodes.String),
)
# Halves of surrogate pairs alone (one string in 8): JSON escapes them ("\\ud800"), but they
# are no text.
SURROGATES = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2)
NAMES = st.from_regex(r"\A[_A-Za-z][_0-9A-Za-z]{0,10}\Z")


def _weighted(*choices: tuple[int, st.SearchStrategy[T]]) -> st.SearchStrategy[T]:
    """One of the strategies, each drawn as often as its weight says (`one_of` draws each
    distinct strategy as often)."""
    strategies = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(strategies).flatmap(lambda strategy: strategy)


def _object(fields: dict[str, graphql.ValueNode]) -> graphql.ValueNode:
    return nodes.Object(
        [
            graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=v)
            for k, v in fields.items()
        ]
    )


def _containers(
    children: st.SearchStrategy[graphql.ValueNode],
) -> st.SearchStrategy[graphql.ValueNode]:
    lists = st.lists(children, max_size=4).map(nodes.List)
    return lists | st.dictionaries(NAMES, children, max_size=4).map(_object)


# null only inside: null for a JSON! argument breaks the schema; it is not a JSON value.
JSON_VALUES = st.recursive(
    JSON_LEAVES | st.just(graphql.NullValueNode()), _containers, max_leaves=12
).filter(lambda node: not isinstance(node, graphql.NullValueNode))


@dataclass(repr=False)
class Scalars:
    """Strategies for the value nodes of the schema's scalars, by scalar name."""

    nodes: dict[str, st.SearchStrategy[graphql.ValueNode]]

    def __repr__(self) -> str:  # Hypothesis prints it with every failing example
        return f"Scalars({', '.join(self.nodes)})"


@pytest.fixture
def app(tmp_path: Path) -> Starlette:
    # Anonymous requests come back to back too (conftest's app limits them).
    settings = load_settings(
        env="test",
        data_dir=tmp_path,
        jwt_secret=JWT_SECRET,
        actor_rate=100_000,
        actor_burst=100_000,
        anonymous_rate=100_000,
        anonymous_burst=100_000,
    )
    return create_app(settings)


@pytest.fixture
def scalars(api: Api) -> Scalars:
    """The schema's scalars, drawn partly from the demo data."""
    ids: list[str] = []
    strings: list[str] = list(WORDS)
    for org in ("acme", "globex"):
        data = api.data(
            """{
              me { organization { id members { person { id } } } }
              things(first: 100) { edges { cursor node { id } } }
              events(first: 20) { edges { cursor node { id } } }
              knowledgeSearch(query: "a") { hits { knowledge { id } } }
            }""",
            org=org,
        )
        organization = data["me"]["organization"]
        ids += [organization["id"]] + [m["person"]["id"] for m in organization["members"]]
        for page in ("things", "events"):
            ids += [e["node"]["id"] for e in data[page]["edges"]]
            strings += [e["cursor"] for e in data[page]["edges"]]
        ids += [h["knowledge"]["id"] for h in data["knowledgeSearch"]["hits"]]
    thing = next(i for i in ids if i.startswith("thing."))
    edges = api.data("query($id: ID!) { connections(thingId: $id) { id } }", {"id": thing})
    ids += [c["id"] for c in edges["connections"]]

    unknown = st.builds(
        "{}.native.{}".format,
        st.sampled_from(KINDS),
        st.text("0123456789abcdef", min_size=32, max_size=32),
    )
    texts = st.one_of(st.sampled_from(strings), st.text(max_size=60))
    # Mostly instants; some without a time zone, some not dates at all.
    aware = st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
    naive = st.datetimes().map(lambda d: d.isoformat())
    return Scalars(
        {
            "ID": st.one_of(st.sampled_from(ids), unknown, st.text(max_size=40)).map(nodes.String),
            "String": _weighted((7, texts), (1, SURROGATES)).map(nodes.String),
            "DateTime": _weighted((3, aware), (1, naive), (1, st.text(max_size=30))).map(
                nodes.String
            ),
            "JSON": JSON_VALUES,
        }
    )


def _as_is(document: graphql.DocumentNode) -> graphql.DocumentNode:
    return document


def as_variables(document: graphql.DocumentNode) -> tuple[str, dict[str, Any]]:
    """The same operation with every argument sent as a variable, as most clients send them:
    values then pass through JSON and the scalars' `parse_value`, not their `parse_literal`."""
    type_info = graphql.TypeInfo(_ROOTS)
    definitions: list[graphql.VariableDefinitionNode] = []
    variables: dict[str, Any] = {}

    class Lift(graphql.Visitor):
        def enter_argument(self, node: graphql.ArgumentNode, *_: Any) -> graphql.ArgumentNode:
            argument = type_info.get_argument()
            assert argument is not None
            variable = graphql.VariableNode(name=graphql.NameNode(value=f"v{len(variables)}"))
            variables[variable.name.value] = graphql.value_from_ast_untyped(node.value)
            type_ = graphql.parse_type(str(argument.type))
            definitions.append(graphql.VariableDefinitionNode(variable=variable, type=type_))
            return replace(node, value=variable)

        def leave_operation_definition(
            self, node: graphql.OperationDefinitionNode, *_: Any
        ) -> graphql.OperationDefinitionNode:
            return replace(node, variable_definitions=tuple(definitions))

    lifted = graphql.visit(document, graphql.TypeInfoVisitor(type_info, Lift()))
    return graphql.print_ast(lifted), variables


@pytest.mark.parametrize("case", CASES)
@fuzzing
@seed(20261123)
@given(data=st.data())
def test_every_operation_has_a_coded_answer(
    api: Api, scalars: Scalars, case: str, data: st.DataObject
) -> None:
    fields, mode, role = CASES[case]
    # One root field per document: each is drawn as often, and a failing mutation field does
    # not keep the ones after it from running.
    if fields is not None:
        fields = [data.draw(st.sampled_from(fields), label="field")]
    operations = from_schema(
        SCHEMA, fields=fields, custom_scalars=scalars.nodes, mode=mode, print_ast=_as_is
    )
    operation = data.draw(operations, label="operation")
    if mode is Mode.POSITIVE and data.draw(st.booleans(), label="as variables"):
        document, variables = as_variables(operation)
    else:
        document, variables = graphql.print_ast(operation), {}

    headers = {"Accept": GRAPHQL_RESPONSE, "Content-Type": "application/json"}
    if role is not None:
        headers["Authorization"] = f"Bearer {api.token('acme', role)}"
    body = json.dumps({"query": document, "variables": variables})  # ASCII: "\ud800" escaped
    response = api.client.post("/graphql", content=body, headers=headers)
    report = f"{document}\n{variables}\n-> {response.status_code} {response.text[:2000]}"
    assert response.status_code in (200, 400), report
    answer: dict[str, Any] = response.json()
    for error in answer.get("errors", []):
        code = (error.get("extensions") or {}).get("code")
        assert code and code != "INTERNAL_SERVER_ERROR", report
