"""Shared fixtures: a gateway app on a fresh embedded store, with the demo data, over HTTP."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis import Redis as SyncRedis
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.applications import Starlette
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.demo import seed_demo
from gateway.settings import Settings, load_settings
from providers.native import NativeStore
from providers.records import Role
from tests.wordpress import WordPress, running_wordpress

JWT_SECRET = "test-secret-" + "x" * 40


@dataclass
class Api:
    """GraphQL over HTTP against the app, as a given member (or nobody)."""

    client: TestClient
    tokens: dict[tuple[str, Role], str]

    @property
    def store(self) -> NativeStore:
        store: NativeStore = self.client.app.state.store  # type: ignore[attr-defined]
        return store

    def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a coroutine function on the app's event loop (for store set-up in tests)."""
        portal = self.client.portal
        assert portal is not None
        return portal.call(lambda: fn(*args, **kwargs))

    def quiet(self, *, still: float = 0.2, most: float = 5.0) -> None:
        """Wait until the store has seen no query for `still` seconds: the background work a
        burst of writes leaves (the relay marking its events published) done, before a test
        counts a request's queries."""
        deadline = time.monotonic() + most
        seen = self.store.engine.queries
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < still and time.monotonic() < deadline:
            time.sleep(0.02)
            if self.store.engine.queries != seen:
                seen, quiet_since = self.store.engine.queries, time.monotonic()

    def token(self, org: str = "acme", role: Role = Role.ORG_OWNER) -> str:
        if (org, role) not in self.tokens:
            self.tokens[(org, role)] = self.run(self._issue, org, role)
        return self.tokens[(org, role)]

    async def _issue(self, slug: str, role: Role) -> str:
        org = await self.store.organizations.get_by_slug(slug)
        assert org is not None
        member = next(m for m in await self.store.people.members(org.id) if m.role is role)
        auth = self.client.app.state.auth  # type: ignore[attr-defined]
        token: str = auth.issue(person_id=member.person_id, org_id=org.id, role=role)
        return token

    def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        org: str = "acme",
        role: Role | None = Role.ORG_OWNER,
        token: str | None = None,
    ) -> dict[str, Any]:
        headers = {}
        if token is None and role is not None:
            token = self.token(org, role)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def post_body(
        self, body: dict[str, Any], *, org: str = "acme", role: Role = Role.ORG_OWNER
    ) -> dict[str, Any]:
        """Any request body (extensions, persisted queries), as a member."""
        headers = {"Authorization": f"Bearer {self.token(org, role)}"}
        response = self.client.post("/graphql", json=body, headers=headers)
        result: dict[str, Any] = response.json()
        return result

    def data(self, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
        """The `data` of a request that must succeed without errors."""
        body = self.post(query, variables, **kw)
        assert "errors" not in body, body["errors"]
        return body["data"]

    def error(self, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
        """The single error of a request that must fail."""
        body = self.post(query, variables, **kw)
        assert len(body.get("errors", [])) == 1, body
        error = body["errors"][0]
        assert error["extensions"]["code"], error
        assert "Traceback" not in error["message"]
        return error


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of our own for the whole session, stopped at its end."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(binary, os.X_OK):
        pytest.fail(
            "redis-server is not installed; the rate-limit tests need the real server: "
            "run `make system-deps` (or apt-get install redis-server)"
        )
    port = free_port()
    workdir: Path = tmp_path_factory.mktemp("redis")
    logfile = workdir / "redis.log"
    options = f"--port {port} --bind 127.0.0.1 --appendonly no --dir {workdir} --logfile {logfile}"
    server = subprocess.Popen([binary, *options.split(), "--save", ""])
    try:
        _wait_for_ping(server, port, logfile)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wait_for_ping(server: subprocess.Popen[bytes], port: int, logfile: Path) -> None:
    client = SyncRedis(port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 15
    try:
        while True:
            try:
                if client.ping():
                    return
            except RedisConnectionError:
                pass  # not listening yet
            if server.poll() is not None:
                output = logfile.read_text() if logfile.exists() else ""
                pytest.fail(f"redis-server exited with {server.returncode}:\n{output}")
            if time.monotonic() > deadline:
                pytest.fail(f"redis-server did not answer PING on port {port} within 15 s")
            time.sleep(0.05)
    finally:
        client.close()


@pytest.fixture(scope="session")
def wordpress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WordPress]:
    """A real, stock WordPress on loopback for the whole session (see tests/wordpress)."""
    with running_wordpress(tmp_path_factory.mktemp("wordpress")) as wp:
        yield wp


def app_settings(data_dir: Path, **overrides: Any) -> Settings:
    """The settings of the `app` fixture, with `overrides`.

    Generous rate limits: most tests send requests back to back; the tests of the limits
    themselves (tests/gateway/test_protection.py) set their own. The relay's sweep for events
    another process left unpublished reads the store in the background: off here, where tests
    count each request's store queries (tests/gateway/test_realtime.py has it)."""
    defaults: dict[str, Any] = {
        "env": "test",
        "data_dir": data_dir,
        "jwt_secret": JWT_SECRET,
        "actor_rate": 1000,
        "actor_burst": 1000,
        "relay_sweep_seconds": 3600,
        # Indexing knowledge in the background would add store queries to the requests that
        # tests count; tests/gateway/test_indexer.py turns it on.
        "knowledge_index_seconds": 0,
        # The migration runner's look for work reads the store too: only when kicked (a
        # migration started here) unless a test turns it on (tests/gateway/test_migrations.py).
        "migration_poll_seconds": 300,
        # The WordPress poll reads every organization's provider configs every 30 s: store
        # queries beside the ones tests count (a planned-vs-unplanned count once differed by
        # one). Tests of change detection turn it on.
        "wordpress_poll_seconds": 0,
    }
    return load_settings(**{**defaults, **overrides})


@contextmanager
def seeded_api(app: Starlette) -> Iterator[Api]:
    """The app running, with the demo data."""
    with TestClient(app) as client:
        api = Api(client, {})
        api.run(seed_demo, api.store)
        yield api


@pytest.fixture
def app(tmp_path: Path) -> Starlette:
    return create_app(app_settings(tmp_path))


@pytest.fixture
def api(app: Starlette) -> Iterator[Api]:
    with seeded_api(app) as api:
        yield api
