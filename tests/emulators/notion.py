"""An emulator of the Notion API (version 2022-06-28), on loopback.

What it holds to, as Notion documents it (../shared/UPSTREAMS.md and developers.notion.com):
- `Authorization: Bearer <token>` (else 401 `unauthorized`) and `Notion-Version` on every
  request (missing: 400 `missing_version`; a version it does not serve: 400
  `validation_error`).
- `GET /v1/pages/{id}` (properties only), `GET /v1/blocks/{id}/children` (first level,
  paginated), `PATCH /v1/blocks/{id}/children` (append, at most 100), `DELETE /v1/blocks/{id}`,
  `POST /v1/databases/{id}/query` (filter, sorts, `start_cursor`, `page_size`),
  `POST /v1/search`, `POST /v1/pages`, `PATCH /v1/pages/{id}` (`archived: true` trashes),
  `GET /v1/databases/{id}`. Lists are `{object: "list", results, next_cursor, has_more}`.
- Every page of a database has every property of the database's schema (empty ones too); a
  write names properties that exist and gives each a value of its type.
- `page_size` at most 100, rich text at most 2000 characters, at most 100 items per array,
  500 KB per request; errors are `{object: "error", status, code, message}`; a page that does
  not exist or is not shared with the integration is 404 `object_not_found`.
- Rate limit: on average 3 requests per second with short bursts (`burst` requests at once);
  past it, 429 `rate_limited` with `Retry-After` in seconds.
- Webhooks: `subscribe_webhook(url)` POSTs the one-time `{"verification_token": ...}`; once
  `verify_webhook` is given that token back (as the operator pastes it into Notion), page
  changes are POSTed as events (`page.created`, `page.properties_updated`,
  `page.content_updated`, `page.deleted`, `page.undeleted`) naming the page, not its content,
  signed `X-Notion-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the token>`,
  and retried with backoff (`attempt_number` counts) until answered 2xx.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import math
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.emulators import Fault, injected
from tests.emulators.webhooks import Outbox

VERSIONS = frozenset({"2022-06-28"})
MAX_PAGE_SIZE = 100
MAX_TEXT = 2000
MAX_ARRAY = 100
MAX_BODY = 500 * 1024


class NotionError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> JSONResponse:
        body = {
            "object": "error",
            "status": self.status,
            "code": self.code,
            "message": self.message,
        }
        return JSONResponse(body, self.status)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _rich(text: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "text",
            "text": {"content": text, "link": None},
            "plain_text": text,
            "annotations": {"bold": False, "italic": False, "code": False},
            "href": None,
        }
    ]


def _plain(rich: list[dict[str, Any]]) -> str:
    return "".join(r.get("plain_text") or r.get("text", {}).get("content", "") for r in rich)


@dataclass
class NotionEmulator:
    token: str = "secret_notion_test"
    rate: float = 3.0  # requests per second, on average
    burst: int = 3
    fault: Fault | None = None
    requests: int = 0
    rate_limited: int = 0
    pages: dict[str, dict[str, Any]] = field(default_factory=dict)
    blocks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    databases: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    outbox: Outbox = field(default_factory=Outbox)
    workspace_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    integration_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    bot_id: str = field(default_factory=lambda: str(uuid.uuid4()))  # the integration's user
    person_id: str = field(default_factory=lambda: str(uuid.uuid4()))  # who edits in Notion

    def __post_init__(self) -> None:
        self._tokens = float(self.burst)
        self._updated = time.monotonic()
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/v1/pages/{id}", self._page, methods=["GET", "PATCH"]),
                Route("/v1/pages", self._create, methods=["POST"]),
                Route("/v1/blocks/{id}/children", self._children, methods=["GET", "PATCH"]),
                Route("/v1/blocks/{id}", self._block, methods=["DELETE"]),
                Route("/v1/databases/{id}/query", self._query, methods=["POST"]),
                Route("/v1/databases/{id}", self._database, methods=["GET"]),
                Route("/v1/search", self._search, methods=["POST"]),
            ]
        )

    # -- data ----------------------------------------------------------------------------

    def add_database(self, title: str, properties: dict[str, str] | None = None) -> str:
        """A database with a title (Name), a Status select, Tags, and `properties` (name ->
        Notion property type, e.g. {"Summary": "rich_text", "Pages": "number"})."""
        id = str(uuid.uuid4())
        schema = {"Name": "title", "Status": "select", "Tags": "multi_select", **(properties or {})}
        self.databases[id] = {
            "object": "database",
            "id": id,
            "title": _rich(title),
            "properties": {
                name: {"id": f"p{i}", "name": name, "type": kind, kind: {}}
                for i, (name, kind) in enumerate(schema.items())
            },
        }
        return id

    def add_page(
        self,
        database_id: str,
        title: str,
        *,
        status: str = "Published",
        tags: list[str] | None = None,
        paragraphs: list[str] | None = None,
        edited: str | None = None,
    ) -> str:
        id = str(uuid.uuid4())
        stamp = edited or _now()
        self.pages[id] = {
            "object": "page",
            "id": id,
            "created_time": stamp,
            "last_edited_time": stamp,
            "archived": False,
            "in_trash": False,
            "url": f"https://www.notion.so/{id.replace('-', '')}",
            "parent": {"type": "database_id", "database_id": database_id},
            "properties": {
                name: {
                    "id": spec["id"],
                    "type": spec["type"],
                    spec["type"]: copy.deepcopy(_EMPTY[spec["type"]]),
                }
                for name, spec in self.databases[database_id]["properties"].items()
            },
        }
        properties = self.pages[id]["properties"]
        properties["Name"]["title"] = _rich(title)
        properties["Status"]["select"] = {"name": status}
        properties["Tags"]["multi_select"] = [{"name": t} for t in tags or []]
        self.blocks[id] = [self._paragraph(text) for text in paragraphs or []]
        self._notify("page.created", self.pages[id])
        return id

    def rename_page(self, id: str, title: str) -> None:
        """Change a page's title as a person in Notion would: `page.properties_updated`."""
        page = self._find_page(id)
        page["properties"]["Name"]["title"] = _rich(title)
        page["last_edited_time"] = _now()
        updated = [page["properties"]["Name"]["id"]]
        self._notify("page.properties_updated", page, {"updated_properties": updated}, "person")

    # -- webhooks ------------------------------------------------------------------------

    def subscribe_webhook(self, url: str) -> str:
        """Make a subscription and POST its one-time verification token to `url`; events
        follow once `verify_webhook` is given the token back. Returns the subscription's id."""
        id = str(uuid.uuid4())
        token = f"secret_{secrets.token_urlsafe(32)}"
        self.subscriptions[id] = {"url": url, "token": token, "verified": False}
        body = json.dumps({"verification_token": token}).encode()
        self.outbox.send(url, lambda attempt: (body, {"Content-Type": "application/json"}))
        return id

    def verify_webhook(self, subscription_id: str, token: str) -> bool:
        """The operator pastes the token into Notion: the subscription is active if it matches."""
        subscription = self.subscriptions[subscription_id]
        subscription["verified"] = hmac.compare_digest(subscription["token"], token)
        return bool(subscription["verified"])

    def _notify(
        self,
        type: str,
        page: dict[str, Any],
        data: dict[str, Any] | None = None,
        author: str = "bot",
    ) -> None:
        """Send event `type` about `page` to every verified subscription, in the background."""
        parent = {"id": page["parent"].get("database_id"), "type": "database"}
        event = {
            "id": str(uuid.uuid4()),
            "timestamp": datetime.now(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "workspace_id": self.workspace_id,
            "workspace_name": "ONE test workspace",
            "integration_id": self.integration_id,
            "type": type,
            "authors": [{"id": self.bot_id if author == "bot" else self.person_id, "type": author}],
            "entity": {"id": page["id"], "type": "page"},
            "data": {"parent": parent, **(data or {})},
        }
        for id, subscription in self.subscriptions.items():
            if not subscription["verified"]:
                continue

            def render(
                attempt: int, id: str = id, token: str = subscription["token"]
            ) -> tuple[bytes, dict[str, str]]:
                body = json.dumps(
                    {**event, "subscription_id": id, "attempt_number": attempt}
                ).encode()
                signature = hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
                headers = {
                    "Content-Type": "application/json",
                    "X-Notion-Signature": f"sha256={signature}",
                }
                return body, headers

            self.outbox.send(subscription["url"], render)

    def _paragraph(self, text: str) -> dict[str, Any]:
        return {
            "object": "block",
            "id": str(uuid.uuid4()),
            "type": "paragraph",
            "has_children": False,
            "paragraph": {"rich_text": _rich(text)},
        }

    # -- the gate every request passes ---------------------------------------------------

    async def _gate(self, request: Request) -> Response | None:
        self.requests += 1
        if (faulty := await injected(self.fault)) is not None:
            return faulty
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens < 1:
                self.rate_limited += 1
                retry = math.ceil((1 - self._tokens) / self.rate)
                error = NotionError(
                    429,
                    "rate_limited",
                    "You have been rate limited. Please try again in a few minutes.",
                )
                response = error.response()
                response.headers["Retry-After"] = str(retry)
                return response
            self._tokens -= 1
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return NotionError(401, "unauthorized", "API token is invalid.").response()
        version = request.headers.get("notion-version")
        if version is None:
            return NotionError(
                400,
                "missing_version",
                "Notion-Version header failed validation: "
                "Notion-Version header should be defined, instead was `undefined`.",
            ).response()
        if version not in VERSIONS:
            return NotionError(
                400,
                "validation_error",
                f"Notion-Version header failed validation: `{version}` is not a supported version.",
            ).response()
        return None

    async def _body(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise NotionError(413, "validation_error", "Request body too large.")
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise NotionError(400, "invalid_json", "Error parsing JSON body.") from None
        if not isinstance(body, dict):
            raise NotionError(
                400, "validation_error", "body failed validation: body should be an object."
            )
        return body

    def _page_size(self, value: Any) -> int:
        if value is None:
            return MAX_PAGE_SIZE
        if not isinstance(value, int) or not 1 <= value <= MAX_PAGE_SIZE:
            raise NotionError(
                400,
                "validation_error",
                "body failed validation: body.page_size "
                f"should be less than or equal to `{MAX_PAGE_SIZE}`, instead was "
                f"`{value}`.",
            )
        return value

    def _find_page(self, id: str) -> dict[str, Any]:
        page = self.pages.get(_canonical(id))
        if page is None:
            raise NotionError(
                404,
                "object_not_found",
                f"Could not find page with ID: {id}. Make "
                "sure the relevant pages and databases are shared with your "
                "integration.",
            )
        return page

    # -- endpoints -----------------------------------------------------------------------

    async def _page(self, request: Request) -> Response:
        if (gate := await self._gate(request)) is not None:
            return gate
        try:
            page = self._find_page(request.path_params["id"])
            if request.method == "PATCH":
                body = await self._body(request)
                properties = body.get("properties") or {}
                self._apply(page, properties)
                was_archived = page["archived"]
                if "archived" in body:
                    page["archived"] = page["in_trash"] = bool(body["archived"])
                page["last_edited_time"] = _now()
                if properties:
                    ids = [page["properties"][name]["id"] for name in properties]
                    self._notify("page.properties_updated", page, {"updated_properties": ids})
                if page["archived"] != was_archived:
                    self._notify("page.deleted" if page["archived"] else "page.undeleted", page)
            return JSONResponse(page)
        except NotionError as exc:
            return exc.response()

    async def _create(self, request: Request) -> Response:
        if (gate := await self._gate(request)) is not None:
            return gate
        try:
            body = await self._body(request)
            database = (body.get("parent") or {}).get("database_id")
            if database not in self.databases:
                raise NotionError(
                    404, "object_not_found", f"Could not find database with ID: {database}."
                )
            properties = body.get("properties") or {}
            title = _plain((properties.get("Name") or {}).get("title") or [])
            children = body.get("children") or []
            if len(children) > MAX_ARRAY:
                raise NotionError(
                    400,
                    "validation_error",
                    "body failed validation: body.children"
                    f".length should be ≤ `{MAX_ARRAY}`, instead was `{len(children)}`.",
                )
            id = self.add_page(database, title, status="Draft")
            self._apply(self.pages[id], properties)
            for child in children:
                rich = child.get("paragraph", {}).get("rich_text", [])
                self._check_text(rich)
                self.blocks[id].append(self._paragraph(_plain(rich)))
            return JSONResponse(self.pages[id])
        except NotionError as exc:
            return exc.response()

    def _apply(self, page: dict[str, Any], properties: dict[str, Any]) -> None:
        for name, value in properties.items():
            current = page["properties"].get(name)
            if current is None:
                raise NotionError(400, "validation_error", f"{name} is not a property that exists.")
            kind = current["type"]
            if not isinstance(value, dict) or kind not in value:
                raise NotionError(
                    400,
                    "validation_error",
                    f"body failed validation: body.properties.{name}.{kind} should be defined.",
                )
            if not _valid(kind, value[kind]):
                raise NotionError(
                    400,
                    "validation_error",
                    f"body failed validation: body.properties.{name}.{kind} is not a {kind}.",
                )
            if kind in ("title", "rich_text"):
                self._check_text(value[kind])
            current[kind] = value[kind]

    def _check_text(self, rich: list[dict[str, Any]]) -> None:
        if len(rich) > MAX_ARRAY:
            raise NotionError(400, "validation_error", "rich_text length should be ≤ 100.")
        for item in rich:
            content = (item.get("text") or {}).get("content", "")
            if len(content) > MAX_TEXT:
                raise NotionError(
                    400,
                    "validation_error",
                    "body failed validation: "
                    f"text.content.length should be ≤ `{MAX_TEXT}`, instead was "
                    f"`{len(content)}`.",
                )
            item.setdefault("plain_text", content)

    async def _children(self, request: Request) -> Response:
        if (gate := await self._gate(request)) is not None:
            return gate
        try:
            self._find_page(request.path_params["id"])
            if request.method == "PATCH":
                return JSONResponse(await self._append(request))
            size = self._page_size(_int(request.query_params.get("page_size")))
            blocks = self.blocks.get(_canonical(request.path_params["id"]), [])
            return JSONResponse(
                _list(blocks, request.query_params.get("start_cursor"), size, "block")
            )
        except NotionError as exc:
            return exc.response()

    async def _append(self, request: Request) -> dict[str, Any]:
        children = (await self._body(request)).get("children")
        if not isinstance(children, list) or len(children) > MAX_ARRAY:
            raise NotionError(
                400,
                "validation_error",
                f"body failed validation: body.children.length should be ≤ `{MAX_ARRAY}`.",
            )
        added = []
        for child in children:
            rich = (child.get("paragraph") or {}).get("rich_text", [])
            self._check_text(rich)
            added.append(self._paragraph(_plain(rich)))
        page = self._find_page(request.path_params["id"])
        self.blocks[page["id"]].extend(added)
        page["last_edited_time"] = _now()
        self._content_updated(page, added)
        return _list(added, None, MAX_PAGE_SIZE, "block")

    def _content_updated(self, page: dict[str, Any], blocks: list[dict[str, Any]]) -> None:
        updated = [{"id": b["id"], "type": "block"} for b in blocks]
        self._notify("page.content_updated", page, {"updated_blocks": updated})

    async def _block(self, request: Request) -> Response:
        if (gate := await self._gate(request)) is not None:
            return gate
        try:
            id = _canonical(request.path_params["id"])
            for page_id, blocks in self.blocks.items():
                for block in blocks:
                    if block["id"] == id:
                        blocks.remove(block)
                        page = self.pages[page_id]
                        page["last_edited_time"] = _now()
                        self._content_updated(page, [block])
                        return JSONResponse({**block, "archived": True, "in_trash": True})
            raise NotionError(404, "object_not_found", f"Could not find block with ID: {id}.")
        except NotionError as exc:
            return exc.response()

    async def _database(self, request: Request) -> Response:
        if (gate := await self._gate(request)) is not None:
            return gate
        database = self.databases.get(_canonical(request.path_params["id"]))
        if database is None:
            return NotionError(404, "object_not_found", "Could not find database.").response()
        return JSONResponse(database)

    async def _query(self, request: Request) -> Response:
        if (gate := await self._gate(request)) is not None:
            return gate
        try:
            database = _canonical(request.path_params["id"])
            if database not in self.databases:
                raise NotionError(
                    404, "object_not_found", f"Could not find database with ID: {database}."
                )
            body = await self._body(request)
            size = self._page_size(body.get("page_size"))
            pages = [
                p
                for p in self.pages.values()
                if p["parent"].get("database_id") == database and not p["archived"]
            ]
            if body.get("filter"):
                pages = [p for p in pages if _filter(p, body["filter"])]
            for sort in reversed(body.get("sorts") or []):
                key = sort.get("timestamp")
                if key not in ("created_time", "last_edited_time"):
                    raise NotionError(400, "validation_error", "sort by timestamp only, here")
                pages.sort(
                    key=lambda p: (p[key], p["id"]), reverse=sort.get("direction") == "descending"
                )
            return JSONResponse(_list(pages, body.get("start_cursor"), size, "page_or_database"))
        except NotionError as exc:
            return exc.response()

    async def _search(self, request: Request) -> Response:
        if (gate := await self._gate(request)) is not None:
            return gate
        try:
            body = await self._body(request)
            size = self._page_size(body.get("page_size"))
            text = str(body.get("query") or "").lower()
            pages = [
                p
                for p in self.pages.values()
                if not p["archived"] and text in _plain(p["properties"]["Name"]["title"]).lower()
            ]
            pages.sort(key=lambda p: (p["last_edited_time"], p["id"]), reverse=True)
            return JSONResponse(_list(pages, body.get("start_cursor"), size, "page_or_database"))
        except NotionError as exc:
            return exc.response()


# A property's value in a page where it is empty, by type.
_EMPTY: dict[str, Any] = {
    "title": [],
    "rich_text": [],
    "number": None,
    "select": None,
    "status": None,
    "multi_select": [],
    "checkbox": False,
    "url": None,
    "email": None,
    "phone_number": None,
    "date": None,
}


def _valid(kind: str, value: Any) -> bool:
    """Whether `value` is a value of a `kind` property, as Notion checks a write."""
    if kind in ("title", "rich_text", "multi_select"):
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    if kind in ("select", "status", "date"):
        return value is None or isinstance(value, dict)
    if kind == "number":
        return value is None or (isinstance(value, int | float) and not isinstance(value, bool))
    if kind == "checkbox":
        return isinstance(value, bool)
    if kind in ("url", "email", "phone_number"):
        return value is None or isinstance(value, str)
    return False


def _canonical(id: str) -> str:
    try:
        return str(uuid.UUID(id))
    except ValueError:
        raise NotionError(
            400, "validation_error", f"path failed validation: `{id}` should be a valid uuid"
        ) from None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        raise NotionError(400, "validation_error", "page_size should be a number") from None


def _list(items: list[dict[str, Any]], cursor: Any, size: int, kind: str) -> dict[str, Any]:
    start = 0
    if cursor:
        ids = [i["id"] for i in items]
        if cursor not in ids:
            raise NotionError(400, "validation_error", "start_cursor is not valid.")
        start = ids.index(cursor)
    page = items[start : start + size]
    more = start + size < len(items)
    return {
        "object": "list",
        "results": page,
        "has_more": more,
        "next_cursor": items[start + size]["id"] if more else None,
        "type": kind,
        kind: {},
    }


def _filter(page: dict[str, Any], spec: dict[str, Any]) -> bool:
    if "and" in spec:
        return all(_filter(page, s) for s in spec["and"])
    if "or" in spec:
        return any(_filter(page, s) for s in spec["or"])
    if "timestamp" in spec:
        condition = spec[spec["timestamp"]]
        value = page[spec["timestamp"]]
        if "after" in condition:
            return value > condition["after"]
        if "on_or_after" in condition:
            return value >= condition["on_or_after"]
        raise NotionError(400, "validation_error", "unsupported timestamp filter")
    prop = page["properties"].get(spec.get("property", ""))
    if prop is None:
        raise NotionError(
            400,
            "validation_error",
            f"Could not find property with name or id: {spec.get('property')}",
        )
    if "title" in spec:
        text = _plain(prop["title"]).lower()
        return str(spec["title"].get("contains", "")).lower() in text
    if "select" in spec:
        name = (prop.get("select") or {}).get("name")
        return name == spec["select"].get("equals")
    raise NotionError(400, "validation_error", "unsupported filter")
