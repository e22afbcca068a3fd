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
    InvalidTransitionError,
    NotFoundError,
    ProviderAuthError,
    ProviderResponseError,
    ProviderUnavailableError,
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


async def test_query_pages_to_the_end_and_filters(
    notion: tuple[NotionEmulator, str, str], client: httpx.AsyncClient
) -> None:
    _, url, database = notion
    notion_provider = provider(url, database, client)
    seen, after = [], None
    while True:
        page = await notion_provider.page(ListQuery(type="document", first=5, after=after))
        assert page.total_count is None  # Notion does not count
        seen += [t.id for t in page.items]
        if not page.has_next_page:
            break
        after = page.cursors[-1]
    assert len(seen) == len(set(seen)) == 12
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
    renamed = await notion_provider.update(made.id, name="Renamed", properties={"tags": ["new"]})
    assert renamed.name == "Renamed" and renamed.properties["tags"] == ["new"]
    with pytest.raises(InvalidTransitionError):
        await notion_provider.change_status(made.id, ThingStatus.PUBLISHED)
    for step in (ThingStatus.ACTIVE, ThingStatus.PUBLISHED, ThingStatus.ARCHIVED):
        assert (await notion_provider.change_status(made.id, step)).status is step
    assert emulator.pages[made.id]["archived"] is True
    with pytest.raises(InvalidTransitionError):
        await notion_provider.update(made.id, name="Again", properties=None)
    with pytest.raises(InvalidInputError, match="101 paragraphs"):
        await notion_provider.create(
            type="document",
            name="Huge",
            status=ThingStatus.DRAFT,
            properties={"content": "\n\n".join(["p"] * 101)},
        )


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault(status=500), ProviderUnavailableError),
        (
            Fault(
                status=529,
                body=b'{"object":"error","status":529,"code":"service_overload","message":"busy"}',
            ),
            ProviderUnavailableError,
        ),
        (Fault(status=200, body=b"<html>not json</html>"), ProviderResponseError),
        (Fault(delay=1.0), ProviderUnavailableError),
    ],
)
async def test_faults_are_typed(
    notion: tuple[NotionEmulator, str, str],
    client: httpx.AsyncClient,
    fault: Fault,
    error: type[Exception],
) -> None:
    emulator, url, database = notion
    emulator.fault = fault
    with pytest.raises(error) as raised:
        await provider(url, database, client, max_retries=1, timeout_seconds=0.5).page(
            ListQuery(type="document")
        )
    assert raised.value.extensions["provider"] == "notion"  # type: ignore[attr-defined]


async def test_wrong_token_and_unknown_ids(
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
    with pytest.raises(NotFoundError):
        await provider(url, database, client).update(
            "00000000-0000-0000-0000-000000000000", name="x", properties=None
        )


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
