"""From a discovery document to providers: well-known URLs, validation, provider entries.

Pure functions (no I/O, no state) that :class:`~athkit.client.discovery.core.DiscoveryCore`
applies to what it fetched (PROTOCOL.md §2).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from pydantic import ValidationError as PydanticValidationError

from athkit.client._core import GATEWAY_DISCOVERY_PATH, SERVICE_DISCOVERY_PATH, TOKEN_PATH
from athkit.client.discovery.results import DiscoveredProvider
from athkit.client.errors import ProtocolViolation
from athkit.protocol.messages import GatewayDiscoveryDocument, ServiceDiscoveryDocument

AUTHORIZE_PATH = "/ath/authorize"
REGISTER_PATH = "/ath/agents/register"
PROXY_BASE_PATH = "/ath/proxy/"
REGISTRY_SEARCH_PATH = "/api/search"


def service_provider(doc: ServiceDiscoveryDocument, base: str, url: str) -> DiscoveredProvider:
    """The one provider a service's ``ath-app.json`` describes (fetched from ``url``)."""
    token = doc.auth.token_endpoint.rstrip("/")
    base_url = token[: -len(TOKEN_PATH)] if token.endswith(TOKEN_PATH) else base
    return DiscoveredProvider(
        # The id to register with: ``provider_id`` when the service publishes it
        # (athkit does), else ``app_id``, which athkit services accept as an alias.
        provider_id=doc.provider_id or doc.app_id,
        name=doc.name,
        base_url=base_url,
        authorization_endpoint=doc.auth.authorization_endpoint,
        token_endpoint=doc.auth.token_endpoint,
        api_base=doc.api_base.rstrip("/"),
        scopes=tuple(doc.auth.scopes_supported),
        registration_endpoint=doc.auth.registration_endpoint or base_url + REGISTER_PATH,
        agent_attestation_required=doc.auth.agent_attestation_required,
        kind="service",
        discovery_url=url,
    )


def gateway_providers(
    doc: GatewayDiscoveryDocument, base: str, url: str
) -> list[DiscoveredProvider]:
    """Every provider a gateway's ``ath.json`` lists, each called through the gateway's proxy."""
    reg = doc.agent_registration_endpoint.rstrip("/")
    base_url = reg[: -len(REGISTER_PATH)] if reg.endswith(REGISTER_PATH) else base
    return [
        DiscoveredProvider(
            provider_id=p.provider_id,
            name=p.display_name,
            base_url=base_url,
            authorization_endpoint=base_url + AUTHORIZE_PATH,
            token_endpoint=base_url + TOKEN_PATH,
            api_base=base_url + PROXY_BASE_PATH + p.provider_id,
            scopes=tuple(p.available_scopes),
            categories=tuple(p.categories),
            registration_endpoint=doc.agent_registration_endpoint,
            agent_approval_required=p.agent_approval_required,
            kind="gateway",
            discovery_url=url,
        )
        for p in doc.supported_providers
    ]


def validate(model: type[Any], data: Any, url: str) -> Any:
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        problems = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()[:5]
        ]
        raise ProtocolViolation(
            f"invalid {model.__name__} at {url}", {"url": url, "errors": problems}
        ) from exc


def well_known(url: str, path: str) -> tuple[str, str]:
    """``(base, document_url)``: ``url`` is a base URL or already the document's URL."""
    parts = urlsplit(url)
    trimmed = parts.path.rstrip("/")
    for known in (SERVICE_DISCOVERY_PATH, GATEWAY_DISCOVERY_PATH):
        if trimmed.endswith(known):
            base_path = trimmed[: -len(known)]
            base = urlunsplit(parts._replace(path=base_path, query="", fragment=""))
            return base, url if known == path else base + path
    base = urlunsplit(parts._replace(path=trimmed, query="", fragment=""))
    return base, base + path


def registry_search_url(registry: str, intent: str, limit: int) -> str:
    parts = urlsplit(registry)
    path = parts.path.rstrip("/")
    if not path.endswith(REGISTRY_SEARCH_PATH):
        path += REGISTRY_SEARCH_PATH
    query = urlencode({"intent": intent, "limit": str(limit)})
    return urlunsplit(parts._replace(path=path, query=query, fragment=""))
