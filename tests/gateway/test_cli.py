"""The `one-gateway` command, run as a user runs it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.settings import load_settings
from gateway.store import started_store
from tests.wordpress import WordPress

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
    # Where it looked, and how to point it elsewhere.
    assert f"{env['ONE_DATA_DIR']}/one.db" in missing.stderr and "ONE_DATA_DIR" in missing.stderr


CONFIGURE = (sys.executable, "-m", "gateway.cli", "configure-provider")


def test_configure_provider_names_stdin_in_its_errors(env: dict[str, str]) -> None:
    assert cli("seed-demo", env=env).returncode == 0
    for given, said in (("not json", "is not JSON"), ("[1, 2]", "must be a JSON object")):
        result = subprocess.run(
            [*CONFIGURE, "--org", "acme", "--provider", "wordpress", "--routes", "blog_post"],
            input=given,
            env={**os.environ, **env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert f"the config on stdin {said}" in result.stderr, result.stderr
        assert "waiting for" not in result.stderr  # stdin is not a terminal here


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


def test_configure_provider_and_rotate_key(env: dict[str, str], wordpress: WordPress) -> None:
    assert cli("seed-demo", env=env).returncode == 0
    config = json.dumps(wordpress.config())
    configured = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "configure-provider",
            "--org",
            "acme",
            "--provider",
            "wordpress",
            "--routes",
            "blog_post,page",
        ],
        input=config,
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert configured.returncode == 0, configured.stderr
    assert "wordpress now owns blog_post, page in acme" in configured.stdout
    assert wordpress.application_password not in configured.stdout + configured.stderr

    def sealed_kid() -> str:
        database = sqlite3.connect(Path(env["ONE_DATA_DIR"]) / "one.db")
        [(raw,)] = database.execute("SELECT config FROM provider_configs").fetchall()
        database.close()
        assert wordpress.application_password not in raw
        return str(json.loads(raw)["application_password"]["kid"])

    before = sealed_kid()
    rotated = cli("rotate-key", env=env)
    assert rotated.returncode == 0 and "re-sealed 1 provider configuration" in rotated.stdout
    after = sealed_kid()
    assert after != before and after in rotated.stdout
    keys = json.loads((Path(env["ONE_DATA_DIR"]) / "encryption-keys.json").read_text())["keys"]
    assert len(keys) == 2  # the old key stays, for anything a running gateway still holds
    settings = load_settings(data_dir=Path(env["ONE_DATA_DIR"]))
    with TestClient(create_app(settings)) as client:
        token = cli("token", "--org", "acme", env=env).stdout.strip()
        body = client.post(
            "/graphql",
            json={"query": '{ things(type: "blog_post") { totalCount } }'},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
    assert body["data"]["things"]["totalCount"] >= 60


def test_trusted_documents_from_files_and_a_manifest(env: dict[str, str], tmp_path: Path) -> None:
    assert cli("seed-demo", env=env).returncode == 0
    things = tmp_path / "Things.graphql"
    things.write_text("query Things { things { totalCount } }\n")
    body = "query Me { me { role } }"
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "format": "apollo-persisted-query-manifest",
                "version": 1,
                "operations": [
                    {
                        "id": hashlib.sha256(body.encode()).hexdigest(),
                        "name": "Me",
                        "type": "query",
                        "body": body,
                    },
                    {
                        "id": "custom-id",
                        "name": "Other",
                        "type": "query",
                        "body": "{ me { role } }",
                    },
                ],
            }
        )
    )
    result = cli(
        "trusted-documents",
        "--org",
        "acme",
        "--mode",
        "api_keys",
        str(things),
        str(manifest),
        env=env,
    )
    assert result.returncode == 0, result.stderr
    hashes = [
        hashlib.sha256(things.read_bytes()).hexdigest(),
        hashlib.sha256(body.encode()).hexdigest(),
    ]
    assert result.stdout.splitlines()[:2] == [f"{hashes[0]}  Things", f"{hashes[1]}  Me"]
    assert result.stdout.splitlines()[3] == "safelist mode of acme: api_keys"
    assert "operation 1" in result.stderr and "custom-id" not in result.stdout

    async def stored() -> tuple[str, bool, bool]:
        settings = load_settings(data_dir=Path(env["ONE_DATA_DIR"]))
        async with started_store(settings) as store:
            org = await store.organizations.get_by_slug("acme")
            assert org is not None
            docs = store.trusted_documents
            return (
                (await docs.safelist_mode(org.id)).value,
                await docs.is_trusted(org.id, hashes[0], None),
                (await docs.page(org.id)).total_count == 3,
            )

    assert asyncio.run(stored()) == ("api_keys", True, True)

    broken = tmp_path / "broken.graphql"
    broken.write_text("query {")
    failed = cli("trusted-documents", "--org", "acme", str(things), str(broken), env=env)
    assert failed.returncode == 2 and f"{broken}: document 1 is not GraphQL" in failed.stderr
    foreign = cli(
        "trusted-documents", "--org", "acme", "--api-key-id", "nope", str(things), env=env
    )
    assert foreign.returncode == 2 and "API key not found" in foreign.stderr
    assert "Traceback" not in failed.stderr + foreign.stderr
