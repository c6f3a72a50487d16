"""One typed settings object for an ATH service, with safe defaults (ARCHITECTURE.md habits).

Values come from keyword arguments, then ``ATHKIT_*`` environment variables.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from athkit.core.handshake_restrictions import parse_rate_limit
from athkit.store.db import DatabaseTimeouts

#: Per client IP: anonymous and credential-guessing endpoints (README "Operations").
DEFAULT_RATE_LIMITS: dict[str, str] = {
    "register": "30/minute",
    "agent_status": "60/minute",
    "authorize": "60/minute",
    "token": "60/minute",
    "revoke": "60/minute",
    "consent": "60/minute",
    "signin": "20/minute",
    "handshake": "120/minute",
    "proxy": "6000/minute",
}
#: Per agent (ATH security guidance: services SHOULD enforce per-agent limits).
DEFAULT_AGENT_RATE_LIMITS: dict[str, str] = {
    "register": "10/minute",
    "authorize": "30/minute",
    "token": "30/minute",
    "revoke": "30/minute",
    "proxy": "3000/minute",
}


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
    #: Deadline in seconds of a whole identity-document fetch (not per read).
    identity_timeout: float = Field(5.0, gt=0, le=60)
    login_url: str = "/login"
    secure_cookies: bool = True
    #: Database bounds in seconds (docs: README "Operations"); an outage answers 503.
    db_connect_timeout: float = Field(5.0, gt=0, le=300)
    db_statement_timeout: float = Field(5.0, gt=0, le=3600)
    db_pool_timeout: float = Field(5.0, gt=0, le=300)
    #: Outbound fetches (identity documents, upstream providers) in flight at once per process;
    #: one more answers 503 at once instead of queueing.
    outbound_max_concurrent: int = Field(16, ge=1, le=1000)
    #: 429 ``RATE_LIMITED`` past these ("N/second|minute|hour"); names are endpoint buckets.
    rate_limits_enabled: bool = True
    rate_limits: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    agent_rate_limits: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_AGENT_RATE_LIMITS)
    )
    #: Seconds between purges of expired rows (0: never; ``athkit db purge`` does it by hand),
    #: and how long past expiry a row is kept (so late callers still hear "expired").
    purge_interval: float = Field(600.0, ge=0)
    purge_grace: int = Field(3600, ge=0)

    @field_validator("public_url")
    @classmethod
    def _strip(cls, v: str) -> str:
        v = v.rstrip("/")
        if not v.startswith(("http://", "https://")):
            raise ValueError("public_url must be an http(s) URL")
        return v

    @field_validator("rate_limits", "agent_rate_limits")
    @classmethod
    def _limits(cls, v: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        """Given buckets override the defaults one by one; every value must parse."""
        per_ip = info.field_name == "rate_limits"
        base = DEFAULT_RATE_LIMITS if per_ip else DEFAULT_AGENT_RATE_LIMITS
        merged = {**base, **v}
        for text in merged.values():
            parse_rate_limit(text)
        return merged

    @property
    def database_timeouts(self) -> DatabaseTimeouts:
        return DatabaseTimeouts(
            self.db_connect_timeout, self.db_statement_timeout, self.db_pool_timeout
        )

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
