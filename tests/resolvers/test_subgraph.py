"""ONE Gateway as an Apollo Federation v2 subgraph: its SDL over HTTP, `_entities` answered
as `node(id:)` answers, and composition with a second subgraph by a real composer."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from resolvers.subgraph import FEDERATION_VERSION
from tests.clients.npm import GRAPHQL, installed, run
from tests.conftest import Api

ROOT = Path(__file__).resolve().parents[2]
COMPOSITION = "@theguild/federation-composition@0.27.0"
ENTITIES = ("Thing", "BlogPost", "Product", "Document", "GenericThing", "Person", "Organization")
ENTITY_QUERY = """query($r: [_Any!]!) { _entities(representations: $r) { __typename
  ... on Person { id name email }
  ... on Organization { id slug }
  ... on Thing { id name owner { name } }
  ... on Product { price } } }"""
NODE_QUERY = """query($id: ID!) { node(id: $id) { __typename
  ... on Person { id name email }
  ... on Organization { id slug }
  ... on Thing { id name owner { name } }
  ... on Product { price } } }"""
IDS = """{ me { person { id } organization { id } }
  things(first: 100) { edges { node { id type } } } }"""


def ids(api: Api, org: str) -> dict[str, Any]:
    data = api.data(IDS, org=org)
    things: dict[str, list[str]] = {}
    for edge in data["things"]["edges"]:
        things.setdefault(edge["node"]["type"], []).append(edge["node"]["id"])
    return {
        "person": data["me"]["person"]["id"],
        "organization": data["me"]["organization"]["id"],
        **things,
    }


def entities(api: Api, *representations: dict[str, str], **kw: Any) -> dict[str, Any]:
    return api.post(ENTITY_QUERY, {"r": list(representations)}, **kw)


def test_service_sdl_links_federation_v2_and_keys_the_entities(api: Api) -> None:
    sdl = api.data("{ _service { sdl } }")["_service"]["sdl"]
    link = f'@link(url: "https://specs.apollo.dev/federation/v{FEDERATION_VERSION}"'
    assert link in sdl and 'import: ["@key"]' in sdl
    for name in ENTITIES:
        keyed = rf'^(type|interface) {name} [^{{]*@key\(fields: "id"\) {{'
        assert re.search(keyed, sdl, re.M), name
    keyed = re.findall(r"^(?:type|interface) (\w+) [^{]*@key", sdl, re.M)
    assert sorted(keyed) == sorted(ENTITIES)
    exported = export_federation()
    assert exported == sdl + "\n"
    committed = (ROOT / "schema.graphql").read_text()
    assert "@key" not in committed and "_entities" not in committed and "@link" not in committed


def test_entities_answer_a_person_an_organization_and_things_as_node_does(api: Api) -> None:
    acme = ids(api, "acme")
    wanted = [
        ("Person", acme["person"]),
        ("Organization", acme["organization"]),
        ("Product", acme["product"][0]),
        ("BlogPost", acme["blog_post"][0]),
        ("Thing", acme["document"][0]),  # an entity interface: answered with its own type
    ]
    body = entities(api, *({"__typename": t, "id": i} for t, i in wanted))
    assert "errors" not in body, body["errors"]
    found = body["data"]["_entities"]
    for (_, id), entity in zip(wanted, found, strict=True):
        assert entity == api.data(NODE_QUERY, {"id": id})["node"]
    person, organization, product, post, document = found
    assert person["name"] == "Olivia Owner" and person["email"] == "olivia@acme.example"
    assert organization["slug"] == "acme"
    assert product["__typename"] == "Product" and product["price"] is not None
    assert product["owner"] == {"name": "Olivia Owner"}
    assert post["__typename"] == "BlogPost" and document["__typename"] == "Document"


def test_another_organizations_or_a_malformed_representation_is_null_as_with_node(
    api: Api,
) -> None:
    acme, globex = ids(api, "acme"), ids(api, "globex")
    cases = [
        ({"__typename": "Person", "id": globex["person"]}, "NOT_FOUND"),
        ({"__typename": "Organization", "id": globex["organization"]}, "NOT_FOUND"),
        ({"__typename": "Product", "id": globex["product"][0]}, "NOT_FOUND"),
        ({"__typename": "Product", "id": "not an id"}, "BAD_USER_INPUT"),
    ]
    for representation, code in cases:
        body = entities(api, {"__typename": "Person", "id": acme["person"]}, representation)
        assert body["data"]["_entities"][0]["name"] == "Olivia Owner"  # the rest still answers
        assert body["data"]["_entities"][1] is None
        [error] = body["errors"]
        assert error["extensions"]["code"] == code and error["path"] == ["_entities", 1]
        node = api.post(NODE_QUERY, {"id": representation["id"]})
        assert node["data"]["node"] is None
        assert [e["extensions"]["code"] for e in node["errors"]] == [code]
        assert node["errors"][0]["message"] == error["message"]


def test_a_representation_must_name_an_entity_of_its_type(api: Api) -> None:
    acme = ids(api, "acme")
    cases = [
        ({"__typename": "Product", "id": acme["blog_post"][0]}, "NOT_FOUND"),  # another type
        ({"__typename": "Person", "id": acme["product"][0]}, "BAD_USER_INPUT"),  # another kind
        ({"__typename": "Membership", "id": acme["person"]}, "BAD_USER_INPUT"),  # no entity
        ({"__typename": "Person"}, "BAD_USER_INPUT"),
    ]
    for representation, code in cases:
        body = entities(api, representation)
        assert body["data"]["_entities"] == [None], body
        assert [e["extensions"]["code"] for e in body["errors"]] == [code], body


def test_entities_need_a_token_and_batch_their_loads(api: Api) -> None:
    acme = ids(api, "acme")
    everything = [
        {"__typename": "Thing", "id": id}
        for found in acme.values()
        if isinstance(found, list)
        for id in found
    ]
    assert len(everything) > 5
    body = entities(api, *everything[:1], role=None)
    assert body["data"] is None  # `_entities` is not nullable
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]
    counts = []
    for representations in (everything, everything[:2], everything):  # the first warms up
        api.token()
        # Each right after an uncounted one: the gateway's one-second caches (who the token
        # names, the routes) are read again by the first request after they expire.
        api.data(ENTITY_QUERY, {"r": representations})
        before = api.store.engine.queries
        assert len(api.data(ENTITY_QUERY, {"r": representations})["_entities"]) == len(
            representations
        )
        counts.append(api.store.engine.queries - before)
    assert counts[1] == counts[2], counts


COMPOSE = """
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
const [modules, ...files] = process.argv.slice(2);
const require = createRequire(modules + "/");
const { parse } = require("graphql");
const { composeServices } = require("@theguild/federation-composition");
const [one, reviews] = files.map((file) => readFileSync(file, "utf8"));
const result = composeServices([
  { name: "one", typeDefs: parse(one), url: "http://one.example/graphql" },
  { name: "reviews", typeDefs: parse(reviews), url: "http://reviews.example/graphql" },
]);
console.log(JSON.stringify({
  errors: (result.errors ?? []).map((e) => e.message),
  hints: (result.hints ?? []).map((h) => h.message ?? String(h)),
  supergraphSdl: result.supergraphSdl ?? null,
  publicSdl: result.publicSdl ?? null,
}));
"""
REVIEWS = """extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])

type Person @key(fields: "id") {
  id: ID!
  reviews: [String!]!
}

type Query {
  topReviewers: [Person!]!
}
"""


def export_federation(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "export-schema", "--federation", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_the_subgraph_composes_with_one_that_extends_person(tmp_path: Path) -> None:
    modules = installed(GRAPHQL, COMPOSITION)  # raises, never skips, when npm is unreachable
    one, reviews, script = (tmp_path / name for name in ("one.graphql", "reviews.graphql", "c.mjs"))
    export_federation("--output", str(one))
    reviews.write_text(REVIEWS)
    script.write_text(COMPOSE)
    result = json.loads(run(["node", str(script), str(modules), str(one), str(reviews)], None, 120))
    assert result["errors"] == []
    ours = re.compile(rf"\b({'|'.join(ENTITIES)}|Node)\b")
    assert [h for h in result["hints"] if ours.search(h)] == []
    supergraph = result["supergraphSdl"]
    for name in ENTITIES:
        keyed = rf'^(type|interface) {name} [^{{]*@join__type\(graph: ONE, key: "id"\)'
        assert re.search(keyed, supergraph, re.M), name
    theirs = r'^type Person [^{]*@join__type\(graph: REVIEWS, key: "id"\)'
    assert re.search(theirs, supergraph, re.M)
    person = re.search(r"^type Person [^{]*\{(.*?)^\}", result["publicSdl"], re.M | re.S)
    assert person is not None
    assert {"email", "memberships", "reviews"} <= set(re.findall(r"^  (\w+)", person[1], re.M))


def test_entities_cost_as_many_as_the_router_sends() -> None:
    from graphql import parse

    from resolvers.cost import QueryCost
    from resolvers.schema import schema

    query = parse(
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Person { name } } }"
    )
    person = {"__typename": "Person", "id": "person.native.x"}

    def cost(n: int) -> int:
        return QueryCost(schema._schema, query, None, {"r": [person] * n}).requested()

    assert cost(50) == 25 * cost(2) and cost(2) > 0
