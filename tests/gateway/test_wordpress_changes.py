"""WordPress change detection against the real WordPress: posts are changed behind the
gateway's back (through WordPress's own REST API, or PHP), then a round of polling runs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.wordpress_changes import Round, WordPressChanges
from providers.native.change_watermarks import ChangeWatermark, ChangeWatermarks
from providers.native.events import EventQuery
from providers.records import Event
from tests.conftest import Api, free_port
from tests.providers.gateways import gateway_api, route
from tests.wordpress import WordPress

EVENTS = """query($target: ID!) { events(targetId: $target, first: 50) {
  totalCount edges { node { type metadata actor { id } target { id } } } } }"""


@pytest.fixture
def wp_api(tmp_path: Path, wordpress: WordPress) -> Iterator[Api]:
    # No poller of the app's own: each test runs its rounds itself.
    with gateway_api(tmp_path, wordpress_poll_seconds=0) as api:
        route(api, "wordpress", wordpress.config())
        yield api


@pytest.fixture
def rest(wordpress: WordPress) -> Iterator[httpx.Client]:
    """WordPress's REST API as the editor: changes the gateway knows nothing of."""
    auth = (wordpress.username, wordpress.application_password)
    with httpx.Client(base_url=wordpress.url, auth=auth, timeout=30) as client:
        yield client


def call(rest: httpx.Client, method: str, route: str, **kw: Any) -> dict[str, Any]:
    response = rest.request(method, "/", params={"rest_route": route, **kw.pop("params", {})}, **kw)
    assert response.status_code < 300, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def made(rest: httpx.Client) -> Iterator[list[int]]:
    """Ids of posts a test made; deleted for good at its end, so the seed stays as it was."""
    ids: list[int] = []
    yield ids
    for wp_id in ids:
        rest.delete("/", params={"rest_route": f"/wp/v2/posts/{wp_id}", "force": "true"})


def new_post(rest: httpx.Client, made: list[int], title: str) -> dict[str, Any]:
    post = call(rest, "POST", "/wp/v2/posts", json={"title": title, "status": "draft"})
    made.append(post["id"])
    return post


def next_second() -> None:
    # WordPress keeps time in whole seconds: two changes of one post within one second are
    # one change to anyone who polls.
    time.sleep(1.1)


def poller(api: Api, **kw: Any) -> WordPressChanges:
    return WordPressChanges(api.store, api.client.app.state.providers, seconds=60, **kw)  # type: ignore[attr-defined]


def poll(api: Api, changes: WordPressChanges) -> Round:
    result: Round = api.run(changes.poll_once)
    return result


def org_id(api: Api, slug: str = "acme") -> str:
    async def find() -> str:
        org = await api.store.organizations.get_by_slug(slug)
        assert org is not None
        return org.id

    result: str = api.run(find)
    return result


def watermark(api: Api) -> ChangeWatermark:
    found = api.run(ChangeWatermarks(api.store.engine).get, org_id(api), "wordpress")
    assert found is not None
    return found  # type: ignore[no-any-return]


def polled_events(api: Api, wp_id: int) -> list[Event]:
    query = EventQuery(target_ref=f"thing.wordpress.post-{wp_id}", first=100)
    return api.run(api.store.events.page, org_id(api), query).items  # type: ignore[no-any-return]


def all_polled(api: Api) -> list[Event]:
    page = api.run(api.store.events.page, org_id(api), EventQuery(first=100))
    return [e for e in page.items if e.metadata.get("source") == "poll"]


def version(post: dict[str, Any]) -> str:
    return datetime.fromisoformat(post["modified_gmt"] + "+00:00").isoformat()


def test_the_first_poll_sets_the_mark_and_records_nothing(
    wp_api: Api, wordpress: WordPress
) -> None:
    changes = poller(wp_api)
    assert poll(wp_api, changes) == Round(polled=1)
    mark = watermark(wp_api)
    seeded = {f"post-{i}" for ids in wordpress.seed["posts"].values() for i in ids}
    assert seeded | {f"page-{i}" for i in wordpress.seed["pages"]} <= mark.known
    assert mark.mark is not None and mark.at_mark
    # The mark's own second is read again each round, and what was seen there is left out.
    assert poll(wp_api, changes) == Round(polled=1)
    assert all_polled(wp_api) == []


def test_an_edit_in_wordpress_becomes_one_event(
    wp_api: Api, rest: httpx.Client, made: list[int]
) -> None:
    post = new_post(rest, made, "Polled")
    changes = poller(wp_api)
    poll(wp_api, changes)
    next_second()
    edited = call(rest, "POST", f"/wp/v2/posts/{post['id']}", json={"title": "Polled, edited"})
    assert poll(wp_api, changes) == Round(polled=1, recorded=1)
    assert poll(wp_api, changes) == Round(polled=1)  # and only once
    target = f"thing.wordpress.post-{post['id']}"
    events = wp_api.data(EVENTS, {"target": target})["events"]
    assert events["totalCount"] == 1
    node = events["edges"][0]["node"]
    assert node["type"] == "entity_updated" and node["actor"] is None
    assert node["target"] == {"id": target}
    assert node["metadata"] == {
        "provider": "wordpress",
        "thing_type": "blog_post",
        "source": "poll",
        "version": version(edited),
    }


def test_created_trashed_and_deleted_in_wordpress(
    wp_api: Api, rest: httpx.Client, made: list[int]
) -> None:
    changes = poller(wp_api, relist_every=1)
    poll(wp_api, changes)
    post = new_post(rest, made, "Short-lived")
    assert poll(wp_api, changes).recorded == 1
    next_second()
    trashed = call(rest, "DELETE", f"/wp/v2/posts/{post['id']}")
    assert trashed["status"] == "trash"
    assert poll(wp_api, changes).recorded == 1
    call(rest, "DELETE", f"/wp/v2/posts/{post['id']}", params={"force": "true"})
    assert poll(wp_api, changes).recorded == 1
    events = polled_events(wp_api, post["id"])
    assert [e.type for e in reversed(events)] == [
        "entity_created",
        "entity_archived",
        "entity_deleted",
    ]
    assert events[1].metadata["version"] == version(trashed)
    assert events[0].metadata == {
        "provider": "wordpress",
        "thing_type": "blog_post",
        "source": "poll",
    }
    assert f"post-{post['id']}" not in watermark(wp_api).known
    assert poll(wp_api, changes).recorded == 0


def test_the_gateways_own_edit_is_not_recorded_twice(
    wp_api: Api, rest: httpx.Client, made: list[int]
) -> None:
    post = new_post(rest, made, "Edited through the gateway")
    changes = poller(wp_api)
    poll(wp_api, changes)
    next_second()
    target = f"thing.wordpress.post-{post['id']}"
    update = """mutation($id: ID!) { updateThing(id: $id, input: {name: "Renamed"}) { name } }"""
    assert wp_api.data(update, {"id": target})["updateThing"]["name"] == "Renamed"
    assert poll(wp_api, changes) == Round(polled=1, echoes=1)
    events = wp_api.data(EVENTS, {"target": target})["events"]["edges"]
    assert [e["node"]["type"] for e in events] == ["entity_updated"]
    assert events[0]["node"]["actor"] is not None  # the gateway's event, not the poller's


def test_a_restart_neither_repeats_nor_loses_changes(
    wp_api: Api, rest: httpx.Client, made: list[int]
) -> None:
    first, second = new_post(rest, made, "One"), new_post(rest, made, "Two")
    poll(wp_api, poller(wp_api))
    next_second()
    call(rest, "POST", f"/wp/v2/posts/{first['id']}", json={"title": "One, edited"})
    assert poll(wp_api, poller(wp_api)).recorded == 1
    call(rest, "POST", f"/wp/v2/posts/{second['id']}", json={"title": "Two, edited"})
    restarted = poller(wp_api)
    assert poll(wp_api, restarted).recorded == 1  # the second edit, whatever its second
    assert poll(wp_api, restarted).recorded == 0
    assert len(polled_events(wp_api, first["id"])) == len(polled_events(wp_api, second["id"])) == 1


def test_a_change_in_the_marks_own_second_is_not_missed(
    wp_api: Api, wordpress: WordPress, rest: httpx.Client, made: list[int]
) -> None:
    # A post changed in the second the mark stands at, after the poll that set it: WordPress's
    # `modified_after` is strict, so only a poller that reads that second again finds it.
    late = new_post(rest, made, "Late")
    next_second()
    seen = new_post(rest, made, "Seen")
    changes = poller(wp_api)
    poll(wp_api, changes)
    mark = watermark(wp_api)
    assert mark.mark is not None and f"post-{seen['id']}" in mark.at_mark
    at = mark.mark.strftime("%Y-%m-%d %H:%M:%S")
    set_modified(wordpress, [late["id"]], at)
    assert poll(wp_api, changes).recorded == 1
    [event] = polled_events(wp_api, late["id"])
    assert event.type == "entity_updated" and event.metadata["version"] == mark.mark.isoformat()
    assert polled_events(wp_api, seen["id"]) == []


def test_more_changes_in_one_second_than_a_page_holds(
    wp_api: Api, wordpress: WordPress, rest: httpx.Client, made: list[int]
) -> None:
    changes = poller(wp_api)
    poll(wp_api, changes)
    next_second()
    # An import: 130 posts, all changed in the same second.
    made.extend(
        json.loads(
            wordpress._php(
                "$ids = []; for ($i = 0; $i < 130; $i++) { $ids[] = wp_insert_post("
                "['post_title' => \"Imported $i\", 'post_status' => 'draft']); }"
                "echo json_encode($ids);"
            )
        )
    )
    second = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 2))
    set_modified(wordpress, made, second)
    assert poll(wp_api, changes).recorded == 130
    assert poll(wp_api, changes).recorded == 0
    assert {f"post-{i}" for i in made} <= watermark(wp_api).known


def set_modified(wordpress: WordPress, ids: list[int], at: str) -> None:
    """Set the posts' modification time (GMT; the test site's zone is UTC) behind WordPress."""
    wordpress._php(
        f"global $wpdb; foreach ({json.dumps(ids)} as $id) {{ $wpdb->update($wpdb->posts, "
        f"['post_modified' => '{at}', 'post_modified_gmt' => '{at}'], ['ID' => $id]); "
        "clean_post_cache($id); }"
    )


def test_one_replica_polls_a_site(wp_api: Api, redis_url: str) -> None:
    first = poller(wp_api, redis_url=redis_url)
    second = poller(wp_api, redis_url=redis_url)
    try:
        assert poll(wp_api, first).polled == 1
        assert poll(wp_api, second) == Round(skipped=1)
        assert poll(wp_api, first).polled == 1  # held from round to round
        wp_api.run(first.stop)  # gives its sites back
        assert poll(wp_api, second).polled == 1
    finally:
        wp_api.run(first.stop)
        wp_api.run(second.stop)


def test_a_failing_site_holds_up_no_other_and_the_loop_goes_on(
    wp_api: Api, rest: httpx.Client, made: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    dead = {"base_url": f"http://127.0.0.1:{free_port()}", "username": "editor"}
    route(wp_api, "wordpress", {**dead, "application_password": "secret-never-logged"}, "globex")
    post = new_post(rest, made, "Still watched")
    changes = WordPressChanges(
        wp_api.store,
        wp_api.client.app.state.providers,  # type: ignore[attr-defined]
        seconds=0.2,
    )
    assert poll(wp_api, changes) == Round(polled=1, failed=1)
    next_second()
    call(rest, "POST", f"/wp/v2/posts/{post['id']}", json={"title": "Seen by the loop"})
    changed = time.monotonic()
    wp_api.run(changes.start)
    try:
        while not polled_events(wp_api, post["id"]):
            assert time.monotonic() - changed < 10, "the loop did not see the change"
            time.sleep(0.05)
        delay = time.monotonic() - changed
    finally:
        wp_api.run(changes.stop)
    assert delay < 0.2 + 5  # one interval and one round's requests
    assert "secret-never-logged" not in caplog.text
    assert "not read" in caplog.text


def test_the_app_polls_when_an_interval_is_set(
    tmp_path: Path, wordpress: WordPress, rest: httpx.Client, made: list[int]
) -> None:
    post = new_post(rest, made, "Watched by the app")
    with gateway_api(tmp_path, wordpress_poll_seconds=0.2) as api:
        route(api, "wordpress", wordpress.config())
        deadline = time.monotonic() + 10
        while api.run(ChangeWatermarks(api.store.engine).get, org_id(api), "wordpress") is None:
            assert time.monotonic() < deadline, "no first poll"
            time.sleep(0.05)
        next_second()
        call(rest, "POST", f"/wp/v2/posts/{post['id']}", json={"title": "Seen by the app"})
        while not polled_events(api, post["id"]):
            assert time.monotonic() < deadline + 2, "the change was not seen"
            time.sleep(0.05)
