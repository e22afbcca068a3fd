"""The WordPress provider against a real, stock WordPress (and a fault server for 5xx)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from providers.errors import (
    InvalidInputError,
    ProviderAuthError,
)
from providers.provider import ListQuery
from providers.records import ThingStatus
from providers.registry import factory, validate_config
from providers.wordpress import WordPressConfig, WordPressProvider
from tests.wordpress import WordPress


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def provider(client: httpx.AsyncClient, **config: Any) -> WordPressProvider:
    return WordPressProvider("org1", WordPressConfig.model_validate(config), client)


@pytest.fixture
def editor(wordpress: WordPress, client: httpx.AsyncClient) -> WordPressProvider:
    return provider(client, **wordpress.config())


@pytest.fixture
def anonymous(wordpress: WordPress, client: httpx.AsyncClient) -> WordPressProvider:
    return provider(client, base_url=wordpress.url)


def post_ids(ids: list[int]) -> list[str]:
    return [f"post-{i}" for i in ids]


async def test_batch_get_is_one_request_in_key_order(
    wordpress: WordPress, editor: WordPressProvider
) -> None:
    published = wordpress.seed["posts"]["publish"]
    await editor.health()  # discovery happens once, before we count
    ids = post_ids([published[5], 999999, published[0], published[5]])
    before = wordpress.requests()
    found = await editor.get_many(ids)
    assert wordpress.requests() - before == 1
    assert [t.external_id if t else None for t in found] == [
        str(published[5]),
        None,
        str(published[0]),
        str(published[5]),
    ]
    thing = found[0]
    assert thing is not None and thing.type == "blog_post" and thing.provider == "wordpress"
    assert thing.status is ThingStatus.PUBLISHED and thing.name.startswith("Post ")
    assert thing.properties["content"].startswith("<p>Body of post")
    assert thing.created_at.tzinfo is UTC and thing.properties["categories"]


async def test_batches_split_at_one_hundred(
    wordpress: WordPress, editor: WordPressProvider
) -> None:
    all_posts = [i for ids in wordpress.seed["posts"].values() for i in ids]
    ids = post_ids(all_posts + list(range(900000, 900090)))  # 150 ids
    await editor.health()
    before = wordpress.requests()
    found = await editor.get_many(ids, detail=False)
    assert wordpress.requests() - before == 2
    assert sum(1 for t in found if t) == 60
    assert all("content" not in t.properties for t in found if t)  # _fields left bodies out


async def test_drafts_and_private_posts_need_credentials(
    wordpress: WordPress, editor: WordPressProvider, anonymous: WordPressProvider
) -> None:
    hidden = wordpress.seed["posts"]["draft"] + wordpress.seed["posts"]["private"]
    assert all(t is not None for t in await editor.get_many(post_ids(hidden)))
    assert await anonymous.get_many(post_ids(hidden)) == [None] * len(hidden)
    drafts = await editor.page(ListQuery(type="blog_post", status=ThingStatus.DRAFT, first=100))
    assert sorted(int(t.external_id or 0) for t in drafts.items) == sorted(
        wordpress.seed["posts"]["draft"]
    )
    public = await anonymous.page(ListQuery(type="blog_post", first=1))
    assert public.total_count == 54


async def test_search_status_and_modified_filters(editor: WordPressProvider) -> None:
    found = await editor.page(ListQuery(type="blog_post", search="gardening", first=100))
    assert found.total_count == 6 and all("gardening" in t.name for t in found.items)
    future = datetime(2100, 1, 1, tzinfo=UTC)
    assert (await editor.page(ListQuery(type="blog_post", modified_after=future))).items == []
    pages = await editor.page(ListQuery(type="page", first=10))
    assert {t.name for t in pages.items} >= {"About us", "Contact"}
    assert all(t.type == "page" and t.id.startswith("page-") for t in pages.items)


async def test_validation_errors_name_the_field(editor: WordPressProvider) -> None:
    with pytest.raises(InvalidInputError) as error:
        await editor.create(
            type="blog_post",
            name="Bad",
            status=ThingStatus.DRAFT,
            properties={"categories": ["not-a-number"]},
        )
    assert error.value.extensions["field"] == "categories"
    assert error.value.extensions["provider"] == "wordpress"


async def test_author_cannot_edit_the_editors_post(
    wordpress: WordPress, client: httpx.AsyncClient
) -> None:
    author = provider(
        client,
        **wordpress.config(username="author", application_password=wordpress.author_password),
    )
    editors_post = wordpress.seed["posts"]["publish"][0]  # odd posts belong to the editor
    with pytest.raises(ProviderAuthError) as error:
        await author.update(f"post-{editors_post}", name="Mine now", properties=None)
    assert error.value.extensions["status"] == 403 and not error.value.retryable


async def test_wrong_password_is_an_auth_error_without_the_secret(
    wordpress: WordPress, client: httpx.AsyncClient
) -> None:
    wrong = provider(
        client, **wordpress.config(application_password="abcd efgh ijkl mnop qrst uvwx")
    )
    with pytest.raises(ProviderAuthError) as error:
        await wrong.get_many(["post-1"])
    assert error.value.extensions["status"] == 401
    assert "abcd" not in str(error.value) and "abcd" not in repr(error.value.extensions)
    health = await wrong.health()
    assert health.status == "offline" and "credentials" in health.detail
    assert (await provider(client, **wordpress.config()).health()).status == "online"


async def test_a_malformed_id_is_bad_input(editor: WordPressProvider) -> None:
    with pytest.raises(InvalidInputError, match="not a WordPress id"):
        await editor.get_many(["nonsense"])


@pytest.mark.parametrize("structure", ["", "/%postname%/"])
async def test_rest_root_is_discovered_with_plain_or_pretty_permalinks(
    wordpress: WordPress, client: httpx.AsyncClient, structure: str
) -> None:
    with wordpress.option("permalink_structure", structure):
        link = (await client.get(f"{wordpress.url}/")).headers["link"]
        assert ("/wp-json/" in link) is bool(structure)
        wp = provider(client, **wordpress.config())
        page = await wp.page(ListQuery(type="blog_post", first=2))
        assert len(page.items) == 2
        assert (await wp.health()).status == "online"
    log = unquote(wordpress.log.read_text()).splitlines()
    asked = [line for line in log if "wp/v2/posts" in line][-1]
    assert ("/wp-json/wp/v2/posts" in asked) is bool(structure)


def test_config_is_validated_by_the_registry(wordpress: WordPress) -> None:
    assert factory("wordpress").thing_types == {"blog_post", "page"}
    saved = validate_config("wordpress", wordpress.config(), ["blog_post"])
    assert saved["application_password"] == wordpress.application_password
    with pytest.raises(InvalidInputError, match="base_url"):
        validate_config("wordpress", {"base_url": "not a url"}, ["blog_post"])
    with pytest.raises(InvalidInputError, match="credentials"):
        validate_config("wordpress", {"base_url": "http://u:p@example.com"}, ["blog_post"])
    with pytest.raises(InvalidInputError, match="cannot own product"):
        validate_config("wordpress", wordpress.config(), ["product"])
    with pytest.raises(InvalidInputError, match="unknown provider"):
        validate_config("myspace", {}, [])
