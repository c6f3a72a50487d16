"""What the vault keeps, as typed records (client registrations, grants, pending consents)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

_R = TypeVar("_R")


def _from(cls: type[_R], data: dict[str, Any]) -> _R:
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


def service_key(url: str) -> str:
    """Services are keyed by their base URL without a trailing slash."""
    return url.rstrip("/")


@dataclass
class ClientRecord:
    """The agent's registration at one service (§4): its ``client_id`` and secret."""

    service: str
    client_id: str
    client_secret: str
    agent_id: str
    agent_status: str = "approved"
    approved: dict[str, list[str]] = field(default_factory=dict)  # provider -> scopes
    registered_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClientRecord:
        return _from(cls, data)


@dataclass
class GrantRecord:
    """An access token one end user let this agent hold for one provider (§6).

    ``refresh_token``/``token_endpoint`` are set when the service's OAuth surface issued a
    refresh token (RFC 6749 §6); ATH's own ``/ath/token`` issues none, so such a grant is
    re-requested (a new consent) when it expires.
    """

    service: str
    provider_id: str
    scopes: list[str]
    access_token: str
    expires_at: float
    agent_id: str
    api_base: str | None = None
    token_type: str = "Bearer"
    refresh_token: str | None = None
    token_endpoint: str | None = None
    client_id: str | None = None
    kind: str = "ath"  # "ath", "oauth" or "handshake"
    obtained_at: float = field(default_factory=time.time)

    @property
    def key(self) -> str:
        return f"{service_key(self.service)}#{self.provider_id}"

    @property
    def refreshable(self) -> bool:
        return bool(self.refresh_token and self.token_endpoint)

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        return self.expires_at - (time.time() if now is None else now) <= seconds

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def public_dict(self) -> dict[str, Any]:
        """What may be shown to a model or a user: no token values."""
        return {
            "service": self.service,
            "provider_id": self.provider_id,
            "scopes": list(self.scopes),
            "expires_at": int(self.expires_at),
            "expires_in": max(0, int(self.expires_at - time.time())),
            "refreshable": self.refreshable,
            "kind": self.kind,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GrantRecord:
        return _from(cls, data)


@dataclass
class PendingAuthorization:
    """A Phase B authorization waiting for the user (§5): open ``authorization_url``."""

    service: str
    provider_id: str
    scopes: list[str]
    ath_session_id: str
    state: str
    authorization_url: str
    api_base: str | None = None
    created_at: float = field(default_factory=time.time)
    #: ATH sessions live at most 10 minutes (§5, §11).
    lifetime: float = 600.0

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.created_at + self.lifetime

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PendingAuthorization:
        return _from(cls, data)
