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


def is_blocked_address(ip: IPAddress, *, allow_loopback: bool) -> bool:
    """True for every address that is not a public unicast one (loopback only if allowed)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
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
