"""The SSRF guard: upstream addresses are checked when a connection is made, not only when a
provider is configured.

`GuardedBackend` is httpcore's network backend with one step added: it resolves the host
itself, refuses every address the `AddressGuard` forbids, and connects to an address it just
checked, so a name that resolves to a public address at configuration and to a private one
later (DNS rebinding) is refused too. TLS still verifies (and sends SNI for) the host name of
the URL, since httpcore starts TLS with the origin's host, not the address we connected to.

Refused, unless the operator allowlists them (`ONE_UPSTREAM_ALLOWLIST`, host names or CIDRs):
loopback, private, link-local, shared, multicast, unspecified and reserved addresses
(IPv4-in-IPv6 forms included). Loopback is allowed in development and test. The gateway's
own listen address is always refused: it is never a backend. A refused address fails like a
closed port (`httpcore.ConnectError`), so a client cannot tell the two apart; the log says why.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import anyio
import httpcore
import httpx
from httpcore import AsyncNetworkBackend, AsyncNetworkStream

log = logging.getLogger("one.upstream")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded(ip: IPAddress) -> list[IPAddress]:
    """The address and every IPv4 address it carries (mapped, 6to4, NAT64, Teredo)."""
    found: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            found.append(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            found.append(ip.sixtofour)
        if ip.teredo is not None:
            found.append(ip.teredo[1])
        if ip in _NAT64:
            found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _forbidden(ip: IPAddress) -> str | None:
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_link_local:
        return "link-local"
    if ip.is_private:
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


@dataclass(frozen=True)
class AddressGuard:
    """Which addresses upstream connections may reach.

    Example:
        guard = AddressGuard.build(allow_loopback=False, allowlist=["10.1.0.0/16"],
                                   listen=("0.0.0.0", 8000))
        guard.refusal("wp.internal", "10.1.2.3", 443)  # None: allowlisted
    """

    allow_loopback: bool = False
    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()
    own_port: int | None = None
    own_addresses: frozenset[IPAddress] = frozenset()
    own_any: bool = False  # the gateway listens on every interface
    local_addresses: frozenset[IPAddress] = field(default_factory=frozenset)

    @classmethod
    def build(
        cls,
        *,
        allow_loopback: bool,
        allowlist: Iterable[str] = (),
        listen: tuple[str, int] | None = None,
    ) -> AddressGuard:
        hosts: set[str] = set()
        networks: list[Network] = []
        for entry in (e.strip() for e in allowlist):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(_host(entry))
        own: set[IPAddress] = set()
        local: set[IPAddress] = set()
        own_any = False
        port = None
        if listen is not None:
            host, port = listen
            own = set(_resolve_now(host))
            own_any = any(ip.is_unspecified for ip in own)
            if own_any:
                local = set(_resolve_now(socket.gethostname()))
        return cls(
            allow_loopback=allow_loopback,
            hosts=frozenset(hosts),
            networks=tuple(networks),
            own_port=port,
            own_addresses=frozenset(own),
            own_any=own_any,
            local_addresses=frozenset(local),
        )

    def refusal(self, host: str, address: str, port: int) -> str | None:
        """Why a connection to `address` (resolved from `host`) must not be made, or None."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        carried = _embedded(ip)
        if self._is_own(carried, port):
            return "the gateway's own listen address"
        if _host(host) in self.hosts or any(a in n for a in carried for n in self.networks):
            return None
        for each in carried:
            reason = _forbidden(each)
            if reason == "loopback" and self.allow_loopback:
                continue
            if reason is not None:
                return f"a {reason} address"
        return None

    def _is_own(self, carried: Sequence[IPAddress], port: int) -> bool:
        if port != self.own_port:
            return False
        for ip in carried:
            if ip in self.own_addresses:
                return True
            if self.own_any and (ip.is_loopback or ip.is_unspecified or ip in self.local_addresses):
                return True
        return False


def _host(name: str) -> str:
    return name.strip().strip("[]").rstrip(".").lower()


def _resolve_now(host: str) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


class GuardedBackend(AsyncNetworkBackend):
    """httpcore's backend, resolving and checking every address before it connects."""

    def __init__(self, guard: AddressGuard, inner: AsyncNetworkBackend | None = None) -> None:
        self.guard = guard
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took too long") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        allowed = []
        for address in addresses:
            reason = self.guard.refusal(host, address, port)
            if reason is None:
                allowed.append(address)
            else:
                log.warning("refused to connect to %s (%s:%d): %s", host, address, port, reason)
        if not allowed:
            raise httpcore.ConnectError(f"no allowed address for {host}")
        failure: Exception | None = None
        for address in allowed:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        raise httpcore.ConnectError("upstreams are reached over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_client(
    guard: AddressGuard,
    *,
    max_connections: int,
    max_keepalive_connections: int = 50,
    user_agent: str = "one-gateway",
) -> httpx.AsyncClient:
    """The one HTTP client upstream calls share: every connection through `guard`, no
    proxy from the environment (a proxy would connect for us, unchecked), no redirects."""
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_keepalive_connections
    )
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    # httpx has no public hook for a network backend: give its transport a pool with ours.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(guard),
    )
    return httpx.AsyncClient(
        transport=transport,
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(10.0),
        headers={"User-Agent": user_agent},
    )
