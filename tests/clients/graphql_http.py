"""graphql-http (the GraphQL over HTTP reference implementation) and its server audits.

The npm packages are installed by `tests.clients.npm`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.clients.npm import GRAPHQL, installed, run

GRAPHQL_HTTP = "graphql-http@1.23.1"  # needs graphql as its peer dependency
AUDIT_SCRIPT = Path(__file__).with_name("server_audit.mjs")


def server_audits(url: str) -> list[dict[str, Any]]:
    """Every server audit's result against the GraphQL endpoint at `url`: `id`, `name`,
    `status` ("ok", "notice", "warn" or "error") and, when not ok, `reason` and the response."""
    modules = installed(GRAPHQL_HTTP, GRAPHQL)
    output = run(
        ["node", str(AUDIT_SCRIPT), str(modules / "graphql-http"), url], cwd=None, timeout=120
    )
    return [json.loads(line) for line in output.splitlines() if line.strip()]
