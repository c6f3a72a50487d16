"""Protected resource metadata (RFC 9728) and the ``WWW-Authenticate`` challenges that point
to it (RFC 9728 §5.1, RFC 6750 §3, MCP authorization "scope challenge" / step-up).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from athkit.core.resources import ProtectedResource

WELL_KNOWN_PRM = "/.well-known/oauth-protected-resource"


def metadata_url(resource: ProtectedResource) -> str:
    """Where a resource's metadata lives: the well-known suffix before its path (§3.1)."""
    parts = urlsplit(resource.resource)
    return f"{parts.scheme}://{parts.netloc}{resource.metadata_path}"


def protected_resource_metadata(resource: ProtectedResource, issuer: str) -> dict[str, Any]:
    """The RFC 9728 §2 document of one resource; ``resource`` equals the identifier the
    client derived it from (§3.3), and the authorization server is this issuer."""
    return {
        "resource": resource.resource,
        "authorization_servers": [issuer],
        "scopes_supported": list(resource.scopes),
        "bearer_methods_supported": ["header"],
        "resource_name": resource.name,
        "ath_provider_id": resource.provider_id,
    }


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bearer_challenge(
    resource: ProtectedResource | None,
    *,
    error: str | None = None,
    description: str | None = None,
    scopes: Iterable[str] = (),
) -> str:
    """``WWW-Authenticate: Bearer …`` for a 401 or 403 (RFC 6750 §3, RFC 9728 §5.1).

    With no token sent there is no ``error`` (RFC 6750 §3.1); ``scope`` names what the
    request needs, which MCP clients ask for on the next authorization (step-up)."""
    parts: list[str] = []
    if error:
        parts.append(f"error={_quote(error)}")
    if description:
        parts.append(f"error_description={_quote(description[:200])}")
    scope = " ".join(dict.fromkeys(scopes))
    if scope:
        parts.append(f"scope={_quote(scope)}")
    if resource is not None:
        parts.append(f"resource_metadata={_quote(metadata_url(resource))}")
    return "Bearer " + ", ".join(parts) if parts else "Bearer"
