"""Gateway configuration: one typed TOML file plus environment variables for secrets.

Every problem is reported at start with the key that holds it (``providers[0].client_secret_env:
environment variable MAIL_SECRET is not set``), never at the first request.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from athkit.protocol.routes import RouteRule, ScopeRouteMap


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScopeConfig(_Strict):
    #: Text the consent page shows for this scope.
    description: str = ""
    #: Upstream OAuth scopes this ATH scope needs.
    upstream: list[str] = Field(default_factory=list)


class RouteConfig(_Strict):
    #: HTTP method of the route (or ``*``).
    method: str
    #: Path pattern under the provider's ``api_base``.
    path: str
    #: The ATH scope a call to this route needs.
    scope: str


class ProviderConfig(_Strict):
    #: The id agents use for this provider (``/ath/proxy/<provider_id>/...``).
    provider_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    #: Name shown on the consent page and in the catalog.
    display_name: str
    #: Catalog categories (discovery document).
    categories: list[str] = Field(default_factory=list)
    #: Whether agents need the gateway's Phase A approval for this provider.
    agent_approval_required: bool = True
    #: OIDC issuer: endpoints are discovered from ``/.well-known/openid-configuration``.
    issuer: str | None = None
    #: Upstream authorization endpoint (when no ``issuer``).
    authorization_endpoint: str | None = None
    #: Upstream token endpoint (when no ``issuer``).
    token_endpoint: str | None = None
    #: Upstream userinfo endpoint (identifies the user when there is no id_token).
    userinfo_endpoint: str | None = None
    #: Upstream RFC 7009 revocation endpoint.
    revocation_endpoint: str | None = None
    #: Upstream JWKS for checking id_tokens.
    jwks_uri: str | None = None
    #: The userinfo member naming the account when there is no id_token (GitHub: ``id``).
    user_id_claim: str = Field("sub", pattern=r"^[A-Za-z0-9_]{1,64}$")
    #: The gateway's OAuth client id at the provider.
    client_id: str
    #: Environment variable holding the gateway's client secret at the provider.
    client_secret_env: str
    #: How the gateway authenticates at the upstream token endpoint.
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post"] = (
        "client_secret_basic"
    )
    #: Upstream scopes always requested (e.g. ``openid``, ``offline_access``).
    upstream_scopes: list[str] = Field(default_factory=lambda: ["openid"])
    #: RFC 8707 resource indicator sent upstream, if the provider wants one.
    resource: str | None = None
    #: Base URL of the provider's API that the proxy forwards to.
    api_base: str
    #: The ATH scopes of this provider, each with its upstream scopes.
    scopes: dict[str, ScopeConfig]
    #: The scope→route map: which ATH scope each method and path needs.
    routes: list[RouteConfig]
    #: When the last ATH token of a user+agent+provider goes: revoke upstream (RFC 7009),
    #: just forget the upstream tokens, or keep them.
    on_last_revoke: Literal["revoke", "forget", "keep"] = "revoke"

    @field_validator("api_base")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.rstrip("/")

    @model_validator(mode="after")
    def _check(self) -> ProviderConfig:
        if not self.issuer and not (self.authorization_endpoint and self.token_endpoint):
            raise ValueError("give 'issuer' or both 'authorization_endpoint' and 'token_endpoint'")
        if not self.scopes:
            raise ValueError("'scopes' must list at least one ATH scope")
        for i, r in enumerate(self.routes):
            if r.scope not in self.scopes:
                raise ValueError(f"routes[{i}].scope {r.scope!r} is not one of 'scopes'")
            try:
                RouteRule.parse(r.method, r.path, r.scope)
            except ValueError as exc:
                raise ValueError(f"routes[{i}]: {exc}") from exc
        return self

    def route_map(self) -> ScopeRouteMap:
        return ScopeRouteMap(RouteRule.parse(r.method, r.path, r.scope) for r in self.routes)

    def client_secret(self) -> str:
        return os.environ[self.client_secret_env]

    def upstream_scopes_for(self, ath_scopes: list[str]) -> list[str]:
        out = list(self.upstream_scopes)
        for s in ath_scopes:
            out.extend(self.scopes[s].upstream)
        return list(dict.fromkeys(out))


class PolicyConfig(_Strict):
    #: Approve every agent for every requested scope (development only).
    auto_approve: bool = False
    #: Agent identity origins approved without an operator.
    trusted_origins: list[str] = Field(default_factory=list)
    #: Developer ids approved without an operator.
    trusted_developers: list[str] = Field(default_factory=list)
    #: What happens to other agents: wait for an operator, or be denied.
    unknown_agents: Literal["pending", "denied"] = "pending"
    #: Per-scope rule: ``allow`` anyone, ``deny`` everyone, or ``trusted`` agents only.
    scope_rules: dict[str, Literal["allow", "deny", "trusted"]] = Field(default_factory=dict)


class GatewaySection(_Strict):
    #: The gateway's public base URL.
    public_url: str
    #: Id of the gateway in its discovery document.
    gateway_id: str = "athkit-gateway"
    #: Name of the gateway shown to agents and users.
    name: str = "ATH gateway"
    #: SQLAlchemy URL; default SQLite in ``data_dir``.
    database_url: str | None = None
    #: Directory of the default SQLite database.
    data_dir: Path = Path(".athkit/gateway")
    #: Allow http:// and loopback URLs (local development and tests only).
    dev_mode: bool = False
    #: Env var holding the AES-256-GCM keyring for upstream tokens: ``kid:base64,...``.
    token_keys_env: str = "ATHKIT_GATEWAY_TOKEN_KEYS"
    #: ATH access token lifetime in seconds.
    token_ttl: int = Field(3600, ge=60, le=86400)
    #: Seconds allowed for a call to the upstream provider.
    upstream_timeout: float = Field(30.0, gt=0)
    #: Refresh the upstream access token this many seconds before it expires.
    refresh_leeway: int = Field(30, ge=0)
    #: Redis shared by every node (replay cache, rate limits); None: one node, or the database.
    redis_url: str | None = None
    #: Prefix of every Redis key of this deployment.
    redis_prefix: str = "athkit:"
    #: Bearer token that may read ``/ath/metrics`` without an operator session (Prometheus).
    metrics_token: str | None = None
    #: How often each node checks for provider changes saved through the console or admin API.
    provider_poll_seconds: float = Field(2.0, gt=0, le=300)
    #: Fraction of proxied calls written to the audit log as ``proxy_request`` (1 = all, 0 =
    #: none); ``scope_violation`` is always written.
    audit_proxy_sample: float = Field(1.0, ge=0, le=1)
    #: Per-call audit rows queued for the batch writer; beyond this they are dropped (counted).
    audit_queue: int = Field(10_000, ge=100, le=1_000_000)

    @field_validator("public_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return v.rstrip("/")


class HandshakeConfig(_Strict):
    """``[handshake]``: enables the 9-step handshake on the gateway (docs/handshake.md).

    Users sign in at the gateway with one of the providers to link their key and confirm
    requests; register ``{public_url}/ath/user/callback`` as a redirect URI too.
    """

    #: Ask the user out of band before a handshake completes.
    require_user_confirmation: bool = True
    #: Longest handshake token lifetime in seconds.
    token_max_ttl: int = Field(3600, ge=60, le=3600)
    #: Seconds the user has to confirm a handshake.
    confirmation_ttl: int = Field(300, ge=30, le=3600)
    #: Restrict handshake tokens to these client addresses or networks.
    ip_whitelist: list[str] | None = None
    #: Restrict handshake tokens to a rate such as ``100/hour``.
    rate_limit: str | None = None
    #: Restrict handshake tokens to a daily time window such as ``09:00-17:00``.
    access_time: str | None = None
    #: Time zone of ``access_time``.
    timezone: str = "UTC"
    #: Where signed confirmation requests are sent (out-of-band approval).
    webhook_url: str | None = None
    #: Refuse handshake API calls that are not on the encrypted channel.
    require_encryption: bool = False


class ForwardAuthConfig(_Strict):
    """``[forward_auth]``: mounts ``/ath/forward-auth`` for a proxy in front (docs/forward-auth.md).

    The proxy proves itself with the secret in this environment variable (``X-ATH-Forward-Auth``),
    since the answer carries the user's upstream token."""

    secret_env: str = "ATHKIT_FORWARD_AUTH_SECRET"

    def secret(self) -> str:
        return os.environ[self.secret_env]


class GatewayConfig(_Strict):
    gateway: GatewaySection
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    providers: list[ProviderConfig]
    handshake: HandshakeConfig | None = None
    forward_auth: ForwardAuthConfig | None = None

    @model_validator(mode="after")
    def _unique(self) -> GatewayConfig:
        ids = [p.provider_id for p in self.providers]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"duplicate provider_id {sorted(dup)}")
        if not ids:
            raise ValueError("at least one [[providers]] entry is needed")
        return self

    def provider(self, provider_id: str) -> ProviderConfig | None:
        for p in self.providers:
            if p.provider_id == provider_id:
                return p
        return None

    def check_environment(self) -> None:
        """Secrets named by the config must be present in the environment."""
        missing = []
        if not os.environ.get(self.gateway.token_keys_env):
            missing.append(f"gateway.token_keys_env: {self.gateway.token_keys_env}")
        for i, p in enumerate(self.providers):
            if not os.environ.get(p.client_secret_env):
                missing.append(f"providers[{i}].client_secret_env: {p.client_secret_env}")
        fa = self.forward_auth
        if fa is not None and len(os.environ.get(fa.secret_env, "")) < 16:
            missing.append(f"forward_auth.secret_env: {fa.secret_env} (16+ characters)")
        if missing:
            raise ConfigError("environment variable not set: " + "; ".join(missing))


def _format(exc: ValidationError) -> str:
    lines = []
    for e in exc.errors():
        loc = ".".join(
            f"[{p}]" if isinstance(p, int) else str(p) for p in e.get("loc", ())
        ).replace(".[", "[")
        lines.append(f"{loc or '(top level)'}: {e.get('msg')}")
    return "invalid gateway configuration:\n  " + "\n  ".join(lines)


def parse_config(data: dict[str, Any]) -> GatewayConfig:
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(exc)) from None


def load_config(path: str | Path, *, check_env: bool = True) -> GatewayConfig:
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    cfg = parse_config(data)
    if check_env:
        cfg.check_environment()
    return cfg
