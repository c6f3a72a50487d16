"""One typed settings object for an ATH service, with safe defaults (ARCHITECTURE.md habits).

Values come from keyword arguments, then ``ATHKIT_*`` environment variables.
"""

from __future__ import annotations

from pathlib import Path

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
    #: Validated tokens kept in memory (0 turns the cache off); invalidated on revocation here
    #: and, through Redis / PostgreSQL NOTIFY / the SQLite file, on every other node.
    token_cache_size: int = Field(10_000, ge=0, le=10_000_000)
    #: Longest a cached token is trusted without reading the database again (seconds).
    token_cache_max_age: float = Field(30.0, gt=0, le=3600)
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
