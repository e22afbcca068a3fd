"""Webhook deliveries from an emulator, as the SaaS sends them: each POSTed from a background
thread a moment after the change (the emulator's own answer does not wait; the platforms take
from a fraction of a second to a minute), in order, and retried with exponential backoff while
the endpoint is unreachable or answers anything but 2xx."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

log = logging.getLogger("tests.emulators.webhooks")

# attempt number (1, 2, ...) -> (raw body, headers): a retry may differ (Notion counts them)
Render = Callable[[int], tuple[bytes, dict[str, str]]]


@dataclass(frozen=True, slots=True)
class Delivery:
    url: str
    body: bytes
    headers: dict[str, str]
    status: int | None  # the endpoint's last answer; None when it could not be reached
    attempts: int


class Outbox:
    def __init__(
        self,
        *,
        attempts: int = 4,
        backoff: float = 0.1,
        timeout: float = 5.0,
        latency: float = 0.1,
    ) -> None:
        self.attempts, self.backoff, self.timeout = attempts, backoff, timeout
        self.latency = latency
        self.delivered: list[Delivery] = []  # answered 2xx
        self.failed: list[Delivery] = []  # gave up after `attempts`
        self._queue: queue.Queue[tuple[str, Render]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def send(self, url: str, render: Render) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True)
                self._thread.start()
        self._queue.put((url, render))

    def wait(self, timeout: float = 10.0) -> None:
        """Until every delivery sent so far has succeeded or been given up on."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                raise TimeoutError("webhook deliveries still pending")
            time.sleep(0.01)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while True:
                url, render = self._queue.get()
                try:
                    self._deliver(client, url, render)
                finally:
                    self._queue.task_done()

    def _deliver(self, client: httpx.Client, url: str, render: Render) -> None:
        status: int | None = None
        time.sleep(self.latency)
        for attempt in range(1, self.attempts + 1):
            body, headers = render(attempt)
            try:
                status = client.post(url, content=body, headers=headers).status_code
            except httpx.HTTPError as exc:
                log.info("webhook to %s failed (attempt %d): %s", url, attempt, exc)
                status = None
            done = Delivery(url, body, headers, status, attempt)
            if status is not None and 200 <= status < 300:
                self.delivered.append(done)
                return
            if attempt == self.attempts:
                self.failed.append(done)
                return
            time.sleep(self.backoff * 2 ** (attempt - 1))


@dataclass(frozen=True, slots=True)
class Received:
    body: bytes
    headers: dict[str, str]


class Inbox:
    """A webhook endpoint for the emulators' own tests: keeps what it receives, and refuses
    (503) the first `refuse` deliveries to exercise the retries."""

    def __init__(self, refuse: int = 0) -> None:
        self.received: list[Received] = []
        self.refused = 0
        self._refuse = refuse

    def refuse_next(self, count: int) -> None:
        self._refuse = self.refused + count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        request = Request(scope, receive)
        body = await request.body()
        if self.refused < self._refuse:
            self.refused += 1
            await Response(status_code=503)(scope, receive, send)
            return
        self.received.append(Received(body, dict(request.headers)))
        await Response(status_code=200)(scope, receive, send)
