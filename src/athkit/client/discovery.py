"""Discovery in every mode of PROTOCOL.md §2, with the direct-discovery guard (seed 004).

One entry point, :func:`discover` (blocking) or :func:`adiscover` (async), takes exactly one of

* ``manual=`` a §2 manual config (mapping, model or JSON file path), no network;
* ``service=`` a service base URL (``/.well-known/ath-app.json``);
* ``gateway=`` a gateway base URL (``/.well-known/ath.json``);
* ``intent=`` text searched at ``registry=`` (``GET {registry}/api/search?intent=&limit=``);
* ``url=`` a URL handed to the agent (direct discovery: ``ath-app.json``, then ``ath.json``),

and returns one :class:`Discovery` whose :class:`DiscoveredProvider` entries have the same shape
whatever the mode.

**The guard.** A direct URL is fetched only if its origin matches the :class:`Allowlist` (exact
origins and ``*.domain`` patterns) or the application's ``confirm(url) -> bool`` callback says
yes; with neither it is refused with :class:`NeedsConfirmationError` (prompt-injection defence).
Every fetch, in every mode, goes through the SSRF guard of :mod:`athkit.netguard`: ``https``
only outside dev mode, the host resolved and refused if any address is private, loopback,
link-local (cloud metadata), multicast or reserved (dev mode allows loopback and ``http``),
the connected peer address checked again, redirects followed by hand (at most
:attr:`FetchLimits.max_redirects`) with every hop re-checked *before* connecting (and, in direct
mode, a hop to a new origin needing approval too), and a byte and time limit on each response.
Registry results fetched with ``resolve=True`` pass the same SSRF guard; those the registry marks
``verified`` (it proved the listing controls the origin) need no further approval, the others
need the allowlist or confirmation like a direct URL.

**Versions (§2).** An unsupported MAJOR raises
:class:`~athkit.client.errors.UnsupportedVersionError` naming both versions; a ``-draft``
version is accepted with a :class:`DraftVersionWarning` (also listed in
:attr:`Discovery.warnings`); unknown fields are ignored.

**Caching.** Pass a :class:`DiscoveryCache` (shareable, thread-safe, in memory) to honour
``Cache-Control: max-age`` / ``no-cache`` / ``no-store`` and revalidate with ``ETag`` /
``If-None-Match`` (``304``).

The policy (modes, guard decisions, redirects, cache, parsing) is a sans-I/O flow in
:class:`DiscoveryCore`, in the style of :mod:`athkit.client._core`: it yields
:class:`ConfirmRequest` (answer a ``bool``) and :class:`PreparedRequest` (answer a
:class:`RawResponse`); the blocking and async drivers below only do the I/O of one hop.

For agent frameworks, :func:`discover_provider_tool` / :func:`search_providers_tool` return
JSON-ready dicts and never prompt: an unapproved URL yields
``{"status": "needs_confirmation", "url": ..., "origin": ...}`` for the application to ask its
user and call again with the origin in ``approved_origins``.
"""

from __future__ import annotations

import functools
import inspect
import ipaddress
import json
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import httpx
from pydantic import Field
from pydantic import ValidationError as PydanticValidationError

from athkit import netguard
from athkit.client._core import (
    GATEWAY_DISCOVERY_PATH,
    SERVICE_DISCOVERY_PATH,
    TOKEN_PATH,
    PreparedRequest,
    RawResponse,
    load_manual_config,
    manual_base_url,
)
from athkit.client.errors import (
    DraftVersionWarning,
    ProtocolViolation,
    ServiceUnreachableError,
    _CodedError,
    error_from_response,
    typed_error,
)
from athkit.protocol.errors import ATHError
from athkit.protocol.messages import (
    GatewayDiscoveryDocument,
    ManualServiceConfig,
    Message,
    ServiceDiscoveryDocument,
)
from athkit.protocol.version import check_compatible

__all__ = [
    "AUTHORIZE_PATH",
    "REGISTER_PATH",
    "Allowlist",
    "BlockedURLError",
    "ConfirmCallback",
    "ConfirmRequest",
    "ConfirmationDeniedError",
    "DiscoveredProvider",
    "Discovery",
    "DiscoveryCache",
    "DiscoveryCore",
    "DiscoveryError",
    "DiscoveryMode",
    "DiscoveryTimeoutError",
    "DocumentNotFoundError",
    "DocumentTooLargeError",
    "FetchLimits",
    "NeedsConfirmationError",
    "RegistryProvider",
    "RegistrySearchResponse",
    "TooManyRedirectsError",
    "adiscover",
    "adiscover_provider_tool",
    "asearch_providers_tool",
    "discover",
    "discover_provider_tool",
    "origin_of",
    "search_providers_tool",
]

AUTHORIZE_PATH = "/ath/authorize"
REGISTER_PATH = "/ath/agents/register"
PROXY_BASE_PATH = "/ath/proxy/"
REGISTRY_SEARCH_PATH = "/api/search"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_MAX_CACHE_SECONDS = 86_400.0
_USER_AGENT = "athkit-discovery"


# -- errors ---------------------------------------------------------------------------------


class DiscoveryError(_CodedError):
    """Base of the discovery refusals raised on the client (never decoded from the wire)."""

    code = "DISCOVERY_FAILED"


class NeedsConfirmationError(DiscoveryError):
    """A direct URL whose origin is not allowlisted, and no confirmation callback was given."""

    code = "DISCOVERY_NEEDS_CONFIRMATION"

    def __init__(self, url: str, origin: str) -> None:
        super().__init__(
            f"fetching {origin} needs confirmation: it is not in the allowlist",
            {"url": url, "origin": origin},
            status=403,
        )
        self.url, self.origin = url, origin


class ConfirmationDeniedError(DiscoveryError):
    """The application's confirmation callback said no."""

    code = "DISCOVERY_NOT_CONFIRMED"

    def __init__(self, url: str, origin: str) -> None:
        super().__init__(
            f"fetching {origin} was not confirmed", {"url": url, "origin": origin}, status=403
        )
        self.url, self.origin = url, origin


class BlockedURLError(DiscoveryError):
    """The SSRF guard refused a URL (``reason``: see :data:`athkit.netguard.Reason`)."""

    code = "DISCOVERY_URL_BLOCKED"

    def __init__(self, error: netguard.UnsafeURLError) -> None:
        super().__init__(
            f"{error.message}: {error.url}", {**error.details, "reason": error.reason}, status=403
        )
        self.reason = error.reason
        self.url = error.url
        self.address = error.address


class TooManyRedirectsError(DiscoveryError):
    code = "DISCOVERY_TOO_MANY_REDIRECTS"


class DocumentTooLargeError(DiscoveryError):
    code = "DISCOVERY_DOCUMENT_TOO_LARGE"


class DocumentNotFoundError(DiscoveryError):
    """No discovery document where one was looked for (404/410, or neither direct path)."""

    code = "DISCOVERY_NOT_FOUND"


class DiscoveryTimeoutError(DiscoveryError, ServiceUnreachableError):
    """A fetch took longer than :attr:`FetchLimits.timeout`."""

    code = "DISCOVERY_TIMEOUT"


# -- limits, allowlist, cache ---------------------------------------------------------------


@dataclass(frozen=True)
class FetchLimits:
    """Limits of every single fetch (each redirect hop is a fetch of its own)."""

    max_bytes: int = 1_048_576
    timeout: float = 5.0
    max_redirects: int = 3


def origin_of(url: str) -> str:
    """``scheme://host[:port]``, lower-cased, default port dropped (IPv6 in brackets)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or port == _default_port(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _default_port(scheme: str) -> int | None:
    return {"https": 443, "http": 80}.get(scheme)


@dataclass(frozen=True)
class _Pattern:
    scheme: str | None  # None: https (and http in dev mode)
    host: str  # exact host, or the domain of a ``*.`` pattern
    wildcard: bool
    port: int | None  # None: the scheme's default port

    def matches(self, scheme: str, host: str, port: int, dev_mode: bool) -> bool:
        if self.scheme is None:
            if scheme != "https" and not (dev_mode and scheme == "http"):
                return False
        elif scheme != self.scheme:
            return False
        if port != (self.port if self.port is not None else _default_port(scheme)):
            return False
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host


class Allowlist:
    """Origins a direct URL may come from without asking (PROTOCOL.md §2 direct mode).

    A pattern is an exact origin (``https://bank.example``, ``http://127.0.0.1:8000``), a bare
    host with optional port (``bank.example``: https, or http too in dev mode), or a wildcard
    ``*.bank.example`` / ``https://*.bank.example:8443`` matching every subdomain (never the
    domain itself). Paths, userinfo, a bare ``*`` and one-label domains (``*.com``) are refused.
    """

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns: tuple[str, ...] = tuple(patterns)
        self._parsed = tuple(self._parse(p) for p in self.patterns)

    @staticmethod
    def _parse(pattern: str) -> _Pattern:
        text = pattern.strip()
        scheme: str | None = None
        if "://" in text:
            scheme, _, text = text.partition("://")
            scheme = scheme.lower()
            if scheme not in ("http", "https"):
                raise ValueError(f"allowlist pattern must be http(s): {pattern!r}")
        wildcard = text.startswith("*.")
        if wildcard:
            text = text[2:]
        try:
            parts = urlsplit(f"{scheme or 'https'}://{text}")
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"malformed allowlist pattern {pattern!r}") from exc
        host = (parts.hostname or "").rstrip(".")
        if (
            not host
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username
            or parts.password
            or "*" in host
        ):
            raise ValueError(f"allowlist pattern must be an origin or *.domain: {pattern!r}")
        if wildcard and ("." not in host or _is_ip(host)):
            raise ValueError(f"wildcard pattern needs a domain of two labels or more: {pattern!r}")
        return _Pattern(scheme, host, wildcard, port)

    def allows(self, url: str, *, dev_mode: bool = False) -> bool:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").rstrip(".")
        try:
            port = parts.port or _default_port(scheme)
        except ValueError:
            return False
        if not host or port is None:
            return False
        return any(p.matches(scheme, host, port, dev_mode) for p in self._parsed)

    def __bool__(self) -> bool:
        return bool(self._parsed)

    def __repr__(self) -> str:
        return f"Allowlist({list(self.patterns)!r})"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass
class _CacheEntry:
    final_url: str
    body: bytes
    etag: str | None
    expires_at: float  # on the cache's clock; <= now means "revalidate first"


class DiscoveryCache:
    """In-memory HTTP cache of discovery documents; share one between calls and threads.

    Honours ``Cache-Control`` ``no-store`` (never kept), ``max-age`` (fresh for that long,
    less ``Age``, at most a day) and ``no-cache`` (kept, revalidated each time), and ``ETag``
    (a stale entry is revalidated with ``If-None-Match``; ``304`` refreshes it). Without
    ``max-age`` an entry is kept only if it has an ``ETag``. Least recently used entries go
    first once ``max_entries`` is reached. ``clock`` (monotonic seconds) is injectable.
    """

    def __init__(self, max_entries: int = 256, *, clock: Callable[[], float] = time.monotonic):
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[tuple[str, bool], _CacheEntry] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, key: tuple[str, bool]) -> _CacheEntry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def _store(self, key: tuple[str, bool], response: RawResponse, final_url: str) -> None:
        """Keep (or drop) ``response`` as its caching headers say."""
        store, max_age = _cache_policy(response.headers)
        etag = _header(response.headers, "etag")
        with self._lock:
            if not store or (max_age <= 0 and etag is None):
                self._entries.pop(key, None)
                return
            self._entries[key] = _CacheEntry(final_url, response.body, etag, self.clock() + max_age)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def _refresh(
        self, key: tuple[str, bool], entry: _CacheEntry, headers: Mapping[str, str]
    ) -> None:
        """A ``304``: the entry is fresh again for the new ``max-age``."""
        store, max_age = _cache_policy(headers)
        with self._lock:
            if not store:
                self._entries.pop(key, None)
                return
            entry.expires_at = self.clock() + max_age
            entry.etag = _header(headers, "etag") or entry.etag

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, url: object) -> bool:
        with self._lock:
            return any(k[0] == url for k in self._entries)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        for key, v in headers.items():
            if key.lower() == name:
                return v
    return value


def _cache_policy(headers: Mapping[str, str]) -> tuple[bool, float]:
    """``(may_store, max_age_seconds)`` from ``Cache-Control`` and ``Age``."""
    directives: dict[str, str | None] = {}
    for part in (_header(headers, "cache-control") or "").split(","):
        name, _, value = part.strip().partition("=")
        if name:
            directives[name.lower()] = value.strip().strip('"') if value else None
    if "no-store" in directives:
        return False, 0.0
    if "no-cache" in directives:
        return True, 0.0
    try:
        max_age = float(int(directives.get("max-age") or 0))
        age = float(int(_header(headers, "age") or 0))
    except ValueError:
        return True, 0.0
    return True, max(0.0, min(max_age, _MAX_CACHE_SECONDS) - max(age, 0.0))


# -- results --------------------------------------------------------------------------------


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


# -- the sans-I/O core ----------------------------------------------------------------------


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
            location = _header(reply.headers, "location")
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
        doc = _validate(ServiceDiscoveryDocument, data, fetched.final_url)
        token = doc.auth.token_endpoint.rstrip("/")
        base_url = token[: -len(TOKEN_PATH)] if token.endswith(TOKEN_PATH) else base
        provider = DiscoveredProvider(
            provider_id=doc.app_id,
            name=doc.name,
            base_url=base_url,
            authorization_endpoint=doc.auth.authorization_endpoint,
            token_endpoint=doc.auth.token_endpoint,
            api_base=doc.api_base.rstrip("/"),
            scopes=tuple(doc.auth.scopes_supported),
            registration_endpoint=doc.auth.registration_endpoint or base_url + REGISTER_PATH,
            agent_attestation_required=doc.auth.agent_attestation_required,
            kind="service",
            discovery_url=fetched.final_url,
        )
        return Discovery(
            mode, [provider], fetched.url, doc, version, fetched.from_cache, list(self.warnings)
        )

    def _gateway(self, base: str, fetched: _Fetched, mode: DiscoveryMode) -> Discovery:
        data = self._json(fetched)
        version = self.check_version(data, fetched.final_url)
        doc = _validate(GatewayDiscoveryDocument, data, fetched.final_url)
        reg = doc.agent_registration_endpoint.rstrip("/")
        base_url = reg[: -len(REGISTER_PATH)] if reg.endswith(REGISTER_PATH) else base
        providers = [
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
                discovery_url=fetched.final_url,
            )
            for p in doc.supported_providers
        ]
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
        base, target = _well_known(url, SERVICE_DISCOVERY_PATH)
        fetched = yield from self.fetch(target, guarded=False)
        return self._service(base, fetched, DiscoveryMode.SERVICE)

    def gateway(self, url: str) -> DiscoveryFlow:
        base, target = _well_known(url, GATEWAY_DISCOVERY_PATH)
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
            base, target = _well_known(url, GATEWAY_DISCOVERY_PATH)
            fetched = yield from self.fetch(target, guarded=guarded)
            return self._gateway(base, fetched, mode)
        base, target = _well_known(url, SERVICE_DISCOVERY_PATH)
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
        search_url = _registry_search_url(registry, intent, limit)
        fetched = yield from self.fetch(search_url, guarded=False)
        data = self._json(fetched)
        if isinstance(data, list):
            data = {"providers": data}
        doc = _validate(RegistrySearchResponse, data, fetched.final_url)
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


def _validate(model: type[Any], data: Any, url: str) -> Any:
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        problems = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()[:5]
        ]
        raise ProtocolViolation(
            f"invalid {model.__name__} at {url}", {"url": url, "errors": problems}
        ) from exc


def _well_known(url: str, path: str) -> tuple[str, str]:
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


def _registry_search_url(registry: str, intent: str, limit: int) -> str:
    parts = urlsplit(registry)
    path = parts.path.rstrip("/")
    if not path.endswith(REGISTRY_SEARCH_PATH):
        path += REGISTRY_SEARCH_PATH
    query = urlencode({"intent": intent, "limit": str(limit)})
    return urlunsplit(parts._replace(path=path, query=query, fragment=""))


def _select(
    manual: ManualInput | None,
    service: str | None,
    gateway: str | None,
    intent: str | None,
    registry: str | None,
    url: str | None,
    limit: int = 10,
) -> _Target:
    given = {
        DiscoveryMode.MANUAL: manual,
        DiscoveryMode.SERVICE: service,
        DiscoveryMode.GATEWAY: gateway,
        DiscoveryMode.REGISTRY: intent,
        DiscoveryMode.DIRECT: url,
    }
    chosen = [(mode, value) for mode, value in given.items() if value is not None]
    if len(chosen) != 1:
        raise ValueError("discover() takes exactly one of manual, service, gateway, intent, url")
    mode, value = chosen[0]
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if mode is DiscoveryMode.REGISTRY:
        if not registry:
            raise ValueError("intent discovery needs registry= (the registry's base URL)")
        if not str(value).strip():
            raise ValueError("intent must not be empty")
    elif registry is not None:
        raise ValueError("registry= is only used with intent=")
    return _Target(mode, value, registry)


# -- drivers --------------------------------------------------------------------------------

ConfirmCallback: TypeAlias = Callable[[str], bool]
AsyncConfirmCallback: TypeAlias = Callable[[str], "bool | Awaitable[bool]"]


def _too_large(url: str, limits: FetchLimits) -> DocumentTooLargeError:
    return DocumentTooLargeError(
        f"document at {url} exceeds {limits.max_bytes} bytes",
        {"url": url, "max_bytes": limits.max_bytes},
        status=502,
    )


def _timed_out(url: str, limits: FetchLimits) -> DiscoveryTimeoutError:
    return DiscoveryTimeoutError(
        f"fetching {url} took longer than {limits.timeout:g} s",
        {"url": url, "timeout": limits.timeout},
        status=504,
    )


def _check_response_start(
    response: httpx.Response, url: str, dev_mode: bool, limits: FetchLimits
) -> None:
    """The connected peer must still be an allowed address (DNS rebinding); size up front."""
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if peer:
        try:
            netguard.check_address(str(peer[0]), dev_mode=dev_mode, url=url)
        except netguard.UnsafeURLError as exc:
            raise BlockedURLError(exc) from None
    length = response.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limits.max_bytes:
        raise _too_large(url, limits)


class _SyncFetcher:
    def __init__(self, dev_mode: bool, limits: FetchLimits) -> None:
        self.dev_mode, self.limits = dev_mode, limits
        self.http = httpx.Client(timeout=limits.timeout, follow_redirects=False, trust_env=False)

    def send(self, request: PreparedRequest) -> RawResponse:
        url, limits = request.url, self.limits
        try:
            netguard.resolve_checked(url, dev_mode=self.dev_mode)  # before any connection
        except netguard.UnsafeURLError as exc:
            raise BlockedURLError(exc) from None
        deadline = time.monotonic() + limits.timeout
        try:
            with self.http.stream(request.method, url, headers=request.headers) as response:
                _check_response_start(response, url, self.dev_mode, limits)
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > limits.max_bytes:
                        raise _too_large(url, limits)
                    if time.monotonic() > deadline:
                        raise _timed_out(url, limits)
                return RawResponse(response.status_code, response.headers, bytes(body))
        except httpx.TimeoutException as exc:
            raise _timed_out(url, limits) from exc
        except httpx.HTTPError as exc:
            raise ServiceUnreachableError(
                f"GET {url} failed: {type(exc).__name__}", {"url": url}
            ) from exc


class _AsyncFetcher:
    def __init__(self, dev_mode: bool, limits: FetchLimits) -> None:
        self.dev_mode, self.limits = dev_mode, limits
        self.http = httpx.AsyncClient(
            timeout=limits.timeout, follow_redirects=False, trust_env=False
        )

    async def send(self, request: PreparedRequest) -> RawResponse:
        import anyio.to_thread

        url, limits = request.url, self.limits
        check = functools.partial(netguard.resolve_checked, url, dev_mode=self.dev_mode)
        try:
            await anyio.to_thread.run_sync(check)  # before any connection
        except netguard.UnsafeURLError as exc:
            raise BlockedURLError(exc) from None
        deadline = time.monotonic() + limits.timeout
        try:
            async with self.http.stream(request.method, url, headers=request.headers) as response:
                _check_response_start(response, url, self.dev_mode, limits)
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > limits.max_bytes:
                        raise _too_large(url, limits)
                    if time.monotonic() > deadline:
                        raise _timed_out(url, limits)
                return RawResponse(response.status_code, response.headers, bytes(body))
        except httpx.TimeoutException as exc:
            raise _timed_out(url, limits) from exc
        except httpx.HTTPError as exc:
            raise ServiceUnreachableError(
                f"GET {url} failed: {type(exc).__name__}", {"url": url}
            ) from exc


def discover(
    *,
    manual: ManualInput | None = None,
    service: str | None = None,
    gateway: str | None = None,
    intent: str | None = None,
    registry: str | None = None,
    url: str | None = None,
    allow: Allowlist | Iterable[str] = (),
    confirm: ConfirmCallback | None = None,
    dev_mode: bool = False,
    cache: DiscoveryCache | None = None,
    limits: FetchLimits | None = None,
    limit: int = 10,
    resolve: bool = False,
) -> Discovery:
    """Discover ATH providers in one of the five §2 modes (blocking). See the module doc.

    ``allow`` and ``confirm`` govern direct URLs (and unverified registry results fetched with
    ``resolve``); ``dev_mode`` allows ``http`` and loopback; ``limit`` caps registry results.
    """
    target = _select(manual, service, gateway, intent, registry, url, limit)
    core = DiscoveryCore(
        dev_mode=dev_mode, allow=allow, can_confirm=confirm is not None, cache=cache, limits=limits
    )
    flow = core.flow(target, limit=limit, resolve=resolve)
    fetcher = _SyncFetcher(dev_mode, core.limits)
    try:
        step = next(flow)
        while True:
            reply: Reply
            if isinstance(step, ConfirmRequest):
                reply = bool(confirm(step.url)) if confirm is not None else False
            else:
                try:
                    reply = fetcher.send(step)
                except ATHError as exc:  # the flow decides: e.g. a registry hit keeps its error
                    step = flow.throw(exc)
                    continue
            step = flow.send(reply)
    except StopIteration as stop:
        result: Discovery = stop.value
        return result
    finally:
        flow.close()
        fetcher.http.close()


async def adiscover(
    *,
    manual: ManualInput | None = None,
    service: str | None = None,
    gateway: str | None = None,
    intent: str | None = None,
    registry: str | None = None,
    url: str | None = None,
    allow: Allowlist | Iterable[str] = (),
    confirm: AsyncConfirmCallback | None = None,
    dev_mode: bool = False,
    cache: DiscoveryCache | None = None,
    limits: FetchLimits | None = None,
    limit: int = 10,
    resolve: bool = False,
) -> Discovery:
    """:func:`discover` for async code; ``confirm`` may be a coroutine function."""
    target = _select(manual, service, gateway, intent, registry, url, limit)
    core = DiscoveryCore(
        dev_mode=dev_mode, allow=allow, can_confirm=confirm is not None, cache=cache, limits=limits
    )
    flow = core.flow(target, limit=limit, resolve=resolve)
    fetcher = _AsyncFetcher(dev_mode, core.limits)
    try:
        step = next(flow)
        while True:
            reply: Reply
            if isinstance(step, ConfirmRequest):
                answer: Any = confirm(step.url) if confirm is not None else False
                if inspect.isawaitable(answer):
                    answer = await answer
                reply = bool(answer)
            else:
                try:
                    reply = await fetcher.send(step)
                except ATHError as exc:
                    step = flow.throw(exc)
                    continue
            step = flow.send(reply)
    except StopIteration as stop:
        result: Discovery = stop.value
        return result
    finally:
        flow.close()
        await fetcher.http.aclose()


# -- agent-framework tools ------------------------------------------------------------------


def _error_result(exc: ATHError) -> dict[str, Any]:
    return {"status": "error", "code": exc.code_str, "message": exc.message, "details": exc.details}


def _needs_confirmation(exc: NeedsConfirmationError) -> dict[str, Any]:
    return {
        "status": "needs_confirmation",
        "url": exc.url,
        "origin": exc.origin,
        "message": (
            f"{exc.origin} is not an allowlisted origin. Ask the user to confirm fetching it; "
            "the application then calls again with the origin in approved_origins."
        ),
    }


def discover_provider_tool(
    url: str,
    *,
    allow: Iterable[str] = (),
    approved_origins: Iterable[str] = (),
    dev_mode: bool = False,
    cache: DiscoveryCache | None = None,
    limits: FetchLimits | None = None,
) -> dict[str, Any]:
    """The ``discover_provider`` tool for agent frameworks (e.g. MCP): never prompts.

    Returns ``{"status": "ok", ...Discovery.to_dict()}``, ``{"status": "needs_confirmation",
    "url", "origin", "message"}`` when the URL's origin is neither in ``allow`` nor in
    ``approved_origins``, or ``{"status": "error", "code", "message", "details"}``.
    ``approved_origins`` must come from the application's own record of what its user confirmed,
    never from the model's tool arguments.
    """
    try:
        found = discover(
            url=url,
            allow=Allowlist([*allow, *approved_origins]),
            dev_mode=dev_mode,
            cache=cache,
            limits=limits,
        )
    except NeedsConfirmationError as exc:
        return _needs_confirmation(exc)
    except ATHError as exc:
        return _error_result(exc)
    return {"status": "ok", **found.to_dict()}


async def adiscover_provider_tool(
    url: str,
    *,
    allow: Iterable[str] = (),
    approved_origins: Iterable[str] = (),
    dev_mode: bool = False,
    cache: DiscoveryCache | None = None,
    limits: FetchLimits | None = None,
) -> dict[str, Any]:
    """:func:`discover_provider_tool` for async frameworks."""
    try:
        found = await adiscover(
            url=url,
            allow=Allowlist([*allow, *approved_origins]),
            dev_mode=dev_mode,
            cache=cache,
            limits=limits,
        )
    except NeedsConfirmationError as exc:
        return _needs_confirmation(exc)
    except ATHError as exc:
        return _error_result(exc)
    return {"status": "ok", **found.to_dict()}


def search_providers_tool(
    intent: str,
    *,
    registry: str,
    limit: int = 5,
    dev_mode: bool = False,
    cache: DiscoveryCache | None = None,
    limits: FetchLimits | None = None,
) -> dict[str, Any]:
    """The ``search_providers`` tool: registry hits for ``intent`` as a JSON-ready dict."""
    try:
        found = discover(
            intent=intent,
            registry=registry,
            limit=limit,
            dev_mode=dev_mode,
            cache=cache,
            limits=limits,
        )
    except ATHError as exc:
        return _error_result(exc)
    return {"status": "ok", **found.to_dict()}


async def asearch_providers_tool(
    intent: str,
    *,
    registry: str,
    limit: int = 5,
    dev_mode: bool = False,
    cache: DiscoveryCache | None = None,
    limits: FetchLimits | None = None,
) -> dict[str, Any]:
    """:func:`search_providers_tool` for async frameworks."""
    try:
        found = await adiscover(
            intent=intent,
            registry=registry,
            limit=limit,
            dev_mode=dev_mode,
            cache=cache,
            limits=limits,
        )
    except ATHError as exc:
        return _error_result(exc)
    return {"status": "ok", **found.to_dict()}
