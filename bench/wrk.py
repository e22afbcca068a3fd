"""Load from `wrk` (Debian's package): a C load generator that outruns any server here.

A Python load generator (httpx, `bench/run.py`'s `drive`) spends 2-3 ms of CPU per request,
so it caps the fast scenarios (a raw Starlette endpoint, a cached answer) at a few hundred
requests a second, far below what the servers do; ratios between fast scenarios then measure
the load generator. `wrk` costs microseconds per request. It sends POST bodies picked at
random from a list (a Lua script generated here) over `concurrency` keep-alive connections
from one thread, and reports requests, duration and latency percentiles.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def available() -> bool:
    return shutil.which("wrk") is not None


@dataclass
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failed: int  # non-2xx answers and socket errors
    cpu_seconds: float  # wrk's own CPU time


def _lua_string(text: str) -> str:
    level = "=" * 4
    while f"]{level}]" in text:
        level += "="
    return f"[{level}[{text}]{level}]"


def _script(path: str, bodies: list[dict[str, Any]], headers: dict[str, str]) -> str:
    encoded = ",\n".join(_lua_string(json.dumps(b, separators=(",", ":"))) for b in bodies)
    header_lines = ",\n".join(
        f"  [ {_lua_string(k)} ] = {_lua_string(v)}"
        for k, v in {"Content-Type": "application/json", **headers}.items()
    )
    return f"""
local bodies = {{
{encoded}
}}
local headers = {{
{header_lines}
}}
local n = #bodies
math.randomseed(7)
request = function()
  return wrk.format("POST", {_lua_string(path)}, headers, bodies[math.random(n)])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("ONE_RESULT %.0f %.0f %.0f %.0f %.0f\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def run(
    url: str,
    bodies: list[dict[str, Any]],
    headers: dict[str, str],
    *,
    concurrency: int,
    duration: float,
    path: str = "/graphql",
) -> WrkResult:
    """`wrk -t1 -c<concurrency> -d<duration>` POSTing `bodies` (one at random per request)."""
    with tempfile.TemporaryDirectory(prefix="one-wrk-") as tmp:
        script = Path(tmp) / "bodies.lua"
        script.write_text(_script(path, bodies, headers))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(
            [
                "wrk",
                *("-t", "1", "-c", str(concurrency), "-d", f"{max(1, round(duration))}s"),
                *("--timeout", "30s", "-s", str(script), url),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in out.splitlines() if x.startswith("ONE_RESULT")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    requests, micros, p50, p99, failed = (int(v) for v in line.split()[1:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return WrkResult(requests, micros / 1e6, p50 / 1000, p99 / 1000, failed, cpu)
