"""Real-time: the event pipeline (relay, bus, live events) and the subscriptions' semantics:
order, resuming, access checked as events arrive, back-pressure, replicas over Redis."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from gateway.event_bus import LocalBus
from gateway.live_events import LiveEvents
from gateway.relay import Relay
from gateway.settings import load_settings
from gateway.store import started_store
from providers.errors import SubscriberTooSlowError, TooManySubscriptionsError
from providers.native import NativeStore
from providers.records import Role
from providers.sqlite import SQLiteEngine
from tests.conftest import Api
from tests.processes import Gateway, seed, token

PROTOCOL = ["graphql-transport-ws"]
CREATE = 'mutation($n: String!) { createThing(input: {type: "course", name: $n}) { id } }'


class Subscription:
    """One graphql-transport-ws connection with one subscription, over the ASGI app."""

    def __init__(self, client: TestClient, init: dict[str, Any], query: str) -> None:
        self._context = client.websocket_connect("/graphql", subprotocols=PROTOCOL)
        self.ws = self._context.__enter__()
        self.ws.send_json({"type": "connection_init", "payload": init})
        assert self.ws.receive_json()["type"] == "connection_ack"
        self.ws.send_json({"type": "subscribe", "id": "s", "payload": {"query": query}})

    def next(self) -> dict[str, Any]:
        while True:
            message: dict[str, Any] = self.ws.receive_json()
            if message["type"] != "ping":
                return message

    def close(self) -> None:
        self._context.__exit__(None, None, None)


def bearer(api: Api, role: Role = Role.ORG_OWNER, org: str = "acme") -> dict[str, str]:
    return {"Authorization": f"Bearer {api.token(org, role)}"}


def created(api: Api, name: str) -> str:
    thing_id: str = api.data(CREATE, {"n": name})["createThing"]["id"]
    return thing_id


def settle() -> None:
    time.sleep(0.2)  # the subscription is registered once its first await has run


def test_events_arrive_in_order_with_their_cursor(api: Api) -> None:
    sub = Subscription(api.client, bearer(api), "subscription { eventAdded { type cursor } }")
    settle()
    ids = [created(api, f"Course {i}") for i in range(3)]
    got = [sub.next()["payload"]["data"]["eventAdded"] for _ in ids]
    sub.close()
    assert [e["type"] for e in got] == ["entity_created"] * 3
    cursors = [int(e["cursor"]) for e in got]
    assert cursors == list(range(cursors[0], cursors[0] + 3))


def test_a_subscriber_resumes_after_its_last_cursor_and_misses_nothing(api: Api) -> None:
    query = 'subscription { thingChanged(type: "course") { changeType cursor thing { name } } }'
    sub = Subscription(api.client, bearer(api), query)
    settle()
    created(api, "Seen")
    seen = sub.next()["payload"]["data"]["thingChanged"]
    assert (seen["changeType"], seen["thing"]["name"]) == ("CREATED", "Seen")
    sub.close()
    missed = [created(api, f"Missed {i}") for i in range(3)]
    created_elsewhere = api.data(
        'mutation { createThing(input: {type: "task", name: "t"}) { id } }'
    )
    assert created_elsewhere["createThing"]["id"]
    resumed = Subscription(
        api.client,
        bearer(api),
        'subscription { thingChanged(type: "course", after: "'
        + seen["cursor"]
        + '") { cursor thing { id name } } }',
    )
    got = [resumed.next()["payload"]["data"]["thingChanged"] for _ in missed]
    assert [c["thing"]["id"] for c in got] == missed
    created(api, "Live again")
    assert resumed.next()["payload"]["data"]["thingChanged"]["thing"]["name"] == "Live again"
    resumed.close()


def test_a_cursor_older_than_the_retention_is_refused_with_its_code(tmp_path: Path) -> None:
    from tests.conftest import JWT_SECRET

    settings = load_settings(
        env="test",
        data_dir=tmp_path,
        jwt_secret=JWT_SECRET,
        event_retention=100,
        actor_rate=1000,
        actor_burst=1000,
    )
    from gateway.app import create_app
    from gateway.demo import seed_demo

    with TestClient(create_app(settings)) as client:
        api = Api(client, {})
        api.run(seed_demo, api.store)
        for i in range(110):
            created(api, f"Course {i}")
        sub = Subscription(client, bearer(api), 'subscription { eventAdded(after: "1") { type } }')
        message = sub.next()
        assert message["type"] == "next"
        [error] = message["payload"]["errors"]
        assert error["extensions"]["code"] == "CURSOR_EXPIRED"
        assert sub.next()["type"] == "complete"
        sub.close()


def test_a_malformed_cursor_is_bad_input(api: Api) -> None:
    sub = Subscription(api.client, bearer(api), 'subscription { eventAdded(after: "x1") { type } }')
    [error] = sub.next()["payload"]["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    sub.close()


def test_events_are_filtered_by_type_target_and_actor(api: Api) -> None:
    target = created(api, "Target")
    query = (
        'subscription { eventAdded(types: ["entity_updated"], targetId: "' + target + '") '
        "{ type target { id } } }"
    )
    sub = Subscription(api.client, bearer(api, Role.ORG_USER), query)
    settle()
    created(api, "Other")  # another type and target: not sent
    api.data(
        'mutation($id: ID!) { updateThing(id: $id, input: {name: "Renamed"}) { id } }',
        {"id": target},
    )
    got = sub.next()["payload"]["data"]["eventAdded"]
    assert got == {"type": "entity_updated", "target": {"id": target}}
    sub.close()


def test_a_customer_never_receives_configuration_events(api: Api) -> None:
    sub = Subscription(
        api.client, bearer(api, Role.CUSTOMER), "subscription { eventAdded { type } }"
    )
    settle()
    api.data('mutation { createApiKey(name: "k", role: CUSTOMER) { secret } }')  # api_key_created
    created(api, "After")
    assert sub.next()["payload"]["data"]["eventAdded"] == {"type": "entity_created"}
    sub.close()


def test_another_organizations_events_never_arrive(api: Api) -> None:
    sub = Subscription(
        api.client, bearer(api, org="globex"), "subscription { eventAdded { type target { id } } }"
    )
    settle()
    created(api, "Acme only")  # acme's
    own = api.post(CREATE, {"n": "Globex's"}, org="globex")
    got = sub.next()["payload"]["data"]["eventAdded"]
    assert got["target"]["id"] == own["data"]["createThing"]["id"]
    sub.close()


def test_a_removed_member_stops_receiving_and_is_told_why(api: Api) -> None:
    member = api.data("{ me { person { id } } }", token=api.token("acme", Role.ORG_USER))
    query = "subscription { eventAdded { type } }"
    subs = [Subscription(api.client, bearer(api, Role.ORG_USER), query) for _ in range(2)]
    settle()
    created(api, "Before")
    for sub in subs:
        assert sub.next()["payload"]["data"]["eventAdded"] == {"type": "entity_created"}
    started = time.monotonic()
    api.data(
        "mutation($p: ID!) { removeMember(personId: $p) }", {"p": member["me"]["person"]["id"]}
    )
    created(api, "After")
    for sub in subs:  # both told, each once (their credentials' check is shared)
        [error] = sub.next()["payload"]["errors"]
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
        assert error["message"].count("this subscription ended") == 1
        assert "not a member" in error["message"]
        assert sub.next()["type"] == "complete"
        sub.close()
    assert time.monotonic() - started < 3


def test_a_revoked_api_key_stops_receiving(api: Api) -> None:
    key = api.data(
        'mutation { createApiKey(name: "live", role: CUSTOMER) { apiKey { id } secret } }'
    )
    secret, key_id = key["createApiKey"]["secret"], key["createApiKey"]["apiKey"]["id"]
    sub = Subscription(api.client, {"X-API-Key": secret}, "subscription { eventAdded { type } }")
    settle()
    api.data("mutation($id: ID!) { revokeApiKey(id: $id) { id } }", {"id": key_id})
    message = sub.next()
    [error] = message["payload"]["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "revoked" in error["message"]
    sub.close()


# The pipeline's parts, over a store of their own.


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    native = NativeStore(SQLiteEngine(tmp_path / "one.db"))
    await native.start()
    yield native
    await native.close()


async def _append(store: NativeStore, n: int, org: str = "org-1") -> None:
    for i in range(n):
        await store.events.append(
            org, "entity_created", actor_ref=None, target_ref=None, metadata={"i": i}
        )


async def test_a_slow_subscriber_is_cut_off_and_publishing_never_waits(store: NativeStore) -> None:
    bus = LocalBus()
    relay = Relay(store, bus)
    live = LiveEvents(store, bus, queue_size=5)
    await relay.start()
    try:
        async with live.follow("org-1", None) as slow, live.follow("org-1", None) as fast:
            received: list[int] = []

            async def read_fast() -> None:
                async for event in fast:
                    if event is not None:
                        received.append(event.seq or 0)
                        if len(received) == 20:
                            return

            reader = asyncio.create_task(read_fast())
            await _append(store, 20)  # never waits for the subscriber that does not read
            await asyncio.wait_for(reader, 5)
            assert received == list(range(1, 21))
            assert live.dropped == 1
            with pytest.raises(SubscriberTooSlowError):
                async for _ in slow:
                    pass
    finally:
        await relay.stop()


async def test_an_organization_has_a_cap_on_subscriptions(store: NativeStore) -> None:
    live = LiveEvents(store, LocalBus(), per_organization=2)
    async with live.follow("org-1", None), live.follow("org-1", None):
        with pytest.raises(TooManySubscriptionsError):
            async with live.follow("org-1", None):
                pass
        async with live.follow("org-2", None):
            assert live.subscribers() == 3


async def test_events_committed_but_never_published_are_published_by_the_next_start(
    store: NativeStore,
) -> None:
    await _append(store, 3)  # committed with no relay listening: as if it died before publishing
    bus = LocalBus()
    live = LiveEvents(store, bus)
    async with live.follow("org-1", 0) as events:
        # Resuming reads from the store: everything since the cursor.
        got = [e.seq async for e in _take(events, 3)]
        assert got == [1, 2, 3]
    heard: list[int] = []
    bus.listen("org-1", lambda e: heard.append(e.seq or 0))
    relay = Relay(store, bus)
    await relay.start()  # the start's sweep
    await relay.stop()
    assert heard == [1, 2, 3]
    [head] = await store.events.stream_heads()
    assert (head.last_seq, head.published_seq) == (3, 3)


async def _take(events: Any, n: int) -> Any:
    count = 0
    async for event in events:
        if event is not None:
            yield event
            count += 1
            if count == n:
                return


# Replicas: two gateway processes over one store and one Redis.


@pytest.fixture
def replicas(tmp_path: Path, redis_url: str) -> Iterator[tuple[Gateway, Gateway, str]]:
    seed(tmp_path)
    a = Gateway(tmp_path, redis_url).start()
    b = Gateway(tmp_path, redis_url, settings={"relay_sweep_seconds": "3600"}).start()
    try:
        yield a, b, token(tmp_path)
    finally:
        a.stop()
        b.stop()


class SSE:
    """A graphql-sse stream read in a thread: each `next` event's id and data."""

    def __init__(self, url: str, token: str, query: str, last_event_id: str | None = None) -> None:
        self.events: list[tuple[str | None, dict[str, Any]]] = []
        self.opened = threading.Event()
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self._thread = threading.Thread(target=self._read, args=(url, headers, query), daemon=True)
        self._thread.start()
        assert self.opened.wait(10)
        time.sleep(0.3)

    def _read(self, url: str, headers: dict[str, str], query: str) -> None:
        try:
            with httpx.stream(
                "POST", f"{url}/graphql", json={"query": query}, headers=headers, timeout=30
            ) as response:
                assert response.status_code == 200
                self.opened.set()
                event_id = None
                for line in response.iter_lines():
                    if line.startswith("id: "):
                        event_id = line[4:]
                    elif line.startswith("data: "):
                        self.events.append((event_id, json.loads(line[6:])))
                        event_id = None
        except httpx.HTTPError:
            pass  # the gateway stopped at the end of the test

    def wait(self, n: int, seconds: float = 10) -> list[tuple[str | None, dict[str, Any]]]:
        deadline = time.monotonic() + seconds
        while len(self.events) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.events


def test_a_mutation_on_one_replica_reaches_a_subscriber_on_the_other(
    replicas: tuple[Gateway, Gateway, str],
) -> None:
    a, b, owner = replicas
    stream = SSE(b.url, owner, "subscription { eventAdded { type cursor target { id } } }")
    made = [a.graphql(owner, CREATE, {"n": f"On A {i}"}) for i in range(3)]
    made.append(b.graphql(owner, CREATE, {"n": "On B"}))
    got = stream.wait(4)
    ids = [m["data"]["createThing"]["id"] for m in made]  # type: ignore[index]
    assert [d["data"]["eventAdded"]["target"]["id"] for _, d in got] == ids
    assert [event_id for event_id, _ in got] == [d["data"]["eventAdded"]["cursor"] for _, d in got]


def test_an_event_left_unpublished_by_a_killed_gateway_arrives_after_its_restart(
    replicas: tuple[Gateway, Gateway, str], tmp_path: Path
) -> None:
    a, b, owner = replicas
    stream = SSE(b.url, owner, "subscription { eventAdded { type target { id } } }")
    a.kill()

    async def commit_without_publishing() -> str:
        # What a gateway killed between commit and publish leaves: a committed, numbered
        # event that no relay has published.
        settings = load_settings(env="test", data_dir=tmp_path)
        async with started_store(settings) as native:
            org = await native.organizations.get_by_slug("acme")
            assert org is not None
            event = await native.events.append(
                org.id, "entity_updated", actor_ref=None, target_ref=None, metadata={}
            )
            return str(event.seq)

    asyncio.run(commit_without_publishing())
    time.sleep(1.0)
    assert stream.events == []  # b's own sweep is off: nobody has published it yet
    a.start()
    got = stream.wait(1)
    assert [d["data"]["eventAdded"]["type"] for _, d in got] == ["entity_updated"]


def test_an_sse_client_resumes_with_last_event_id(replicas: tuple[Gateway, Gateway, str]) -> None:
    a, b, owner = replicas
    query = "subscription { eventAdded { target { id } } }"
    first = SSE(b.url, owner, query)
    a.graphql(owner, CREATE, {"n": "Seen"})
    [(last_id, _)] = first.wait(1)
    missed = a.graphql(owner, CREATE, {"n": "Missed"})
    again = SSE(b.url, owner, query, last_event_id=last_id)
    got = again.wait(1)
    assert got[0][1]["data"]["eventAdded"]["target"]["id"] == missed["data"]["createThing"]["id"]  # type: ignore[index]


def test_metrics_count_subscribers_and_events(api: Api) -> None:
    sub = Subscription(api.client, bearer(api), "subscription { eventAdded { type } }")
    settle()
    created(api, "Counted")
    sub.next()
    metrics = api.client.get("/metrics").text
    assert "one_subscribers 1.0" in metrics
    published = next(
        line for line in metrics.splitlines() if line.startswith("one_events_published_total")
    )
    assert float(published.split()[-1]) >= 1
    sub.close()


def test_an_event_is_executed_once_per_answer_and_each_role_gets_its_own(api: Api) -> None:
    from resolvers import shared_events

    query = "subscription { eventAdded { type metadata actor { name } } }"
    owners = [Subscription(api.client, bearer(api), query) for _ in range(3)]
    staff = Subscription(api.client, bearer(api, Role.ORG_USER), query)
    settle()
    before = shared_events.executions
    api.data('mutation { createApiKey(name: "seen", role: CUSTOMER) { secret } }')
    for_owners = [s.next()["payload"]["data"]["eventAdded"] for s in owners]
    for_staff = staff.next()["payload"]["data"]["eventAdded"]
    assert shared_events.executions - before == 2  # one per role, not one per subscriber
    assert for_owners[0] == for_owners[1] == for_owners[2]
    assert set(for_owners[0]["metadata"]) > {"key_id"}  # owners see the details
    assert set(for_staff["metadata"]) == {"key_id"}  # an org user only the key's id
    assert for_staff["actor"] == for_owners[0]["actor"] == {"name": "Olivia Owner"}
    for s in [*owners, staff]:
        s.close()
