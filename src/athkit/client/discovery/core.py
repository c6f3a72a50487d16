"""Every discovery rule without I/O: the guard, one cached fetch, the documents, the five modes.

:class:`DiscoveryCore` flows are generators in the style of :mod:`athkit.client._core`: they
yield :class:`ConfirmRequest` (answer a ``bool``) and :class:`PreparedRequest` (answer a
:class:`RawResponse`); :mod:`athkit.client.discovery.drivers` does the I/O.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import urljoin, urlsplit, urlunsplit

from pydantic import ValidationError as PydanticValidationError

from athkit import netguard
from athkit.client._core import (
    GATEWAY_DISCOVERY_PATH,
    SERVICE_DISCOVERY_PATH,
    PreparedRequest,
    RawResponse,
    load_manual_config,
    manual_base_url,
)
from athkit.client.discovery.cache import DiscoveryCache, header_value
from athkit.client.discovery.documents import (
    REGISTER_PATH,
    gateway_providers,
    registry_search_url,
    service_provider,
    validate,
    well_known,
)
from athkit.client.discovery.errors import (
    BlockedURLError,
    ConfirmationDeniedError,
    DocumentNotFoundError,
    NeedsConfirmationError,
    TooManyRedirectsError,
)
from athkit.client.discovery.guard import Allowlist, FetchLimits, origin_of
from athkit.client.discovery.results import (
    DiscoveredProvider,
    Discovery,
    DiscoveryMode,
    RegistrySearchResponse,
)
from athkit.client.errors import (
    DraftVersionWarning,
    ProtocolViolation,
    error_from_response,
    typed_error,
)
from athkit.protocol.errors import ATHError
from athkit.protocol.messages import (
    GatewayDiscoveryDocument,
    ManualServiceConfig,
    ServiceDiscoveryDocument,
)
from athkit.protocol.version import check_compatible

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_USER_AGENT = "athkit-discovery"


@dataclass(frozen=True)
class ConfirmRequest:
    """Ask the application whether ``origin`` may be fetched (answer with a ``bool``)."""

    url: str
    origin: str


Step: TypeAlias = ConfirmRequest | PreparedRequest
Reply: TypeAlias = bool | RawResponse
DiscoveryFlow: TypeAlias = Generator[Step, Reply, Discovery]
ManualInput: TypeAlias = ManualServiceConfig | Mapping[str, Any] | str | Path


@dataclass(frozen=True)
class _Fetched:
    url: str
    final_url: str
    body: bytes
    from_cache: bool


@dataclass(frozen=True)
class _Target:
    mode: DiscoveryMode
    value: Any
    registry: str | None = None


class DiscoveryCore:
    """Every discovery rule, without I/O: drive :meth:`flow` with a driver (see module doc)."""

    def __init__(
        self,
        *,
        dev_mode: bool = False,
        allow: Allowlist | Iterable[str] = (),
        can_confirm: bool = False,
        cache: DiscoveryCache | None = None,
        limits: FetchLimits | None = None,
    ) -> None:
        self.dev_mode = dev_mode
        self.allowlist = allow if isinstance(allow, Allowlist) else Allowlist(allow)
        self.can_confirm = can_confirm
        self.cache = cache
        self.limits = limits or FetchLimits()
        self.warnings: list[str] = []
        self._approved: set[str] = set()

    # -- the guard ----------------------------------------------------------------------

    def check_syntax(self, url: str) -> None:
        """Scheme, https outside dev mode, no userinfo (raises :class:`BlockedURLError`)."""
        try:
            netguard.check_url_syntax(url, dev_mode=self.dev_mode)
        except netguard.UnsafeURLError as exc:
            raise BlockedURLError(exc) from None

    def approve(self, url: str) -> Generator[Step, Reply, None]:
        """Allowlist, else an origin approved earlier in this run, else ask; else refuse."""
        origin = origin_of(url)
        if origin in self._approved or self.allowlist.allows(url, dev_mode=self.dev_mode):
            return
        if not self.can_confirm:
            raise NeedsConfirmationError(url, origin)
        answer = yield ConfirmRequest(url, origin)
        if answer is not True:
            raise ConfirmationDeniedError(url, origin)
        self._approved.add(origin)

    # -- one guarded, cached fetch ------------------------------------------------------

    def fetch(self, url: str, *, guarded: bool) -> Generator[Step, Reply, _Fetched]:
        """GET ``url`` following at most ``max_redirects`` redirects, each hop re-checked.

        ``guarded``: the origin (and the origin of every redirect hop) needs approval first.
        """
        self.check_syntax(url)
        if guarded:
            yield from self.approve(url)
        key = (url, self.dev_mode)
        entry = self.cache._get(key) if self.cache is not None else None
        if self.cache is not None and entry is not None and entry.expires_at > self.cache.clock():
            return _Fetched(url, entry.final_url, entry.body, from_cache=True)
        headers = {"Accept": "application/json", "User-Agent": _USER_AGENT}
        if entry is not None and entry.etag:
            headers["If-None-Match"] = entry.etag
        current, redirects = url, 0
        while True:
            reply = yield PreparedRequest("GET", current, headers)
            if not isinstance(reply, RawResponse):
                raise TypeError("a PreparedRequest must be answered with a RawResponse")
            if reply.status not in REDIRECT_STATUSES:
                break
            location = header_value(reply.headers, "location")
            if not location:
                raise ProtocolViolation(f"HTTP {reply.status} without Location", {"url": current})
            redirects += 1
            if redirects > self.limits.max_redirects:
                raise TooManyRedirectsError(
                    f"more than {self.limits.max_redirects} redirects from {url}",
                    {"url": url, "max_redirects": self.limits.max_redirects},
                    status=502,
                )
            target = urlunsplit(urlsplit(urljoin(current, location))._replace(fragment=""))
            self.check_syntax(target)
            if guarded and origin_of(target) != origin_of(current):
                yield from self.approve(target)
            current = target
        if reply.status == 304 and entry is not None and self.cache is not None:
            self.cache._refresh(key, entry, reply.headers)
            return _Fetched(url, entry.final_url, entry.body, from_cache=True)
        if reply.status in (404, 410):
            raise DocumentNotFoundError(
                f"no document at {current} (HTTP {reply.status})",
                {"url": current, "http_status": reply.status},
                status=404,
            )
        if reply.status != 200:
            raise error_from_response(reply.status, reply.body)
        if self.cache is not None:
            self.cache._store(key, reply, current)
        return _Fetched(url, current, reply.body, from_cache=False)

    # -- documents ----------------------------------------------------------------------

    def check_version(self, data: Any, url: str) -> str:
        """§2: unsupported MAJOR raises (naming both); ``-draft`` warns; returns the version."""
        version = data.get("ath_version") if isinstance(data, dict) else None
        if not isinstance(version, str):
            raise ProtocolViolation("discovery document has no ath_version", {"url": url})
        try:
            parsed = check_compatible(version)
        except ATHError as exc:
            raise typed_error(exc) from exc
        if parsed.draft:
            message = f"{url} speaks draft ATH version {parsed}; it may change without notice"
            self.warnings.append(message)
            warnings.warn(message, DraftVersionWarning, stacklevel=4)
        return version

    def _json(self, fetched: _Fetched) -> Any:
        try:
            return json.loads(fetched.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolViolation(
                "discovery document is not JSON", {"url": fetched.final_url}
            ) from exc

    def _service(self, base: str, fetched: _Fetched, mode: DiscoveryMode) -> Discovery:
        data = self._json(fetched)
        version = self.check_version(data, fetched.final_url)
        doc = validate(ServiceDiscoveryDocument, data, fetched.final_url)
        provider = service_provider(doc, base, fetched.final_url)
        return Discovery(
            mode, [provider], fetched.url, doc, version, fetched.from_cache, list(self.warnings)
        )

    def _gateway(self, base: str, fetched: _Fetched, mode: DiscoveryMode) -> Discovery:
        data = self._json(fetched)
        version = self.check_version(data, fetched.final_url)
        doc = validate(GatewayDiscoveryDocument, data, fetched.final_url)
        providers = gateway_providers(doc, base, fetched.final_url)
        return Discovery(
            mode, providers, fetched.url, doc, version, fetched.from_cache, list(self.warnings)
        )

    # -- the modes ----------------------------------------------------------------------

    def manual(self, config: ManualInput) -> Discovery:
        source = str(config) if isinstance(config, (str, Path)) else None
        if not isinstance(config, ManualServiceConfig):
            try:
                config = load_manual_config(config)
            except PydanticValidationError as exc:
                raise ProtocolViolation(
                    f"invalid manual config: {exc.errors()[0]['msg']}", status=400
                ) from exc
        try:
            base_url = manual_base_url(config)
        except ValueError as exc:
            raise ProtocolViolation(str(exc), status=400) from exc
        provider = DiscoveredProvider(
            provider_id=config.provider,
            name=config.provider,
            base_url=base_url,
            authorization_endpoint=config.oauth.authorization_url,
            token_endpoint=config.oauth.token_url,
            api_base=config.api_base.rstrip("/"),
            registration_endpoint=base_url + REGISTER_PATH,
            kind="service",
        )
        return Discovery(DiscoveryMode.MANUAL, [provider], source, config)

    def service(self, url: str) -> DiscoveryFlow:
        base, target = well_known(url, SERVICE_DISCOVERY_PATH)
        fetched = yield from self.fetch(target, guarded=False)
        return self._service(base, fetched, DiscoveryMode.SERVICE)

    def gateway(self, url: str) -> DiscoveryFlow:
        base, target = well_known(url, GATEWAY_DISCOVERY_PATH)
        fetched = yield from self.fetch(target, guarded=False)
        return self._gateway(base, fetched, DiscoveryMode.GATEWAY)

    def direct(
        self, url: str, *, guarded: bool = True, mode: DiscoveryMode = DiscoveryMode.DIRECT
    ) -> DiscoveryFlow:
        """``ath-app.json``, then ``ath.json``; a URL naming one of them fetches only that one."""
        self.check_syntax(url)
        if guarded:
            yield from self.approve(url)
        path = urlsplit(url).path.rstrip("/")
        if path.endswith(GATEWAY_DISCOVERY_PATH):
            base, target = well_known(url, GATEWAY_DISCOVERY_PATH)
            fetched = yield from self.fetch(target, guarded=guarded)
            return self._gateway(base, fetched, mode)
        base, target = well_known(url, SERVICE_DISCOVERY_PATH)
        try:
            fetched = yield from self.fetch(target, guarded=guarded)
            return self._service(base, fetched, mode)
        except (DocumentNotFoundError, ProtocolViolation) as first:
            if path.endswith(SERVICE_DISCOVERY_PATH):
                raise
            gateway_url = base + GATEWAY_DISCOVERY_PATH
            try:
                fetched = yield from self.fetch(gateway_url, guarded=guarded)
                return self._gateway(base, fetched, mode)
            except (DocumentNotFoundError, ProtocolViolation) as second:
                raise DocumentNotFoundError(
                    f"no ATH discovery document at {target} or {gateway_url}",
                    {"url": url, "service_error": first.message, "gateway_error": second.message},
                    status=404,
                ) from second

    def registry(
        self, intent: str, registry: str, *, limit: int = 10, resolve: bool = False
    ) -> DiscoveryFlow:
        """Search ``registry`` for ``intent``; with ``resolve`` fetch each ATH hit's document."""
        search_url = registry_search_url(registry, intent, limit)
        fetched = yield from self.fetch(search_url, guarded=False)
        data = self._json(fetched)
        if isinstance(data, list):
            data = {"providers": data}
        doc = validate(RegistrySearchResponse, data, fetched.final_url)
        providers: list[DiscoveredProvider] = []
        for hit in doc.providers[:limit]:
            base = (hit.url or hit.issuer or "").rstrip("/")
            if not base:
                self.warnings.append(f"registry result {hit.name!r} has no url; skipped")
                continue
            listing = DiscoveredProvider(
                provider_id=hit.name,
                name=hit.name,
                base_url=base,
                scopes=tuple(hit.scopes),
                categories=tuple(hit.categories),
                description=hit.description or None,
                kind="listing",
                protocol=hit.protocol,
                verified=hit.verified,
                score=hit.score,
            )
            if resolve and hit.protocol == "ath":
                providers.extend((yield from self._resolve(listing)))
            else:
                providers.append(listing)
        return Discovery(
            DiscoveryMode.REGISTRY,
            providers,
            fetched.url,
            doc,
            None,
            fetched.from_cache,
            list(self.warnings),
        )

    def _resolve(
        self, listing: DiscoveredProvider
    ) -> Generator[Step, Reply, list[DiscoveredProvider]]:
        """Fetch a registry hit through the guard; a failure stays on the listing as ``error``."""
        try:
            found = yield from self.direct(
                listing.base_url, guarded=not listing.verified, mode=DiscoveryMode.REGISTRY
            )
        except ATHError as exc:
            return [replace(listing, error=f"{exc.code_str}: {exc.message}")]
        return [
            replace(
                p,
                description=p.description or listing.description,
                categories=p.categories or listing.categories,
                protocol=listing.protocol,
                verified=listing.verified,
                score=listing.score,
            )
            for p in found.providers
        ]

    def flow(self, target: _Target, *, limit: int = 10, resolve: bool = False) -> DiscoveryFlow:
        """The flow for one :func:`discover` call."""
        if target.mode is DiscoveryMode.MANUAL:
            return self.manual(target.value)
        if target.mode is DiscoveryMode.SERVICE:
            return (yield from self.service(target.value))
        if target.mode is DiscoveryMode.GATEWAY:
            return (yield from self.gateway(target.value))
        if target.mode is DiscoveryMode.REGISTRY:
            assert target.registry is not None
            return (
                yield from self.registry(
                    target.value, target.registry, limit=limit, resolve=resolve
                )
            )
        return (yield from self.direct(target.value))
