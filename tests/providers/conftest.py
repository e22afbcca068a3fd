from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from providers.native import NativeStore
from providers.sqlite import SQLiteEngine
from tests.mongomock_async import AsyncMongomockClient

ENGINES = ["sqlite", "mongomock"]
if os.environ.get("ONE_TEST_MONGODB_URI"):
    ENGINES.append("mongodb")


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[NativeStore]:
    from providers.mongodb import MongoEngine

    if request.param == "sqlite":
        engine: SQLiteEngine | MongoEngine = SQLiteEngine(tmp_path / "one.db")
    elif request.param == "mongomock":
        engine = MongoEngine(AsyncMongomockClient(), "one_test")
    else:
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient = AsyncMongoClient(
            os.environ["ONE_TEST_MONGODB_URI"], tz_aware=True
        )  # type: ignore[type-arg]
        database = f"one_test_{uuid.uuid4().hex[:8]}"
        engine = MongoEngine(client, database)
    store = NativeStore(engine)
    await store.start()
    yield store
    if request.param == "mongodb":
        await client.drop_database(database)
    await store.close()
