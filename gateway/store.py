"""Opening the native store the settings ask for: MongoDB when a URI is set, else SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.settings import Settings
from providers.engine import Engine
from providers.native import NativeStore
from providers.sqlite import SQLiteEngine

DEFAULT_MONGODB_DATABASE = "one"


@asynccontextmanager
async def started_store(settings: Settings) -> AsyncIterator[NativeStore]:
    """The store, started for a command and closed after it."""
    store = open_store(settings)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


def open_store(settings: Settings) -> NativeStore:
    engine: Engine
    if settings.mongodb_uri is not None:
        from pymongo import AsyncMongoClient

        from providers.mongodb import MongoEngine

        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
            settings.mongodb_uri.get_secret_value(), tz_aware=True, connect=False
        )
        database = client.get_default_database(DEFAULT_MONGODB_DATABASE).name
        engine = MongoEngine(client, database)
    else:
        engine = SQLiteEngine(settings.data_dir / "one.db")
    return NativeStore(engine)
