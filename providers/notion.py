"""Notion (API version 2022-06-28): pages of one database as `document` things.

The version is pinned and sent on every request: 2022-06-28 queries databases directly
(`POST /v1/databases/{id}/query`); 2025-09-03's data sources are not spoken here. Notion has
no batch read, so a batch is concurrent `GET /v1/pages/{id}`s, and every request of an
integration passes one limiter that keeps it at Notion's 3 requests per second on average
(bursts allowed), honouring `Retry-After` on 429. Page content (blocks) is fetched only when
a caller asks for it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC
from typing import Any, Literal

import httpx
from aiolimiter import AsyncLimiter
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, field_validator

from providers.errors import (
    InvalidInputError,
    InvalidTransitionError,
    NotFoundError,
    ProviderAuthError,
    ProviderRateLimitedError,
    ProviderResponseError,
    ProviderUnavailableError,
)
from providers.notion_pages import STATUS_NAMES, page_to_thing, plain_text, rich_text
from providers.provider import Capabilities, Health, ListQuery, check_health, retry_after
from providers.records import Page, Thing, ThingStatus, require_changeable, require_transition
from providers.registry import ProviderFactory, register
from providers.validation import excerpt

log = logging.getLogger(__name__)

NAME = "notion"
NOTION_VERSION: Literal["2022-06-28"] = "2022-06-28"
MAX_PAGE_SIZE = 100
MAX_BLOCKS = 100
_RETRYABLE = {500, 502, 503, 504, 529}


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

    def __init__(self, org_id: str, config: NotionConfig, client: httpx.AsyncClient) -> None:
        self.org_id = org_id
        self._config = config
        self._base = str(config.base_url).rstrip("/") + "/v1"
        self._headers = {
            "Authorization": f"Bearer {config.token.get_secret_value()}",
            "Notion-Version": config.notion_version,
        }
        self._client = client
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
            page = await self._send("GET", f"/pages/{_page_id(id)}")
        except NotFoundError:
            return None
        if page.get("parent", {}).get("database_id") != self._config.database_id:
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
            listing = await self._send("GET", f"/blocks/{page_id}/children", params=params)
            for block in listing.get("results", []):
                kind = block.get("type")
                text = plain_text((block.get(kind) or {}).get("rich_text")) if kind else ""
                if text:
                    texts.append(text)
            if not listing.get("has_more"):
                return "\n\n".join(texts)
            cursor = listing.get("next_cursor")

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
        listing = await self._send(
            "POST", f"/databases/{self._config.database_id}/query", json=body
        )
        return self._listing(listing, query.first)

    async def _search(self, query: ListQuery, size: int) -> Page[Thing]:
        body: dict[str, Any] = {
            "query": query.search,
            "filter": {"property": "object", "value": "page"},
            "sort": {"direction": "descending", "timestamp": "last_edited_time"},
            "page_size": size,
        }
        if query.after:
            body["start_cursor"] = query.after
        listing = await self._send("POST", "/search", json=body)
        # Search spans every page shared with the integration: keep this database's.
        listing["results"] = [
            p
            for p in listing.get("results", [])
            if p.get("parent", {}).get("database_id") == self._config.database_id
        ]
        return self._listing(listing, query.first)

    def _listing(self, listing: dict[str, Any], first: int) -> Page[Thing]:
        items = [self._thing(p) for p in listing.get("results", [])][:first]
        more = bool(listing.get("has_more"))
        cursor = listing.get("next_cursor")
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
        page = await self._send("POST", "/pages", json=body)
        thing = self._thing(page)
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
        page = await self._send("PATCH", f"/pages/{_page_id(id)}", json={"properties": changes})
        return self._thing(page)

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
        return self._thing(await self._send("PATCH", f"/pages/{_page_id(id)}", json=body))

    async def _current(self, id: str) -> Thing:
        [found] = await self.get_many([id], detail=False)
        if found is None:
            raise NotFoundError(
                "Notion has no such page in this database", provider=NAME, field="id"
            )
        return found

    # -- health --------------------------------------------------------------------------

    async def health(self) -> Health:
        return await check_health(self._send("GET", f"/databases/{self._config.database_id}"))

    # -- the wire ------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        for attempt in range(self._config.max_retries + 1):
            async with self.limiter:
                response = await self._request(method, path, params, json)
            if response.status_code == 429:
                wait = retry_after(response, at_least=0.1)
                log.info("notion rate-limited us; waiting %.1f s (attempt %d)", wait, attempt + 1)
                await asyncio.sleep(wait)
                continue
            if response.status_code in _RETRYABLE and attempt < self._config.max_retries:
                await asyncio.sleep(min(0.2 * 2**attempt, 3.0))
                continue
            return self._body(response)
        raise ProviderRateLimitedError("Notion kept rate-limiting the request", provider=NAME)

    async def _request(
        self, method: str, path: str, params: dict[str, Any] | None, json: dict[str, Any] | None
    ) -> httpx.Response:
        try:
            return await self._client.request(
                method,
                self._base + path,
                params=params,
                json=json,
                headers=self._headers,
                timeout=self._config.timeout_seconds,
            )
        except httpx.TimeoutException:
            raise ProviderUnavailableError(
                f"Notion did not answer within {self._config.timeout_seconds:g} s", provider=NAME
            ) from None
        except httpx.TransportError:
            raise ProviderUnavailableError("Notion cannot be reached", provider=NAME) from None

    def _body(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code < 400:
            if not isinstance(body, dict):
                raise ProviderResponseError(
                    "Notion answered with something other than JSON", provider=NAME
                )
            return body
        code = body.get("code", "") if isinstance(body, dict) else ""
        message = body.get("message", "") if isinstance(body, dict) else ""
        detail = f"{message} ({code})" if code else f"HTTP {response.status_code}"
        status = response.status_code
        if status in (401, 403) or code in ("unauthorized", "restricted_resource"):
            raise ProviderAuthError(
                f"Notion refused the integration: {detail}", provider=NAME, status=status
            )
        if status == 404 or code == "object_not_found":
            raise NotFoundError(f"Notion has no such object: {detail}", provider=NAME)
        if status in (400, 409, 413) or code in ("validation_error", "conflict_error"):
            raise InvalidInputError(
                f"Notion rejected the request: {detail}", provider=NAME, upstream_code=code
            )
        if status in _RETRYABLE:
            raise ProviderUnavailableError(f"Notion failed: {detail}", provider=NAME, status=status)
        raise ProviderResponseError(f"Notion answered {detail}", provider=NAME, status=status)

    def _thing(self, page: dict[str, Any]) -> Thing:
        return page_to_thing(
            page,
            self.org_id,
            title_property=self._config.title_property,
            status_property=self._config.status_property,
        )


register(ProviderFactory.of(NotionProvider, NotionConfig))
