"""How a service runs the handshake: :class:`HandshakePolicy` and the protocol's limits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from athkit.core.handshake_restrictions import Restrictions

VERSIONS = ("0.1",)
CAPABILITIES = ("ES256", "EdDSA")
MAX_SKEW = 300
MIN_NONCE_BYTES = 16
TOKEN_MAX_TTL = 3600
SESSION_MAX_TTL = 24 * 3600
MAX_WAIT = 30


@dataclass(frozen=True)
class HandshakePolicy:
    """How a service runs the handshake. Every field has a safe default.

    - ``scopes``: the scopes the handshake may grant (``None``: every scope the service offers).
    - ``extra_scopes``: name → description of scopes offered through the handshake only (on
      top of the service's own, e.g. seed 003's ``goods:read`` and ``order:create``).
    - ``require_user_confirmation``: ask the user out of band (steps 6–7) before step 8.
    - ``token_max_ttl`` (≤ 3600), ``confirmation_ttl``, ``handshake_ttl`` (≤ 600) and
      ``session_key_ttl`` (≤ 24 h), in seconds.
    - ``ip_whitelist``, ``rate_limit``, ``access_time`` + ``timezone``: restrictions reported in
      ``scope_result`` and enforced at every use of the session's token.
    - ``webhook_url``: where step 6 is also POSTed, signed by the server key.
    - ``server_key`` (private JWK) or ``server_key_path``; default: generated under
      ``<data_dir>/handshake/server_key.jwk``. ``use_did_web``: the server DID is the did:web
      of ``public_url`` (its document is served at ``/.well-known/did.json``).
    - ``sealing_keys``: ``"kid:base64,…"`` for sealing session keys at rest (default: the
      ``ATHKIT_HANDSHAKE_SEALING_KEYS`` variable, else a key generated under ``data_dir``).
    - ``known_agents``: ``client_did`` → ``{"name", "developer"}`` shown to the user instead of
      what the agent states about itself in ``scope_request.context``.
    - ``require_encryption``: refuse handshake tokens on plain (unencrypted) API calls.
    """

    scopes: Sequence[str] | None = None
    extra_scopes: Mapping[str, str] = field(default_factory=dict)
    require_user_confirmation: bool = True
    token_max_ttl: int = TOKEN_MAX_TTL
    confirmation_ttl: int = 300
    handshake_ttl: int = 600
    session_key_ttl: int = SESSION_MAX_TTL
    ip_whitelist: Sequence[str] | None = None
    rate_limit: str | None = None
    access_time: str | None = None
    timezone: str = "UTC"
    webhook_url: str | None = None
    webhook_timeout: float = 5.0
    server_key: Mapping[str, Any] | None = None
    server_key_path: Path | None = None
    use_did_web: bool = False
    sealing_keys: str | None = None
    known_agents: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    require_encryption: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.token_max_ttl <= TOKEN_MAX_TTL:
            raise ValueError("token_max_ttl must be between 1 and 3600 seconds")
        if not 0 < self.handshake_ttl <= 600:
            raise ValueError("handshake_ttl must be between 1 and 600 seconds")
        if not 0 < self.session_key_ttl <= SESSION_MAX_TTL:
            raise ValueError("session_key_ttl must be between 1 s and 24 h")
        if self.confirmation_ttl <= 0:
            raise ValueError("confirmation_ttl must be positive")
        self.restrictions()  # validates the restriction syntax now

    def restrictions(self) -> Restrictions:
        return Restrictions(
            ip_whitelist=tuple(self.ip_whitelist) if self.ip_whitelist is not None else None,
            rate_limit=self.rate_limit,
            access_time=self.access_time,
            timezone=self.timezone,
        )
