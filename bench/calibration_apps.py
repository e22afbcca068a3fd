"""The calibration apps of `bench/calibration.py`: what the gateway is measured against.

Each is served alone by `python -m uvicorn bench.calibration_apps:<name> --workers 1
--loop uvloop --http httptools`, as the gateway is (one worker, uvloop, httptools):

- `plain`: plain Strawberry with aiodataloader over in-memory data, no parser or validation
  cache. Its schema mirrors the gateway's for the benchmarked queries, so that the very query
  texts of `bench/run.py` run on it: `things(type, first)` returns a page of edges and a
  total count, `Thing` is an interface (every thing a `GenericThing`, as the gateway's tasks
  are), `owner` is a `Person`, `connections` returns the connections in both directions and
  `to` is a `Node`. The data mirrors `bench/run.py`'s seed: 1,000 tasks owned by one person,
  each with two connections (the owner's `owns` to the task and the task's `part_of` to a
  course). Owners, connections and far ends are loaded through per-request DataLoaders.
- `cached`: the same app with Strawberry's stock `ParserCache` and `ValidationCache`.
- `starlette`: a raw Starlette endpoint that reads the JSON body and answers a constant JSON
  `thing`: the ceiling of the stack (uvicorn, httptools, Starlette, JSON).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

import strawberry
from aiodataloader import DataLoader
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.scalars import JSON

TASKS = 1000  # as `bench/run.py --extra-things`' default


@strawberry.enum
class ThingStatus(enum.Enum):
    DRAFT = "DRAFT"
    ACTIVE = "ACTIVE"
    PUBLISHED = "PUBLISHED"
    ARCHIVED = "ARCHIVED"


@strawberry.interface
class Node:
    id: strawberry.ID


@strawberry.type
class Person(Node):
    email: str
    name: str


@strawberry.interface
class Thing(Node):
    type: str
    name: str
    status: ThingStatus
    properties: JSON
    owner_id: strawberry.Private[str]

    @strawberry.field
    async def owner(self, info: strawberry.Info) -> Person | None:
        person: Person | None = await info.context["people"].load(self.owner_id)
        return person

    @strawberry.field
    async def connections(self, info: strawberry.Info) -> list[Connection]:
        found: list[Connection] = await info.context["connections"].load(self.id)
        return found


@strawberry.type
class GenericThing(Thing):
    pass


@strawberry.type
class Connection(Node):
    relationship_type: str
    from_id: strawberry.Private[str]
    to_id: strawberry.Private[str]

    @strawberry.field
    async def to(self, info: strawberry.Info) -> Node | None:
        node: Node | None = await info.context["nodes"].load(self.to_id)
        return node


@strawberry.type
class ThingEdge:
    cursor: str
    node: Thing


@strawberry.type
class ThingPage:
    edges: list[ThingEdge]
    total_count: int | None


@dataclass
class Data:
    people: dict[str, Person]
    things: dict[str, GenericThing]
    connections: dict[str, list[Connection]]  # by thing id, both directions


def _id(kind: str, n: int) -> strawberry.ID:
    """An id as long as the gateway's (`thing.native.` and 32 hex digits)."""
    return strawberry.ID(f"{kind}.native.{n:032x}")


def _data(tasks: int = TASKS) -> Data:
    owner = Person(id=_id("person", 0), email="olivia@acme.example", name="Olivia Owner")
    course = GenericThing(
        id=_id("thing", 0),
        type="course",
        name="Screen printing 101",
        status=ThingStatus.PUBLISHED,
        properties={},
        owner_id=owner.id,
    )
    things = {course.id: course}
    connections: dict[str, list[Connection]] = {course.id: []}
    for i in range(tasks):
        task = GenericThing(
            id=_id("thing", 1 + i),
            type="task",
            name=f"Task {i}",
            status=ThingStatus.DRAFT,
            properties={"estimate": i % 8, "labels": ["bench"]},
            owner_id=owner.id,
        )
        things[task.id] = task
        owns = Connection(
            id=_id("connection", 2 * i),
            relationship_type="owns",
            from_id=owner.id,
            to_id=task.id,
        )
        part_of = Connection(
            id=_id("connection", 2 * i + 1),
            relationship_type="part_of",
            from_id=task.id,
            to_id=course.id,
        )
        connections[task.id] = [owns, part_of]
        connections[course.id].append(part_of)
    return Data(people={owner.id: owner}, things=things, connections=connections)


DATA = _data()
TASK_IDS = [id for id, thing in DATA.things.items() if thing.type == "task"]


async def _load_people(ids: list[str]) -> list[Person | None]:
    return [DATA.people.get(id) for id in ids]


async def _load_nodes(ids: list[str]) -> list[Node | None]:
    return [DATA.things.get(id) or DATA.people.get(id) for id in ids]


async def _load_connections(ids: list[str]) -> list[list[Connection]]:
    return [DATA.connections.get(id, []) for id in ids]


@strawberry.type
class Query:
    @strawberry.field
    async def thing(self, info: strawberry.Info, id: strawberry.ID) -> Thing | None:
        node = await info.context["nodes"].load(id)
        return node if isinstance(node, GenericThing) else None

    @strawberry.field
    async def things(
        self, type: str | None = None, first: int = 20, after: str | None = None
    ) -> ThingPage:
        matching = [t for t in DATA.things.values() if type is None or t.type == type]
        start = int(after) + 1 if after else 0
        edges = [
            ThingEdge(cursor=str(start + i), node=t)
            for i, t in enumerate(matching[start : start + first])
        ]
        return ThingPage(edges=edges, total_count=len(matching))


class PlainGraphQL(GraphQL):
    async def get_context(self, request: Any, response: Any) -> dict[str, Any]:
        return {
            "request": request,
            "response": response,
            "people": DataLoader(_load_people),
            "nodes": DataLoader(_load_nodes),
            "connections": DataLoader(_load_connections),
        }


def _graphql_app(schema: strawberry.Schema) -> Starlette:
    view = PlainGraphQL(schema, graphql_ide=None)
    return Starlette(routes=[Route("/graphql", view, methods=["GET", "POST"])])


TYPES = [GenericThing, Person]
plain = _graphql_app(strawberry.Schema(Query, types=TYPES))
cached = _graphql_app(
    strawberry.Schema(
        Query,
        types=TYPES,
        extensions=[lambda: ParserCache(maxsize=128), lambda: ValidationCache(maxsize=128)],
    )
)

_THING = {
    "data": {
        "thing": {
            "id": str(_id("thing", 1)),
            "name": "Task 0",
            "status": "DRAFT",
            "properties": {"estimate": 0, "labels": ["bench"]},
        }
    }
}


async def _raw(request: Request) -> Response:
    json.loads(await request.body())
    return JSONResponse(_THING)


starlette = Starlette(routes=[Route("/graphql", _raw, methods=["POST"])])
