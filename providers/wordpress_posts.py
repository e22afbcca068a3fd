"""WordPress posts and pages as the REST API answers them, and as `blog_post`/`page` things.

The models are what we read from an answer, validated: anything else (a list of mixed values,
an error whose `data` is not an object) is an answer we cannot read.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from providers.records import Thing, ThingStatus
from providers.upstream import UtcDatetime

NAME = "wordpress"
TO_LIFECYCLE = {
    "publish": ThingStatus.PUBLISHED,
    "private": ThingStatus.PUBLISHED,
    "future": ThingStatus.ACTIVE,
    "pending": ThingStatus.ACTIVE,
    "draft": ThingStatus.DRAFT,
    "trash": ThingStatus.ARCHIVED,
}
_PLAIN = ("link", "slug", "author", "categories", "tags", "featured_media")


class _Text(BaseModel):
    rendered: str = ""
    raw: str | None = None


class WordPressPost(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: int = Field(strict=True, ge=0)
    type: str | None = None
    status: str = "publish"
    title: _Text | None = None
    content: _Text | None = None
    excerpt: _Text | None = None
    link: str | None = None
    slug: str | None = None
    author: int | None = None
    categories: list[int] | None = None
    tags: list[int] | None = None
    featured_media: int | None = None
    date_gmt: UtcDatetime | None = None
    modified_gmt: UtcDatetime | None = None


class _ErrorData(BaseModel):
    status: int | None = None
    params: dict[str, Any] | None = None


class WordPressError(BaseModel):
    """`{"code": ..., "message": ..., "data": {"status": N, "params": {...}}}`."""

    code: str
    message: str = ""
    data: _ErrorData | None = None


POST = TypeAdapter(WordPressPost)
POSTS = TypeAdapter(list[WordPressPost])
ERROR = TypeAdapter(WordPressError)


def local_id(kind: str, wp_id: int) -> str:
    return f"{kind}-{wp_id}"


def post_to_thing(post: WordPressPost, org_id: str) -> Thing:
    kind = "page" if post.type == "page" else "post"
    properties: dict[str, Any] = {"wordpress_status": post.status}
    properties.update({k: getattr(post, k) for k in _PLAIN if k in post.model_fields_set})
    for key in ("content", "excerpt"):
        text = getattr(post, key)
        if text is not None:
            properties[key] = text.rendered
    name = (post.title.raw or post.title.rendered) if post.title else ""
    return Thing(
        id=local_id(kind, post.id),
        org_id=org_id,
        type="page" if kind == "page" else "blog_post",
        name=html.unescape(name),
        status=TO_LIFECYCLE.get(post.status, ThingStatus.DRAFT),
        properties=properties,
        provider=NAME,
        external_id=str(post.id),
        created_at=post.date_gmt or datetime.now(UTC),
        updated_at=post.modified_gmt or datetime.now(UTC),
    )
