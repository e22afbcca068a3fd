"""The `one-gateway` command, run as a user runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"ONE_DATA_DIR": str(tmp_path), "ONE_ENV": "development"}


def test_schema_graphql_is_current() -> None:
    from resolvers.schema import schema

    committed = (ROOT / "schema.graphql").read_text()
    assert committed == schema.as_str() + "\n", "run: make schema"


def test_export_schema_prints_the_sdl(env: dict[str, str]) -> None:
    result = cli("export-schema", env=env)
    assert result.returncode == 0
    assert result.stdout == (ROOT / "schema.graphql").read_text()


def test_seed_is_idempotent_and_token_needs_a_member(env: dict[str, str]) -> None:
    first = cli("seed-demo", env=env)
    assert first.returncode == 0 and "seeded acme, globex" in first.stderr
    again = cli("seed-demo", env=env)
    assert again.returncode == 0 and "already present" in again.stderr
    token = cli("token", "--org", "acme", "--role", "customer", env=env)
    assert token.returncode == 0 and token.stdout.count(".") == 2
    missing = cli("token", "--org", "nowhere", env=env)
    assert missing.returncode == 2 and "no organization with slug 'nowhere'" in missing.stderr


def test_invalid_settings_name_the_variable(env: dict[str, str]) -> None:
    result = cli("seed-demo", env={**env, "ONE_PORT": "http", "ONE_ENV": "production"})
    assert result.returncode == 2
    assert "ONE_PORT:" in result.stderr and "ONE_ENV" not in result.stderr.split("ONE_PORT")[0]
    prod = cli("seed-demo", env={**env, "ONE_ENV": "production"})
    assert prod.returncode == 2 and "ONE_JWT_SECRET must be set" in prod.stderr
    assert "Traceback" not in result.stderr + prod.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[tuple[str, str]]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--demo", "--port", str(port)],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise AssertionError("the server did not become ready")
        token = cli("token", "--org", "acme", env=env).stdout.strip()
        yield url, token
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=15)
        assert "Bearer " in output  # the banner printed the development token


def test_serve_demo_answers_over_real_http(server: tuple[str, str]) -> None:
    url, token = server
    assert "graphiql" in httpx.get(f"{url}/graphql", headers={"Accept": "text/html"}).text.lower()
    response = httpx.post(
        f"{url}/graphql",
        json={"query": "{ me { role } things { totalCount } }"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.json() == {"data": {"me": {"role": "ORG_OWNER"}, "things": {"totalCount": 9}}}
