"""An async client over mongomock that speaks the subset of `pymongo.AsyncMongoClient` the
MongoDB engine uses. It reports a standalone server, so the engine's undo-journal path runs.
mongomock has no `$text` (its find raises NotImplementedError) nor Atlas Search (no
`list_search_indexes` here), so the engine's search runs its scans."""

from __future__ import annotations

from typing import Any

import mongomock
from pymongo import UpdateOne


class AsyncMongomockClient:
    def __init__(self) -> None:
        self._sync: mongomock.MongoClient = mongomock.MongoClient(tz_aware=True)
        self.admin = _Admin()

    def __getitem__(self, name: str) -> _Database:
        return _Database(self._sync[name])

    async def close(self) -> None:
        self._sync.close()


class _Admin:
    async def command(self, name: str) -> dict[str, Any]:
        assert name == "hello"
        return {"isWritablePrimary": True, "ok": 1.0}


class _Database:
    def __init__(self, db: Any) -> None:
        self._db = db

    def __getitem__(self, name: str) -> _Collection:
        return _Collection(self._db[name])


class _Collection:
    """Each method runs mongomock's synchronous one; `session` is accepted and ignored."""

    def __init__(self, collection: Any) -> None:
        self._c = collection

    def find(self, filter: dict[str, Any], projection: Any = None, session: Any = None) -> _Cursor:
        return _Cursor(self._c.find(filter, projection))

    async def insert_one(self, doc: dict[str, Any], session: Any = None) -> Any:
        return self._c.insert_one(doc)

    async def find_one_and_update(self, *args: Any, session: Any = None, **kwargs: Any) -> Any:
        return self._c.find_one_and_update(*args, **kwargs)

    async def update_one(self, *args: Any, session: Any = None, **kwargs: Any) -> Any:
        return self._c.update_one(*args, **kwargs)

    async def find_one_and_delete(self, *args: Any, session: Any = None, **kwargs: Any) -> Any:
        return self._c.find_one_and_delete(*args, **kwargs)

    async def delete_one(self, *args: Any, session: Any = None) -> Any:
        return self._c.delete_one(*args)

    async def delete_many(self, *args: Any, session: Any = None) -> Any:
        return self._c.delete_many(*args)

    async def bulk_write(self, requests: list[Any], session: Any = None, **kwargs: Any) -> None:
        # mongomock's own bulk_write does not take this pymongo's UpdateOne: one at a time.
        for request in requests:
            assert isinstance(request, UpdateOne)
            self._c.update_one(request._filter, request._doc, upsert=bool(request._upsert))

    async def aggregate(self, pipeline: list[dict[str, Any]], session: Any = None) -> _Cursor:
        return _Cursor(self._c.aggregate(pipeline))

    async def count_documents(self, filter: dict[str, Any], session: Any = None) -> int:
        return int(self._c.count_documents(filter))

    async def create_index(self, keys: Any, **kwargs: Any) -> str:
        return str(self._c.create_index(keys, **kwargs))


class _Cursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def sort(self, keys: list[tuple[str, int]]) -> _Cursor:
        self._cursor = self._cursor.sort(keys)
        return self

    def skip(self, n: int) -> _Cursor:
        self._cursor = self._cursor.skip(n)
        return self

    def limit(self, n: int) -> _Cursor:
        self._cursor = self._cursor.limit(n)
        return self

    async def to_list(self, length: int | None) -> list[dict[str, Any]]:
        return list(self._cursor)
