"""OAuth Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document; the MCP
authorization spec's preferred client identification).

The ``client_id`` is an https URL; the document it serves describes the client. It is fetched
with the same SSRF guard, time and size limits as agent identity documents
(:meth:`IdentityFetcher.fetch_bytes`) and cached for the same at most five minutes.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from athkit.core.clock import Clock
from athkit.core.identity import IdentityFetcher
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.protocol.redirects import check_redirect_uri

#: Authentication methods a metadata-document client may use: no shared secret exists.
CIMD_AUTH_METHODS = ("none", "private_key_jwt")


def looks_like_metadata_url(client_id: str, *, dev_mode: bool) -> bool:
    """A client_id that is a URL names a metadata document (anything else is registered)."""
    schemes = ("https://", "http://") if dev_mode else ("https://",)
    return client_id.startswith(schemes)


def check_client_id_url(client_id: str, *, dev_mode: bool) -> None:
    """The URL rules of the draft §3: https, a path, no fragment, no credentials, no dot
    segments (http is tolerated in dev mode only)."""
    parts = urlsplit(client_id)
    bad = (
        parts.scheme not in (("https", "http") if dev_mode else ("https",))
        or not parts.hostname
        or parts.path in ("", "/")
        or parts.fragment
        or "#" in client_id
        or parts.username is not None
        or any(seg in (".", "..") for seg in parts.path.split("/"))
    )
    if bad:
        raise ATHError(
            ErrorCode.INVALID_CLIENT,
            "client_id URL must be https with a path, no fragment, credentials or dot segments",
        )


@dataclass(frozen=True)
class ClientMetadata:
    """The fields athkit uses from a client ID metadata document."""

    client_id: str
    client_name: str
    redirect_uris: list[str]
    token_endpoint_auth_method: str
    scope: str | None
    raw: dict[str, Any]


def parse_document(client_id: str, body: bytes, *, dev_mode: bool) -> ClientMetadata:
    def bad(message: str) -> ATHError:
        return ATHError(ErrorCode.INVALID_CLIENT, message, {"client_id": client_id[:200]})

    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise bad("client metadata document is not JSON") from exc
    if not isinstance(doc, dict):
        raise bad("client metadata document is not a JSON object")
    if doc.get("client_id") != client_id:
        raise bad("client metadata document names another client_id")
    uris = doc.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
        raise bad("client metadata document needs redirect_uris")
    for uri in uris:
        try:
            check_redirect_uri(uri, dev_mode=dev_mode)
        except ATHError as exc:
            raise bad(f"redirect_uri {uri[:100]!r}: {exc.message}") from exc
    method = doc.get("token_endpoint_auth_method", "none")
    if method not in CIMD_AUTH_METHODS:
        raise bad("a metadata-document client cannot use a shared secret")
    if "client_secret" in doc:
        raise bad("a client metadata document must not carry a client_secret")
    name = doc.get("client_name")
    scope = doc.get("scope")
    return ClientMetadata(
        client_id=client_id,
        client_name=name if isinstance(name, str) and name else urlsplit(client_id).netloc,
        redirect_uris=list(uris),
        token_endpoint_auth_method=str(method),
        scope=scope if isinstance(scope, str) else None,
        raw={k: v for k, v in doc.items() if isinstance(k, str)},
    )


class ClientMetadataFetcher:
    """Fetch and cache client ID metadata documents (at most ``cache_seconds``, ≤ 300)."""

    def __init__(self, fetcher: IdentityFetcher, *, clock: Clock, cache_seconds: float) -> None:
        self.fetcher = fetcher
        self.clock = clock
        self.cache_seconds = min(cache_seconds, 300.0)
        self._cache: dict[str, tuple[ClientMetadata, float]] = {}
        self._lock = threading.Lock()

    def get(self, client_id: str) -> tuple[ClientMetadata, bool]:
        """The document and whether it was fetched just now (False: from the cache)."""
        dev = self.fetcher.dev_mode
        check_client_id_url(client_id, dev_mode=dev)
        with self._lock:
            hit = self._cache.get(client_id)
        if hit and self.clock() - hit[1] < self.cache_seconds:
            return hit[0], False
        body = self.fetcher.fetch_bytes(
            client_id, code=ErrorCode.INVALID_CLIENT, what="client metadata document"
        )
        meta = parse_document(client_id, body, dev_mode=dev)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[client_id] = (meta, self.clock())
        return meta, True
