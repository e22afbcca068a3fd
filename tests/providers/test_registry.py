"""The registry is the single list of provider names: a fifth provider is one module that
declares `PROVIDER` and its name in `PROVIDER_MODULES`. Here that module is this one, with a
provider that keeps its things in memory, routed to through GraphQL like any other."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import httpx
import pytest
from pydantic import BaseModel, ConfigDict

from providers import registry
from providers.errors import InvalidInputError
from providers.provider import Capabilities, Health, ListQuery
from providers.records import Page, Thing, ThingStatus, utcnow
from providers.refs import Ref
from providers.registry import ProviderFactory
from providers.upstream import Upstreams
from tests.conftest import Api


class MemoryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shelf: str = "main"


class MemoryProvider:
    """The Provider protocol and nothing else: things in a dict, listed by id."""

    name = "memory"
    thing_types = frozenset({"task"})
    capabilities = Capabilities(read=True, search=True, write=True, batch_size=50)
    SHELVES: ClassVar[dict[str, dict[str, Thing]]] = {}  # the "backend", per org and shelf

    def __init__(
        self, org_id: str, config: MemoryConfig, upstreams: httpx.AsyncClient | Upstreams
    ) -> None:
        self.org_id = org_id
        self.things = self.SHELVES.setdefault(f"{org_id}/{config.shelf}", {})

    async def get_many(self, ids: Sequence[str], *, detail: bool = True) -> list[Thing | None]:
        return [self.things.get(id) for id in ids]

    async def page(self, query: ListQuery) -> Page[Thing]:
        found = [t for _, t in sorted(self.things.items()) if query.status in (None, t.status)]
        after = [t for t in found if query.after is None or t.id > query.after]
        items = after[: query.first]
        return Page(items, [t.id for t in items], len(after) > len(items), len(found))

    async def create(
        self, *, type: str, name: str, status: ThingStatus, properties: dict[str, Any]
    ) -> Thing:
        id = f"m{len(self.things) + 1:04d}"
        self.things[id] = Thing(
            id, self.org_id, type, name, status, properties, provider=self.name, external_id=id
        )
        return self.things[id]

    async def update(
        self, id: str, *, name: str | None, properties: dict[str, Any] | None, merge: bool = True
    ) -> Thing:
        thing = self.things[id]
        if properties is not None:
            thing = replace(
                thing, properties={**thing.properties, **properties} if merge else properties
            )
        if name is not None:
            thing = replace(thing, name=name)
        self.things[id] = replace(thing, updated_at=utcnow())
        return self.things[id]

    async def change_status(self, id: str, status: ThingStatus) -> Thing:
        self.things[id] = replace(self.things[id], status=status, updated_at=utcnow())
        return self.things[id]

    async def health(self) -> Health:
        return Health("online", 0.1)


PROVIDER = ProviderFactory.of(MemoryProvider, MemoryConfig)

THING = "id name status properties provider externalId"
CONFIGURE = """mutation { configureProvider(input: {provider: "memory", routes: ["task"],
  config: {shelf: "tests"}}) { provider routes } }"""


@pytest.fixture
def memory(api: Api, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    # The one line a fifth provider adds, made at runtime.
    monkeypatch.setattr(registry, "PROVIDER_MODULES", (*registry.PROVIDER_MODULES, __name__))
    yield api
    MemoryProvider.SHELVES.clear()


def test_a_provider_unknown_to_the_registry_names_nothing(api: Api) -> None:
    error = api.error('{ thing(id: "thing.memory.m0001") { id } }')
    assert (
        error["extensions"]["code"] == "BAD_USER_INPUT" and "unknown provider" in error["message"]
    )
    with pytest.raises(InvalidInputError, match="unknown provider"):
        registry.factory("memory")


def test_a_fifth_provider_is_one_module_and_one_line(memory: Api) -> None:
    assert memory.data(CONFIGURE)["configureProvider"] == {"provider": "memory", "routes": ["task"]}
    assert "memory" in registry.provider_names() and Ref.parse("thing.memory.m1")

    create = (
        f"""mutation($input: CreateThingInput!) {{ createThing(input: $input) {{ {THING} }} }}"""
    )
    made = memory.data(create, {"input": {"type": "task", "name": "Write", "properties": {"a": 1}}})
    task = made["createThing"]
    assert task["id"] == "thing.memory.m0001" and task["provider"] == "memory"
    assert task["status"] == "DRAFT" and task["properties"] == {"a": 1}

    read = f"""query($id: ID!) {{ thing(id: $id) {{ {THING} }} node(id: $id) {{ id }} }}"""
    assert memory.data(read, {"id": task["id"]})["thing"] == task
    listed = memory.data('{ things(type: "task") { totalCount edges { node { id } } } }')
    assert listed["things"] == {"totalCount": 1, "edges": [{"node": {"id": task["id"]}}]}

    update = f"""mutation($id: ID!, $input: UpdateThingInput!) {{
      updateThing(id: $id, input: $input) {{ {THING} }} }}"""
    merged = memory.data(update, {"id": task["id"], "input": {"properties": {"b": 2}}})
    assert merged["updateThing"]["properties"] == {"a": 1, "b": 2}
    replaced = memory.data(
        update, {"id": task["id"], "input": {"properties": {"c": 3}, "mergeProperties": False}}
    )
    assert replaced["updateThing"]["properties"] == {"c": 3}

    status = """mutation($id: ID!, $s: ThingStatus!) { changeThingStatus(id: $id, status: $s) {
      status } }"""
    skipped = memory.error(status, {"id": task["id"], "s": "PUBLISHED"})
    assert skipped["extensions"]["code"] == "BAD_USER_INPUT"  # the lifecycle holds here too
    assert memory.data(status, {"id": task["id"], "s": "ACTIVE"})["changeThingStatus"] == {
        "status": "ACTIVE"
    }
    archive = "mutation($id: ID!) { archiveThing(id: $id) { status } }"
    assert memory.data(archive, {"id": task["id"]})["archiveThing"] == {"status": "ARCHIVED"}
    final = memory.error(update, {"id": task["id"], "input": {"name": "Again"}})
    assert final["extensions"]["code"] == "BAD_USER_INPUT"

    events = """query($t: ID!) { events(targetId: $t) { edges { node { type metadata
      actor { email } } } } }"""
    told = [e["node"] for e in memory.data(events, {"t": task["id"]})["events"]["edges"]]
    assert [e["type"] for e in told] == [
        "entity_archived",
        "entity_updated",
        "entity_updated",
        "entity_updated",
        "entity_created",
    ]
    assert {e["metadata"]["provider"] for e in told} == {"memory"}
    assert told[0]["actor"] == {"email": "olivia@acme.example"}
