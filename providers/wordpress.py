"""WordPress (REST API wp/v2): posts as `blog_post` things, pages as `page` things.

Works against any stock WordPress 6.x: the REST root is discovered from the home page's
`Link: <...>; rel="https://api.w.org/"` header, so pretty permalinks (`/wp-json/`) and plain
ones (`?rest_route=`) both work. Credentials are an Application Password (HTTP Basic).
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, field_validator

from providers.cursors import decode_cursor_value, encode_cursor_value, invalid_cursor
from providers.errors import (
    InvalidInputError,
    NotFoundError,
    ProviderAuthError,
    ProviderResponseError,
    ProviderUnavailableError,
)
from providers.provider import Capabilities, Health, ListQuery, check_health
from providers.records import Page, Thing, ThingStatus, require_changeable, require_transition
from providers.registry import ProviderFactory, register
from providers.validation import excerpt

log = logging.getLogger(__name__)

NAME = "wordpress"
MAX_PER_PAGE = 100
_COLLECTIONS = {"blog_post": "posts", "page": "pages"}
_KINDS = {"posts": "post", "pages": "page"}
_LOCAL_ID = re.compile(r"(post|page)-([0-9]{1,20})")
_TO_LIFECYCLE = {
    "publish": ThingStatus.PUBLISHED,
    "private": ThingStatus.PUBLISHED,
    "future": ThingStatus.ACTIVE,
    "pending": ThingStatus.ACTIVE,
    "draft": ThingStatus.DRAFT,
    "trash": ThingStatus.ARCHIVED,
}
_FROM_LIFECYCLE = {
    ThingStatus.DRAFT: ["draft"],
    ThingStatus.ACTIVE: ["pending", "future"],
    ThingStatus.PUBLISHED: ["publish", "private"],
    ThingStatus.ARCHIVED: ["trash"],
}
_EVERY_STATUS = ",".join(_TO_LIFECYCLE)
_SUMMARY_FIELDS = (
    "id,type,title,status,link,slug,author,categories,tags,featured_media,date_gmt,modified_gmt"
)
_DETAIL_FIELDS = _SUMMARY_FIELDS + ",content,excerpt"
# Thing property -> the WordPress field a write sets.
_WRITABLE = {
    "content": "content",
    "excerpt": "excerpt",
    "slug": "slug",
    "categories": "categories",
    "tags": "tags",
    "featured_media": "featured_media",
}


class WordPressConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: HttpUrl = Field(description="The site's address, e.g. https://blog.example.com")
    username: str | None = None
    application_password: SecretStr | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)

    @field_validator("base_url")
    @classmethod
    def _no_credentials_in_url(cls, value: HttpUrl) -> HttpUrl:
        if value.username or value.password:
            raise ValueError("put credentials in username / application_password, not the URL")
        return value


@dataclass(frozen=True, slots=True)
class _Root:
    """Where the REST API lives: a path prefix (`/wp-json/`) or a `rest_route` parameter."""

    url: str
    query_style: bool

    def request(self, route: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if self.query_style:
            return self.url, {"rest_route": route, **params}
        return self.url.rstrip("/") + route, params


def _local_id(kind: str, wp_id: int) -> str:
    return f"{kind}-{wp_id}"


def _parse_local_id(id: str) -> tuple[str, int]:
    match = _LOCAL_ID.fullmatch(id)
    if not match:
        raise InvalidInputError(
            f"'{excerpt(id)}' is not a WordPress id (post-<n> or page-<n>)", field="id"
        )
    return match.group(1) + "s", int(match.group(2))


def _gmt(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _encode_cursor(offset: int) -> str:
    return encode_cursor_value({"o": offset})


def _decode_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    value = decode_cursor_value(cursor)
    offset = value.get("o") if isinstance(value, dict) else None
    if isinstance(offset, int) and not isinstance(offset, bool) and offset >= 0:
        return offset
    raise invalid_cursor()


class WordPressProvider:
    name = NAME
    thing_types = frozenset(_COLLECTIONS)
    capabilities = Capabilities(read=True, search=True, write=True, batch_size=MAX_PER_PAGE)

    def __init__(self, org_id: str, config: WordPressConfig, client: httpx.AsyncClient) -> None:
        self.org_id = org_id
        self._base = str(config.base_url).rstrip("/")
        self._timeout = config.timeout_seconds
        self._auth: tuple[str, str] | None = None
        if config.username and config.application_password:
            self._auth = (config.username, config.application_password.get_secret_value())
        self._client = client
        self._root: _Root | None = None

    # -- reads ---------------------------------------------------------------------------

    async def get_many(self, ids: Sequence[str], *, detail: bool = True) -> list[Thing | None]:
        """One request per collection per 100 ids (`include=`), whatever the batch holds."""
        wanted: dict[str, list[int]] = {}
        for id in ids:
            collection, wp_id = _parse_local_id(id)
            wanted.setdefault(collection, []).append(wp_id)
        found: dict[str, Thing] = {}
        for collection, wp_ids in wanted.items():
            unique = list(dict.fromkeys(wp_ids))
            for start in range(0, len(unique), MAX_PER_PAGE):
                chunk = unique[start : start + MAX_PER_PAGE]
                params = {
                    "include": ",".join(map(str, chunk)),
                    "per_page": len(chunk),
                    "orderby": "include",
                    "_fields": _DETAIL_FIELDS if detail else _SUMMARY_FIELDS,
                    **self._visible_statuses(),
                }
                response = await self._send("GET", f"/wp/v2/{collection}", params=params)
                for item in self._json_list(response):
                    thing = self._thing(item)
                    found[thing.id] = thing
        return [found.get(id) for id in ids]

    async def page(self, query: ListQuery) -> Page[Thing]:
        collection = _COLLECTIONS[query.type]
        offset = _decode_cursor(query.after)
        params: dict[str, Any] = {
            "per_page": max(query.first, 1),
            "offset": offset,
            "orderby": "id",
            "order": "desc",
            "_fields": _DETAIL_FIELDS if query.detail else _SUMMARY_FIELDS,
            **self._visible_statuses(),
        }
        if query.status is not None:
            params["status"] = ",".join(_FROM_LIFECYCLE[query.status])
        if query.search:
            params["search"] = query.search
        if query.modified_after is not None:
            params["modified_after"] = query.modified_after.astimezone(UTC).isoformat()
        response = await self._send("GET", f"/wp/v2/{collection}", params=params)
        items = [self._thing(i) for i in self._json_list(response)][: query.first]
        total = self._total(response, offset + len(items))
        cursors = [_encode_cursor(offset + i + 1) for i in range(len(items))]
        return Page(items, cursors, offset + len(items) < total, total)

    def _visible_statuses(self) -> dict[str, str]:
        # Drafts and private posts need credentials; anonymous readers see what is published.
        # "any" would leave out the trash, where archived things live: name every status.
        return {"status": _EVERY_STATUS} if self._auth else {}

    # -- writes --------------------------------------------------------------------------

    async def create(
        self, *, type: str, name: str, status: ThingStatus, properties: dict[str, Any]
    ) -> Thing:
        collection = _COLLECTIONS[type]
        body = {"title": name, "status": _FROM_LIFECYCLE[status][0], **self._fields(properties)}
        response = await self._send("POST", f"/wp/v2/{collection}", json=body)
        return self._thing(self._json_object(response))

    async def update(
        self, id: str, *, name: str | None, properties: dict[str, Any] | None
    ) -> Thing:
        collection, wp_id = _parse_local_id(id)
        current = await self._one(collection, wp_id)
        require_changeable(current.status)
        body = self._fields(properties or {})
        if name is not None:
            body["title"] = name
        response = await self._send("POST", f"/wp/v2/{collection}/{wp_id}", json=body)
        return self._thing(self._json_object(response))

    async def change_status(self, id: str, status: ThingStatus) -> Thing:
        collection, wp_id = _parse_local_id(id)
        current = await self._one(collection, wp_id)
        require_transition(current.status, status)
        if status is ThingStatus.ARCHIVED:
            response = await self._send("DELETE", f"/wp/v2/{collection}/{wp_id}")
        else:
            body = {"status": _FROM_LIFECYCLE[status][0]}
            response = await self._send("POST", f"/wp/v2/{collection}/{wp_id}", json=body)
        return self._thing(self._json_object(response))

    async def _one(self, collection: str, wp_id: int) -> Thing:
        params = {"_fields": _SUMMARY_FIELDS, "context": "edit"}
        response = await self._send("GET", f"/wp/v2/{collection}/{wp_id}", params=params)
        return self._thing(self._json_object(response))

    def _fields(self, properties: dict[str, Any]) -> dict[str, Any]:
        return {wp: properties[key] for key, wp in _WRITABLE.items() if key in properties}

    # -- health --------------------------------------------------------------------------

    async def health(self) -> Health:
        """Reachable, and (with credentials) logged in: `users/me` is the one route where
        WordPress answers 401 to credentials it does not accept instead of ignoring them."""
        route = "/wp/v2/users/me" if self._auth else "/wp/v2/types/post"
        return await check_health(self._send("GET", route, params={"_fields": "id"}))

    # -- the wire ------------------------------------------------------------------------

    async def _discover(self) -> _Root:
        if self._root is None:
            try:
                response = await self._client.get(self._base + "/", timeout=self._timeout)
            except httpx.TimeoutException:
                raise self._unavailable("did not answer in time") from None
            except httpx.TransportError:
                raise self._unavailable("cannot be reached") from None
            link = response.links.get("https://api.w.org/", {}).get("url")
            if link is None:
                # No advertisement (a theme or proxy dropped it): the query form always works.
                link = self._base + "/?rest_route=/"
            parts = urlsplit(link)
            query_style = "rest_route" in parse_qs(parts.query)
            url = f"{parts.scheme}://{parts.netloc}{parts.path}"
            self._root = _Root(url=url, query_style=query_style)
        return self._root

    async def _send(
        self,
        method: str,
        route: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> httpx.Response:
        root = await self._discover()
        url, query = root.request(route, params or {})
        try:
            response = await self._client.request(
                method, url, params=query, json=json, auth=self._auth, timeout=self._timeout
            )
        except httpx.TimeoutException:
            raise self._unavailable(f"did not answer within {self._timeout:g} s") from None
        except httpx.TransportError:
            raise self._unavailable("cannot be reached") from None
        if response.status_code >= 400:
            raise self._error(response)
        return response

    def _unavailable(self, what: str) -> ProviderUnavailableError:
        return ProviderUnavailableError(f"WordPress {what}", provider=NAME)

    def _error(self, response: httpx.Response) -> Exception:
        status = response.status_code
        try:
            body = response.json()
            code, message = str(body.get("code", "")), str(body.get("message", ""))
        except (ValueError, AttributeError):
            code, message = "", ""
        detail = f"{message} ({code})" if code else f"HTTP {status}"
        if status in (401, 403):
            return ProviderAuthError(
                f"WordPress refused the credentials: {detail}", provider=NAME, status=status
            )
        if status == 404:
            return NotFoundError(f"WordPress has no such item: {detail}", provider=NAME)
        if status == 400:
            params = body.get("data", {}).get("params", {}) if code else {}
            field = next(iter(params), None) if isinstance(params, dict) else None
            if field == "status" and self._auth is not None:
                # WordPress treats credentials it does not accept as no credentials at all,
                # and then refuses the statuses only a logged-in editor may ask for.
                return ProviderAuthError(
                    "WordPress did not accept the credentials (it answered as to an anonymous "
                    "visitor)",
                    provider=NAME,
                    status=401,
                )
            field = "name" if field == "title" else field
            return InvalidInputError(
                f"WordPress rejected the request: {detail}", field=field, provider=NAME
            )
        if status >= 500 or status == 429:
            return ProviderUnavailableError(
                f"WordPress failed: {detail}", provider=NAME, status=status
            )
        return ProviderResponseError(f"WordPress answered {detail}", provider=NAME, status=status)

    def _json_list(self, response: httpx.Response) -> list[dict[str, Any]]:
        body = self._json(response)
        if not isinstance(body, list):
            raise ProviderResponseError(
                "WordPress answered with something other than a list", provider=NAME
            )
        return body

    def _json_object(self, response: httpx.Response) -> dict[str, Any]:
        body = self._json(response)
        if not isinstance(body, dict) or "id" not in body:
            raise ProviderResponseError(
                "WordPress answered with something other than a post", provider=NAME
            )
        return body

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ProviderResponseError(
                "WordPress answered with something other than JSON", provider=NAME
            ) from None

    def _total(self, response: httpx.Response, floor: int) -> int:
        try:
            return int(response.headers["X-WP-Total"])
        except (KeyError, ValueError):
            return floor

    def _thing(self, item: dict[str, Any]) -> Thing:
        try:
            kind = "page" if item.get("type") == "page" else "post"
            wp_status = str(item.get("status", "publish"))
            properties: dict[str, Any] = {
                "wordpress_status": wp_status,
                **{
                    k: item[k]
                    for k in ("link", "slug", "author", "categories", "tags", "featured_media")
                    if k in item
                },
            }
            for key in ("content", "excerpt"):
                if isinstance(item.get(key), dict):
                    properties[key] = item[key].get("rendered", "")
            title = item.get("title", {})
            name = title.get("raw") or title.get("rendered", "") if isinstance(title, dict) else ""
            return Thing(
                id=_local_id(kind, int(item["id"])),
                org_id=self.org_id,
                type="page" if kind == "page" else "blog_post",
                name=html.unescape(name),
                status=_TO_LIFECYCLE.get(wp_status, ThingStatus.DRAFT),
                properties=properties,
                provider=NAME,
                external_id=str(item["id"]),
                created_at=_gmt(item.get("date_gmt")),
                updated_at=_gmt(item.get("modified_gmt")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderResponseError(
                f"WordPress sent a post we cannot read: {exc}", provider=NAME
            ) from None


register(ProviderFactory.of(WordPressProvider, WordPressConfig))
