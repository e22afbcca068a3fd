"""Trusted documents through GraphQL: owners register the documents partners may run, remove
them, and choose which requests are held to them (the safelist mode)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from providers.errors import ForbiddenError
from providers.records import Page
from providers.records import TrustedDocument as TrustedDocumentRecord
from resolvers.api_keys import api_key_global_id, parse_api_key_id
from resolvers.context import Actor, Info
from resolvers.enums import SafelistMode
from resolvers.events import PageInfo
from resolvers.permissions import Action, require


@strawberry.type(description="A document an owner approved, known by its SHA-256.")
class TrustedDocument:
    sha256: str = strawberry.field(
        description="Hex SHA-256 of the document's UTF-8 text, as Apollo persisted queries send."
    )
    name: str | None
    document: str
    api_key_id: strawberry.ID | None = strawberry.field(
        description="The only key it is trusted for; null: the whole organization."
    )
    created_at: datetime

    @classmethod
    def from_record(cls, record: TrustedDocumentRecord) -> TrustedDocument:
        return cls(
            sha256=record.sha256,
            name=record.name,
            document=record.document,
            api_key_id=api_key_global_id(record.api_key_id) if record.api_key_id else None,
            created_at=record.created_at,
        )


@strawberry.type
class TrustedDocumentEdge:
    cursor: str
    node: TrustedDocument


@strawberry.type(description="A page of trusted documents, newest first.")
class TrustedDocumentPage:
    edges: list[TrustedDocumentEdge]
    page_info: PageInfo
    total_count: int


@strawberry.input
class TrustedDocumentInput:
    name: str | None = None
    document: str = strawberry.field(description="The document's text, exactly as clients send it.")


def _document_manager(info: Info) -> Actor:
    # MANAGE_API_KEYS stands in for MANAGE_TRUSTED_DOCUMENTS (the same owners) for now.
    actor = require(info.context.actor, Action.MANAGE_API_KEYS)
    if actor.api_key_id is not None:
        # A leaked owner key must not be able to widen what keys may run.
        raise ForbiddenError("trusted documents are managed by people, not by API keys")
    return actor


def _page(page: Page[TrustedDocumentRecord]) -> TrustedDocumentPage:
    return TrustedDocumentPage(
        edges=[
            TrustedDocumentEdge(cursor=c, node=TrustedDocument.from_record(d))
            for d, c in zip(page.items, page.cursors, strict=True)
        ],
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            end_cursor=page.cursors[-1] if page.cursors else None,
        ),
        total_count=page.total_count or 0,
    )


async def trusted_documents(
    info: Info, first: int = 20, after: str | None = None
) -> TrustedDocumentPage:
    """Your organization's trusted documents (owners only), newest first."""
    actor = _document_manager(info)
    store = info.context.store.trusted_documents
    return _page(await store.page(actor.org_id, first=first, after=after))


async def safelist_mode(info: Info) -> SafelistMode:
    """Which of your organization's requests may run only trusted documents (owners only)."""
    actor = _document_manager(info)
    return await info.context.store.trusted_documents.safelist_mode(actor.org_id)


async def register_trusted_documents(
    info: Info, documents: list[TrustedDocumentInput], api_key_id: strawberry.ID | None = None
) -> list[TrustedDocument]:
    """Trust these documents for your organization, or only for the API key `apiKeyId`; one
    result per document, in order. At most 100 documents of 64 KiB each; registering a
    document again changes nothing."""
    actor = _document_manager(info)
    registered = await info.context.store.trusted_documents.register(
        actor.org_id,
        actor_ref=actor.ref,
        documents=[(d.name, d.document) for d in documents],
        api_key_id=None if api_key_id is None else parse_api_key_id(api_key_id, "apiKeyId"),
    )
    return [TrustedDocument.from_record(d) for d in registered]


async def remove_trusted_documents(info: Info, sha256: list[str]) -> int:
    """Stop trusting the documents with these hashes, for every key; returns how many were."""
    actor = _document_manager(info)
    return await info.context.store.trusted_documents.remove(
        actor.org_id, actor_ref=actor.ref, sha256s=sha256
    )


async def set_safelist_mode(info: Info, mode: SafelistMode) -> SafelistMode:
    """Hold your organization's requests to its trusted documents: OFF, API_KEYS or ALL."""
    actor = _document_manager(info)
    await info.context.store.trusted_documents.set_safelist_mode(
        actor.org_id, actor_ref=actor.ref, mode=mode
    )
    return mode
