"""What discovery may fetch: the direct-URL allowlist, origins, and the limits of one fetch.

The SSRF checks of every hop are :mod:`athkit.netguard`'s; this module decides which origins
need no confirmation (PROTOCOL.md §2 direct mode, seed 004).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class FetchLimits:
    """Limits of every single fetch (each redirect hop is a fetch of its own)."""

    max_bytes: int = 1_048_576
    timeout: float = 5.0
    max_redirects: int = 3


def origin_of(url: str) -> str:
    """``scheme://host[:port]``, lower-cased, default port dropped (IPv6 in brackets)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or port == _default_port(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _default_port(scheme: str) -> int | None:
    return {"https": 443, "http": 80}.get(scheme)


@dataclass(frozen=True)
class _Pattern:
    scheme: str | None  # None: https (and http in dev mode)
    host: str  # exact host, or the domain of a ``*.`` pattern
    wildcard: bool
    port: int | None  # None: the scheme's default port

    def matches(self, scheme: str, host: str, port: int, dev_mode: bool) -> bool:
        if self.scheme is None:
            if scheme != "https" and not (dev_mode and scheme == "http"):
                return False
        elif scheme != self.scheme:
            return False
        if port != (self.port if self.port is not None else _default_port(scheme)):
            return False
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host


class Allowlist:
    """Origins a direct URL may come from without asking (PROTOCOL.md §2 direct mode).

    A pattern is an exact origin (``https://bank.example``, ``http://127.0.0.1:8000``), a bare
    host with optional port (``bank.example``: https, or http too in dev mode), or a wildcard
    ``*.bank.example`` / ``https://*.bank.example:8443`` matching every subdomain (never the
    domain itself). Paths, userinfo, a bare ``*`` and one-label domains (``*.com``) are refused.
    """

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns: tuple[str, ...] = tuple(patterns)
        self._parsed = tuple(self._parse(p) for p in self.patterns)

    @staticmethod
    def _parse(pattern: str) -> _Pattern:
        text = pattern.strip()
        scheme: str | None = None
        if "://" in text:
            scheme, _, text = text.partition("://")
            scheme = scheme.lower()
            if scheme not in ("http", "https"):
                raise ValueError(f"allowlist pattern must be http(s): {pattern!r}")
        wildcard = text.startswith("*.")
        if wildcard:
            text = text[2:]
        try:
            parts = urlsplit(f"{scheme or 'https'}://{text}")
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"malformed allowlist pattern {pattern!r}") from exc
        host = (parts.hostname or "").rstrip(".")
        if (
            not host
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username
            or parts.password
            or "*" in host
        ):
            raise ValueError(f"allowlist pattern must be an origin or *.domain: {pattern!r}")
        if wildcard and ("." not in host or _is_ip(host)):
            raise ValueError(f"wildcard pattern needs a domain of two labels or more: {pattern!r}")
        return _Pattern(scheme, host, wildcard, port)

    def allows(self, url: str, *, dev_mode: bool = False) -> bool:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").rstrip(".")
        try:
            port = parts.port or _default_port(scheme)
        except ValueError:
            return False
        if not host or port is None:
            return False
        return any(p.matches(scheme, host, port, dev_mode) for p in self._parsed)

    def __bool__(self) -> bool:
        return bool(self._parsed)

    def __repr__(self) -> str:
        return f"Allowlist({list(self.patterns)!r})"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
