"""One typed settings object for an ATH service, with safe defaults (ARCHITECTURE.md habits).

Values come from keyword arguments, then ``ATHKIT_*`` environment variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ScopeInfo(BaseModel):
    """A scope the service offers, with the text the consent page shows."""

    name: str
    description: str = ""


class ATHSettings(BaseSettings):
    """Settings of a native-mode ATH service."""

    model_config = SettingsConfigDict(env_prefix="ATHKIT_", extra="ignore")

    public_url: str = Field(description="The service's public base URL, no trailing slash")
    app_id: str = "com.example.app"
    app_name: str = "ATH service"
    provider_id: str = "app"
    api_base_path: str = "/api"
    scopes: list[ScopeInfo] = Field(default_factory=list)
    database_url: str | None = None
    #: Redis for the replay cache and rate limits shared by many nodes (``redis://host:6379/0``).
    redis_url: str | None = None
    redis_prefix: str = "athkit:"
    data_dir: Path = Path(".athkit")
    #: Allows http:// and loopback agent_id URLs. For local development and tests only.
    dev_mode: bool = False
    token_ttl: int = Field(3600, ge=60, le=86400)
    session_ttl: int = Field(600, ge=30, le=600)
    approval_ttl_days: int = Field(365, ge=1)
    attestation_max_lifetime: int = Field(3600, ge=60, le=86400)
    clock_skew: int = 300
    max_body_bytes: int = 64 * 1024
    identity_cache_seconds: int = Field(300, ge=0, le=300)
    identity_max_bytes: int = 64 * 1024
    identity_timeout: float = 5.0
    login_url: str = "/login"
    secure_cookies: bool = True
    # -- the OAuth 2.1 authorization server (/oauth/*, docs/oauth-mcp.md) --
    #: Refresh tokens from /oauth/token: absolute lifetime of a family (one consent) and the
    #: idle limit (a refresh token unused for that long expires). Each use rotates it.
    refresh_token_ttl: int = Field(30 * 86400, ge=300)
    refresh_token_idle_ttl: int = Field(7 * 86400, ge=300)
    #: ``opaque`` (default, checked against the store) or ``jwt`` (RFC 9068, ES256, JWKS at
    #: ``/oauth/jwks.json``) for resource servers that verify locally.
    access_token_format: Literal["opaque", "jwt"] = "opaque"
    #: Resource servers allowed to call RFC 7662 introspection: ``{client_id: secret}``.
    introspection_clients: dict[str, str] = Field(default_factory=dict)
    #: Extra CA bundle (PEM file) trusted for outbound document fetches (identity documents,
    #: client ID metadata documents); for private PKI and tests. Default: the system's.
    outbound_ca_file: Path | None = None

    @field_validator("public_url")
    @classmethod
    def _strip(cls, v: str) -> str:
        v = v.rstrip("/")
        if not v.startswith(("http://", "https://")):
            raise ValueError("public_url must be an http(s) URL")
        return v

    @property
    def token_endpoint(self) -> str:
        return f"{self.public_url}/ath/token"

    @property
    def issuer(self) -> str:
        """RFC 8414 issuer identifier of the OAuth authorization server: the public URL."""
        return self.public_url

    @property
    def api_resource(self) -> str:
        """RFC 8707 / RFC 9728 identifier of the native API (its base URL)."""
        return f"{self.public_url}{self.api_base_path}"

    @property
    def callback_url(self) -> str:
        return f"{self.public_url}/ath/callback"

    @property
    def scope_names(self) -> list[str]:
        return [s.name for s in self.scopes]

    def scope_description(self, name: str) -> str:
        for s in self.scopes:
            if s.name == name:
                return s.description or name
        return name
