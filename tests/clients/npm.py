"""npm packages for the Node clients under tests/clients, installed once per set of versions
into a directory under the system's temporary directory, shared by every session and process
on the machine; an install that cannot reach npm raises, so a test that needs it fails
instead of skipping.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["CLIENTS", "NpmError", "installed", "node", "run"]

GRAPHQL = "graphql@16.15.0"
GRAPHQL_WS = "graphql-ws@6.4.2"
GRAPHQL_SSE = "graphql-sse@2.6.1"
WS = "ws@8.23.0"  # Node 20 has no global WebSocket
CLIENTS = (GRAPHQL, GRAPHQL_WS, GRAPHQL_SSE, WS)
HERE = Path(__file__).parent


class NpmError(RuntimeError):
    """npm or node failed: unreachable registry, missing binary, or a crashed script."""


def run(command: list[str], cwd: Path | None, timeout: float) -> str:
    """`command`'s standard output; `NpmError` when it cannot run or fails."""
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NpmError(f"{command[0]} did not run: {exc}") from exc
    if done.returncode != 0:
        raise NpmError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout


def installed(*packages: str) -> Path:
    """The `node_modules` directory holding `packages` ("name@version"), installed if need be."""
    packages = packages or CLIENTS
    root = Path(tempfile.gettempdir()) / "one-gateway-npm"
    home = root / "+".join(sorted(packages)).replace("@", "-").replace("/", "_")
    modules = home / "node_modules"
    root.mkdir(exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one install at a time; the others wait and reuse it
        if all((modules / _name(p) / "package.json").exists() for p in packages):
            return modules
        staging = Path(tempfile.mkdtemp(dir=root))
        try:
            run(
                ["npm", "install", "--no-audit", "--no-fund", "--no-save", *packages],
                cwd=staging,
                timeout=300,
            )
            shutil.rmtree(home, ignore_errors=True)
            staging.rename(home)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return modules


def node(script: str, *args: str, modules: Path | None = None) -> subprocess.Popen[str]:
    """`node tests/clients/<script> <args>` started with NODE_PATH at the installed clients,
    stdin, stdout and stderr piped as text. ES modules ignore NODE_PATH, so the scripts load their
    packages through `createRequire(process.env.NODE_PATH + "/")`."""
    if shutil.which("node") is None:
        raise NpmError("node is not installed")
    modules = modules or installed()
    return subprocess.Popen(
        ["node", str(HERE / script), *args],
        env={**os.environ, "NODE_PATH": str(modules)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _name(package: str) -> str:
    return package.rpartition("@")[0] if package.rfind("@") > 0 else package
