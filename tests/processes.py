"""Gateways as real processes (`one-gateway serve`), several over one data directory and,
when given, one Redis: what multi-replica tests and benchmarks run against."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
JWT_SECRET = "process-secret-" + "y" * 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gateway_env(data_dir: Path, redis_url: str | None = None, **settings: str) -> dict[str, str]:
    env = {
        **os.environ,
        "ONE_ENV": "test",
        "ONE_DATA_DIR": str(data_dir),
        "ONE_JWT_SECRET": JWT_SECRET,
        "ONE_ACTOR_RATE": "100000",
        "ONE_ACTOR_BURST": "100000",
        "ONE_HEALTH_CHECK_SECONDS": "0",
        "ONE_WORDPRESS_POLL_SECONDS": "0",
        **{f"ONE_{k.upper()}": v for k, v in settings.items()},
    }
    env.pop("ONE_REDIS_URL", None)
    if redis_url:
        env["ONE_REDIS_URL"] = redis_url
    return env


def seed(data_dir: Path) -> None:
    subprocess.run(
        [BIN / "one-gateway", "seed-demo"],
        env=gateway_env(data_dir),
        check=True,
        capture_output=True,
    )


def token(
    data_dir: Path, org: str = "acme", role: str = "org_owner", email: str | None = None
) -> str:
    args = [BIN / "one-gateway", "token", "--org", org, "--role", role]
    if email:
        args += ["--email", email]
    done = subprocess.run(
        args, env=gateway_env(data_dir), check=True, capture_output=True, text=True
    )
    return done.stdout.strip().splitlines()[-1]


@dataclass
class Gateway:
    """One `one-gateway serve` process; `url` is its base URL."""

    data_dir: Path
    redis_url: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Gateway:
        log = open(self.data_dir / f"gateway-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [BIN / "one-gateway", "serve", "--port", str(self.port)],
            env=gateway_env(self.data_dir, self.redis_url, **self.settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the gateway exited; see {log.name}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the gateway did not start; see {log.name}")

    def kill(self) -> None:
        """Gone at once, as in a crash: no shutdown, nothing flushed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def graphql(
        self, token: str, query: str, variables: dict[str, object] | None = None
    ) -> dict[str, object]:
        answer = httpx.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        body: dict[str, object] = answer.json()
        return body
