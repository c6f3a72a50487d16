"""The one rule for the redirect URIs an agent (or an OAuth client) may register.

An absolute ``https`` URL without a fragment or userinfo. Plain ``http`` only in dev mode, or
for a loopback IP literal (``127.0.0.0/8``, ``[::1]``): the native-app redirect of RFC 8252 §7.3,
which never leaves the machine. ``localhost`` is not a loopback literal (RFC 8252 §8.3).
Used by ATH registration (§4) and by the OAuth endpoints.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, urlsplit

from athkit.protocol.errors import ATHError, ErrorCode


def is_loopback_redirect(parts: SplitResult) -> bool:
    """``http://127.x.y.z[:port]/…`` or ``http://[::1][:port]/…`` (RFC 8252 §7.3)."""
    try:
        return ipaddress.ip_address(parts.hostname or "").is_loopback
    except ValueError:
        return False


def check_redirect_uri(uri: str, *, dev_mode: bool) -> None:
    """Raise ``INVALID_REQUEST`` unless ``uri`` may be registered as a redirect URI."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise _refused(uri, "redirect_uris must be absolute http(s) URLs") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
        raise _refused(uri, "redirect_uris must be absolute http(s) URLs without a fragment")
    if parts.username is not None or parts.password is not None:
        raise _refused(uri, "redirect_uris must not carry credentials")
    if parts.scheme == "http" and not dev_mode and not is_loopback_redirect(parts):
        raise _refused(
            uri, "http:// redirect_uris are allowed only for loopback IP addresses (RFC 8252 §7.3)"
        )


def _refused(uri: str, message: str) -> ATHError:
    return ATHError(ErrorCode.INVALID_REQUEST, message, {"redirect_uri": uri[:2048]})


def redirect_uri_matches(registered: str, presented: str) -> bool:
    """Exact string match (OAuth 2.1 §4.1.1), except that a loopback IP redirect may use any
    port (RFC 8252 §7.3: a native app picks a free port at run time)."""
    if registered == presented:
        return True
    try:
        a, b = urlsplit(registered), urlsplit(presented)
        a.port, b.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    if not all(p.scheme == "http" and is_loopback_redirect(p) for p in (a, b)):
        return False
    return (a.hostname, a.path or "/", a.query, a.fragment) == (
        b.hostname,
        b.path or "/",
        b.query,
        b.fragment,
    )
