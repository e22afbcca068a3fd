"""The embedded engine shared by two processes' worth of connections: a write that cannot get
the file's lock in time is refused whole with STORE_BUSY, never half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers.errors import StoreBusyError
from providers.native import NativeStore
from providers.sqlite import SQLiteEngine


async def test_a_write_that_cannot_get_the_lock_is_refused_whole(tmp_path: Path) -> None:
    holder = NativeStore(SQLiteEngine(tmp_path / "one.db"))
    waiter = NativeStore(SQLiteEngine(tmp_path / "one.db", busy_seconds=0.2))
    await holder.start()
    await waiter.start()
    try:
        async with holder.engine.transaction() as tx:
            await tx.increment("event_streams", "org-1", "last_seq")  # holds the write lock
            with pytest.raises(StoreBusyError) as refused:
                await waiter.events.append(
                    "org-1", "entity_created", actor_ref=None, target_ref=None, metadata={}
                )
            assert refused.value.code == "STORE_BUSY"
            assert refused.value.extensions == {"retryable": True}
        event = await waiter.events.append(
            "org-1", "entity_created", actor_ref=None, target_ref=None, metadata={}
        )
        assert event.seq == 2  # the refused write took no number
        assert [e.seq for e in await waiter.events.in_stream("org-1", after=0)] == [2]
    finally:
        await holder.close()
        await waiter.close()
