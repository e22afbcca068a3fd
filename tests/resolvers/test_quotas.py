"""A plan's limits: things, members and API calls per day."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api

CREATE = 'mutation($n: String!) { createThing(input: {type: "task", name: $n}) { id } }'
ADD = """mutation($e: String!) { addMember(input: {email: $e, name: "N", role: CUSTOMER}) {
  person { id } } }"""


def set_limits(api: Api, slug: str, **limits: Any) -> None:
    async def update() -> None:
        org = await api.store.organizations.get_by_slug(slug)
        assert org is not None
        async with api.store.engine.transaction() as tx:
            await tx.update("organizations", org.id, {"limits": {**org.limits, **limits}})

    api.run(update)


def test_things_past_the_plan_are_refused_and_not_written(api: Api) -> None:
    set_limits(api, "acme", things=11)  # acme has 9
    for name in ("ten", "eleven"):
        api.data(CREATE, {"n": name})
    error = api.error(CREATE, {"n": "twelve"})
    assert error["extensions"] == {
        **error["extensions"],
        "code": "QUOTA_EXCEEDED",
        "quota": "things",
        "limit": 11,
        "used": 11,
    }
    usage = api.data("{ organization { usage { things } } }")["organization"]["usage"]
    assert usage["things"] == 11
    created = api.data('{ events(type: "entity_created") { totalCount } }')["events"]
    assert created["totalCount"] == 11  # no event for the refused one either
    assert "errors" not in api.post(CREATE, {"n": "globex is not limited"}, org="globex")


def test_members_past_the_plan_are_refused(api: Api) -> None:
    set_limits(api, "acme", members=5)  # acme has 4
    api.data(ADD, {"e": "fifth@acme.example"})
    error = api.error(ADD, {"e": "sixth@acme.example"})
    assert error["extensions"]["code"] == "QUOTA_EXCEEDED"
    assert error["extensions"]["quota"] == "members" and error["extensions"]["limit"] == 5


def test_api_calls_per_day(api: Api) -> None:
    set_limits(api, "acme", api_calls_per_day=5)
    for _ in range(4):
        api.data("{ me { role } }")
    usage = api.data("{ organization { usage { apiCallsToday } } }")["organization"]["usage"]
    assert usage["apiCallsToday"] == 5
    error = api.error("{ me { role } }")
    assert error["extensions"] == {
        **error["extensions"],
        "code": "QUOTA_EXCEEDED",
        "quota": "api_calls_per_day",
        "limit": 5,
    }
    assert api.data("{ me { role } }", org="globex")["me"]["role"] == "ORG_OWNER"
