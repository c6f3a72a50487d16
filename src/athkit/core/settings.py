"""One typed settings object for an ATH service, with safe defaults (ARCHITECTURE.md habits).

Values come from keyword arguments, then ``ATHKIT_*`` environment variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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
    #: Reverse-DNS id of the app in the service discovery document (``app_id``).
    app_id: str = "com.example.app"
    #: Name shown to agents and users (discovery document, consent page).
    app_name: str = "ATH service"
    #: The provider id agents register and authorize for.
    provider_id: str = "app"
    #: Path prefix of the service's own API routes (``api_base`` in discovery).
    api_base_path: str = "/api"
    #: The scopes the service offers, with the text the consent page shows.
    scopes: list[ScopeInfo] = Field(default_factory=list)
    #: SQLAlchemy URL (``postgresql+psycopg://user@host/db``); default SQLite in ``data_dir``.
    database_url: str | None = None
    #: Redis for the replay cache and rate limits shared by many nodes (``redis://host:6379/0``).
    redis_url: str | None = None
    #: Prefix of every Redis key this service writes.
    redis_prefix: str = "athkit:"
    #: Validated tokens kept in memory (0 turns the cache off); invalidated on revocation here
    #: and, through Redis / PostgreSQL NOTIFY / the SQLite file, on every other node.
    token_cache_size: int = Field(10_000, ge=0, le=10_000_000)
    #: Longest a cached token is trusted without reading the database again (seconds).
    token_cache_max_age: float = Field(30.0, gt=0, le=3600)
    #: Directory of the default SQLite database and the service's signing keys.
    data_dir: Path = Path(".athkit")
    #: Allows http:// and loopback agent_id URLs. For local development and tests only.
    dev_mode: bool = False
    #: Access token lifetime in seconds.
    token_ttl: int = Field(3600, ge=60, le=86400)
    #: Authorization session lifetime in seconds (at most 10 minutes).
    session_ttl: int = Field(600, ge=30, le=600)
    #: Days a Phase A approval stays valid before the agent must register again.
    approval_ttl_days: int = Field(365, ge=1)
    #: Longest accepted ``exp - iat`` of an agent attestation, seconds.
    attestation_max_lifetime: int = Field(3600, ge=60, le=86400)
    #: Seconds of clock difference tolerated on ``iat``/``nbf``/``exp``.
    clock_skew: int = 300
    #: Largest accepted JSON request body (413 above).
    max_body_bytes: int = 64 * 1024
    #: How long a fetched agent identity document is reused (at most 300).
    identity_cache_seconds: int = Field(300, ge=0, le=300)
    #: Largest agent identity document fetched.
    identity_max_bytes: int = 64 * 1024
    #: Deadline in seconds of a whole identity-document fetch (not per read).
    identity_timeout: float = Field(5.0, gt=0, le=60)
    #: On a SQLite file (and no Redis): run the protocol steps on the event loop when they can
    #: finish without waiting (any lock, pool or network wait reruns them in a worker thread).
    steps_on_loop: bool = True
    #: The host app's sign-in page; the consent page redirects there with ``next=``.
    login_url: str = "/login"
    #: Kept for compatibility: cookies are ``Secure`` over https and always outside dev mode
    #: (:attr:`cookie_secure`).
    secure_cookies: bool = True
    #: Seconds to establish a database connection (PostgreSQL ``connect_timeout``); then 503.
    db_connect_timeout: float = Field(5.0, gt=0, le=300)
    #: Seconds one statement may run, lock waits included (PostgreSQL ``statement_timeout``,
    #: SQLite's busy timeout); then 503 ``SERVICE_UNAVAILABLE``.
    db_statement_timeout: float = Field(5.0, gt=0, le=3600)
    #: Seconds to wait for a free pooled database connection; then 503.
    db_pool_timeout: float = Field(5.0, gt=0, le=300)
    #: Outbound fetches (identity documents, upstream providers) in flight at once per process;
    #: one more answers 503 at once instead of queueing.
    outbound_max_concurrent: int = Field(16, ge=1, le=1000)
    #: Answer 429 ``RATE_LIMITED`` (with ``Retry-After``) past the limits below.
    rate_limits_enabled: bool = True
    #: Per client IP and endpoint bucket, ``"N/second|minute|hour"``; given buckets override
    #: the defaults one by one (JSON in the environment variable).
    rate_limits: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    #: Per agent (``client_id``/``agent_id``/``X-ATH-Agent-ID``) and bucket, same form.
    agent_rate_limits: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_AGENT_RATE_LIMITS)
    )
    #: Seconds between purges of expired rows (0: never; ``athkit db purge`` does it by hand).
    purge_interval: float = Field(600.0, ge=0)
    #: Seconds a row is kept past its expiry (late callers still hear "expired").
    purge_grace: int = Field(3600, ge=0)
    # -- the OAuth 2.1 authorization server (/oauth/*) --
    #: Absolute lifetime (seconds) of a refresh-token family from /oauth/token (one consent);
    #: every use rotates the refresh token.
    refresh_token_ttl: int = Field(30 * 86400, ge=300)
    #: Idle limit (seconds): a refresh token unused for this long expires.
    refresh_token_idle_ttl: int = Field(7 * 86400, ge=300)
    #: ``opaque`` (default, checked against the store) or ``jwt`` (RFC 9068, ES256, JWKS at
    #: ``/oauth/jwks.json``) for resource servers that verify locally.
    access_token_format: Literal["opaque", "jwt"] = "opaque"
    #: Dynamic client registrations (RFC 7591) accepted per client IP address per minute.
    registration_rate_limit: int = Field(30, ge=1)
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
    def cookie_secure(self) -> bool:
        """Cookies carry ``Secure`` when served over https, and always outside dev mode."""
        return self.public_url.startswith("https://") or not self.dev_mode

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


#: uvicorn's default address: what a development server started without ``--host/--port`` serves.
DEV_DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


class SettingsError(SystemExit):
    """Settings that cannot start a service, said in one line (no traceback under uvicorn).

    A ``SystemExit`` so that ``uvicorn module:app`` prints only the message and exits 1; its
    ``str()`` names each bad field with its ``ATHKIT_*`` variable.
    """

    def __str__(self) -> str:
        return str(self.code)


def load_settings(**kwargs: object) -> ATHSettings:
    """``ATHSettings(**kwargs)`` with start-up errors in one line.

    In dev mode a missing ``public_url`` defaults to uvicorn's default address (with a warning
    that names ``ATHKIT_PUBLIC_URL``); outside dev mode it must be set.
    """
    import logging
    import os

    from pydantic import ValidationError

    if "public_url" not in kwargs and not os.environ.get("ATHKIT_PUBLIC_URL"):
        dev = kwargs.get("dev_mode")
        if dev is None:
            flag = os.environ.get("ATHKIT_DEV_MODE", "").strip().lower()
            dev = flag in {"1", "true", "yes", "on"}
        if dev:
            logging.getLogger("athkit").warning(
                "ATHKIT_PUBLIC_URL is not set: using %s (dev mode); set it to the URL agents use",
                DEV_DEFAULT_PUBLIC_URL,
            )
            kwargs["public_url"] = DEV_DEFAULT_PUBLIC_URL
    try:
        return ATHSettings(**kwargs)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"]) or "settings"
            env = f"ATHKIT_{str(error['loc'][0]).upper()}" if error["loc"] else ""
            what = "is not set" if error["type"] == "missing" else error["msg"]
            problems.append(f"{field} ({env}) {what}" if env else f"{field}: {what}")
        hint = ""
        if any(e["loc"][:1] == ("public_url",) for e in exc.errors()):
            hint = (
                "; set ATHKIT_PUBLIC_URL to the service's public base URL "
                "(or ATHKIT_DEV_MODE=1 for local development on http://127.0.0.1:8000)"
            )
        raise SettingsError("athkit: invalid settings: " + "; ".join(problems) + hint) from None
