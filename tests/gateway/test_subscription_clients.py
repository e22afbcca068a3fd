"""Subscriptions driven by real client libraries against a real gateway process: Python's
`gql` (graphql-transport-ws and the legacy graphql-ws), and the npm `graphql-ws` and
`graphql-sse` clients under Node (tests/clients/*.mjs), plus SSE resume with `Last-Event-ID`
over plain httpx streaming and the protocol's edges.

Subscriptions that must not miss an event start `after:` (or `Last-Event-ID`) the newest
cursor, so a mutation made before the server has set the subscription up is still delivered.
npm or node missing fails these tests: they never skip.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from gql import Client, GraphQLRequest, gql
from gql.transport.exceptions import TransportError
from gql.transport.websockets import WebsocketsTransport

from tests.clients import npm
from tests.processes import Gateway, seed, token

HEARTBEAT = 1.0
SETTINGS = {
    "heartbeat_seconds": str(HEARTBEAT),
    "ws_init_timeout_seconds": "1",
    "subscriptions_per_connection": "2",
}
TRANSPORT_WS = WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL  # "graphql-transport-ws"
LEGACY_WS = WebsocketsTransport.APOLLO_SUBPROTOCOL  # "graphql-ws"
_names = itertools.count(1)


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("subscription-clients")
    seed(path)
    return path


@pytest.fixture(scope="module")
def owner(data_dir: Path) -> str:
    return token(data_dir, "acme", "org_owner")


@pytest.fixture(scope="module")
def gateway(data_dir: Path) -> Iterator[Gateway]:
    gw = Gateway(data_dir, settings=SETTINGS).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def modules() -> Path:
    """graphql, graphql-ws, graphql-sse and ws from npm; raises (fails) when npm cannot."""
    return npm.installed()


def ws_url(gateway: Gateway) -> str:
    return gateway.url.replace("http://", "ws://") + "/graphql"


# --- the gateway over HTTP -----------------------------------------------------------------


def data(gateway: Gateway, tok: str, query: str, **variables: object) -> dict[str, Any]:
    body = gateway.graphql(tok, query, variables)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]  # type: ignore[assignment]
    return result


def newest_cursor(gateway: Gateway, tok: str) -> str:
    page = data(gateway, tok, "{ events(first: 1) { edges { node { cursor } } } }")
    cursor: str = page["events"]["edges"][0]["node"]["cursor"]
    assert cursor.isdigit()
    return cursor


def create_thing(gateway: Gateway, tok: str, type: str = "course") -> tuple[str, str]:
    """A new thing's id and name."""
    name = f"{type} {next(_names)}"
    created = data(
        gateway,
        tok,
        "mutation($input: CreateThingInput!) { createThing(input: $input) { id name } }",
        input={"type": type, "name": name},
    )["createThing"]
    assert created["name"] == name
    return created["id"], name


def rename_thing(gateway: Gateway, tok: str, id: str, name: str) -> None:
    renamed = data(
        gateway,
        tok,
        "mutation($id: ID!, $name: String) { updateThing(id: $id, input: {name: $name}) {"
        " id name } }",
        id=id,
        name=name,
    )["updateThing"]
    assert renamed == {"id": id, "name": name}


EVENT_ADDED = """
subscription($after: String, $types: [String!]) {
  eventAdded(after: $after, types: $types) { cursor type target { id } }
}
"""
THING_CHANGED = """
subscription($after: String, $type: String) {
  thingChanged(after: $after, type: $type) {
    changeType id cursor event { cursor type } thing { id name type }
  }
}
"""


# --- a Node client as a child process ------------------------------------------------------


class NodeClient:
    """`node tests/clients/<script> '<config>'`, its JSON lines read as they come."""

    def __init__(self, script: str, config: dict[str, Any], modules: Path) -> None:
        self.process = npm.node(script, json.dumps(config), modules=modules)
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip():
                self.lines.put(json.loads(line))
        self.lines.put(None)  # the process closed its stdout

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr.extend(self.process.stderr)

    def next(self, kind: str | None = None, timeout: float = 10) -> dict[str, Any]:
        """The next line (of `kind`, skipping others); every line read is kept in `seen`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self.process.poll()
                raise AssertionError(
                    f"no {kind or 'further'!r} line from {Path(self.process.args[1]).name} within "
                    f"{timeout}s (exit {self.process.returncode}); saw {self.seen}; "
                    f"stderr: {''.join(self.stderr)[-2000:]}"
                )
            self.seen.append(line)
            if kind is None or line["kind"] == kind:
                return line

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def wait(self, timeout: float = 10) -> int:
        return self.process.wait(timeout)

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


def graphql_ws(modules: Path, gateway: Gateway, **config: Any) -> NodeClient:
    return NodeClient("subscribe_ws.mjs", {"url": ws_url(gateway), **config}, modules)


def graphql_sse(modules: Path, gateway: Gateway, **config: Any) -> NodeClient:
    url = f"{gateway.url}/graphql"
    return NodeClient("subscribe_sse.mjs", {"url": url, **config}, modules)


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


# --- gql (Python) --------------------------------------------------------------------------


def gql_transport(gateway: Gateway, tok: str, protocol: str, **options: Any) -> WebsocketsTransport:
    return WebsocketsTransport(
        url=ws_url(gateway), init_payload=bearer(tok), subprotocols=[protocol], **options
    )


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_gql_receives_event_added_live(gateway: Gateway, owner: str, protocol: str) -> None:
    """No `after:`: only events committed once the subscription is live. Things are created
    until the first event arrives; from then on each new thing's event is the next one."""
    transport = gql_transport(gateway, owner, protocol)
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:
        assert transport.subprotocol == protocol
        received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def listen() -> None:
            request = GraphQLRequest(EVENT_ADDED, variable_values={"types": ["entity_created"]})
            async for result in session.subscribe(request):
                await received.put(result["eventAdded"])

        listening = asyncio.create_task(listen())
        try:
            created: list[str] = []
            first = None
            for _ in range(40):  # until the subscription is live
                created.append((await asyncio.to_thread(create_thing, gateway, owner))[0])
                try:
                    first = await asyncio.wait_for(received.get(), 0.5)
                    break
                except TimeoutError:
                    assert not listening.done(), listening
            assert first is not None, "no event within 20 s of creating things"
            assert first["type"] == "entity_created" and first["target"]["id"] in created
            while not received.empty() or first["target"]["id"] != created[-1]:
                first = await asyncio.wait_for(received.get(), 5)  # the ones still in flight

            thing_id, _ = await asyncio.to_thread(create_thing, gateway, owner)
            event = await asyncio.wait_for(received.get(), 10)
            assert event["type"] == "entity_created"
            assert event["target"] == {"id": thing_id}
            assert int(event["cursor"]) > int(first["cursor"])
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_gql_thing_changed_gives_created_then_updated(
    gateway: Gateway, owner: str, protocol: str
) -> None:
    after = await asyncio.to_thread(newest_cursor, gateway, owner)
    transport = gql_transport(gateway, owner, protocol)
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:
        assert transport.subprotocol == protocol
        changes = session.subscribe(
            GraphQLRequest(THING_CHANGED, variable_values={"after": after, "type": "course"})
        )
        # A product first: not a course, so not a change of this subscription.
        await asyncio.to_thread(create_thing, gateway, owner, "product")
        thing_id, name = await asyncio.to_thread(create_thing, gateway, owner, "course")
        await asyncio.to_thread(rename_thing, gateway, owner, thing_id, name + " (renamed)")

        created = (await asyncio.wait_for(anext(changes), 10))["thingChanged"]
        updated = (await asyncio.wait_for(anext(changes), 10))["thingChanged"]
        await changes.aclose()

    assert created["changeType"] == "CREATED" and created["id"] == thing_id
    assert created["event"] == {"cursor": created["cursor"], "type": "entity_created"}
    assert created["thing"]["id"] == thing_id and created["thing"]["type"] == "course"
    assert updated["changeType"] == "UPDATED" and updated["id"] == thing_id
    assert updated["event"] == {"cursor": updated["cursor"], "type": "entity_updated"}
    assert updated["thing"] == {"id": thing_id, "name": name + " (renamed)", "type": "course"}
    assert int(after) < int(created["cursor"]) < int(updated["cursor"])


async def test_gql_answers_server_pings_within_the_heartbeat(gateway: Gateway, owner: str) -> None:
    transport = gql_transport(gateway, owner, TRANSPORT_WS)
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:
        started = time.monotonic()
        await asyncio.wait_for(transport.ping_received.wait(), HEARTBEAT * 3)
        assert time.monotonic() - started < HEARTBEAT * 2
        # The connection is still good after the ping gql answered.
        result = await session.execute(gql("{ me { role } }"))
        assert result == {"me": {"role": "ORG_OWNER"}}


async def test_gql_legacy_protocol_keeps_alive(gateway: Gateway, owner: str) -> None:
    """graphql-ws (legacy) sends `ka`; gql closes a connection that is silent for longer than
    `keep_alive_timeout`, so an idle connection that outlives it twice was kept alive. (The
    legacy protocol runs subscriptions only here, so the check afterwards is one.)"""
    before_newest = str(int(await asyncio.to_thread(newest_cursor, gateway, owner)) - 1)
    transport = gql_transport(gateway, owner, LEGACY_WS, keep_alive_timeout=HEARTBEAT * 2)
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:
        await asyncio.sleep(HEARTBEAT * 4.5)
        events = session.subscribe(
            GraphQLRequest(EVENT_ADDED, variable_values={"after": before_newest})
        )
        event = (await asyncio.wait_for(anext(events), 10))["eventAdded"]
        await events.aclose()
    assert int(event["cursor"]) == int(before_newest) + 1


async def test_gql_legacy_protocol_refuses_bad_credentials(gateway: Gateway) -> None:
    """The legacy protocol answers a refused connection_init with `connection_error`."""
    transport = gql_transport(gateway, "forged.token.here", LEGACY_WS)
    with pytest.raises(TransportError) as refused:
        async with Client(transport=transport, fetch_schema_from_transport=False):
            pass
    assert "not valid" in str(refused.value)


# --- graphql-ws (npm) ----------------------------------------------------------------------


def test_graphql_ws_client_receives_events_and_changes(
    gateway: Gateway, owner: str, modules: Path
) -> None:
    after = newest_cursor(gateway, owner)
    subscriptions = [
        {
            "query": EVENT_ADDED,
            "variables": {"after": after, "types": ["entity_created", "entity_updated"]},
        },
        {"query": THING_CHANGED, "variables": {"after": after, "type": "course"}},
    ]
    with graphql_ws(
        modules, gateway, connectionParams=bearer(owner), subscriptions=subscriptions, count=4
    ) as client:
        client.next("connected")
        thing_id, name = create_thing(gateway, owner)
        rename_thing(gateway, owner, thing_id, "renamed " + name)
        results = [client.next("next") for _ in range(4)]
        assert client.wait() == 0

    events = [r["payload"]["data"]["eventAdded"] for r in results if r["sub"] == 0]
    changes = [r["payload"]["data"]["thingChanged"] for r in results if r["sub"] == 1]
    assert [(e["type"], e["target"]["id"]) for e in events] == [
        ("entity_created", thing_id),
        ("entity_updated", thing_id),
    ]
    assert [(c["changeType"], c["thing"]["name"]) for c in changes] == [
        ("CREATED", name),
        ("UPDATED", "renamed " + name),
    ]
    # One stream, one order: each change is the event with the same cursor.
    assert [c["cursor"] for c in changes] == [e["cursor"] for e in events]
    assert all("errors" not in r["payload"] for r in results)


def test_graphql_ws_client_bad_credentials_close_4403(gateway: Gateway, modules: Path) -> None:
    with graphql_ws(
        modules,
        gateway,
        connectionParams={"Authorization": "Bearer forged.token.here"},
        subscriptions=[{"query": EVENT_ADDED}],
        untilClosed=True,
    ) as client:
        closed = client.next("closed")
        assert client.wait() == 0
    assert closed["code"] == 4403
    assert not [line for line in client.seen if line["kind"] in ("connected", "next")]


def test_graphql_ws_client_without_connection_init_in_time_closes_4408(
    gateway: Gateway, owner: str, modules: Path
) -> None:
    started = time.monotonic()
    with graphql_ws(
        modules, gateway, connectionParams=bearer(owner), initDelayMs=3000, untilClosed=True
    ) as client:
        closed = client.next("closed")
        elapsed = time.monotonic() - started
    assert closed["code"] == 4408
    assert elapsed < 3, "closed by the init timeout (1 s), not after the client's own init"


def test_graphql_ws_client_duplicate_subscription_id_closes_4409(
    gateway: Gateway, owner: str, modules: Path
) -> None:
    after = newest_cursor(gateway, owner)
    subscription = {"query": EVENT_ADDED, "variables": {"after": after}}
    with graphql_ws(
        modules,
        gateway,
        connectionParams=bearer(owner),
        subscriptions=[subscription, subscription],
        fixedId="same-id",
        untilClosed=True,
    ) as client:
        closed = client.next("closed")
    assert closed["code"] == 4409


def test_graphql_ws_client_too_many_subscriptions_on_a_connection(
    gateway: Gateway, owner: str, modules: Path
) -> None:
    """ONE_SUBSCRIPTIONS_PER_CONNECTION=2: the third is refused with TOO_MANY_SUBSCRIPTIONS,
    and the two others go on receiving."""
    after = newest_cursor(gateway, owner)
    subscription = {
        "query": EVENT_ADDED,
        "variables": {"after": after, "types": ["entity_created"]},
    }
    with graphql_ws(
        modules,
        gateway,
        connectionParams=bearer(owner),
        subscriptions=[subscription] * 3,
        timeoutMs=15000,
    ) as client:
        client.next("connected")
        refused = None
        deadline = time.monotonic() + 10
        while refused is None and time.monotonic() < deadline:
            line = client.next(timeout=max(0.1, deadline - time.monotonic()))
            if line["kind"] == "next" and "errors" in line["payload"]:
                refused = (line["sub"], line["payload"]["errors"])
            elif line["kind"] == "error":
                refused = (line["sub"], line["error"])
        assert refused is not None, client.seen
        sub, errors = refused
        assert isinstance(errors, list), errors
        assert [e["extensions"]["code"] for e in errors] == ["TOO_MANY_SUBSCRIPTIONS"]
        assert all(isinstance(e.get("message"), str) for e in errors)

        thing_id, _ = create_thing(gateway, owner)
        got = [client.next("next") for _ in range(2)]
    assert sorted(line["sub"] for line in got) == sorted({0, 1, 2} - {sub})
    assert all(line["payload"]["data"]["eventAdded"]["target"]["id"] == thing_id for line in got)
    assert not [line for line in client.seen if line["kind"] == "closed"], client.seen


def test_graphql_ws_client_receives_server_pings_within_the_heartbeat(
    gateway: Gateway, owner: str, modules: Path
) -> None:
    with graphql_ws(modules, gateway, connectionParams=bearer(owner), untilPings=2) as client:
        client.next("connected")
        started = time.monotonic()
        client.next("ping", timeout=HEARTBEAT * 3)
        client.next("ping", timeout=HEARTBEAT * 3)
        elapsed = time.monotonic() - started
        assert client.wait() == 0
    assert elapsed < HEARTBEAT * 3
    assert not [line for line in client.seen if line["kind"] == "closed"]


def test_graphql_ws_client_bad_cursor_is_bad_user_input(
    gateway: Gateway, owner: str, modules: Path
) -> None:
    with graphql_ws(
        modules,
        gateway,
        connectionParams=bearer(owner),
        subscriptions=[{"query": EVENT_ADDED, "variables": {"after": "not-a-cursor"}}],
    ) as client:
        line = client.next("next")
        client.next("complete")
    errors = line["payload"]["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["BAD_USER_INPUT"]
    assert errors[0]["extensions"].get("field") == "after"


# --- graphql-sse (npm) ---------------------------------------------------------------------


def test_graphql_sse_client_receives_events(gateway: Gateway, owner: str, modules: Path) -> None:
    after = newest_cursor(gateway, owner)
    with graphql_sse(
        modules,
        gateway,
        headers=bearer(owner),
        query=EVENT_ADDED,
        variables={"after": after, "types": ["entity_created"]},
        count=2,
    ) as client:
        client.next("request")
        first, _ = create_thing(gateway, owner)
        second, _ = create_thing(gateway, owner)
        results = [client.next("next")["payload"] for _ in range(2)]
        assert client.wait() == 0
    events = [r["data"]["eventAdded"] for r in results]
    assert [e["target"]["id"] for e in events] == [first, second]
    assert int(after) < int(events[0]["cursor"]) < int(events[1]["cursor"])


def test_graphql_sse_client_does_not_send_last_event_id_when_it_reconnects(
    gateway: Gateway, owner: str, modules: Path
) -> None:
    """graphql-sse 2.x in distinct connections mode retries a dropped stream with the same
    request and no `Last-Event-ID`: its parser ignores `id:` lines."""
    after = newest_cursor(gateway, owner)
    with graphql_sse(
        modules,
        gateway,
        headers=bearer(owner),
        query=EVENT_ADDED,
        variables={"after": after, "types": ["entity_created"]},
        dropAfter=1,
        count=2,
    ) as client:
        assert client.next("request")["lastEventId"] is None
        create_thing(gateway, owner)
        client.next("next")
        client.next("dropped")
        client.send("reconnect")
        assert client.next("request")["lastEventId"] is None


def test_graphql_sse_client_resumes_with_last_event_id(
    gateway: Gateway, owner: str, modules: Path
) -> None:
    """The client's `headers` function sends the last cursor as `Last-Event-ID` when it
    reconnects; the query has no `after:`, so the header alone resumes the stream."""
    start = newest_cursor(gateway, owner)
    query = """
    subscription($types: [String!]) { eventAdded(types: $types) { cursor type target { id } } }
    """
    with graphql_sse(
        modules,
        gateway,
        headers={**bearer(owner), "Last-Event-ID": start},
        query=query,
        variables={"types": ["entity_created"]},
        dropAfter=2,
        resume=True,
        count=4,
    ) as client:
        assert client.next("request")["lastEventId"] == start
        ids = [create_thing(gateway, owner)[0] for _ in range(2)]
        seen = [client.next("next")["payload"]["data"]["eventAdded"] for _ in range(2)]
        client.next("dropped")
        missed, _ = create_thing(gateway, owner)  # while the client is away
        client.send("reconnect")
        assert client.next("request")["lastEventId"] == seen[-1]["cursor"]
        resumed = client.next("next")["payload"]["data"]["eventAdded"]
        live, _ = create_thing(gateway, owner)
        after_that = client.next("next")["payload"]["data"]["eventAdded"]
        assert client.wait() == 0
    assert [e["target"]["id"] for e in seen] == ids
    assert resumed["target"]["id"] == missed
    assert after_that["target"]["id"] == live


# --- SSE with httpx ------------------------------------------------------------------------


def sse_events(response: httpx.Response) -> Iterator[dict[str, str]]:
    """The events of an SSE stream: `event`, `data` and `id`, as the spec parses them."""
    event: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in event or "event" in event:
                yield event
            event = {}
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            event[name] = event[name] + "\n" + value if name == "data" and name in event else value


def sse_post(
    client: httpx.Client, gateway: Gateway, query: str, headers: dict[str, str], **variables: Any
) -> Any:
    return client.stream(
        "POST",
        f"{gateway.url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Accept": "text/event-stream", **headers},
    )


def test_sse_resumes_after_last_event_id_with_exactly_the_missed_event(
    gateway: Gateway, owner: str
) -> None:
    query = 'subscription { eventAdded(types: ["entity_created"]) { cursor target { id } } }'
    start = newest_cursor(gateway, owner)
    with httpx.Client(timeout=httpx.Timeout(10, read=10)) as http:
        with sse_post(http, gateway, query, {**bearer(owner), "Last-Event-ID": start}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = sse_events(stream)
            ids = [create_thing(gateway, owner)[0] for _ in range(2)]
            got = [next(events) for _ in range(2)]
        # disconnected
        missed, _ = create_thing(gateway, owner)
        with sse_post(
            http, gateway, query, {**bearer(owner), "Last-Event-ID": got[-1]["id"]}
        ) as stream:
            assert stream.status_code == 200
            events = sse_events(stream)
            resumed = next(events)
            live, _ = create_thing(gateway, owner)
            then = next(events)

    for event in [*got, resumed, then]:
        assert event["event"] == "next"
        payload = json.loads(event["data"])["data"]["eventAdded"]
        assert event["id"] == payload["cursor"], event  # the SSE id is the event's cursor
    targets = [json.loads(e["data"])["data"]["eventAdded"]["target"]["id"] for e in got]
    assert targets == ids
    assert json.loads(resumed["data"])["data"]["eventAdded"]["target"]["id"] == missed
    assert int(resumed["id"]) > int(got[-1]["id"])
    assert json.loads(then["data"])["data"]["eventAdded"]["target"]["id"] == live


def test_sse_without_credentials_is_401_json_with_a_code(gateway: Gateway) -> None:
    answer = httpx.post(
        f"{gateway.url}/graphql",
        json={"query": "subscription { eventAdded { cursor } }"},
        headers={"Accept": "text/event-stream"},
        timeout=10,
    )
    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith("application/json")
    errors = answer.json()["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["UNAUTHENTICATED"]


def test_sse_bad_cursor_is_bad_user_input_then_complete(gateway: Gateway, owner: str) -> None:
    query = 'subscription { eventAdded(after: "not-a-cursor") { cursor } }'
    with httpx.Client(timeout=10) as http, sse_post(http, gateway, query, bearer(owner)) as stream:
        assert stream.status_code == 200
        events = list(sse_events(stream))
    assert [e["event"] for e in events] == ["next", "complete"]
    errors = json.loads(events[0]["data"])["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["BAD_USER_INPUT"]
    assert "id" not in events[0]


def test_sse_get_subscribes_as_eventsource_does(gateway: Gateway, owner: str) -> None:
    """EventSource sends only GETs: a GET may subscribe, with `Last-Event-ID` to resume."""
    start = newest_cursor(gateway, owner)
    thing_id, _ = create_thing(gateway, owner)
    query = 'subscription { thingChanged(type: "course") { changeType id cursor } }'
    with (
        httpx.Client(timeout=10) as http,
        http.stream(
            "GET",
            f"{gateway.url}/graphql",
            params={"query": query},
            headers={"Accept": "text/event-stream", **bearer(owner), "Last-Event-ID": start},
        ) as stream,
    ):
        assert stream.status_code == 200
        event = next(sse_events(stream))
    change = json.loads(event["data"])["data"]["thingChanged"]
    assert (change["changeType"], change["id"]) == ("CREATED", thing_id)
    assert event["event"] == "next" and event["id"] == change["cursor"]


def test_sse_idle_stream_gets_heartbeat_comments(gateway: Gateway, owner: str) -> None:
    quiet, _ = create_thing(gateway, owner)  # nothing happens to it while we listen
    query = "subscription($id: ID) { eventAdded(targetId: $id) { cursor } }"
    with (
        httpx.Client(timeout=10) as http,
        sse_post(http, gateway, query, bearer(owner), id=quiet) as stream,
    ):
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(lines) == ":"  # at once: the stream is open
        started = time.monotonic()
        comments = 0
        for line in lines:
            assert not line.startswith(("event:", "data:")), line
            comments += line == ":"
            if comments == 2:
                break
    assert time.monotonic() - started < HEARTBEAT * 3


# --- frames no client sends: raw `websockets` ----------------------------------------------


async def closed_by(gateway: Gateway, frames: list[object], protocol: str = TRANSPORT_WS) -> Any:
    """The close frame the gateway answers `frames` with (messages before it are skipped)."""
    async with websockets.connect(ws_url(gateway), subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        for frame in frames:
            await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
    return closed.value.rcvd


async def test_subscribe_before_connection_ack_closes_4401(gateway: Gateway) -> None:
    subscribe = {"type": "subscribe", "id": "1", "payload": {"query": EVENT_ADDED}}
    assert (await closed_by(gateway, [subscribe])).code == 4401


async def test_second_connection_init_closes_4429(gateway: Gateway, owner: str) -> None:
    init = {"type": "connection_init", "payload": bearer(owner)}
    assert (await closed_by(gateway, [init, init])).code == 4429


@pytest.mark.parametrize("frame", ["not json", {"type": "no_such_type"}, {"id": "1"}])
async def test_a_bad_message_closes_4400(gateway: Gateway, owner: str, frame: object) -> None:
    init = {"type": "connection_init", "payload": bearer(owner)}
    assert (await closed_by(gateway, [init, frame])).code == 4400


def test_npm_clients_are_the_pinned_versions(modules: Path) -> None:
    for package in npm.CLIENTS:
        name, _, version = package.rpartition("@")
        manifest = json.loads((modules / name / "package.json").read_text())
        assert manifest["version"] == version
    done = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("v")
