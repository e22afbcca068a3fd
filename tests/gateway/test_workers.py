"""`one-gateway serve --workers N`: several processes behind one port, sharing what must be
shared through Redis, and refusing to start without it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.gateway.test_realtime import CREATE, SSE
from tests.processes import BIN, Gateway, gateway_env, seed, token


def test_workers_without_redis_refuse_to_start_and_say_why(tmp_path: Path) -> None:
    done = subprocess.run(
        [BIN / "one-gateway", "serve", "--workers", "2"],
        env=gateway_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "ONE_WORKERS above 1 needs ONE_REDIS_URL" in done.stdout + done.stderr


def test_every_mutation_reaches_a_subscriber_whichever_worker_serves_it(
    tmp_path: Path, redis_url: str
) -> None:
    seed(tmp_path)
    owner = token(tmp_path)
    gateway = Gateway(tmp_path, redis_url, settings={"workers": "3"}).start()
    try:
        stream = SSE(gateway.url, owner, "subscription { eventAdded { target { id } } }")
        made = []
        for i in range(12):  # each on a new connection, accepted by whichever worker
            answer = gateway.graphql(owner, CREATE, {"n": f"Worker {i}"})
            made.append(answer["data"]["createThing"]["id"])  # type: ignore[index]
        got = stream.wait(12)
        assert [d["data"]["eventAdded"]["target"]["id"] for _, d in got] == made
    finally:
        gateway.stop()
