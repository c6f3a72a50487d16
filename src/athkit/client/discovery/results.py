"""What discovery returns, the same shape in every mode: :class:`Discovery` and its providers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, TypeAlias

from pydantic import Field

from athkit.client.discovery.errors import DocumentNotFoundError
from athkit.protocol.messages import (
    GatewayDiscoveryDocument,
    ManualServiceConfig,
    Message,
    ServiceDiscoveryDocument,
)


class DiscoveryMode(str, Enum):
    MANUAL = "manual"
    SERVICE = "service"
    GATEWAY = "gateway"
    REGISTRY = "registry"
    DIRECT = "direct"


@dataclass(frozen=True)
class DiscoveredProvider:
    """One provider an agent can authorize against, whatever the discovery mode.

    ``base_url`` is where the ATH endpoints (``/ath/...``) live: pass it to
    :class:`~athkit.client.ATHClient` with ``api_base``. Gateway providers share the gateway's
    base URL and call through ``api_base`` = ``{gateway}/ath/proxy/{provider_id}``. Registry
    results not (yet) resolved have only what the registry said; their endpoints are ``None``.
    """

    provider_id: str
    name: str
    base_url: str
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    api_base: str | None = None
    scopes: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    description: str | None = None
    registration_endpoint: str | None = None
    agent_approval_required: bool | None = None
    agent_attestation_required: bool | None = None
    kind: str = "service"  # "service", "gateway" or "listing" (an unresolved registry result)
    protocol: str = "ath"
    verified: bool | None = None
    score: float | None = None
    discovery_url: str | None = None
    error: str | None = None  # why resolving a registry result failed

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["scopes"], data["categories"] = list(self.scopes), list(self.categories)
        return data


class RegistryProvider(Message):
    """One search hit: ``{name, description, url/issuer, scopes, categories, ...}``."""

    name: str = Field(max_length=512)
    description: str = Field(default="", max_length=4096)
    url: str | None = Field(default=None, max_length=2048)
    issuer: str | None = Field(default=None, max_length=2048)
    scopes: list[str] = Field(default_factory=list, max_length=256)
    categories: list[str] = Field(default_factory=list, max_length=64)
    protocol: str = "ath"
    verified: bool = False
    score: float | None = None


class RegistrySearchResponse(Message):
    """``GET {registry}/api/search`` (a bare list of providers is accepted too)."""

    providers: list[RegistryProvider] = Field(default_factory=list, max_length=1000)
    intent: str | None = None
    count: int | None = None


DiscoveryDocument: TypeAlias = (
    ServiceDiscoveryDocument
    | GatewayDiscoveryDocument
    | ManualServiceConfig
    | RegistrySearchResponse
)


@dataclass(frozen=True)
class Discovery:
    """What :func:`discover` found: the mode used, the providers, and where they came from."""

    mode: DiscoveryMode
    providers: list[DiscoveredProvider]
    source_url: str | None
    document: DiscoveryDocument | None
    ath_version: str | None = None
    from_cache: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def provider(self) -> DiscoveredProvider:
        """The first (best) provider; raises if there is none."""
        if not self.providers:
            raise DocumentNotFoundError("discovery found no providers")
        return self.providers[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "source_url": self.source_url,
            "ath_version": self.ath_version,
            "from_cache": self.from_cache,
            "warnings": list(self.warnings),
            "providers": [p.to_dict() for p in self.providers],
            "document": (
                self.document.model_dump(mode="json", exclude_none=True)
                if self.document is not None
                else None
            ),
        }
