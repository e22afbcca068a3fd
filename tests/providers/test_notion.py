"""The Notion provider against the emulator: reads, limits, writes, errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from providers.errors import (
    InvalidInputError,
    ProviderAuthError,
)
from providers.notion import NotionConfig, NotionProvider
from providers.provider import ListQuery
from providers.records import ThingStatus
from tests.emulators import Fault, serve
from tests.emulators.notion import NotionEmulator

TOKEN = "secret_provider_test"


@pytest.fixture
def notion() -> Iterator[tuple[NotionEmulator, str, str]]:
    emulator = NotionEmulator(token=TOKEN)
    database = emulator.add_database("Handbook")
    statuses = ["Draft", "Active", "Published"]
    for i in range(12):
        emulator.add_page(
            database,
            f"Chapter {i:02d}",
            status=statuses[i % 3],
            tags=["guide"],
            paragraphs=[f"Chapter {i} opens.", f"Chapter {i} ends."],
            edited=f"2025-{1 + i:02d}-01T00:00:00.000Z",
        )
    other = emulator.add_database("Someone else's")
    emulator.add_page(other, "Chapter from elsewhere")
    with serve(emulator.app) as url:
        yield emulator, url, database


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def provider(url: str, database: str, client: httpx.AsyncClient, **config: Any) -> NotionProvider:
    values = {"token": TOKEN, "database_id": database, "base_url": url, **config}
    return NotionProvider("org1", NotionConfig.model_validate(values), client)


def pages_of(emulator: NotionEmulator, database: str) -> list[str]:
    return [p["id"] for p in emulator.pages.values() if p["parent"]["database_id"] == database]


async def test_batch_get_is_one_request_per_page_and_content_only_when_asked(
    notion: tuple[NotionEmulator, str, str], client: httpx.AsyncClient
) -> None:
    emulator, url, database = notion
    ids = pages_of(emulator, database)[:3]
    elsewhere = next(p for p in emulator.pages if p not in pages_of(emulator, database))
    wanted = [ids[0], "00000000-0000-0000-0000-000000000000", ids[1], elsewhere, ids[0]]
    notion_provider = provider(url, database, client)  # one integration, one limiter
    found = await notion_provider.get_many(wanted, detail=False)
    assert emulator.requests == 4  # one GET per distinct page: Notion has no batch read
    assert [t.id if t else None for t in found] == [ids[0], None, ids[1], None, ids[0]]
    doc = found[0]
    assert doc is not None and doc.type == "document" and doc.provider == "notion"
    assert doc.name.startswith("Chapter") and doc.properties["url"].startswith(
        "https://www.notion.so/"
    )
    assert "content" not in doc.properties
    with_content = await notion_provider.get_many([ids[2]])
    assert emulator.requests == 6  # the page and its blocks
    assert emulator.rate_limited == 0
    assert with_content[0] is not None and "opens." in with_content[0].properties["content"]


async def test_query_filters(
    notion: tuple[NotionEmulator, str, str], client: httpx.AsyncClient
) -> None:
    _, url, database = notion
    notion_provider = provider(url, database, client)
    drafts = await notion_provider.page(ListQuery(type="document", status=ThingStatus.DRAFT))
    assert len(drafts.items) == 4 and {t.status for t in drafts.items} == {ThingStatus.DRAFT}
    from datetime import UTC, datetime

    recent = await notion_provider.page(
        ListQuery(type="document", modified_after=datetime(2025, 9, 15, tzinfo=UTC))
    )
    assert len(recent.items) == 3
    found = await notion_provider.page(ListQuery(type="document", search="chapter 07"))
    assert [t.name for t in found.items] == ["Chapter 07"]
    everywhere = await notion_provider.page(ListQuery(type="document", search="elsewhere"))
    assert everywhere.items == []  # search spans the workspace; only this database counts


async def test_a_burst_stays_within_three_requests_per_second(
    notion: tuple[NotionEmulator, str, str], client: httpx.AsyncClient
) -> None:
    emulator, url, database = notion
    ids = pages_of(emulator, database)
    started = time.monotonic()
    results = await asyncio.gather(
        *(
            provider_instance.get_many([i], detail=False)
            for provider_instance in [provider(url, database, client)]
            for i in ids
        )
    )
    elapsed = time.monotonic() - started
    assert all(r[0] is not None for r in results)
    assert emulator.rate_limited == 0  # twelve at once, and Notion never had to say "slow down"
    assert elapsed >= (len(ids) - 3) / 3 - 0.2  # a short burst, then 3 a second


async def test_retry_after_is_honoured(
    notion: tuple[NotionEmulator, str, str], client: httpx.AsyncClient
) -> None:
    emulator, url, database = notion
    emulator.fault = Fault(
        status=429,
        headers={"Retry-After": "1"},
        times=1,
        body=b'{"object":"error","status":429,"code":"rate_limited","message":"slow down"}',
    )
    started = time.monotonic()
    page = await provider(url, database, client).page(ListQuery(type="document", first=3))
    assert len(page.items) == 3 and time.monotonic() - started >= 1.0
    assert emulator.requests == 2


async def test_writes(notion: tuple[NotionEmulator, str, str], client: httpx.AsyncClient) -> None:
    emulator, url, database = notion
    notion_provider = provider(url, database, client)
    long = "x" * 4500
    made = await notion_provider.create(
        type="document",
        name="New chapter",
        status=ThingStatus.DRAFT,
        properties={"content": f"First.\n\n{long}"},
    )
    assert made.status is ThingStatus.DRAFT and made.name == "New chapter"
    stored = emulator.blocks[made.id]
    assert len(stored) == 2 and len(stored[1]["paragraph"]["rich_text"][0]["plain_text"]) == 4500
    archived = await notion_provider.change_status(made.id, ThingStatus.ARCHIVED)
    assert archived.status is ThingStatus.ARCHIVED and emulator.pages[made.id]["archived"] is True
    with pytest.raises(InvalidInputError, match="101 paragraphs"):
        await notion_provider.create(
            type="document",
            name="Huge",
            status=ThingStatus.DRAFT,
            properties={"content": "\n\n".join(["p"] * 101)},
        )


async def test_wrong_token_and_malformed_ids(
    notion: tuple[NotionEmulator, str, str], client: httpx.AsyncClient
) -> None:
    _, url, database = notion
    wrong = provider(url, database, client, token="secret_wrong_value")
    with pytest.raises(ProviderAuthError) as error:
        await wrong.page(ListQuery(type="document"))
    assert "secret_wrong_value" not in str(error.value) + repr(error.value.extensions)
    assert (await wrong.health()).status == "offline"
    assert (await provider(url, database, client).health()).status == "online"
    with pytest.raises(InvalidInputError):
        await provider(url, database, client).get_many(["not-a-uuid"])


def test_config_pins_the_version() -> None:
    from providers.registry import validate_config

    saved = validate_config(
        "notion",
        {"token": "secret_x", "database_id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"},
        ["document"],
    )
    assert saved["notion_version"] == "2022-06-28"
    with pytest.raises(InvalidInputError, match="notion_version"):
        validate_config(
            "notion",
            {
                "token": "t",
                "database_id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
                "notion_version": "2025-09-03",
            },
            ["document"],
        )
    with pytest.raises(InvalidInputError, match="database_id"):
        validate_config("notion", {"token": "t", "database_id": "nope"}, ["document"])


async def test_writes_keep_every_property_they_are_given(client: httpx.AsyncClient) -> None:
    emulator = NotionEmulator(token=TOKEN, rate=100, burst=100)
    database = emulator.add_database(
        "Typed",
        {"Summary": "rich_text", "Pages": "number", "Priority": "select", "Done": "checkbox"},
    )
    page = emulator.add_page(database, "Typed page", paragraphs=["Old body."])
    with serve(emulator.app) as url:
        notion_provider = provider(url, database, client)
        given = {"Summary": "Short", "Pages": 3, "Priority": "High", "Done": True, "tags": ["a"]}
        updated = await notion_provider.update(page, name=None, properties=given)
        stored = emulator.pages[page]["properties"]
        assert stored["Summary"]["rich_text"][0]["plain_text"] == "Short"
        assert stored["Pages"]["number"] == 3 and stored["Priority"]["select"] == {"name": "High"}
        assert stored["Done"]["checkbox"] is True
        assert stored["Tags"]["multi_select"] == [{"name": "a"}]
        assert updated.properties["notion"] == {
            "Status": "Published",
            "Tags": ["a"],
            "Summary": "Short",
            "Pages": 3,
            "Priority": "High",
            "Done": True,
        }
        # Sent back as read (the status is the lifecycle's, the url Notion's): nothing changes.
        again = await notion_provider.update(page, name=None, properties=updated.properties)
        assert again.properties["notion"] == updated.properties["notion"]
        body = await notion_provider.update(page, name=None, properties={"content": "New.\n\nTwo."})
        assert body.properties["content"] == "New.\n\nTwo."
        assert [b["paragraph"]["rich_text"][0]["plain_text"] for b in emulator.blocks[page]] == [
            "New.",
            "Two.",
        ]
        replaced = await notion_provider.update(
            page, name=None, properties={"Summary": "Only"}, merge=False
        )
        assert replaced.properties["notion"] == {
            "Status": "Published",
            "Tags": [],
            "Summary": "Only",
            "Pages": None,
            "Priority": None,
            "Done": False,
        }
        assert emulator.blocks[page] == []  # the body is a property too: replaced by none
        for wrong, field in (
            ({"Pages": "three"}, "Pages"),
            ({"Done": "yes"}, "Done"),
            ({"Nope": 1}, "properties"),
            ({"Name": "the title is the name"}, "properties"),
            ({"notion": "not an object"}, "notion"),
        ):
            with pytest.raises(InvalidInputError) as refused:
                await notion_provider.update(page, name=None, properties=wrong)
            assert refused.value.extensions["field"] == field, wrong
