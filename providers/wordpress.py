"""WordPress (REST API wp/v2): posts as `blog_post` things, pages as `page` things.

Works against any stock WordPress 6.x: the REST root is discovered from the home page's
`Link: <...>; rel="https://api.w.org/"` header, so pretty permalinks (`/wp-json/`) and plain
ones (`?rest_route=`) both work. A `Link` naming another origin is ignored (the credentials
go to the configured origin only), and a failed discovery is remembered, with a backoff, so
that a dead site does not cost every request a full attempt. Credentials are an Application
Password (HTTP Basic). Every call goes through the organization's `Upstream`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, TypeAdapter, field_validator

from providers.cursors import decode_cursor_value, encode_cursor_value, invalid_cursor
from providers.errors import (
    InvalidInputError,
    OneError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimitedError,
    ProviderResponseError,
    ProviderUnavailableError,
)
from providers.properties import PropertyMap
from providers.provider import Capabilities, Health, ListQuery, check_health
from providers.records import Page, Thing, ThingStatus
from providers.registry import ProviderFactory
from providers.upstream import Answer, Reply, Upstreams, json_body
from providers.validation import excerpt
from providers.wordpress_posts import (
    ERROR,
    NAME,
    POST,
    POSTS,
    TO_LIFECYCLE,
    WordPressPost,
    local_id,
    post_to_thing,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_PER_PAGE = 100
_COLLECTIONS = {"blog_post": "posts", "page": "pages"}
_LOCAL_ID = re.compile(r"(post|page)-([0-9]{1,20})")
_FIELD = re.compile(r"[a-z_]{1,40}")
_FROM_LIFECYCLE = {
    ThingStatus.DRAFT: ["draft"],
    ThingStatus.ACTIVE: ["pending", "future"],
    ThingStatus.PUBLISHED: ["publish", "private"],
    ThingStatus.ARCHIVED: ["trash"],
}
_EVERY_STATUS = ",".join(TO_LIFECYCLE)
_SUMMARY_FIELDS = (
    "id,type,title,status,link,slug,author,categories,tags,featured_media,date_gmt,modified_gmt"
)
_DETAIL_FIELDS = _SUMMARY_FIELDS + ",content,excerpt"
_CHANGE_FIELDS = "id,type,title,status,date_gmt,modified_gmt"
_SECOND = timedelta(seconds=1)  # WordPress's clock resolution
_PROPERTIES = PropertyMap(
    NAME,
    stored={
        key: key
        for key in ("content", "excerpt", "slug", "categories", "tags", "featured_media", "author")
    },
    # A replace empties these; the slug and the author stay (WordPress needs both). Without
    # categories, WordPress files the post under its default one.
    cleared={"content": "", "excerpt": "", "categories": [], "tags": [], "featured_media": 0},
    computed=frozenset({"wordpress_status", "link"}),
)
_API_LINK = "https://api.w.org/"
_POST = json_body(POST)
_POSTS = json_body(POSTS)
_OBJECT = json_body(TypeAdapter(dict[str, Any]))
_DISCOVERY_BACKOFF = (1.0, 60.0)  # seconds before discovery is tried again: doubling to max


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


class _FailedDiscovery:
    """The last failed discovery, kept until its backoff has passed."""

    def __init__(self) -> None:
        self.failures = 0
        self.until = 0.0
        self.error: ProviderError | None = None

    def check(self) -> None:
        left = self.until - time.monotonic()
        if self.error is not None and left > 0:
            raise type(self.error)(
                f"{self.error.message} (not tried again for {left:.0f} s)",
                provider=NAME,
                retryAfter=max(1, round(left)),
            )

    def failed(self, error: ProviderError) -> None:
        first, most = _DISCOVERY_BACKOFF
        self.failures += 1
        self.until = time.monotonic() + min(first * 2 ** (self.failures - 1), most)
        self.error = error


def _parse_local_id(id: str) -> tuple[str, int]:
    match = _LOCAL_ID.fullmatch(id)
    if not match:
        raise InvalidInputError(
            f"'{excerpt(id)}' is not a WordPress id (post-<n> or page-<n>)", field="id"
        )
    return match.group(1) + "s", int(match.group(2))


def _collection(type: str | None) -> str:
    if type not in _COLLECTIONS:
        raise InvalidInputError(f"WordPress holds no '{excerpt(str(type))}' things", field="type")
    return _COLLECTIONS[type]


# A cursor is the position after an item in the newest-first listing, and the item's id: a post
# created since pushes the items seen down, and those are recognized by their ids (older posts
# have smaller ones), so paging through neither repeats nor skips an item.
def _encode_cursor(offset: int, wp_id: int) -> str:
    return encode_cursor_value({"o": offset, "id": wp_id})


def _decode_cursor(cursor: str | None) -> tuple[int, int | None]:
    if cursor is None:
        return 0, None
    value = decode_cursor_value(cursor)
    offset = _natural(value.get("o")) if isinstance(value, dict) else None
    last = _natural(value.get("id")) if isinstance(value, dict) else None
    if offset is None or (last is None and "id" in value):
        raise invalid_cursor()
    return offset, last


def _natural(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


class WordPressProvider:
    name = NAME
    thing_types = frozenset(_COLLECTIONS)
    property_map = _PROPERTIES  # what a write stores, computes or refuses
    capabilities = Capabilities(read=True, search=True, write=True, batch_size=MAX_PER_PAGE)

    def __init__(
        self, org_id: str, config: WordPressConfig, upstreams: httpx.AsyncClient | Upstreams
    ) -> None:
        self.org_id = org_id
        self._base = str(config.base_url).rstrip("/")
        self._auth = bool(config.username and config.application_password)
        headers = {}
        if config.username and config.application_password:
            password = config.application_password.get_secret_value()
            headers["Authorization"] = _basic(config.username, password)
        self.upstream = Upstreams.of(upstreams).open(
            org_id=org_id,
            provider=NAME,
            label="WordPress",
            origin=self._base,
            timeout=config.timeout_seconds,
            headers=headers,
        )
        self._root: _Root | None = None
        self._discovering = asyncio.Lock()
        self._discovery = _FailedDiscovery()

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
                reply = await self._list(f"/wp/v2/{collection}", params)
                for post in reply.body:
                    thing = post_to_thing(post, self.org_id)
                    found[thing.id] = thing
        return [found.get(id) for id in ids]

    async def page(self, query: ListQuery) -> Page[Thing]:
        collection = _collection(query.type)
        offset, last = _decode_cursor(query.after)
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
            # Best match first, as WordPress ranks it (title, then excerpt and content);
            # offsets alone page it (the id guard below holds only for the id order).
            params["search"] = query.search
            params["orderby"] = "relevance"
            last = None
        if query.modified_after is not None:
            params["modified_after"] = query.modified_after.astimezone(UTC).isoformat()
        reply = await self._list(f"/wp/v2/{collection}", params)
        unseen = [(offset + i, p) for i, p in enumerate(reply.body) if last is None or p.id < last]
        listed = unseen[: query.first]
        items = [post_to_thing(p, self.org_id) for _, p in listed]
        cursors = [_encode_cursor(at + 1, p.id) for at, p in listed]
        end = listed[-1][0] + 1 if listed else offset + len(reply.body)
        total = _total(reply.headers, end)
        return Page(items, cursors, end < total, total)

    def _visible_statuses(self) -> dict[str, str]:
        # Drafts and private posts need credentials; anonymous readers see what is published.
        # "any" would leave out the trash, where archived things live: name every status.
        return {"status": _EVERY_STATUS} if self._auth else {}

    # -- writes --------------------------------------------------------------------------

    async def create(
        self, *, type: str, name: str, status: ThingStatus, properties: dict[str, Any]
    ) -> Thing:
        body = {
            "title": name,
            "status": _FROM_LIFECYCLE[status][0],
            **_PROPERTIES.fields(properties),
        }
        return await self._one("POST", f"/wp/v2/{_collection(type)}", json=body)

    async def update(
        self, id: str, *, name: str | None, properties: dict[str, Any] | None, merge: bool = True
    ) -> Thing:
        collection, wp_id = _parse_local_id(id)
        body = _PROPERTIES.fields(properties, merge=merge) if properties is not None else {}
        if name is not None:
            body["title"] = name
        return await self._one("POST", f"/wp/v2/{collection}/{wp_id}", json=body)

    async def change_status(self, id: str, status: ThingStatus) -> Thing:
        collection, wp_id = _parse_local_id(id)
        if status is ThingStatus.ARCHIVED:
            return await self._one("DELETE", f"/wp/v2/{collection}/{wp_id}")
        body = {"status": _FROM_LIFECYCLE[status][0]}
        return await self._one("POST", f"/wp/v2/{collection}/{wp_id}", json=body)

    # -- change detection ----------------------------------------------------------------

    async def changed_since(self, type: str, after: datetime | None) -> list[Thing]:
        """The `type` things modified in `after`'s second or later (every one for None),
        oldest change first, with their title, status and times only. WordPress compares
        `modified_after` strictly and to the second: the caller reads its mark's second again
        and recognises what it already took from it."""
        collection = _collection(type)
        found: dict[int, WordPressPost] = {}
        since = after.astimezone(UTC).replace(microsecond=0) - _SECOND if after else None
        while True:
            posts = await self._changes(collection, _CHANGE_FIELDS, since, orderby="modified")
            found.update((p.id, p) for p in posts.body)
            if len(posts.body) < MAX_PER_PAGE:
                break
            last = self._modified(posts.body[-1])
            if since is None or last - _SECOND > since:
                since = last - _SECOND  # the last second again: it may hold more changes
                continue
            # A full page changed in one second (an import): read that second by id instead.
            whole = await self._every_page(collection, _CHANGE_FIELDS, since, last + _SECOND)
            found.update((p.id, p) for p in whole)
            since = last
        ordered = sorted(found.values(), key=lambda p: (self._modified(p), p.id))
        return [post_to_thing(p, self.org_id) for p in ordered]

    async def versions(self, type: str) -> dict[str, datetime]:
        """Every `type` thing (in any status, the trash too) by local id, with the time of
        its last change."""
        collection = _collection(type)
        kind = collection.removesuffix("s")
        posts = await self._every_page(collection, "id,modified_gmt")
        return {local_id(kind, p.id): self._modified(p) for p in posts}

    async def _every_page(
        self,
        collection: str,
        fields: str,
        after: datetime | None = None,
        before: datetime | None = None,
    ) -> list[WordPressPost]:
        posts: list[WordPressPost] = []
        page, pages = 0, 1
        while page < pages:
            page += 1
            reply = await self._changes(collection, fields, after, before, page=page)
            posts.extend(reply.body)
            pages = _total(reply.headers, 1, "X-WP-TotalPages")
        return posts

    async def _changes(
        self,
        collection: str,
        fields: str,
        after: datetime | None,
        before: datetime | None = None,
        *,
        orderby: str = "id",
        page: int = 1,
    ) -> Reply[list[WordPressPost]]:
        params: dict[str, Any] = {
            "_fields": fields,
            "orderby": orderby,
            "order": "asc",
            "per_page": MAX_PER_PAGE,
            "page": page,
            **self._visible_statuses(),
        }
        # Both bounds are strict; WordPress reads them in the site's zone, offsets included.
        if after is not None:
            params["modified_after"] = after.isoformat()
        if before is not None:
            params["modified_before"] = before.isoformat()
        return await self._list(f"/wp/v2/{collection}", params)

    def _modified(self, post: WordPressPost) -> datetime:
        if post.modified_gmt is None:
            raise self.upstream.bad_response()
        return post.modified_gmt

    # -- health --------------------------------------------------------------------------

    async def health(self) -> Health:
        """Reachable, and (with credentials) logged in: `users/me` is the one route where
        WordPress answers 401 to credentials it does not accept instead of ignoring them."""
        route = "/wp/v2/users/me" if self._auth else "/wp/v2/types/post"
        return await check_health(self._send("GET", route, {"_fields": "id"}, None, _OBJECT))

    # -- requests ------------------------------------------------------------------------

    async def _list(self, route: str, params: dict[str, Any]) -> Reply[list[WordPressPost]]:
        return await self._send("GET", route, params, None, _POSTS)

    async def _one(self, method: str, route: str, *, json: dict[str, Any] | None = None) -> Thing:
        reply = await self._send(method, route, None, json, _POST)
        return post_to_thing(reply.body, self.org_id)

    async def _send(
        self,
        method: str,
        route: str,
        params: dict[str, Any] | None,
        json: dict[str, Any] | None,
        expect: Callable[[Answer], T],
    ) -> Reply[T]:
        root = await self._discover()
        url, query = root.request(route, params or {})
        return await self.upstream.send(
            method, url, params=query, json=json, expect=expect, rejected=self._rejected
        )

    async def _discover(self) -> _Root:
        if self._root is not None:
            return self._root
        self._discovery.check()
        async with self._discovering:  # one discovery at a time; the others wait for it
            if self._root is None:
                self._discovery.check()
                try:
                    reply = await self.upstream.send("GET", self._base + "/", expect=self._root_of)
                    self._root = reply.body
                except (
                    ProviderUnavailableError,
                    ProviderRateLimitedError,
                    ProviderResponseError,
                ) as exc:
                    self._discovery.failed(exc)
                    raise
                except OneError:
                    # The home page refused us (401, 404...): no advertisement, and the query
                    # form of the REST API works on every install.
                    self._root = self._fallback()
        return self._root

    def _root_of(self, answer: Answer) -> _Root:
        link = answer.link(_API_LINK)
        if link is None:
            # No advertisement (a theme or proxy dropped it): the query form always works.
            return self._fallback()
        try:
            url = answer.url.join(link)
        except (httpx.InvalidURL, ValueError) as exc:
            raise ValueError(f"the API link is not a URL: {exc}") from None
        if not self.upstream.same_origin(url):
            log.warning(
                "wordpress (org %s): the home page names another origin for the API; ignored",
                self.org_id,
            )
            return self._fallback()
        query_style = "rest_route" in url.params
        return _Root(url=str(url.copy_with(query=None, fragment=None)), query_style=query_style)

    def _fallback(self) -> _Root:
        return _Root(url=self._base + "/", query_style=True)

    def _rejected(self, answer: Answer) -> OneError | None:
        """WordPress's 400s name the parameter at fault; the rest map as for any upstream."""
        if answer.status != 400:
            return None
        try:
            error = ERROR.validate_json(answer.content)
        except ValueError:
            return self.upstream.bad_response()
        params = (error.data.params if error.data else None) or {}
        field = next(iter(params), None)
        if field == "status" and self._auth:
            # WordPress treats credentials it does not accept as no credentials at all,
            # and then refuses the statuses only a logged-in editor may ask for.
            return ProviderAuthError(
                "WordPress did not accept the credentials (it answered as to an anonymous visitor)",
                provider=NAME,
                status=401,
            )
        if field is None or not _FIELD.fullmatch(field):
            return InvalidInputError("WordPress rejected the request", provider=NAME)
        field = "name" if field == "title" else field
        return InvalidInputError(
            f"WordPress rejected the value of '{field}'", field=field, provider=NAME
        )


def _total(headers: httpx.Headers, floor: int, header: str = "X-WP-Total") -> int:
    try:
        return int(headers[header])
    except (KeyError, ValueError):
        return floor


PROVIDER = ProviderFactory.of(WordPressProvider, WordPressConfig)
