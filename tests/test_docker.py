"""The Docker setup, read as Docker reads it: no engine can run here, so these tests parse
docker/compose.yaml, docker/Dockerfile and .dockerignore and check them against the settings,
the CLI and pyproject.toml. The environment compose gives the gateway is worked out from the
compose file (interpolation, variables with no value) and loaded as the gateway loads it."""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from gateway import cli
from gateway.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker" / "compose.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETTINGS_VARIABLES = {f"ONE_{name.upper()}" for name in Settings.model_fields}
PRODUCTION = {
    "ONE_ENV": "production",
    "ONE_JWT_SECRET": "s" * 48,
    "ONE_ENCRYPTION_KEY": "ab" * 32,
    "ONE_METRICS_TOKEN": "metrics-token",
}


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's (INSTRUCTION, arguments), continuation lines joined, comments out."""
    instructions, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        name, _, arguments = (pending + text).partition(" ")
        instructions.append((name.upper(), arguments.strip()))
        pending = ""
    return instructions


INSTRUCTIONS = _instructions()


def _arguments(name: str) -> list[str]:
    return [arguments for instruction, arguments in INSTRUCTIONS if instruction == name]


def _words(command: str | list[str]) -> list[str]:
    """A command in exec form (a JSON or YAML list) or shell form, as its words."""
    if isinstance(command, list):
        return [str(word) for word in command]
    return json.loads(command) if command.startswith("[") else shlex.split(command)


IMAGE_ENV = dict(
    word.split("=", 1) for arguments in _arguments("ENV") for word in shlex.split(arguments)
)


def _compose_environment(service: str) -> dict[str, str | None]:
    environment = SERVICES[service].get("environment") or {}
    if isinstance(environment, list):
        environment = dict(
            (entry.split("=", 1) if "=" in entry else (entry, None)) for entry in environment
        )
    return {k: None if v is None else str(v) for k, v in environment.items()}


_VARIABLE = re.compile(r"\$(?:\{(?P<name>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<bare>\w+))")


class _Required(Exception):
    pass


def _interpolate(value: str, host: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?message}` (and the forms without the
    colon, which test for unset rather than empty), with `$$` for a dollar."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"] or match["bare"], match["op"] or "", match["arg"] or ""
        value = host.get(name)
        present = value is not None and (value != "" or ":" not in op)  # `:`: empty is unset
        if op.endswith("-"):
            return value if present else arg
        if op.endswith("?"):
            if not present:
                raise _Required(f"{name}: {arg}")
            return value
        if op.endswith("+"):
            return arg if present else ""
        return value or ""

    return _VARIABLE.sub(one, value.replace("$$", "\0")).replace("\0", "$")


def _gateway_environment(host: dict[str, str]) -> dict[str, str]:
    """The gateway's environment under `docker compose up` run with `host`: the image's ENV,
    then compose's; a variable with no value is passed on from `host`, or left unset."""
    environment = dict(IMAGE_ENV)
    for name, value in _compose_environment("gateway").items():
        if value is not None:
            environment[name] = _interpolate(value, host)
        elif name in host:
            environment[name] = host[name]
        else:
            environment.pop(name, None)
    return environment


def _settings(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in list(os.environ):
        if name.startswith("ONE_"):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def test_every_variable_passed_is_a_setting() -> None:
    passed = {name for name in IMAGE_ENV if name.startswith("ONE_")}
    for service in SERVICES:
        passed |= {name for name in _compose_environment(service) if name.startswith("ONE_")}
    assert passed - SETTINGS_VARIABLES == set(), "not read by gateway/settings.py"


def test_compose_up_with_nothing_set_starts_in_development(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    try:
        environment = _gateway_environment({})
    except _Required as exc:
        pytest.fail(f"`docker compose up` needs a variable set: {exc}")
    empty = [name for name, value in environment.items() if value == ""]
    # An empty ONE_ENCRYPTION_KEY is refused, not taken as unset: write a variable that may
    # be unset with no value (`ONE_X:`), which compose leaves unset.
    assert empty == [], "passed as empty strings when unset"
    settings = _settings(environment, monkeypatch)
    assert settings.env == "development"
    assert settings.encryption_key is None and settings.jwt_secret is None  # generated in /data
    assert str(settings.data_dir) == "/data"


def test_compose_up_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(_gateway_environment(PRODUCTION), monkeypatch)
    assert settings.env == "production"
    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == PRODUCTION["ONE_JWT_SECRET"]
    assert settings.encryption_key is not None
    assert settings.encryption_key.get_secret_value() == PRODUCTION["ONE_ENCRYPTION_KEY"]
    assert settings.metrics_token is not None

    without_secret = {k: v for k, v in PRODUCTION.items() if k != "ONE_JWT_SECRET"}
    with pytest.raises(SettingsError, match="ONE_JWT_SECRET"):
        _settings(_gateway_environment(without_secret), monkeypatch)


class _Parser(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


@pytest.fixture(scope="module")
def one_gateway() -> argparse.ArgumentParser:
    """The parser `cli.main` builds, caught as it is about to parse."""

    def catch(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        raise _Parser(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", catch)
        with pytest.raises(_Parser) as caught:
            cli.main([])
    return caught.value.parser


def _assert_cli_accepts(parser: argparse.ArgumentParser, words: list[str], where: str) -> None:
    assert words[:1] == ["one-gateway"], f"{where} runs {words}, not one-gateway"
    try:
        parser.parse_args(words[1:])
    except SystemExit:
        pytest.fail(f"{where}: `{shlex.join(words)}` is not a one-gateway command (see stderr)")


def test_commands_are_one_gateway_commands(one_gateway: argparse.ArgumentParser) -> None:
    assert "one-gateway" in PYPROJECT["project"]["scripts"]
    image = [word for a in _arguments("ENTRYPOINT") for word in _words(a)]
    image += [word for a in _arguments("CMD")[-1:] for word in _words(a)]
    _assert_cli_accepts(one_gateway, image, "the image")
    gateway = SERVICES["gateway"]
    if "entrypoint" in gateway or "command" in gateway:
        words = _words(gateway.get("entrypoint", [])) + _words(gateway.get("command", []))
        _assert_cli_accepts(one_gateway, words, "compose's gateway")


def test_readme_docker_commands_are_real(one_gateway: argparse.ArgumentParser) -> None:
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Docker\n(.*?)(?=^## )", readme, re.S | re.M)
    assert section, "README has no '## Docker' section"
    commands = " ".join(
        re.sub(r"\\\n\s*", " ", block)
        for block in re.findall(r"```(?:sh|bash|shell)\n(.*?)```", section[1], re.S)
    )
    invocations = re.findall(r"\bone-gateway\b[^)\n|;&]*", commands)
    assert invocations, "README's Docker section runs no one-gateway command"
    for invocation in invocations:
        _assert_cli_accepts(one_gateway, shlex.split(invocation), "README's Docker section")
    for path in re.findall(r"docker compose (?:[^|;&\n]* )?-f (\S+)", commands):
        assert (ROOT / path).resolve() == COMPOSE_FILE, f"README names {path}"
    for service in re.findall(r"\bexec (?:-\S+ )*(\w+)", commands):
        assert service in SERVICES, f"README execs into {service}, not a compose service"


def test_image_runs_as_a_user_with_a_healthcheck() -> None:
    users = _arguments("USER")
    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in ("root", "0"), "the image runs as root"
    (healthcheck,) = _arguments("HEALTHCHECK")
    _, _, probe = healthcheck.partition("CMD ")
    port = re.escape(IMAGE_ENV["ONE_PORT"])
    assert re.search(rf"http://127\.0\.0\.1:(\$\{{ONE_PORT\}}|{port})/(readyz|healthz)", probe)
    assert _arguments("EXPOSE") == [IMAGE_ENV["ONE_PORT"]]
    published = [str(p).rsplit(":", 1)[-1] for p in SERVICES["gateway"].get("ports", [])]
    assert published == [IMAGE_ENV["ONE_PORT"]]


def test_every_service_has_a_healthcheck_and_the_gateway_waits_for_them() -> None:
    for name, service in SERVICES.items():
        healthcheck = service.get("healthcheck") or {}
        assert not healthcheck.get("disable"), f"{name}'s healthcheck is off"
        if "test" not in healthcheck:
            build = service.get("build") or {}
            dockerfile = COMPOSE_FILE.parent / build.get("context", ".") / build["dockerfile"]
            assert dockerfile.resolve() == DOCKERFILE, f"{name} has no healthcheck"
    depends_on = SERVICES["gateway"]["depends_on"]
    assert set(depends_on) == set(SERVICES) - {"gateway"}
    assert {d["condition"] for d in depends_on.values()} == {"service_healthy"}


def _service_of(image: str) -> str:
    (name,) = [n for n, s in SERVICES.items() if str(s.get("image", "")).startswith(image)]
    return name


def test_mongodb_is_a_replica_set_and_redis_is_wired() -> None:
    environment = _gateway_environment({})
    mongo = _service_of("mongo:")
    command = _words(SERVICES[mongo]["command"])
    replica_set = command[command.index("--replSet") + 1]
    uri = urlsplit(environment["ONE_MONGODB_URI"])
    assert (uri.scheme, uri.hostname) == ("mongodb", mongo)
    assert parse_qs(uri.query)["replicaSet"] == [replica_set]
    initiate = " ".join(_words(SERVICES[mongo]["healthcheck"]["test"]))
    assert "rs.initiate(" in initiate
    assert f"_id: '{replica_set}'" in initiate
    assert f"host: '{mongo}:{uri.port or 27017}'" in initiate

    redis = urlsplit(environment["ONE_REDIS_URL"])
    assert (redis.scheme, redis.hostname) == ("redis", _service_of("redis:"))


def _python_version() -> str:
    (base,) = _arguments("FROM")
    found = re.fullmatch(r"python:(\d+\.\d+)[-.\w]*", base)
    assert found, f"the image is not built on an official Python image: {base}"
    return found[1]


def test_the_image_installs_the_project_as_pyproject_says() -> None:
    assert _python_version() in SpecifierSet(PYPROJECT["project"]["requires-python"])
    copied = set()
    for arguments in _arguments("COPY"):
        *sources, _ = shlex.split(arguments)
        assert not any(s.startswith("--from") for s in sources)
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            copied.add(source)
    packages = {
        p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert packages | {"pyproject.toml", PYPROJECT["project"]["readme"]} <= copied
    (install,) = [a for a in _arguments("RUN") if "pip install" in a]
    assert re.search(r"pip install (--\S+ )*\.( |$)", install), "not `pip install .`"


def test_package_data_reaches_the_image() -> None:
    """The image installs a wheel (`pip install .`), not the source tree: a file that is not
    Python is in it only if pyproject.toml declares it as package data."""
    declared = PYPROJECT["tool"]["setuptools"].get("package-data", {})
    packages = [
        p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    missing = []
    for package in packages:
        for path in (ROOT / package).rglob("*"):
            if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(ROOT)
            if not any(
                fnmatch.fnmatch(str(relative.relative_to(directory)), pattern)
                for key, patterns in declared.items()
                for directory in relative.parents
                if key == "*" or key.replace(".", "/") == str(directory)
                for pattern in patterns
            ):
                missing.append(str(relative))
    assert missing == [], "not in the image: declare in pyproject's [tool.setuptools.package-data]"


def _glob(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match, plus `**`) as a regular expression."""
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            regex, i = regex + pattern[i : end + 1], end + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return re.compile(regex)


def _ignored(path: str) -> bool:
    """Docker's rule: the last pattern that matches the path, or a folder it is in, decides."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        regex = _glob(pattern.removeprefix("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not pattern.startswith("!")
    return ignored


def test_the_build_context_leaves_out_secrets_caches_and_tests() -> None:
    left_out = [
        ".git/HEAD",
        ".venv/bin/python",
        ".one/jwt-secret",
        ".one/encryption-keys.json",
        ".pytest_cache/v/cache",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/CACHEDIR.TAG",
        ".hypothesis/examples/x",
        "one_gateway.egg-info/PKG-INFO",
        "tests/wordpress/provision.php",
        "bench/results/run.json",
        "gateway/__pycache__/app.cpython-311.pyc",
    ]
    assert [path for path in left_out if not _ignored(path)] == []
    for arguments in _arguments("COPY"):
        *sources, _ = shlex.split(arguments)
        for source in sources:
            files = [ROOT / source] if (ROOT / source).is_file() else (ROOT / source).rglob("*")
            for path in files:
                relative = str(path.relative_to(ROOT))
                if path.is_dir() or "__pycache__" in path.parts:
                    continue
                assert not _ignored(relative), f"{relative} is copied but left out of the context"
