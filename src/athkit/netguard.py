"""The one SSRF guard for URLs athkit fetches on someone else's word (stdlib only).

Used by the server (agent identity documents, :mod:`athkit.core.netguard`) and by the agent
client (discovery documents, :mod:`athkit.client.discovery`), so it imports nothing but the
standard library.

Outside dev mode a URL must be ``https`` and its host must resolve only to public addresses:
no private, loopback, link-local (cloud metadata), multicast, reserved or unspecified ones.
Dev mode allows ``http`` and loopback (never other private ranges) for local work and tests.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

__all__ = [
    "IPAddress",
    "UnsafeURLError",
    "check_address",
    "check_url",
    "check_url_syntax",
    "embedded_ipv4",
    "is_blocked_address",
    "resolve_checked",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Why a URL was refused: ``malformed``, ``scheme`` (not absolute http(s)), ``https`` (plain
#: http outside dev mode), ``credentials`` (userinfo in the URL), ``resolve`` (DNS failed),
#: ``address`` (a non-public address).
Reason = Literal["malformed", "scheme", "https", "credentials", "resolve", "address"]


class UnsafeURLError(ValueError):
    """A URL the guard refuses; ``reason`` says which rule, ``details`` carries url/address."""

    def __init__(self, reason: Reason, message: str, url: str, address: str | None = None):
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message
        self.url = url
        self.address = address

    @property
    def details(self) -> dict[str, Any]:
        details: dict[str, Any] = {"url": self.url}
        if self.address is not None:
            details["address"] = self.address
        return details


#: IPv6 prefixes that carry an IPv4 address in their low 32 bits: NAT64 (RFC 6052 well-known
#: prefix, RFC 8215 local-use). The embedded IPv4 address is what is reached, so it is checked.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
#: Transition prefixes refused outright: 6to4 (RFC 3056, deprecated by RFC 7526), Teredo
#: (RFC 4380) and IPv4-compatible addresses (``::a.b.c.d``, deprecated by RFC 4291 §2.5.5.1).
#: Each hands the connection to an IPv4 address (or a relay) the guard cannot vouch for.
_TUNNELS = (
    ipaddress.IPv6Network("2002::/16"),
    ipaddress.IPv6Network("2001::/32"),
    ipaddress.IPv6Network("::/96"),
)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_blocked_address(ip: IPAddress, *, allow_loopback: bool) -> bool:
    """True for every address that is not a public unicast one (loopback only if allowed).

    IPv6 addresses that embed an IPv4 address are judged by the IPv4 address they reach
    (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::a.b.c.d``); 6to4, Teredo and
    IPv4-compatible addresses are refused outright."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            # A NAT64 gateway's own loopback is not ours: loopback only when IPv4-mapped.
            mapped = ip.ipv4_mapped is not None
            return is_blocked_address(inner, allow_loopback=allow_loopback and mapped)
        if ip == ipaddress.IPv6Address("::1"):
            return not allow_loopback
        if any(ip in net for net in _TUNNELS):
            return True
    if ip.is_loopback:
        return not allow_loopback
    return (
        ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def check_url_syntax(url: str, *, dev_mode: bool) -> SplitResult:
    """The checks that need no network: absolute http(s), https outside dev mode, no userinfo."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        raise UnsafeURLError("malformed", "URL is malformed", url) from exc
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeURLError("scheme", "URL must be an absolute http(s) URL", url)
    if parts.scheme != "https" and not dev_mode:
        raise UnsafeURLError("https", "URL must use https", url)
    if parts.username or parts.password:
        raise UnsafeURLError("credentials", "URL must not carry credentials", url)
    return parts


def check_address(address: str, *, dev_mode: bool, url: str) -> None:
    """Refuse ``address`` (an IP literal, e.g. the peer of an open connection) if non-public."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError as exc:
        raise UnsafeURLError(
            "address", "URL resolves to a non-public address", url, address
        ) from exc
    if is_blocked_address(ip, allow_loopback=dev_mode):
        raise UnsafeURLError("address", "URL resolves to a non-public address", url, str(ip))


def resolve_checked(url: str, *, dev_mode: bool) -> list[str]:
    """Syntax checks, then resolve the host; every address must be allowed. Returns them."""
    parts = check_url_syntax(url, dev_mode=dev_mode)
    host = parts.hostname or ""
    default_port = 443 if parts.scheme == "https" else 80
    try:
        infos = socket.getaddrinfo(host, parts.port or default_port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURLError("resolve", f"cannot resolve host {host!r}", url) from exc
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        check_address(address, dev_mode=dev_mode, url=url)
        addresses.append(address)
    return addresses


def check_url(url: str, *, dev_mode: bool) -> None:
    """Raise :class:`UnsafeURLError` unless ``url`` may be fetched (resolves the host)."""
    resolve_checked(url, dev_mode=dev_mode)
