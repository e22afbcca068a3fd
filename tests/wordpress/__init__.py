"""A real, stock WordPress for the tests: Debian's package, PHP's built-in server, MariaDB.

`running_wordpress()` installs what is missing (Debian packages), starts MariaDB if it is not
answering, creates a private database and a Debian host config, installs and seeds WordPress
with `provision.php`, and serves it on a free loopback port until the block ends.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
_ANSWERED = re.compile(r"^one-request [A-Z]+ ", re.M)
WORDPRESS_ROOT = Path("/usr/share/wordpress")
CONFIG_DIR = Path("/etc/wordpress")
PACKAGES = ["wordpress", "php-cli", "php-mysql"]
_MAX_ID = "'SELECT MAX(ID) FROM ' . $wpdb->posts"
_NEWER = "'SELECT ID FROM ' . $wpdb->posts . ' WHERE ID > %d'"


@dataclass(frozen=True)
class WordPress:
    url: str
    username: str
    application_password: str
    author_password: str
    seed: dict[str, Any]
    log: Path
    config_name: str
    delay_file: Path

    @contextmanager
    def delayed(self, milliseconds: int) -> Iterator[None]:
        """Every answer `milliseconds` slower for the block (read by router.php)."""
        self.delay_file.write_text(str(milliseconds))
        try:
            yield
        finally:
            self.delay_file.write_text("0")

    @contextmanager
    def option(self, name: str, value: str) -> Iterator[None]:
        """Set a WordPress option (e.g. `permalink_structure`) for the block, then restore it."""
        old = self._php(f"echo get_option({name!r});")
        self._php(f"update_option({name!r}, {value!r}); flush_rewrite_rules();")
        try:
            yield
        finally:
            self._php(f"update_option({name!r}, {old!r}); flush_rewrite_rules();")

    @contextmanager
    def restored(self) -> Iterator[None]:
        """Posts and pages made during the block deleted after it (the site is the whole
        session's: tests that count its seeded posts must not see another test's)."""
        newest = int(self._php("global $wpdb; echo (int) $wpdb->get_var(" + _MAX_ID + ");"))
        try:
            yield
        finally:
            self._php(
                f"global $wpdb; foreach ($wpdb->get_col({_NEWER % newest}) as $id) "
                "{ wp_delete_post((int) $id, true); }"
            )

    def _php(self, code: str) -> str:
        script = (
            f"$_SERVER['HTTP_HOST'] = '127.0.0.1'; require '{WORDPRESS_ROOT}/wp-load.php'; {code}"
        )
        result = subprocess.run(
            ["php", "-r", script],
            env={**os.environ, "WORDPRESS_CONFIG": self.config_name},
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.stdout

    def requests(self) -> int:
        """How many HTTP requests this WordPress has answered: counted by its own server."""
        return len(_ANSWERED.findall(self.log.read_text()))

    def config(self, **changes: Any) -> dict[str, Any]:
        """A provider config for the editor's Application Password."""
        return {
            "base_url": self.url,
            "username": self.username,
            "application_password": self.application_password,
            **changes,
        }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_packages() -> None:
    """Install Debian's WordPress and PHP when missing (the suite runs as root in CI)."""
    if (WORDPRESS_ROOT / "wp-load.php").exists() and shutil.which("php"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *PACKAGES], check=True, env=env)


def _mariadb(*sql: str) -> None:
    subprocess.run(
        ["mariadb", "-h", "127.0.0.1", "-u", "root", "-e", ";".join(sql)],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )


def ensure_mariadb() -> None:
    """MariaDB runs on this machine's image; start it when it is not answering."""
    try:
        _mariadb("SELECT 1")
        return
    except (subprocess.CalledProcessError, FileNotFoundError):
        pass
    subprocess.run(
        [
            "start-stop-daemon",
            "--start",
            "--oknodo",
            "--background",
            "--exec",
            "/usr/sbin/mariadbd",
        ],
        check=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            _mariadb("SELECT 1")
            return
        except subprocess.CalledProcessError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _config(database: str, url: str) -> str:
    salts = "\n".join(
        f"define('{name}', '{secrets.token_hex(32)}');"
        for name in (
            "AUTH_KEY",
            "SECURE_AUTH_KEY",
            "LOGGED_IN_KEY",
            "NONCE_KEY",
            "AUTH_SALT",
            "SECURE_AUTH_SALT",
            "LOGGED_IN_SALT",
            "NONCE_SALT",
        )
    )
    return f"""<?php
define('DB_NAME', '{database}');
define('DB_USER', 'root');
define('DB_PASSWORD', '');
define('DB_HOST', '127.0.0.1');
define('WP_HOME', '{url}');
define('WP_SITEURL', '{url}');
define('WP_ENVIRONMENT_TYPE', 'local');
define('DISABLE_WP_CRON', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
{salts}
"""


@contextmanager
def running_wordpress(tmp: Path) -> Iterator[WordPress]:
    ensure_packages()
    ensure_mariadb()
    name = f"onetest-{secrets.token_hex(4)}"
    database = name.replace("-", "_")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    config = CONFIG_DIR / f"config-{name}.php"
    _mariadb(f"DROP DATABASE IF EXISTS {database}", f"CREATE DATABASE {database}")
    config.write_text(_config(database, url))
    delay_file = tmp / "delay-ms"
    delay_file.write_text("0")
    env = {**os.environ, "WORDPRESS_CONFIG": name, "ONE_WP_DELAY_FILE": str(delay_file)}
    log = tmp / "wordpress.log"
    server = None
    try:
        provisioned = subprocess.run(
            ["php", str(HERE / "provision.php"), url],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        seed = json.loads(provisioned.stdout[provisioned.stdout.index("{") :])
        with log.open("w") as out:
            server = subprocess.Popen(
                [
                    "php",
                    "-S",
                    f"127.0.0.1:{port}",
                    "-t",
                    str(WORDPRESS_ROOT),
                    str(HERE / "router.php"),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait_until_up(url)
        yield WordPress(
            url=url,
            username="editor",
            application_password=seed["application_password"],
            author_password=seed["author_application_password"],
            seed=seed,
            log=log,
            config_name=name,
            delay_file=delay_file,
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=15)
        config.unlink(missing_ok=True)
        _mariadb(f"DROP DATABASE IF EXISTS {database}")


def _wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/?rest_route=/", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"WordPress at {url} did not come up")
