"""Automatic persisted queries (Apollo's protocol): a client sends a document's SHA-256 hash
instead of the document; the first time it is told `PERSISTED_QUERY_NOT_FOUND` and sends both,
and the gateway keeps the pair, in a cache bounded by the total size of the documents.
"""

from __future__ import annotations

from resolvers.documents import SizedCache


class PersistedQueries:
    def __init__(self, max_chars: int) -> None:
        self._documents: SizedCache[str] = SizedCache(max_chars)

    def get(self, digest: str) -> str | None:
        return self._documents.get(digest)

    def put(self, digest: str, document: str) -> None:
        """Keep `document` under `digest`, which the caller has checked is its hash."""
        self._documents.put(digest, document, len(document))
