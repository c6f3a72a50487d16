"""Wire messages of ATH 0.1 (PROTOCOL.md §2–§9), as pydantic v2 models.

Field names follow PROTOCOL.md exactly. Input models ignore unknown fields (forward
compatibility, §2); strings are bounded and free of control characters (``protocol.fields``) so
a hostile body can neither balloon memory nor smuggle a NUL byte into a store.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from athkit.protocol.fields import JsonObject, JwtStr, ScopeStr, ShortStr, UrlStr, text, token

VersionStr = Annotated[str, token(32)]
ScopeList = Annotated[list[ScopeStr], Field(max_length=64)]


class Message(BaseModel):
    """Base for every ATH message: unknown fields are ignored on input."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class AgentStatus(str, Enum):
    APPROVED = "approved"
    PENDING = "pending"
    DENIED = "denied"


# -- §2 discovery ---------------------------------------------------------------------------


class ServiceAuth(Message):
    type: Literal["oauth2"] = "oauth2"
    authorization_endpoint: UrlStr
    token_endpoint: UrlStr
    registration_endpoint: UrlStr | None = None
    scopes_supported: list[ScopeStr] = Field(default_factory=list)
    agent_attestation_required: bool = True


class ServiceDiscoveryDocument(Message):
    """``GET /.well-known/ath-app.json`` (service-side discovery)."""

    ath_version: VersionStr
    app_id: ShortStr
    name: ShortStr
    #: athkit: the ``provider_id`` agents register and authorize with (PROTOCOL-NOTES.md).
    provider_id: ShortStr | None = None
    auth: ServiceAuth
    api_base: UrlStr


class ProviderInfo(Message):
    provider_id: ShortStr
    display_name: ShortStr
    categories: list[ShortStr] = Field(default_factory=list)
    available_scopes: list[ScopeStr] = Field(default_factory=list)
    auth_mode: ShortStr = "OAUTH2"
    agent_approval_required: bool = True


class GatewayDiscoveryDocument(Message):
    """``GET /.well-known/ath.json`` (gateway catalog)."""

    ath_version: VersionStr
    gateway_id: ShortStr
    agent_registration_endpoint: UrlStr
    supported_providers: list[ProviderInfo] = Field(default_factory=list)


class ManualOAuth(Message):
    authorization_url: UrlStr
    token_url: UrlStr


class ManualServiceConfig(Message):
    """A service described by hand in the agent's config (§2 manual mode)."""

    provider: ShortStr
    api_base: UrlStr
    oauth: ManualOAuth


# -- §3 identity ----------------------------------------------------------------------------


class DeveloperInfo(Message):
    name: ShortStr
    id: ShortStr
    contact: ShortStr | None = None


class AgentIdentityDocument(Message):
    """The document an agent publishes at its ``agent_id`` URL."""

    ath_version: VersionStr = "0.1"
    agent_id: UrlStr
    name: ShortStr
    developer: DeveloperInfo
    capabilities: list[Annotated[str, token(4096)]] = Field(default_factory=list)
    public_key: JsonObject | Annotated[str, text(16384, 1)]


# -- §4 registration ------------------------------------------------------------------------


class ProviderScopeRequest(Message):
    provider_id: ShortStr
    scopes: ScopeList


class RegisterRequest(Message):
    agent_id: UrlStr
    agent_attestation: JwtStr
    developer: DeveloperInfo
    requested_providers: Annotated[list[ProviderScopeRequest], Field(min_length=1, max_length=32)]
    purpose: Annotated[str, text(1024)] | None = None
    redirect_uris: Annotated[list[UrlStr], Field(max_length=16)] | None = None


class ProviderApproval(Message):
    provider_id: str
    approved_scopes: list[str] = Field(default_factory=list)
    denied_scopes: list[str] = Field(default_factory=list)
    denial_reason: str | None = None
    #: athkit: why each scope in ``denied_scopes`` is denied (PROTOCOL-NOTES.md, §4).
    denied_scope_reasons: dict[str, str] | None = None


class RegisterResponse(Message):
    client_id: str
    client_secret: str
    agent_status: AgentStatus
    approved_providers: list[ProviderApproval] = Field(default_factory=list)
    approval_expires: str


class AgentStatusResponse(Message):
    """``GET /ath/agents/{client_id}``: the registration without its secret."""

    client_id: str
    agent_id: str
    agent_status: AgentStatus
    approved_providers: list[ProviderApproval] = Field(default_factory=list)
    approval_expires: str


# -- §5 authorization -----------------------------------------------------------------------


class AuthorizeRequest(Message):
    client_id: ShortStr
    agent_attestation: JwtStr
    provider_id: ShortStr
    scopes: Annotated[list[ScopeStr], Field(min_length=1, max_length=64)]
    state: Annotated[str, token(512)]
    user_redirect_uri: UrlStr | None = None
    resource: UrlStr | None = None


class AuthorizeResponse(Message):
    authorization_url: str
    ath_session_id: str


# -- §6 token -------------------------------------------------------------------------------


class TokenRequest(Message):
    grant_type: Annotated[str, token(64)]
    client_id: ShortStr
    client_secret: ShortStr
    agent_attestation: JwtStr
    code: Annotated[str, token(512)]
    ath_session_id: ShortStr


class ScopeIntersectionBody(Message):
    agent_approved: list[str] = Field(default_factory=list)
    user_consented: list[str] = Field(default_factory=list)
    effective: list[str] = Field(default_factory=list)


class TokenResponse(Message):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    effective_scopes: list[str] = Field(default_factory=list)
    provider_id: str
    agent_id: str
    scope_intersection: ScopeIntersectionBody


# -- §8 revocation --------------------------------------------------------------------------


class RevokeRequest(Message):
    token: Annotated[str, token(1024)]
    client_id: ShortStr
    client_secret: ShortStr


# -- §9 errors ------------------------------------------------------------------------------


class ErrorBody(Message):
    code: str
    message: str
    details: dict[str, Any] | None = None
