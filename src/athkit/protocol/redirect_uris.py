"""Redirect URI rules for every client kind (RFC 6749 §3.1.2, OAuth 2.1 §2.3, RFC 8252).

- A redirect URI is absolute and has no fragment.
- ``https`` everywhere; plain ``http`` only for a loopback IP literal (RFC 8252 §7.3) or, in
  dev mode, anywhere; a private-use scheme with a dot (``com.example.app:/cb``, RFC 8252
  §7.1) for native apps.
- Matching is exact string comparison, except that for a loopback IP redirect the port is
  ignored (RFC 8252 §7.3: native apps pick a free port at run time).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["is_loopback_redirect", "redirect_uri_problem", "redirect_uri_matches"]


def _is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_redirect(uri: str) -> bool:
    """``http://127.0.0.1:<port>/…`` or ``http://[::1]:<port>/…`` (RFC 8252 §7.3)."""
    parts = urlsplit(uri)
    return parts.scheme == "http" and _is_loopback_host(parts.hostname)


def redirect_uri_problem(uri: str, *, dev_mode: bool) -> str | None:
    """Why ``uri`` cannot be registered, or None when it can."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return "malformed URI"
    if not parts.scheme or parts.fragment or "#" in uri:
        return "redirect URIs must be absolute and carry no fragment"
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in uri):
        return "redirect URIs must not contain spaces or control characters"
    if parts.scheme == "https":
        return None if parts.netloc else "https redirect URIs need a host"
    if parts.scheme == "http":
        if not parts.netloc:
            return "http redirect URIs need a host"
        if dev_mode or _is_loopback_host(parts.hostname):
            return None
        return "plain http is allowed only for loopback IP literals (RFC 8252 §7.3)"
    if "." in parts.scheme and parts.scheme not in ("javascript", "data", "file"):
        return None  # private-use URI scheme of a native app (RFC 8252 §7.1)
    return "redirect URIs must be https, loopback http or a private-use scheme"


def redirect_uri_matches(registered: str, presented: str) -> bool:
    """Exact match, or the same loopback redirect on another port (RFC 8252 §7.3)."""
    if registered == presented:
        return True
    if not (is_loopback_redirect(registered) and is_loopback_redirect(presented)):
        return False
    a, b = urlsplit(registered), urlsplit(presented)
    try:
        a.port, b.port  # noqa: B018
    except ValueError:
        return False
    return (a.hostname, a.path or "/", a.query) == (b.hostname, b.path or "/", b.query)
