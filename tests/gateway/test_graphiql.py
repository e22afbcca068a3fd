"""GraphiQL from the gateway itself: the page names only the gateway's own files, each served
immutable and matching its integrity hash; and in a real headless Chromium that can reach
nothing but the gateway, the page opens with the token and the example query, runs it and a
subscription, and keeps no header in localStorage."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from gateway.graphiql import ASSETS, STATIC_PATH, graphiql_link
from tests.processes import Gateway, seed, token

CHROMIUM = Path("/usr/bin/chromium")
PLAYWRIGHT = "playwright-core@1.65.1"
HTML = {"Accept": "text/html"}


def _config(page: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="graphiql-config">(.*?)</script>', page)
    assert found, page
    config: dict[str, object] = json.loads(found.group(1))
    return config


def test_the_page_loads_only_the_gateways_files(app: Starlette) -> None:
    with TestClient(app) as client:
        page = client.get("/graphql", headers=HTML)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "https://" not in page.text and "http://" not in page.text
        assert _config(page.text)["headersFromFragment"] is False  # only in development

        loaded = re.findall(r'(?:src|href)="([^"]+)" integrity="([^"]+)"', page.text)
        assert {url for url, _ in loaded} == {f"{STATIC_PATH}/{a.name}" for a in ASSETS}
        for url, integrity in loaded:
            for encoding in ("gzip", "identity"):
                served = client.get(url, headers={"Accept-Encoding": encoding})
                assert served.status_code == 200, url
                assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
                assert served.headers.get("content-encoding") == (
                    "gzip" if encoding == "gzip" else None
                )
                digest = base64.b64encode(hashlib.sha384(served.content).digest()).decode()
                assert integrity == f"sha384-{digest}", url
        assert client.get(f"{STATIC_PATH}/nothing.js").status_code == 404


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, str]]:
    data_dir = tmp_path_factory.mktemp("graphiql")
    seed(data_dir)
    running = Gateway(data_dir, settings={"env": "development"}).start()
    try:
        yield running, token(data_dir)
    finally:
        running.stop()


@pytest.fixture(scope="module")
def playwright(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Playwright's library alone (no browsers of its own), to drive Debian's Chromium."""
    _ensure_chromium()
    workdir = tmp_path_factory.mktemp("playwright")
    subprocess.run(
        ["npm", "install", "--silent", "--no-audit", "--no-fund", PLAYWRIGHT],
        cwd=workdir,
        check=True,
        timeout=300,
    )
    return workdir


def _ensure_chromium() -> None:
    """Debian's Chromium, installed when missing (the suite runs as root in CI): never a skip."""
    if CHROMIUM.exists():
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)


# Opens the page, with every request to anything but the gateway refused (and recorded),
# waits for the editors, runs the example query, then a subscription, and prints what the
# panes showed and what the page kept in localStorage.
BROWSE = """
const { chromium } = require("playwright-core");
const [url, userDataDir, token] = process.argv.slice(2);
const SUBSCRIPTION =
  'subscription { thingChanged(type: "blog_post") { changeType thing { name } } }';
const CREATE =
  'mutation($name: String!) { createThing(input: {type: "blog_post", name: $name}) { id } }';
const gateway = new URL(url).host;
(async () => {
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
  });
  const outside = [], errors = [];
  await context.route("**/*", (route) => {
    const target = new URL(route.request().url());
    if (target.protocol === "data:" || target.host === gateway) return route.continue();
    outside.push(route.request().url());
    return route.abort();
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (error) => errors.push(String(error)));
  page.on("requestfailed", (request) => errors.push(`failed: ${request.url()}`));
  const sockets = [];
  page.on("websocket", (socket) => sockets.push(socket.url()));
  const editors = () => page.evaluate(() => {
    const value = (selector) => {
      const element = document.querySelector(selector);
      return element && element.CodeMirror ? element.CodeMirror.getValue() : null;
    };
    const tools = [...document.querySelectorAll(".graphiql-editor-tool .CodeMirror")];
    return {
      query: value(".graphiql-query-editor .CodeMirror"),
      tools: tools.map((element) => element.CodeMirror.getValue()),
      response: value(".graphiql-response .CodeMirror"),
    };
  });
  try {
    await page.goto(url, { waitUntil: "load", timeout: 20000 });
    await page.waitForSelector(".graphiql-query-editor .CodeMirror", { timeout: 20000 });
    const opened = await editors();
    await page.click(".graphiql-execute-button");
    await page.waitForFunction(
      () => {
        const element = document.querySelector(".graphiql-response .CodeMirror");
        return element && element.CodeMirror.getValue().includes('"data"');
      },
      null,
      { timeout: 20000 },
    );
    const ran = await editors();

    // A subscription over GraphiQL's WebSocket, sent the Headers tab in connection_init; a
    // thing is created each half second until the response pane shows one.
    await page.evaluate((text) => {
      document.querySelector(".graphiql-query-editor .CodeMirror").CodeMirror.setValue(text);
    }, SUBSCRIPTION);
    await page.waitForTimeout(500); // GraphiQL parses the edited document after a pause
    await page.click(".graphiql-execute-button");
    let changed = null, last = null;
    for (let attempt = 0; attempt < 20 && !changed; attempt++) {
      await fetch(new URL("/graphql", url), {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: CREATE, variables: { name: `From GraphiQL ${attempt}` } }),
      });
      await new Promise((resolve) => setTimeout(resolve, 500));
      const { response } = await editors();
      if (response && response.includes("From GraphiQL")) changed = response;
      last = response;
    }

    const stored = await page.evaluate(() => JSON.stringify(window.localStorage));
    const response = ran.response;
    console.log(
      JSON.stringify({ opened, response, changed, last, sockets, stored, outside, errors }),
    );
  } finally {
    await context.close();
  }
})().catch((error) => { console.error(error); process.exit(1); });
"""


def test_chromium_offline_runs_the_example_query_and_a_subscription(
    gateway: tuple[Gateway, str], playwright: Path, tmp_path: Path
) -> None:
    running, bearer = gateway
    script = playwright / "browse.js"
    script.write_text(BROWSE)
    url = graphiql_link(f"{running.url}/graphql", bearer)
    done = subprocess.run(
        ["node", str(script), url, str(tmp_path / "profile"), bearer],
        cwd=playwright,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert seen["outside"] == [] and seen["errors"] == [], seen
    assert "things(first: 5)" in seen["opened"]["query"]
    headers = [json.loads(text) for text in seen["opened"]["tools"] if "Authorization" in text]
    assert headers == [{"Authorization": f"Bearer {bearer}"}]
    answer = json.loads(seen["response"])
    assert "errors" not in answer, answer
    assert answer["data"]["me"]["person"]["name"] == "Olivia Owner"
    assert answer["data"]["things"]["totalCount"] > 0

    assert seen["sockets"] == [f"ws://{running.url.removeprefix('http://')}/graphql"]
    assert seen["changed"] is not None, seen
    change = json.loads(seen["changed"])["data"]["thingChanged"]
    assert change["changeType"] == "CREATED" and change["thing"]["name"].startswith("From")

    assert "graphiql:queries" in seen["stored"]  # the history was kept ...
    assert bearer not in seen["stored"]  # ... without the headers


def test_the_development_page_takes_headers_from_the_link(
    gateway: tuple[Gateway, str],
) -> None:
    running, _ = gateway
    page = httpx.get(f"{running.url}/graphql", headers=HTML).text
    assert _config(page)["headersFromFragment"] is True
    link = graphiql_link(f"{running.url}/graphql", "abc")
    assert link.startswith(f"{running.url}/graphql#headers=")
    assert "abc" not in link.split("#")[0]
