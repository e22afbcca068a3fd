"""graphql-http (the GraphQL over HTTP reference implementation) and its server audits.

The npm packages are installed once per version into a directory under the system's
temporary directory, shared by every session and process on the machine; an install that
cannot reach npm raises, so a test that needs it fails instead of skipping.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

GRAPHQL_HTTP = "graphql-http@1.23.1"
GRAPHQL = "graphql@16.15.0"  # graphql-http's peer dependency
AUDIT_SCRIPT = Path(__file__).with_name("server_audit.mjs")


class NpmError(RuntimeError):
    """npm or node failed: unreachable registry, missing binary, or a crashed script."""


def installed() -> Path:
    """The `node_modules` directory holding graphql-http and graphql, installed if need be."""
    root = Path(tempfile.gettempdir()) / "one-gateway-npm"
    home = root / f"{GRAPHQL_HTTP}+{GRAPHQL}".replace("@", "-")
    modules = home / "node_modules"
    root.mkdir(exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one install at a time; the others wait and reuse it
        if (modules / "graphql-http" / "package.json").exists():
            return modules
        staging = Path(tempfile.mkdtemp(dir=root))
        try:
            _run(
                ["npm", "install", "--no-audit", "--no-fund", "--no-save", GRAPHQL_HTTP, GRAPHQL],
                cwd=staging,
                timeout=300,
            )
            shutil.rmtree(home, ignore_errors=True)
            staging.rename(home)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return modules


def server_audits(url: str) -> list[dict[str, Any]]:
    """Every server audit's result against the GraphQL endpoint at `url`: `id`, `name`,
    `status` ("ok", "notice", "warn" or "error") and, when not ok, `reason` and the response."""
    modules = installed()
    output = _run(
        ["node", str(AUDIT_SCRIPT), str(modules / "graphql-http"), url], cwd=None, timeout=120
    )
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def _run(command: list[str], cwd: Path | None, timeout: float) -> str:
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NpmError(f"{command[0]} did not run: {exc}") from exc
    if done.returncode != 0:
        raise NpmError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout
