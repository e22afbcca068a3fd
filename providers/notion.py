"""Notion (API version 2022-06-28): pages of one database as `document` things.

The version is pinned and sent on every request: 2022-06-28 queries databases directly
(`POST /v1/databases/{id}/query`); 2025-09-03's data sources are not spoken here. Notion has
no batch read, so a batch is concurrent `GET /v1/pages/{id}`s, and every request of an
integration passes one limiter that keeps it at Notion's 3 requests per second on average
(bursts allowed); a 429's `Retry-After` is honoured by the upstream client. Page content
(blocks) is fetched only when a caller asks for it. Writes set the database's properties by
their types (`notion_properties.py`), and a new body replaces the page's blocks.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any, Literal, TypeVar

import httpx
from aiolimiter import AsyncLimiter
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, field_validator

from providers.errors import InvalidInputError, NotFoundError, OneError, ProviderAuthError
from providers.notion_pages import (
    BLOCKS,
    ERROR,
    OBJECT,
    PAGE,
    PAGES,
    STATUS_NAMES,
    Listing,
    NotionPage,
    block_text,
    decode_cursor,
    encode_cursor,
    page_to_thing,
    rich_text,
)
from providers.notion_properties import (
    DATABASE,
    NotionDatabase,
    NotionWrite,
    names_given,
    notion_write,
    paragraph_blocks,
)
from providers.provider import Capabilities, Health, ListQuery, check_health
from providers.records import Page, Thing, ThingStatus
from providers.registry import ProviderFactory
from providers.upstream import Answer, Upstreams, json_body
from providers.validation import excerpt

log = logging.getLogger(__name__)

NAME = "notion"
NOTION_VERSION: Literal["2022-06-28"] = "2022-06-28"
MAX_PAGE_SIZE = 100
SCHEMA_SECONDS = 60.0  # how long the database's property types are trusted
_BODY = frozenset({"content", "url"})  # what a write may name without the database's schema
_CODE = re.compile(r"[a-z_]{1,40}")
T = TypeVar("T")


class NotionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: SecretStr
    database_id: str
    notion_version: Literal["2022-06-28"] = NOTION_VERSION
    base_url: HttpUrl = Field(default=HttpUrl("https://api.notion.com"))
    title_property: str = "Name"
    status_property: str = "Status"  # a select whose option names are the lifecycle's
    requests_per_second: float = Field(default=3.0, gt=0, le=3.0)
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # Attempts after the first (429s, and 5xx of reads), within ONE_UPSTREAM_ATTEMPTS.
    max_retries: int = Field(default=5, ge=0, le=20)
    # Notion's one-time webhook verification token, which keys every event's signature;
    # the gateway keeps the one Notion sends (see gateway/webhooks.py).
    webhook_verification_token: SecretStr | None = None

    @field_validator("database_id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError("must be a Notion database id (a UUID)") from None


def _page_id(id: str) -> str:
    try:
        return str(uuid.UUID(id))
    except ValueError:
        raise InvalidInputError(f"'{excerpt(id)}' is not a Notion page id", field="id") from None


class NotionProvider:
    name = NAME
    thing_types = frozenset({"document"})
    # No batch read: a "batch" is concurrent single reads under the limiter.
    capabilities = Capabilities(read=True, search=True, write=True, batch_size=MAX_PAGE_SIZE)

    def __init__(
        self, org_id: str, config: NotionConfig, upstreams: httpx.AsyncClient | Upstreams
    ) -> None:
        self.org_id = org_id
        self._config = config
        origin = str(config.base_url).rstrip("/")
        self._base = origin + "/v1"
        self.upstream = Upstreams.of(upstreams).open(
            org_id=org_id,
            provider=NAME,
            label="Notion",
            origin=origin,
            timeout=config.timeout_seconds,
            attempts=config.max_retries + 1,
            headers={
                "Authorization": f"Bearer {config.token.get_secret_value()}",
                "Notion-Version": config.notion_version,
            },
        )
        # The average Notion allows, in bursts one request smaller than its own: arrivals
        # bunch up on the way, and the slack keeps them from tipping the server's bucket over.
        burst = max(1.0, config.requests_per_second - 1)
        self.limiter = AsyncLimiter(burst, burst / config.requests_per_second)
        self._known_schema: tuple[float, dict[str, str]] | None = None

    # -- reads ---------------------------------------------------------------------------

    async def get_many(self, ids: Sequence[str], *, detail: bool = True) -> list[Thing | None]:
        unique = list(dict.fromkeys(ids))
        found = await asyncio.gather(*(self._get(id, detail=detail) for id in unique))
        by_id = {id: thing for id, thing in zip(unique, found, strict=True)}
        return [by_id[id] for id in ids]

    async def _get(self, id: str, *, detail: bool) -> Thing | None:
        try:
            page = await self._send("GET", f"/pages/{_page_id(id)}", _PAGE)
        except NotFoundError:
            return None
        if page.database_id != self._config.database_id:
            return None  # shared with the integration, but not part of this organization's database
        thing = self._thing(page)
        if detail:
            thing.properties["content"] = await self._content(thing.id)
        return thing

    async def _content(self, page_id: str) -> str:
        """The page's first-level blocks as text, one paragraph per block."""
        texts = (block_text(b) for b in await self._blocks(page_id))
        return "\n\n".join(text for text in texts if text)

    async def _blocks(self, page_id: str) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"page_size": MAX_PAGE_SIZE}
            if cursor:
                params["start_cursor"] = cursor
            path = f"/blocks/{page_id}/children"
            listing = await self._send("GET", path, _BLOCKS, params=params)
            blocks += listing.results
            if not listing.has_more or not listing.next_cursor:
                return blocks
            cursor = listing.next_cursor

    async def page(self, query: ListQuery) -> Page[Thing]:
        if query.type not in (None, *self.thing_types):
            raise InvalidInputError(f"Notion holds no '{query.type}' things", field="type")
        start, skip = decode_cursor(query.after)
        # Resuming after an item re-reads its Notion page from that page's start, past it.
        size = min(skip + max(query.first, 1), MAX_PAGE_SIZE)
        if query.search:
            return await self._search(query, start, skip, size)
        body: dict[str, Any] = {
            "page_size": size,
            "sorts": [{"timestamp": "created_time", "direction": "descending"}],
        }
        filters: list[dict[str, Any]] = []
        if query.status is ThingStatus.ARCHIVED:
            return Page([], [], False, 0)  # the database query never returns trashed pages
        if query.status is not None:
            filters.append(
                {
                    "property": self._config.status_property,
                    "select": {"equals": STATUS_NAMES[query.status]},
                }
            )
        if query.modified_after is not None:
            stamp = query.modified_after.astimezone(UTC).isoformat()
            filters.append({"timestamp": "last_edited_time", "last_edited_time": {"after": stamp}})
        if filters:
            body["filter"] = filters[0] if len(filters) == 1 else {"and": filters}
        if start:
            body["start_cursor"] = start
        path = f"/databases/{self._config.database_id}/query"
        listing = await self._send("POST", path, _PAGES, json=body, read=True)
        return self._listing(listing, start, skip, query.first)

    async def _search(
        self, query: ListQuery, start: str | None, skip: int, size: int
    ) -> Page[Thing]:
        body: dict[str, Any] = {
            "query": query.search,
            "filter": {"property": "object", "value": "page"},
            "sort": {"direction": "descending", "timestamp": "last_edited_time"},
            "page_size": size,
        }
        if start:
            body["start_cursor"] = start
        listing = await self._send("POST", "/search", _PAGES, json=body, read=True)
        return self._listing(listing, start, skip, query.first)

    def _listing(
        self, listing: Listing[NotionPage], start: str | None, skip: int, first: int
    ) -> Page[Thing]:
        """Up to `first` of this database's pages after the first `skip` of the listing (a
        search spans every page shared with the integration). Notion pages by cursor only and
        does not count (total_count None): an item's cursor is its Notion page's start and its
        place in it, or the next page's start for the last item of one."""
        results = listing.results
        mine = [
            at
            for at in range(skip, len(results))
            if results[at].database_id == self._config.database_id
        ]
        items: list[Thing] = []
        cursors: list[str] = []
        for at in mine[:first]:
            items.append(self._thing(results[at]))
            ends = at == len(results) - 1 and listing.has_more and listing.next_cursor
            cursors.append(
                encode_cursor(listing.next_cursor, 0) if ends else encode_cursor(start, at + 1)
            )
        return Page(items, cursors, listing.has_more or len(mine) > first, None)

    # -- writes --------------------------------------------------------------------------

    async def create(
        self, *, type: str, name: str, status: ThingStatus, properties: dict[str, Any]
    ) -> Thing:
        write = await self._write(properties, merge=True)
        blocks = paragraph_blocks(write.content or "")
        body = {
            "parent": {"database_id": self._config.database_id},
            "properties": {
                **write.properties,
                self._config.title_property: {"title": rich_text(name)},
                self._config.status_property: {"select": {"name": STATUS_NAMES[status]}},
            },
            "children": blocks,
        }
        thing = self._thing(await self._send("POST", "/pages", _PAGE, json=body))
        thing.properties["content"] = _text_of(blocks)
        return thing

    async def update(
        self, id: str, *, name: str | None, properties: dict[str, Any] | None, merge: bool = True
    ) -> Thing:
        page_id = _page_id(id)
        write = await self._write(properties, merge=merge) if properties is not None else None
        changes = dict(write.properties) if write else {}
        if name is not None:
            changes[self._config.title_property] = {"title": rich_text(name)}
        blocks = paragraph_blocks(write.content) if write and write.content is not None else None
        path = f"/pages/{page_id}"
        if changes:
            page = await self._send("PATCH", path, _PAGE, json={"properties": changes})
        else:
            page = await self._send("GET", path, _PAGE)
        thing = self._thing(page)
        if blocks is not None:
            await self._replace_blocks(page_id, blocks)
            thing.properties["content"] = _text_of(blocks)
        return thing

    async def change_status(self, id: str, status: ThingStatus) -> Thing:
        if status is ThingStatus.ARCHIVED:
            body: dict[str, Any] = {"archived": True}
        else:
            body = {
                "properties": {
                    self._config.status_property: {"select": {"name": STATUS_NAMES[status]}}
                }
            }
        return self._thing(await self._send("PATCH", f"/pages/{_page_id(id)}", _PAGE, json=body))

    async def _write(self, properties: dict[str, Any], *, merge: bool) -> NotionWrite:
        """The write of `properties`, typed by the database's schema (read when needed)."""
        names = names_given(properties) - _BODY
        schema = await self._schema(names) if not merge or names else {}
        return notion_write(
            schema,
            properties,
            merge=merge,
            title_property=self._config.title_property,
            status_property=self._config.status_property,
        )

    async def _schema(
        self, names: set[str] | None = None, *, refresh: bool = False
    ) -> dict[str, str]:
        """The database's property types: read again when old, or when a write names a
        property the last reading did not have (it may have been added since)."""
        known = self._known_schema
        fresh = known is not None and time.monotonic() - known[0] < SCHEMA_SECONDS
        named = names or set()
        if refresh or known is None or not fresh or not named <= {*known[1], "tags"}:
            path = f"/databases/{self._config.database_id}"
            database: NotionDatabase = await self._send("GET", path, _DATABASE)
            known = self._known_schema = (time.monotonic(), database.types())
        return known[1]

    async def _replace_blocks(self, page_id: str, blocks: list[dict[str, Any]]) -> None:
        old = await self._blocks(page_id)
        await asyncio.gather(
            *(self._send("DELETE", f"/blocks/{b['id']}", _OBJECT) for b in old if "id" in b)
        )
        if blocks:
            path = f"/blocks/{page_id}/children"
            await self._send("PATCH", path, _BLOCKS, json={"children": blocks})

    # -- health --------------------------------------------------------------------------

    async def health(self) -> Health:
        return await check_health(self._schema(refresh=True))

    # -- the wire ------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        expect: Callable[[Answer], T],
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        read: bool | None = None,
    ) -> T:
        reply = await self.upstream.send(
            method,
            self._base + path,
            params=params,
            json=json,
            read=read,
            expect=expect,
            rejected=self._rejected,
            pace=self.limiter.acquire,
        )
        return reply.body

    def _rejected(self, answer: Answer) -> OneError | None:
        try:
            error = ERROR.validate_json(answer.content)
        except ValueError:
            return self.upstream.bad_response()
        code = error.code if _CODE.fullmatch(error.code) else ""
        status = answer.status
        if status in (401, 403) or code in ("unauthorized", "restricted_resource"):
            return ProviderAuthError("Notion refused the integration", provider=NAME, status=status)
        if status == 404 or code == "object_not_found":
            return NotFoundError("Notion has no such object", provider=NAME)
        if status in (400, 409, 413) or code in ("validation_error", "conflict_error"):
            return InvalidInputError(
                "Notion rejected the request", provider=NAME, upstream_code=code
            )
        return None

    def _thing(self, page: NotionPage) -> Thing:
        return page_to_thing(
            page,
            self.org_id,
            title_property=self._config.title_property,
            status_property=self._config.status_property,
        )


def _text_of(blocks: list[dict[str, Any]]) -> str:
    return "\n\n".join(block_text(b) for b in blocks)


_PAGE = json_body(PAGE)
_PAGES = json_body(PAGES)
_BLOCKS = json_body(BLOCKS)
_OBJECT = json_body(OBJECT)
_DATABASE = json_body(DATABASE)

PROVIDER = ProviderFactory.of(NotionProvider, NotionConfig)
