"""Outbound HTTP to user-configured endpoints, safe against server-side request forgery.

A provider's base URL is typed by a workspace member, so without a guard anyone could make the
server call its own loopback services, the cloud metadata endpoint or the private network. Every
connection made for a provider goes through :class:`GuardedAsyncBackend`, which resolves the host,
refuses it when any address is loopback, private, link-local, multicast or otherwise reserved, and
then connects to the address it checked (so a DNS answer cannot change between check and use).
Operators allow internal endpoints (Ollama, vLLM) with PROVIDER_EGRESS_ALLOWLIST: host names, IPs or
CIDR ranges. The bundled local model is platform-managed and is not subject to the guard.

Refusals raise subclasses of ``openai.APIConnectionError``: the openai client re-raises its own
errors at once instead of retrying, so a blocked address or an unknown host fails immediately.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore2
import httpx2
import openai
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Not covered by ipaddress's is_global in every Python version, or worth naming explicitly.
_EXTRA_BLOCKED = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/96",  # IPv4-compatible (deprecated): ::127.0.0.1 is 127.0.0.1 to some stacks
        "::ffff:0:0/96",  # IPv4-mapped
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "2002::/16",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
]
_BLOCKED_NAMES = ("localhost", "metadata.google.internal", "metadata")
_BLOCKED_SUFFIXES = (".localhost", ".local", ".internal")


class EgressDeniedError(openai.APIConnectionError):
    """The endpoint's address is not reachable from this platform (private or reserved)."""


class HostNotFoundError(openai.APIConnectionError):
    """The endpoint's host name does not resolve."""


def _request_for(host: str, port: int) -> httpx2.Request:
    return httpx2.Request("GET", f"http://{host}:{port}/")


def _allowlist() -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    names: set[str] = set()
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for entry in settings.PROVIDER_EGRESS_ALLOWLIST:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.lower().rstrip("."))
    return names, networks


def address_is_public(ip: IPAddress) -> bool:
    """Return whether ``ip`` is a globally routable unicast address (IPv4-mapped IPv6 is unwrapped)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if not ip.is_global or ip.is_multicast:
        return False
    return not any(ip in network for network in _EXTRA_BLOCKED if network.version == ip.version)


def address_allowed(ip: IPAddress) -> bool:
    """Return whether connecting to ``ip`` is allowed: public, or inside an allowlisted range."""
    _, networks = _allowlist()
    return address_is_public(ip) or any(ip in network for network in networks if network.version == ip.version)


def host_allowlisted(host: str) -> bool:
    names, _ = _allowlist()
    return host.lower().rstrip(".") in names


def literal_address(host: str) -> IPAddress | None:
    """Return the address ``host`` spells literally, read as the system's resolver reads it (also inet_aton's
    legacy IPv4 forms: ``127.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1``), or None for a name."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not host or not all(c.isalnum() or c == "." for c in host) or not host[0].isdigit():
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def check_base_url(url: str) -> str | None:
    """Return why ``url`` may not be used as an endpoint, or None when it may (checked without DNS).

    Refuses non-HTTP schemes, credentials in the URL, percent-encoded hosts, addresses not written in their
    standard form (``127.1``, ``0x7f.1``, ``2130706433``, ``0177.0.0.1``: resolvers read them differently),
    and literal addresses or well-known internal names that are not allowlisted. Names that resolve to
    private addresses are caught at connect time.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "This is not a valid URL."
    if parts.scheme not in ("http", "https"):
        return "Use an http:// or https:// URL."
    if parts.username or parts.password:
        return "Do not put credentials in the URL; use the API key or a header instead."
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        return "The URL has no host."
    if port == 0:
        return "The port is not valid."
    if "%" in host:
        return "Write the host without percent-encoding."
    literal = literal_address(host)
    if literal is not None and str(literal) != host.strip("[]"):
        return f"Write the address in its standard form ({literal}), or use a host name."
    if host_allowlisted(host):
        return None
    if literal is not None and not address_allowed(literal):
        return f"{host} is a private or reserved address; an operator must allowlist it (PROVIDER_EGRESS_ALLOWLIST)."
    if literal is None and (host in _BLOCKED_NAMES or host.endswith(_BLOCKED_SUFFIXES)):
        return f"{host} is an internal name; an operator must allowlist it (PROVIDER_EGRESS_ALLOWLIST)."
    return None


async def resolve_allowed(host: str, port: int) -> list[str]:
    """Resolve ``host`` and return its addresses; raise when it does not resolve or any address is refused."""
    literal = literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror:
            raise HostNotFoundError(
                message=f"The host {host} was not found.", request=_request_for(host, port)
            ) from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not host_allowlisted(host):
        for address in addresses:
            if not address_allowed(address):
                raise EgressDeniedError(
                    message=f"{host} resolves to {address}, a private or reserved address; an operator must "
                    "allowlist it (PROVIDER_EGRESS_ALLOWLIST).",
                    request=_request_for(host, port),
                )
    return [str(a) for a in addresses]


class GuardedAsyncBackend(httpcore2.AsyncNetworkBackend):
    """An httpcore network backend that connects only to allowed, pre-checked addresses."""

    def __init__(self, inner: httpcore2.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        last_error: Exception | None = None
        for address in await resolve_allowed(host, port):
            try:
                # TLS still verifies the certificate against the URL's host name (httpcore passes it as SNI).
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.AsyncNetworkStream:
        raise EgressDeniedError(message="Unix sockets are not allowed.", request=_request_for("localhost", 0))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(*, guarded: bool, limits: httpx2.Limits) -> httpx2.AsyncHTTPTransport:
    """Return an async transport; with ``guarded`` its connections go through GuardedAsyncBackend.

    httpx2 takes no network backend argument, so the connection pool is rebuilt with one; a test
    checks that a private address is refused, which would catch a change of these internals.
    """
    transport = httpx2.AsyncHTTPTransport(limits=limits, trust_env=False)
    if guarded:
        old_pool = transport._pool
        transport._pool = httpcore2.AsyncConnectionPool(
            ssl_context=old_pool._ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedAsyncBackend(),
        )
    return transport
