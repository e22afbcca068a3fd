"""Automatic persisted queries (Apollo's protocol): a client sends a document's SHA-256 hash
instead of the document; the first time it is told `PERSISTED_QUERY_NOT_FOUND` and sends both,
and the gateway keeps the pair, in a cache bounded by the total size of the documents.
"""

from __future__ import annotations

import hashlib

from resolvers.documents import SizedCache


def sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


class PersistedQueries:
    def __init__(self, max_chars: int) -> None:
        self._documents: SizedCache[str] = SizedCache(max_chars)

    def get(self, digest: str) -> str | None:
        return self._documents.get(digest)

    def put(self, document: str) -> str:
        digest = sha256(document)
        self._documents.put(digest, document, len(document))
        return digest
