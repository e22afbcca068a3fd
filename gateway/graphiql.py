"""GraphiQL served by the gateway itself: the page at `GET /graphql`, its files under
`/graphql/static/`, so it works on a machine with no internet.

The files are the GraphiQL release Strawberry's own page pins (graphiql 3.8.3, React 18.2, the
explorer plugin), the very files its CDN addresses name, shipped gzipped in
`gateway/static/graphiql/` (made from the npm registry by its `fetch.sh`; `LICENSES.txt`
beside them). The page names each with its sha384 `integrity`, and each is served as
immutable, its version in its name.

In development the page takes its headers from the address's fragment, which browsers never
send to the server: `graphiql_link` makes such an address for a token, for `serve --demo` to
print. Headers are not kept in the browser's storage.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

STATIC_PATH = "/graphql/static"
_FILES = Path(__file__).parent / "static" / "graphiql"
_IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    """One shipped file: its name under `STATIC_PATH` and the sha384 of its bytes."""

    name: str
    integrity: str

    @property
    def media_type(self) -> str:
        return "text/css" if self.name.endswith(".css") else "text/javascript"

    @property
    def tag(self) -> str:
        url = f"{STATIC_PATH}/{self.name}"
        if self.media_type == "text/css":
            return f'<link rel="stylesheet" href="{url}" integrity="{self.integrity}" />'
        return f'<script src="{url}" integrity="{self.integrity}"></script>'


# In the order the page loads them; the hashes are those of Strawberry's page.
ASSETS = (
    Asset(
        "graphiql@3.8.3.min.css",
        "sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM",
    ),
    Asset(
        "plugin-explorer@1.0.2.css",
        "sha384-5DFJlDPW2tSATRbM8kzoP1j194jexLswuNmClWoRr2Q0x7R68JIQzPHZ02Faktwi",
    ),
    Asset(
        "react@18.2.0.production.min.js",
        "sha384-tMH8h3BGESGckSAVGZ82T9n90ztNXxvdwvdM6UoR56cYcf+0iGXBliJ29D+wZ/x8",
    ),
    Asset(
        "react-dom@18.2.0.production.min.js",
        "sha384-bm7MnzvK++ykSwVJ2tynSE5TRdN+xL418osEVF2DE/L/gfWHj91J2Sphe582B1Bh",
    ),
    Asset(
        "graphiql@3.8.3.min.js",
        "sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie",
    ),
    Asset(
        "plugin-explorer@1.0.2.umd.js",
        "sha384-2oonKe47vfHIZnmB6ZZ10vl7T0Y+qrHQF2cmNTaFDuPshpKqpUMGMc9jgj9MLDZ9",
    ),
)
_BY_NAME = {asset.name: asset for asset in ASSETS}

EXAMPLE_QUERY = """\
# The README's quick start query; it needs a token in the Headers tab:
#   {"Authorization": "Bearer <.venv/bin/one-gateway token --org acme>"}
# Run it with the play button (Ctrl-Enter).
{
  me { role person { name } organization { name usage { things members } } }
  things(first: 5) {
    totalCount
    edges { node { id __typename name status owner { name }
      connections(direction: OUT) { relationshipType to { id ... on Thing { name } } } } }
  }
}
"""

_PAGE = """<!doctype html>
<html>
  <head>
    <meta charset="utf-8" />
    <title>ONE Gateway GraphiQL</title>
    <link rel="icon" href="data:," />
    <style>
      body { height: 100%; margin: 0; width: 100%; overflow: hidden; }
      #graphiql { height: 100vh; display: flex; }
      .graphiql-explorer-actions select { margin-left: 4px; }
    </style>
    __STYLES__
  </head>
  <body>
    <div id="graphiql" class="graphiql-container">Loading...</div>
    __SCRIPTS__
    <script type="application/json" id="graphiql-config">__CONFIG__</script>
    <script>
      const config = JSON.parse(document.getElementById("graphiql-config").textContent);
      const url = new URL(window.location.pathname, window.location.href);
      const subscriptionUrl = new URL(url);
      subscriptionUrl.protocol = url.protocol === "https:" ? "wss:" : "ws:";

      // In development, `#headers={...}` fills the Headers tab; the fragment never reaches
      // the server, so the token is in no access log.
      let headers;
      if (config.headersFromFragment) {
        headers = new URLSearchParams(window.location.hash.slice(1)).get("headers") || undefined;
        try {
          if (headers) headers = JSON.stringify(JSON.parse(headers), null, 2);
        } catch (e) {
          // shown as given: GraphiQL points at what is not JSON
        }
      }

      // GraphiQL 3.8 keeps each run's headers in its history whatever shouldPersistHeaders
      // says: they are left out here, so no token is ever written to localStorage.
      const HISTORY = new Set(["graphiql:queries", "graphiql:favorites"]);
      const storage = {
        getItem: (key) => localStorage.getItem(key),
        setItem: (key, value) =>
          localStorage.setItem(
            key,
            HISTORY.has(key)
              ? JSON.stringify(JSON.parse(value), (k, v) => (k === "headers" ? undefined : v))
              : value,
          ),
        removeItem: (key) => localStorage.removeItem(key),
        clear: () =>
          Object.keys(localStorage)
            .filter((key) => key.startsWith("graphiql:"))
            .forEach((key) => localStorage.removeItem(key)),
        get length() {
          return localStorage.length;
        },
      };

      const fetcher = GraphiQL.createFetcher({
        url: url.toString(),
        // graphql-transport-ws, sent the Headers tab as connection_init's payload
        subscriptionUrl: subscriptionUrl.toString(),
      });
      const root = ReactDOM.createRoot(document.getElementById("graphiql"));
      root.render(
        React.createElement(GraphiQL, {
          fetcher,
          query: config.query,
          headers,
          storage,
          plugins: [GraphiQLPluginExplorer.explorerPlugin()],
          defaultEditorToolsVisibility: true,
          isHeadersEditorEnabled: true,
          shouldPersistHeaders: false,
          inputValueDeprecation: true,
        }),
      );
    </script>
  </body>
</html>
"""


def graphiql_page(*, development: bool) -> str:
    """The page: every file it loads is the gateway's own, with its integrity hash."""
    config = json.dumps({"query": EXAMPLE_QUERY, "headersFromFragment": development})
    return (
        _PAGE.replace("__STYLES__", _tags("text/css"))
        .replace("__SCRIPTS__", _tags("text/javascript"))
        .replace("__CONFIG__", config.replace("<", "\\u003c"))  # no `</script>` in the JSON
    )


def graphiql_link(graphql_url: str, token: str) -> str:
    """The address that opens GraphiQL (in development) with the token in its Headers tab."""
    headers = json.dumps({"Authorization": f"Bearer {token}"})
    return f"{graphql_url}#{urlencode({'headers': headers}, quote_via=quote)}"


async def static_file(request: Request) -> Response:
    asset = _BY_NAME.get(request.path_params["name"])
    if asset is None:
        return PlainTextResponse("not found", 404)
    headers = {"Cache-Control": _IMMUTABLE, "Vary": "Accept-Encoding"}
    body = _gzipped(asset.name)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
    else:
        body = gzip.decompress(body)
    return Response(body, media_type=asset.media_type, headers=headers)


static_route = Route(STATIC_PATH + "/{name}", static_file, methods=["GET"])


@cache
def _gzipped(name: str) -> bytes:
    return (_FILES / f"{name}.gz").read_bytes()


def _tags(media_type: str) -> str:
    return "\n    ".join(a.tag for a in ASSETS if a.media_type == media_type)
