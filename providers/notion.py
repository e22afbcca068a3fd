"""Notion (API version 2022-06-28): pages of one database as `document` things.

The version is pinned and sent on every request: 2022-06-28 queries databases directly
(`POST /v1/databases/{id}/query`); 2025-09-03's data sources are not spoken here. Notion has
no batch read, so a batch is concurrent `GET /v1/pages/{id}`s, and every request of an
integration passes one limiter that keeps it at Notion's 3 requests per second on average
(bursts allowed); a 429's `Retry-After` is honoured by the upstream client. Page content
(blocks) is fetched only when a caller asks for it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any, Literal, TypeVar

import httpx
from aiolimiter import AsyncLimiter
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, field_validator

from providers.errors import (
    InvalidInputError,
    InvalidTransitionError,
    NotFoundError,
    OneError,
    ProviderAuthError,
)
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
    page_to_thing,
    rich_text,
)
from providers.provider import Capabilities, Health, ListQuery, check_health
from providers.records import Page, Thing, ThingStatus, require_changeable, require_transition
from providers.registry import ProviderFactory, register
from providers.upstream import Answer, Upstreams, json_body
from providers.validation import excerpt

log = logging.getLogger(__name__)

NAME = "notion"
NOTION_VERSION: Literal["2022-06-28"] = "2022-06-28"
MAX_PAGE_SIZE = 100
MAX_BLOCKS = 100
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
        texts: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"page_size": MAX_PAGE_SIZE}
            if cursor:
                params["start_cursor"] = cursor
            path = f"/blocks/{page_id}/children"
            listing = await self._send("GET", path, _BLOCKS, params=params)
            texts += [text for text in map(block_text, listing.results) if text]
            if not listing.has_more or not listing.next_cursor:
                return "\n\n".join(texts)
            cursor = listing.next_cursor

    async def page(self, query: ListQuery) -> Page[Thing]:
        size = min(max(query.first, 1), MAX_PAGE_SIZE)
        if query.search:
            return await self._search(query, size)
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
        if query.after:
            body["start_cursor"] = query.after
        path = f"/databases/{self._config.database_id}/query"
        listing = await self._send("POST", path, _PAGES, json=body, read=True)
        return self._listing(listing.results, listing, query.first)

    async def _search(self, query: ListQuery, size: int) -> Page[Thing]:
        body: dict[str, Any] = {
            "query": query.search,
            "filter": {"property": "object", "value": "page"},
            "sort": {"direction": "descending", "timestamp": "last_edited_time"},
            "page_size": size,
        }
        if query.after:
            body["start_cursor"] = query.after
        listing = await self._send("POST", "/search", _PAGES, json=body, read=True)
        # Search spans every page shared with the integration: keep this database's.
        mine = [p for p in listing.results if p.database_id == self._config.database_id]
        return self._listing(mine, listing, query.first)

    def _listing(
        self, pages: list[NotionPage], listing: Listing[NotionPage], first: int
    ) -> Page[Thing]:
        items = [self._thing(p) for p in pages][:first]
        more = listing.has_more
        cursor = listing.next_cursor
        # Notion pages by cursor only: every item shares the cursor of the next page, and
        # the API does not count (total_count None).
        cursors = [cursor or "" for _ in items]
        return Page(items, cursors, more, None)

    # -- writes --------------------------------------------------------------------------

    async def create(
        self, *, type: str, name: str, status: ThingStatus, properties: dict[str, Any]
    ) -> Thing:
        if status is ThingStatus.ARCHIVED:
            raise InvalidTransitionError("a thing cannot be created archived", field="status")
        content = str(properties.get("content") or "")
        paragraphs = [p for p in content.split("\n\n") if p.strip()]
        if len(paragraphs) > MAX_BLOCKS:
            raise InvalidInputError(
                f"Notion takes at most {MAX_BLOCKS} blocks per request; content has "
                f"{len(paragraphs)} paragraphs",
                field="properties",
                provider=NAME,
            )
        body = {
            "parent": {"database_id": self._config.database_id},
            "properties": {
                self._config.title_property: {"title": rich_text(name)},
                self._config.status_property: {"select": {"name": STATUS_NAMES[status]}},
            },
            "children": [
                {"object": "block", "type": "paragraph", "paragraph": {"rich_text": rich_text(p)}}
                for p in paragraphs
            ],
        }
        thing = self._thing(await self._send("POST", "/pages", _PAGE, json=body))
        thing.properties["content"] = "\n\n".join(paragraphs)
        return thing

    async def update(
        self, id: str, *, name: str | None, properties: dict[str, Any] | None
    ) -> Thing:
        current = await self._current(id)
        require_changeable(current.status)
        changes: dict[str, Any] = {}
        if name is not None:
            changes[self._config.title_property] = {"title": rich_text(name)}
        for key, value in (properties or {}).items():
            if key in ("tags",) and isinstance(value, list):
                changes["Tags"] = {"multi_select": [{"name": str(v)} for v in value]}
        if not changes:
            raise InvalidInputError(
                "nothing Notion can update: give a name or tags", field="properties", provider=NAME
            )
        body = {"properties": changes}
        return self._thing(await self._send("PATCH", f"/pages/{_page_id(id)}", _PAGE, json=body))

    async def change_status(self, id: str, status: ThingStatus) -> Thing:
        current = await self._current(id)
        require_transition(current.status, status)
        if status is ThingStatus.ARCHIVED:
            body: dict[str, Any] = {"archived": True}
        else:
            body = {
                "properties": {
                    self._config.status_property: {"select": {"name": STATUS_NAMES[status]}}
                }
            }
        return self._thing(await self._send("PATCH", f"/pages/{_page_id(id)}", _PAGE, json=body))

    async def _current(self, id: str) -> Thing:
        [found] = await self.get_many([id], detail=False)
        if found is None:
            raise NotFoundError(
                "Notion has no such page in this database", provider=NAME, field="id"
            )
        return found

    # -- health --------------------------------------------------------------------------

    async def health(self) -> Health:
        path = f"/databases/{self._config.database_id}"
        return await check_health(self._send("GET", path, _OBJECT))

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


_PAGE = json_body(PAGE)
_PAGES = json_body(PAGES)
_BLOCKS = json_body(BLOCKS)
_OBJECT = json_body(OBJECT)

register(ProviderFactory.of(NotionProvider, NotionConfig))
