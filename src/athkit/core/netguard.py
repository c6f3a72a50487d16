"""SSRF guard for URLs the server fetches on an agent's word (PROTOCOL.md §3, athkit additions).

Outside dev mode a URL must be ``https`` and its host must resolve only to public addresses:
no private, loopback, link-local (cloud metadata), multicast, reserved or unspecified ones.
Dev mode allows ``http`` and loopback (never other private ranges) for local work and tests.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from athkit.protocol.errors import ATHError, ErrorCode


def _blocked(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool) -> bool:
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


def check_url(url: str, *, dev_mode: bool, code: ErrorCode = ErrorCode.INVALID_ATTESTATION) -> None:
    """Raise ``ATHError(code)`` unless ``url`` may be fetched."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        raise ATHError(code, "URL is malformed", {"url": url}) from exc
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ATHError(code, "URL must be an absolute http(s) URL", {"url": url})
    if parts.scheme != "https" and not dev_mode:
        raise ATHError(code, "URL must use https", {"url": url})
    if parts.username or parts.password:
        raise ATHError(code, "URL must not carry credentials", {"url": url})
    try:
        infos = socket.getaddrinfo(parts.hostname, port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise ATHError(code, f"cannot resolve host {parts.hostname!r}", {"url": url}) from exc
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if _blocked(ip, allow_loopback=dev_mode):
            raise ATHError(
                code,
                "URL resolves to a non-public address",
                {"url": url, "address": str(ip)},
            )
