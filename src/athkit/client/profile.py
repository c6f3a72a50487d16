"""An agent's identity: its key pairs, its identity document (§3) and its OAuth Client ID
Metadata Document (draft-ietf-oauth-client-id-metadata-document), kept in the vault.

Key rotation keeps the previous key verifying for a grace period: while it lasts the identity
document's ``public_key`` is a JWK Set listing both keys (each with its own ``kid``, which
attestation headers name), and so is the metadata document's ``jwks``; afterwards only the
current key is listed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from athkit.client.identity import IDENTITY_CACHE_CONTROL
from athkit.crypto import AgentKey
from athkit.protocol.messages import AgentIdentityDocument, DeveloperInfo
from athkit.protocol.version import SUPPORTED

IDENTITY_PATH = "/.well-known/agent.json"
CLIENT_METADATA_PATH = "/oauth/client-metadata.json"
#: Default grace period of a rotated-out key: longer than any attestation lives (1 h) plus
#: the verifiers' identity-document cache (5 min).
DEFAULT_GRACE = 24 * 3600
#: A native agent's OAuth redirect: loopback, port chosen at run time (RFC 8252 §7.3).
DEFAULT_REDIRECT_URIS = ("http://127.0.0.1/callback",)

__all__ = ["CLIENT_METADATA_PATH", "IDENTITY_CACHE_CONTROL", "IDENTITY_PATH", "AgentProfile"]


@dataclass
class _KeyEntry:
    key: AgentKey
    created_at: float
    retire_at: float | None = None  # None: the current key (or not yet retired)


@dataclass
class AgentProfile:
    """Name, developer, ``agent_id`` and keys of one agent (newest key first)."""

    agent_id: str
    name: str
    developer: dict[str, Any]
    keys: list[_KeyEntry]
    capabilities: list[str] = field(default_factory=list)
    redirect_uris: list[str] = field(default_factory=list)

    # -- construction -------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        name: str,
        developer: Mapping[str, Any],
        *,
        agent_id: str,
        capabilities: Iterable[str] = (),
        redirect_uris: Iterable[str] = (),
        kind: str = "P-256",
    ) -> AgentProfile:
        """A new profile with a fresh key pair (``kid`` = RFC 7638 thumbprint)."""
        DeveloperInfo.model_validate(developer)
        key = AgentKey.generate(kind)  # type: ignore[arg-type]
        return cls(
            agent_id=agent_id,
            name=name,
            developer=dict(developer),
            keys=[_KeyEntry(key, time.time())],
            capabilities=list(capabilities),
            redirect_uris=list(redirect_uris),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentProfile:
        keys = [
            _KeyEntry(AgentKey.from_jwk(k["jwk"]), float(k["created_at"]), k.get("retire_at"))
            for k in data["keys"]
        ]
        return cls(
            agent_id=str(data["agent_id"]),
            name=str(data["name"]),
            developer=dict(data["developer"]),
            keys=keys,
            capabilities=list(data.get("capabilities") or []),
            redirect_uris=list(data.get("redirect_uris") or []),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "name": self.name,
            "developer": dict(self.developer),
            "capabilities": list(self.capabilities),
            "redirect_uris": list(self.redirect_uris),
            "keys": [
                {"jwk": k.key.private_jwk(), "created_at": k.created_at, "retire_at": k.retire_at}
                for k in self.keys
            ],
        }

    # -- keys ---------------------------------------------------------------------------

    @property
    def key(self) -> AgentKey:
        """The current signing key."""
        return self.keys[0].key

    def verifying_keys(self, now: float | None = None) -> list[AgentKey]:
        """The current key and every rotated-out key still in its grace period."""
        t = time.time() if now is None else now
        return [k.key for k in self.keys if k.retire_at is None or k.retire_at > t]

    def rotate(self, *, grace: float = DEFAULT_GRACE, now: float | None = None) -> AgentKey:
        """A new current key; the old one keeps verifying for ``grace`` seconds."""
        t = time.time() if now is None else now
        kind = "P-256" if self.key.algorithm == "ES256" else "Ed25519"
        new = AgentKey.generate(kind)  # type: ignore[arg-type]
        self.keys[0].retire_at = t + grace
        live = [k for k in self.keys if k.retire_at is None or k.retire_at > t]
        self.keys = [_KeyEntry(new, t), *live]
        return new

    # -- documents ----------------------------------------------------------------------

    @property
    def origin(self) -> str:
        parts = urlsplit(self.agent_id)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def client_metadata_url(self) -> str:
        return self.origin + CLIENT_METADATA_PATH

    def public_key(self, now: float | None = None) -> dict[str, Any]:
        """One JWK, or a JWK Set ``{"keys": [...]}`` while a rotated key is in grace."""
        keys = [k.public_jwk() for k in self.verifying_keys(now)]
        return keys[0] if len(keys) == 1 else {"keys": keys}

    def identity_document(self, now: float | None = None) -> dict[str, Any]:
        """The §3 document to serve at ``agent_id`` (``Cache-Control: max-age=300``)."""
        doc = AgentIdentityDocument(
            ath_version=SUPPORTED,
            agent_id=self.agent_id,
            name=self.name,
            developer=DeveloperInfo.model_validate(self.developer),
            capabilities=list(self.capabilities),
            public_key=self.public_key(now),
        )
        return doc.model_dump(mode="json", exclude_none=True)

    def client_metadata(self, now: float | None = None) -> dict[str, Any]:
        """The Client ID Metadata Document served at :attr:`client_metadata_url`.

        Its ``client_id`` is exactly the URL it is served at (the draft's string comparison
        rule). Having no shared secret it is a public client (``none``, PKCE), the method
        athkit's authorization server accepts for metadata-document clients; ``jwks`` lists
        the verifying keys (both during a rotation's grace period) and ``software_id`` names
        the ATH identity (RFC 7591 §2 metadata names). ``redirect_uris`` defaults to a
        loopback redirect (RFC 8252 §7.3: any port matches).
        """
        doc: dict[str, Any] = {
            "client_id": self.client_metadata_url,
            "client_name": self.name,
            "client_uri": self.origin,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "redirect_uris": list(self.redirect_uris or DEFAULT_REDIRECT_URIS),
            "jwks": {"keys": [k.public_jwk() for k in self.verifying_keys(now)]},
            "software_id": self.agent_id,
        }
        contact = self.developer.get("contact")
        if contact:
            doc["contacts"] = [str(contact)]
        return doc

    def documents(self, now: float | None = None) -> dict[str, dict[str, Any]]:
        """Every document to serve, by URL path."""
        path = urlsplit(self.agent_id).path or IDENTITY_PATH
        return {path: self.identity_document(now), CLIENT_METADATA_PATH: self.client_metadata(now)}
