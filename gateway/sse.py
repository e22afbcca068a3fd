"""GraphQL over Server-Sent Events, the graphql-sse protocol's "distinct connections" mode.

A request with `Accept: text/event-stream` (POST, or GET for EventSource) is answered with a
stream: `event: next` and `data: <result>` for each result, then `event: complete`. Each
event of a subscription carries its cursor as the SSE `id:`, so a client that reconnects
with `Last-Event-ID` resumes after it. A comment line every `heartbeat` seconds keeps
proxies from closing an idle stream and finds clients that left.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse
from strawberry.types import ExecutionResult

from resolvers.context import Live

log = logging.getLogger("one.realtime")

EVENT_STREAM = "text/event-stream"

_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
    "Connection": "keep-alive",
}


def wants_event_stream(accept: str | None) -> bool:
    return any(
        part.split(";")[0].strip().lower() == EVENT_STREAM for part in (accept or "").split(",")
    )


def event_stream(
    results: AsyncIterator[Any],
    live: Live,
    *,
    heartbeat: float,
    formatted: Any,
) -> StreamingResponse:
    """The response streaming `results`; `formatted(result)` is a result's JSON object."""
    return StreamingResponse(
        _frames(results, live, heartbeat, formatted),
        media_type=f"{EVENT_STREAM}; charset=utf-8",
        headers=_HEADERS,
    )


async def _frames(
    results: AsyncIterator[Any], live: Live, heartbeat: float, formatted: Any
) -> AsyncIterator[str]:
    yield ":\n\n"  # headers out at once: the client knows the stream is open
    queue: asyncio.Queue[tuple[str, Any, str | None]] = asyncio.Queue(maxsize=1)

    async def pump() -> None:
        try:
            async for result in results:
                # The cursor the resolver set for the event this result was made of.
                position, live.position = live.position, None
                await queue.put(("next", result, position))
        except Exception as exc:
            log.exception("an event stream failed")  # the client gets a coded error, no detail
            await queue.put(("fail", exc, None))
        await queue.put(("complete", None, None))

    task = asyncio.create_task(pump())
    try:
        while True:
            try:
                kind, result, position = await asyncio.wait_for(queue.get(), heartbeat)
            except TimeoutError:
                yield ":\n\n"
                continue
            if kind == "complete":
                yield "event: complete\ndata:\n\n"
                return
            if kind == "fail":
                payload: dict[str, Any] = {
                    "errors": [
                        {
                            "message": "the stream failed",
                            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
                        }
                    ]
                }
            else:
                payload = formatted(result) if isinstance(result, ExecutionResult) else result
            lines = f"id: {position}\n" if position else ""
            yield f"event: next\n{lines}data: {json.dumps(payload, separators=(',', ':'))}\n\n"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        with contextlib.suppress(Exception):
            await results.aclose()  # type: ignore[attr-defined]
