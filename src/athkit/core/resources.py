"""The protected resources of a service and RFC 8707 resource indicators.

Every resource athkit protects (the native API base, an MCP endpoint, a gateway provider's
proxy prefix) is registered here with the provider it belongs to and the scopes it accepts.
``/ath/authorize`` and ``/oauth/authorize`` both resolve a client's ``resource`` through
:meth:`ResourceRegistry.resolve`: an unknown resource is refused with ``INVALID_TARGET``
(RFC 8707 §2 ``invalid_target``), a known one becomes the token's audience.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from athkit.protocol.errors import ATHError, ErrorCode


@lru_cache(maxsize=4096)
def normalize_resource(url: str) -> str:
    """Compare resources as URLs: lower-case scheme and host, no trailing ``/``, no fragment.

    Memoized (a pure function of its argument): every token check compares the configured
    resource with the token's audience, which are few distinct strings."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}{query}"


def audience_covers(audience: str, resource: str) -> bool:
    """True when a token for ``audience`` may be used at ``resource``: the same resource, or one
    below it in the path hierarchy (the way the MCP SDKs compare resources)."""
    aud, res = normalize_resource(audience), normalize_resource(resource)
    return res == aud or res.startswith(aud + "/")


@dataclass(frozen=True)
class ProtectedResource:
    """One resource server identity (RFC 9728 ``resource``) and what it accepts."""

    resource: str
    provider_id: str
    scopes: tuple[str, ...]
    name: str
    kind: str = "api"  # api | mcp | proxy | service

    @property
    def metadata_path(self) -> str:
        """RFC 9728 §3.1: the well-known suffix inserted before the resource's path."""
        path = urlsplit(self.resource).path.rstrip("/")
        return "/.well-known/oauth-protected-resource" + path


class ResourceRegistry:
    """The resources of one deployment, keyed by their normalized URL."""

    def __init__(self) -> None:
        self._by_url: dict[str, ProtectedResource] = {}
        self._lock = threading.Lock()

    def add(self, resource: ProtectedResource) -> ProtectedResource:
        with self._lock:
            self._by_url[normalize_resource(resource.resource)] = resource
        return resource

    def get(self, url: str) -> ProtectedResource | None:
        return self._by_url.get(normalize_resource(url))

    def by_metadata_path(self, path: str) -> ProtectedResource | None:
        for r in list(self._by_url.values()):
            if r.metadata_path == path.rstrip("/"):
                return r
        return None

    def all(self) -> list[ProtectedResource]:
        return list(self._by_url.values())

    def default_for(self, provider_id: str) -> ProtectedResource | None:
        """The provider's main resource (its API base or proxy prefix)."""
        candidates = [r for r in self.all() if r.provider_id == provider_id]
        for r in candidates:
            if r.kind in ("api", "proxy"):
                return r
        return candidates[0] if candidates else None

    def resolve(self, resource: str | None, provider_id: str | None = None) -> ProtectedResource:
        """The registered resource a client named (RFC 8707 §2), or ``INVALID_TARGET``."""
        if resource is None:
            raise ATHError(ErrorCode.INVALID_TARGET, "resource is required")
        parts = urlsplit(resource)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
            raise ATHError(
                ErrorCode.INVALID_TARGET,
                "resource must be an absolute URI without a fragment (RFC 8707 §2)",
                {"resource": resource[:200]},
            )
        found = self.get(resource)
        if found is None:
            raise ATHError(
                ErrorCode.INVALID_TARGET,
                "this server protects no such resource",
                {"resource": resource[:200]},
            )
        if provider_id is not None and found.provider_id != provider_id:
            raise ATHError(
                ErrorCode.INVALID_TARGET,
                "the resource belongs to another provider",
                {"resource": resource[:200], "provider_id": provider_id},
            )
        return found
