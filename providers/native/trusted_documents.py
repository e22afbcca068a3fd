"""Trusted documents: the GraphQL documents an organization's owners approved, and which of its
requests may run nothing else (the safelist mode).

The request path asks `safelist_mode`, then `is_trusted` or `get_text` (for a request that
sends only a hash): each is one query on a unique index. A document's `scope_key` hashes its
organization, its SHA-256 and its key scope, so the lookup names at most two keys and two
racing registrations of one document cannot make two rows.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from graphql import ExecutableDefinitionNode, GraphQLSyntaxError, OperationDefinitionNode, parse

from providers import validation
from providers.engine import Cond, Engine, Order, Row, Transaction, Where
from providers.errors import InvalidInputError, NotFoundError
from providers.native.events import record_event
from providers.native.rows import decode_cursor, encode_cursor, fetch_page, to_row
from providers.records import Kind, Page, SafelistMode, TrustedDocument, utcnow
from providers.refs import native_ref, new_local_id

MAX_DOCUMENTS = 100  # per registration or removal
MAX_DOCUMENT_BYTES = 64 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")


def document_hash(text: str) -> str:
    """The hex SHA-256 of `text` as UTF-8: the hash an Apollo persisted query sends."""
    return hashlib.sha256(text.encode()).hexdigest()


def _scope_key(org_id: str, sha256: str, api_key_id: str | None) -> str:
    return hashlib.sha256(f"{org_id}/{sha256}/{api_key_id or ''}".encode()).hexdigest()[:32]


def _checked(documents: Sequence[tuple[str | None, str]]) -> list[tuple[str | None, str, str]]:
    """(name, text, sha256) of each document, or the first reason one cannot be trusted."""
    if not 1 <= len(documents) <= MAX_DOCUMENTS:
        raise InvalidInputError(
            f"register 1 to {MAX_DOCUMENTS} documents at a time, not {len(documents)}",
            field="documents",
        )
    checked = []
    for index, (name, text) in enumerate(documents):
        size = len(text.encode())
        if size > MAX_DOCUMENT_BYTES:
            raise InvalidInputError(
                f"document {index} is {size} bytes; at most {MAX_DOCUMENT_BYTES} are allowed",
                field="documents",
                index=index,
            )
        try:
            definitions = parse(text, no_location=True).definitions
        except GraphQLSyntaxError as exc:
            raise InvalidInputError(
                f"document {index} is not GraphQL: {exc.message}", field="documents", index=index
            ) from None
        if not all(isinstance(d, ExecutableDefinitionNode) for d in definitions) or not any(
            isinstance(d, OperationDefinitionNode) for d in definitions
        ):
            raise InvalidInputError(
                f"document {index} is not an operation to run (only queries, mutations, "
                f"subscriptions and their fragments can be trusted)",
                field="documents",
                index=index,
            )
        if name is not None and name.strip():
            name = validation.name(name, f"documents[{index}].name")
        checked.append((name or None, text, document_hash(text)))
    return checked


def _hash(value: str, index: int) -> str:
    sha256 = value.strip().lower()
    if not _SHA256.fullmatch(sha256):
        raise InvalidInputError(
            f"sha256[{index}] is not a SHA-256 in hex (64 digits)", field="sha256", index=index
        )
    return sha256


def _record(row: Row) -> TrustedDocument:
    return TrustedDocument(**{k: v for k, v in row.items() if k != "scope_key"})


def _mode(settings: list[Row]) -> SafelistMode:
    mode = settings[0]["safelist_mode"] if settings else None
    return SafelistMode(mode) if mode else SafelistMode.OFF


async def _require_live_key(tx: Transaction, org_id: str, api_key_id: str) -> None:
    where: Where = [
        Cond("org_id", "eq", org_id),
        Cond("id", "eq", api_key_id),
        Cond("revoked_at", "eq", None),
    ]
    if not await tx.find("api_keys", where, limit=1):
        raise NotFoundError("API key not found in your organization, or revoked", field="apiKeyId")


class TrustedDocuments:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def safelist_mode(self, org_id: str) -> SafelistMode:
        """Which of `org_id`'s requests may run only trusted documents (`off` until set)."""
        return _mode(await self._engine.find("organization_settings", [Cond("id", "eq", org_id)]))

    async def is_trusted(self, org_id: str, sha256: str, api_key_id: str | None) -> bool:
        """Whether the document hashing to `sha256` is trusted for the whole organization
        or, when `api_key_id` is given, for that key."""
        return await self._find(org_id, sha256, api_key_id) is not None

    async def get_text(self, org_id: str, sha256: str, api_key_id: str | None) -> str | None:
        """The trusted document hashing to `sha256` (in the same scope as `is_trusted`)."""
        row = await self._find(org_id, sha256, api_key_id)
        return None if row is None else str(row["document"])

    async def _find(self, org_id: str, sha256: str, api_key_id: str | None) -> Row | None:
        keys = {_scope_key(org_id, sha256, None)}
        if api_key_id is not None:
            keys.add(_scope_key(org_id, sha256, api_key_id))
        where: Where = [
            Cond("org_id", "eq", org_id),
            Cond("scope_key", "in", keys),
            Cond("removed_at", "eq", None),
        ]
        rows = await self._engine.find("trusted_documents", where, limit=1)
        return rows[0] if rows else None

    async def register(
        self,
        org_id: str,
        *,
        actor_ref: str | None,
        documents: Sequence[tuple[str | None, str]],
        api_key_id: str | None,
    ) -> list[TrustedDocument]:
        """Trust each (name, text) of `documents` for the organization or for one of its live
        API keys; one record per document, in their order. Registering a trusted document
        again changes nothing (its first name stays)."""
        checked = _checked(documents)
        keys = {sha256: _scope_key(org_id, sha256, api_key_id) for _, _, sha256 in checked}
        async with self._engine.transaction() as tx:
            if api_key_id is not None:
                await _require_live_key(tx, org_id, api_key_id)
            where: Where = [
                Cond("org_id", "eq", org_id),
                Cond("scope_key", "in", set(keys.values())),
            ]
            existing = {r["scope_key"]: r for r in await tx.find("trusted_documents", where)}
            trusted: dict[str, TrustedDocument] = {}
            added: list[str] = []
            now = utcnow()
            for name, text, sha256 in checked:
                if sha256 in trusted:
                    continue
                row = existing.get(keys[sha256])
                if row is not None and row["removed_at"] is None:
                    trusted[sha256] = _record(row)
                    continue
                document = TrustedDocument(
                    id=new_local_id() if row is None else row["id"],
                    org_id=org_id,
                    sha256=sha256,
                    document=text,
                    name=name,
                    api_key_id=api_key_id,
                    created_by=actor_ref,
                    created_at=now,
                )
                if row is None:
                    fields = {**to_row(document), "scope_key": keys[sha256]}
                    await tx.insert("trusted_documents", fields)
                else:  # removed once, trusted again
                    await tx.update("trusted_documents", document.id, to_row(document))
                trusted[sha256] = document
                added.append(sha256)
            if added:
                await record_event(
                    tx,
                    org_id,
                    "trusted_documents_registered",
                    actor_ref=actor_ref,
                    target_ref=native_ref(Kind.ORGANIZATION, org_id),
                    metadata={
                        "count": len(added),
                        "hashes": added,
                        "scope": "organization" if api_key_id is None else "api_key",
                        "api_key_id": api_key_id,
                    },
                )
        return [trusted[sha256] for _, _, sha256 in checked]

    async def remove(self, org_id: str, *, actor_ref: str | None, sha256s: Sequence[str]) -> int:
        """Stop trusting the documents with these hashes, in every key scope; returns how many
        were trusted."""
        hashes = {_hash(s, i) for i, s in enumerate(sha256s)}
        if len(hashes) > MAX_DOCUMENTS:
            raise InvalidInputError(
                f"remove at most {MAX_DOCUMENTS} documents at a time", field="sha256"
            )
        async with self._engine.transaction() as tx:
            where: Where = [
                Cond("org_id", "eq", org_id),
                Cond("sha256", "in", hashes),
                Cond("removed_at", "eq", None),
            ]
            rows = await tx.find("trusted_documents", where)
            now = utcnow()
            for row in rows:
                await tx.update("trusted_documents", row["id"], {"removed_at": now})
            if rows:
                await record_event(
                    tx,
                    org_id,
                    "trusted_documents_removed",
                    actor_ref=actor_ref,
                    target_ref=native_ref(Kind.ORGANIZATION, org_id),
                    metadata={
                        "count": len(rows),
                        "hashes": sorted({r["sha256"] for r in rows}),
                    },
                )
        return len(rows)

    async def page(
        self, org_id: str, *, first: int = 20, after: str | None = None
    ) -> Page[TrustedDocument]:
        """The organization's trusted documents, newest first."""
        where: Where = [Cond("org_id", "eq", org_id), Cond("removed_at", "eq", None)]
        order = Order("created_at", descending=True, after=decode_cursor(after))
        rows, has_next, total = await fetch_page(
            self._engine, "trusted_documents", where, order, first
        )
        items = [_record(r) for r in rows]
        return Page(items, [encode_cursor(d.created_at, d.id) for d in items], has_next, total)

    async def set_safelist_mode(
        self, org_id: str, *, actor_ref: str | None, mode: SafelistMode
    ) -> None:
        """Hold the organization's requests to its trusted documents as `mode` says."""
        async with self._engine.transaction() as tx:
            rows = await tx.find("organization_settings", [Cond("id", "eq", org_id)])
            previous = _mode(rows)
            if previous is mode:
                return
            fields: Row = {"safelist_mode": mode.value, "updated_at": utcnow()}
            if rows:
                await tx.update("organization_settings", org_id, fields)
            else:
                await tx.insert("organization_settings", {"id": org_id, **fields})
            await record_event(
                tx,
                org_id,
                "safelist_mode_changed",
                actor_ref=actor_ref,
                target_ref=native_ref(Kind.ORGANIZATION, org_id),
                metadata={"from": previous.value, "to": mode.value},
            )
