"""Fetching and validating the discovery documents a listing is made of.

An origin is probed at, in order:

* ``/.well-known/ath-app.json`` — an ATH service (protocol ``ath``), one entry;
* ``/.well-known/ath.json`` — an ATH gateway (protocol ``ath-gateway``), one entry per provider;
* ``/.well-known/agent-configuration`` — an Agent Auth server (protocol ``agent-auth``), one entry.

Every fetch goes through the SSRF guard (:func:`athkit.core.netguard.check_url`), redirects are
followed by hand (at most three, each hop re-checked), and bodies are cut off at a size limit.
ATH documents must speak a supported MAJOR version; Agent Auth documents must carry a well-formed
``MAJOR.MINOR[-draft]`` version of major 1. Unknown fields are ignored.

Beyond the fields PROTOCOL.md §2 defines, the registry reads two optional ones when present:
``description`` and ``categories`` (on an ath-app.json document, or on a gateway provider).
When a document has no description, the one the submitter gave is used. The optional capability
fields (scope descriptions, operations, example intents) are read by :mod:`.capabilities`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from pydantic import ValidationError

from athkit.core.netguard import check_url
from athkit.core.outbound import OutboundLimits, ResponseTooLarge
from athkit.netguard_http import guarded_transport
from athkit.protocol.errors import ATHError
from athkit.protocol.messages import GatewayDiscoveryDocument, ServiceDiscoveryDocument
from athkit.protocol.version import check_compatible, parse_version
from athkit.registry import capabilities
from athkit.registry.errors import DISCOVERY_DOCUMENT_INVALID, URL_NOT_ALLOWED, registry_error

SERVICE_PATH = "/.well-known/ath-app.json"
GATEWAY_PATH = "/.well-known/ath.json"
AGENT_AUTH_PATH = "/.well-known/agent-configuration"
WELL_KNOWN_PATHS = (SERVICE_PATH, GATEWAY_PATH, AGENT_AUTH_PATH)
PROTOCOL_OF_PATH = {SERVICE_PATH: "ath", GATEWAY_PATH: "ath-gateway", AGENT_AUTH_PATH: "agent-auth"}
AGENT_AUTH_MAJOR = 1
MAX_REDIRECTS = 3
MAX_PROVIDERS = 200
MAX_NAME = 200
MAX_DESCRIPTION = 2000
MAX_LIST = 64


@dataclass
class EntryData:
    """One searchable provider, as the registry indexes it."""

    name: str
    description: str
    url: str
    issuer: str
    protocol: str
    provider_id: str | None = None
    scopes: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    #: what the owner says the service does (``capabilities.py``)
    scope_descriptions: dict[str, str] = field(default_factory=dict)
    operations: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def capability_fields(self) -> dict[str, Any]:
        return {
            "scope_descriptions": self.scope_descriptions,
            "operations": self.operations,
            "examples": self.examples,
        }


@dataclass
class FetchedDocument:
    origin: str
    url: str
    protocol: str
    document: dict[str, Any]


class FetchFailed(Exception):
    """A network-level failure (connection, timeout, HTTP status), kept apart from bad content."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status

    @property
    def definite(self) -> bool:
        """The server answered and said the resource is not there (as opposed to a hiccup)."""
        return self.status is not None and 400 <= self.status < 500


def normalize_origin(url: str) -> tuple[str, str | None]:
    """``(origin, well-known path or None)`` of a submitted URL; raises URL_NOT_ALLOWED."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise registry_error(URL_NOT_ALLOWED, "URL is malformed", {"url": url}) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise registry_error(URL_NOT_ALLOWED, "URL must be an absolute http(s) URL", {"url": url})
    if parts.username or parts.password:
        raise registry_error(URL_NOT_ALLOWED, "URL must not carry credentials", {"url": url})
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")
    path = parts.path.rstrip("/")
    return origin, (path if path in WELL_KNOWN_PATHS else None)


def _clip(text: Any, limit: int) -> str:
    return " ".join(str(text).split())[:limit] if text is not None else ""


def _str_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [_clip(v, 128) for v in value if isinstance(v, str) and v.strip()][:MAX_LIST]


class DocumentFetcher:
    """Size- and time-limited GETs behind the SSRF guard."""

    def __init__(
        self,
        *,
        dev_mode: bool = False,
        timeout: float = 5.0,
        max_bytes: int = 256 * 1024,
        transport: httpx.BaseTransport | None = None,
        outbound: OutboundLimits | None = None,
    ) -> None:
        self.dev_mode = dev_mode
        self.max_bytes = max_bytes
        if transport is None:  # ``timeout`` bounds each whole GET; fetches in flight are capped
            limits = outbound or OutboundLimits()
            transport = limits.transport(
                deadline=timeout,
                max_bytes=max_bytes,
                inner=guarded_transport(dev_mode=dev_mode),  # connect only to checked IPs
            )
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            follow_redirects=False,
            transport=transport,
            headers={"User-Agent": "athkit-registry"},
        )

    def close(self) -> None:
        self._http.close()

    def guard(self, url: str) -> None:
        """Raise URL_NOT_ALLOWED unless the SSRF guard lets ``url`` through."""
        try:
            check_url(url, dev_mode=self.dev_mode)
        except ATHError as exc:
            raise registry_error(URL_NOT_ALLOWED, exc.message, exc.details) from exc

    def get(self, url: str, *, max_bytes: int | None = None, same_origin: bool = False) -> bytes:
        """The body of a 200 answer; FetchFailed otherwise, URL_NOT_ALLOWED from the guard."""
        limit = max_bytes or self.max_bytes
        start = urlsplit(url)
        for _ in range(MAX_REDIRECTS + 1):
            self.guard(url)
            try:
                with self._http.stream("GET", url) as resp:
                    if resp.is_redirect and "location" in resp.headers:
                        nxt = urljoin(url, resp.headers["location"])
                        hop = urlsplit(nxt)
                        if same_origin and (hop.scheme, hop.netloc) != (start.scheme, start.netloc):
                            raise FetchFailed("redirected to another origin", resp.status_code)
                        url = nxt
                        continue
                    if resp.status_code != 200:
                        raise FetchFailed(f"HTTP {resp.status_code}", resp.status_code)
                    body = bytearray()
                    for chunk in resp.iter_bytes():
                        body.extend(chunk)
                        if len(body) > limit:
                            raise FetchFailed(f"larger than {limit} bytes", resp.status_code)
                    return bytes(body)
            except ResponseTooLarge as exc:
                raise FetchFailed(f"larger than {limit} bytes") from exc
            except httpx.HTTPError as exc:
                raise FetchFailed(type(exc).__name__) from exc
        raise FetchFailed("too many redirects")

    def fetch_document(self, origin: str, only: str | None = None) -> FetchedDocument:
        """The first valid discovery document of ``origin`` (or the one at ``only``)."""
        problems: dict[str, str] = {}
        definite = True
        for path in (only,) if only else WELL_KNOWN_PATHS:
            url = origin + path
            try:
                raw = self.get(url)
            except FetchFailed as exc:
                problems[path] = exc.reason
                definite = definite and exc.definite
                continue
            try:
                data = json.loads(raw)
            except (ValueError, UnicodeDecodeError, RecursionError):
                problems[path] = "not JSON"
                continue
            if not isinstance(data, dict):
                problems[path] = "not a JSON object"
                continue
            try:
                parse_entries(PROTOCOL_OF_PATH[path], data, origin, None, [])
            except ATHError as exc:
                problems[path] = exc.message
                continue
            return FetchedDocument(origin, url, PROTOCOL_OF_PATH[path], data)
        raise registry_error(
            DISCOVERY_DOCUMENT_INVALID,
            "no valid discovery document found at the origin",
            {"origin": origin, "problems": problems, "definite": definite},
        )


def _invalid(message: str) -> ATHError:
    return registry_error(DISCOVERY_DOCUMENT_INVALID, message)


def parse_entries(
    protocol: str,
    doc: dict[str, Any],
    origin: str,
    fallback_description: str | None,
    fallback_categories: list[str],
) -> list[EntryData]:
    """Validate a document and turn it into searchable entries (raises on invalid content)."""
    fallback = _clip(fallback_description, MAX_DESCRIPTION)
    if protocol == "ath":
        try:
            svc = ServiceDiscoveryDocument.model_validate(doc)
        except ValidationError as exc:
            raise _invalid(f"ath-app.json is not valid ({exc.error_count()} errors)") from exc
        check_compatible(svc.ath_version)
        name = _clip(svc.name, MAX_NAME)
        scopes = [_clip(s, 128) for s in svc.auth.scopes_supported][:MAX_LIST]
        return [
            EntryData(
                name=name,
                description=_clip(doc.get("description"), MAX_DESCRIPTION) or fallback or name,
                url=origin,
                issuer=origin,
                protocol=protocol,
                provider_id=_clip(svc.provider_id or svc.app_id, 256),
                scopes=scopes,
                categories=_str_list(doc.get("categories")) or fallback_categories,
                **capabilities.read(doc, scopes),
            )
        ]
    if protocol == "ath-gateway":
        try:
            gw = GatewayDiscoveryDocument.model_validate(doc)
        except ValidationError as exc:
            raise _invalid(f"ath.json is not valid ({exc.error_count()} errors)") from exc
        check_compatible(gw.ath_version)
        if not gw.supported_providers:
            raise _invalid("the gateway lists no providers")
        raw_providers = doc.get("supported_providers", [])
        out = []
        for i, p in enumerate(gw.supported_providers[:MAX_PROVIDERS]):
            raw = raw_providers[i] if isinstance(raw_providers[i], dict) else {}
            name = _clip(p.display_name, MAX_NAME)
            scopes = _str_list(p.available_scopes)
            out.append(
                EntryData(
                    name=name,
                    description=_clip(raw.get("description"), MAX_DESCRIPTION) or fallback or name,
                    url=origin,
                    issuer=origin,
                    protocol=protocol,
                    provider_id=_clip(p.provider_id, 256),
                    scopes=scopes,
                    categories=_str_list(p.categories) or fallback_categories,
                    **capabilities.read(raw, scopes),
                )
            )
        return out
    if protocol == "agent-auth":
        version = doc.get("version")
        if not isinstance(version, str):
            raise _invalid("agent-configuration has no version")
        if parse_version(version).major != AGENT_AUTH_MAJOR:
            raise _invalid(f"unsupported Agent Auth version {version!r}")
        provider, issuer = doc.get("provider_name"), doc.get("issuer")
        if not isinstance(provider, str) or not provider.strip():
            raise _invalid("agent-configuration has no provider_name")
        if not isinstance(issuer, str) or not issuer.startswith(("https://", "http://")):
            raise _invalid("agent-configuration has no issuer URL")
        if "endpoints" in doc and not isinstance(doc["endpoints"], dict):
            raise _invalid("agent-configuration endpoints must be an object")
        return [
            EntryData(
                name=_clip(provider, MAX_NAME),
                description=_clip(doc.get("description"), MAX_DESCRIPTION) or fallback or provider,
                url=origin,
                issuer=_clip(issuer, 2048),
                protocol=protocol,
                provider_id=_clip(provider, 256),
                scopes=[],
                categories=_str_list(doc.get("categories")) or fallback_categories,
                **capabilities.read(doc, []),
            )
        ]
    raise _invalid(f"unknown protocol {protocol!r}")
