"""The SSRF guard: addresses are checked when a connection is made. Production refuses
loopback, private, link-local (and the rest) and the gateway's own address, with one message
whatever listens there; an operator's allowlist lets a host or CIDR through; development and
test allow loopback."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from providers.upstream import AddressGuard, guarded_client
from tests.conftest import Api
from tests.faults import Fault, dead_url, fault_server
from tests.providers.gateways import gateway_api, native_and, route

PRODUCTION = AddressGuard.build(allow_loopback=False)
DEVELOPMENT = AddressGuard.build(allow_loopback=True)
REFUSED = [
    "127.0.0.1",
    "127.8.9.10",
    "0.0.0.0",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",  # shared address space (carrier NAT)
    "169.254.169.254",  # cloud metadata
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
]


@pytest.mark.parametrize("address", REFUSED)
def test_production_refuses_internal_addresses(address: str) -> None:
    assert PRODUCTION.refusal("upstream.example", address, 443) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::6810:85e5"])
def test_public_addresses_pass(address: str) -> None:
    assert PRODUCTION.refusal("upstream.example", address, 443) is None


def test_development_allows_loopback_only() -> None:
    assert DEVELOPMENT.refusal("localhost", "127.0.0.1", 8080) is None
    assert DEVELOPMENT.refusal("localhost", "::1", 8080) is None
    assert DEVELOPMENT.refusal("x", "10.0.0.1", 80) == "a private address"
    assert DEVELOPMENT.refusal("x", "169.254.169.254", 80) == "a link-local address"


def test_the_allowlist_takes_hosts_and_cidrs() -> None:
    guard = AddressGuard.build(allow_loopback=False, allowlist=["10.20.0.0/16", "WP.Internal."])
    assert guard.refusal("anything", "10.20.3.4", 443) is None
    assert guard.refusal("anything", "10.21.3.4", 443) is not None
    assert guard.refusal("wp.internal", "192.168.9.9", 443) is None  # the name is trusted
    assert guard.refusal("other.internal", "192.168.9.9", 443) is not None


def test_the_gateways_own_address_is_refused_even_when_loopback_is_allowed() -> None:
    own = AddressGuard.build(allow_loopback=True, listen=("127.0.0.1", 8000))
    assert own.refusal("localhost", "127.0.0.1", 8000) == "the gateway's own listen address"
    assert own.refusal("localhost", "127.0.0.1", 8001) is None
    everywhere = AddressGuard.build(
        allow_loopback=True, allowlist=["127.0.0.0/8"], listen=("0.0.0.0", 8000)
    )
    assert everywhere.refusal("localhost", "127.0.0.2", 8000) is not None
    assert everywhere.refusal("localhost", "::1", 8000) is not None


async def test_a_refused_address_is_never_connected_to() -> None:
    """Checked at connect time, on the resolved address: `localhost`, `127.0.0.1` and
    `[::1]` all fail like a closed port, and the listening server sees nothing."""
    with fault_server(Fault(body=b"{}")) as server:
        port = server.url.rsplit(":", 1)[1]
        async with guarded_client(PRODUCTION, max_connections=10) as client:
            for url in (server.url, f"http://localhost:{port}", f"http://[::1]:{port}"):
                with pytest.raises(httpx.ConnectError):
                    await client.get(url + "/")
        allowed = AddressGuard.build(allow_loopback=False, allowlist=["127.0.0.0/8"])
        async with guarded_client(allowed, max_connections=10) as client:
            assert (await client.get(server.url + "/x")).status_code == 200
    assert [r.path for r in server.received] == ["/x"]


# -- through the gateway: configureProvider's connection test ------------------------------

CONFIGURE = """mutation($url: String!) { configureProvider(input: {provider: "wordpress",
  routes: ["blog_post"], config: {base_url: $url}}) { provider status } }"""


def configure(api: Api, url: str) -> tuple[str, float]:
    started = time.perf_counter()
    error = api.error(CONFIGURE, {"url": url})
    return error["message"], time.perf_counter() - started


def test_production_refuses_with_one_message_whatever_listens(tmp_path: Path) -> None:
    with fault_server(Fault(body=b"{}")) as site:
        port = site.url.rsplit(":", 1)[1]
        with gateway_api(tmp_path / "a", env="production", port=int(port) + 1) as api:
            said = {
                url: configure(api, url)
                for url in (
                    site.url,  # a live server on loopback
                    f"http://localhost:{port}",
                    f"http://[::1]:{port}",
                    "http://10.255.255.1",  # would hang if it were tried
                    "http://169.254.169.254/latest/meta-data",
                    "http://0.0.0.0:" + port,
                )
            }
        assert site.received == []  # refused before any connection
        with gateway_api(tmp_path / "b", env="production", upstream_allowlist="127.0.0.0/8") as ok:
            unreachable, _ = configure(ok, dead_url())  # allowed, and nothing listens
            assert "errors" not in ok.post(CONFIGURE, {"url": site.url})  # allowlisted: works
    messages = {message for message, _ in said.values()}
    assert (
        messages
        == {unreachable}
        == {"wordpress connection test failed, nothing was saved: WordPress cannot be reached"}
    )
    assert all(seconds < 2 for _, seconds in said.values()), said
    assert site.received  # the allowlisted gateway reached it


def test_development_allows_loopback_but_not_the_gateway_itself(tmp_path: Path) -> None:
    with fault_server(Fault(body=b"{}")) as site:
        port = int(site.url.rsplit(":", 1)[1])
        with gateway_api(tmp_path / "a", env="development") as api:
            assert "errors" not in api.post(CONFIGURE, {"url": site.url})
        asked = len(site.received)
        with gateway_api(tmp_path / "b", env="development", host="127.0.0.1", port=port) as api:
            message, _ = configure(api, site.url)  # as if the gateway listened there
        assert "cannot be reached" in message and len(site.received) == asked


def test_a_saved_address_is_checked_again_at_connect_time(tmp_path: Path) -> None:
    """A config that passed no connection test (stored before, or changed since): its
    requests are refused all the same."""
    with fault_server(Fault(body=b"[]")) as site, gateway_api(tmp_path, env="production") as api:
        route(api, "wordpress", {"base_url": site.url.replace("127.0.0.1", "localhost")})
        body = api.post(native_and("blog_post"))
    assert body["data"]["courses"] == {"totalCount": 1}
    assert body["errors"][0]["extensions"]["code"] == "PROVIDER_UNAVAILABLE"
    assert body["errors"][0]["message"] == "WordPress cannot be reached"
    assert site.received == []


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("10.0.0.0/8, wp.internal", ["10.0.0.0/8", "wp.internal"]),
        ('["127.0.0.1/32", "::1"]', ["127.0.0.1/32", "::1"]),
        ("", []),
    ],
)
def test_the_allowlist_setting_is_comma_separated_or_json(
    monkeypatch: pytest.MonkeyPatch, value: str, parsed: list[str]
) -> None:
    from gateway.settings import load_settings

    monkeypatch.setenv("ONE_UPSTREAM_ALLOWLIST", value)
    assert load_settings().upstream_allowlist == parsed


def test_a_wrong_allowlist_entry_stops_the_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.settings import SettingsError, load_settings

    monkeypatch.setenv("ONE_UPSTREAM_ALLOWLIST", "10.0.0.0/33")
    with pytest.raises(SettingsError, match=r"ONE_UPSTREAM_ALLOWLIST: .* is neither"):
        load_settings()
