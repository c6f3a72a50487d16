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
:class:`RawResponse`); the blocking and async drivers (``drivers``, over ``fetchers``) only do
the I/O of one hop.

For agent frameworks, :func:`discover_provider_tool` / :func:`search_providers_tool` return
JSON-ready dicts and never prompt: an unapproved URL yields
``{"status": "needs_confirmation", "url": ..., "origin": ...}`` for the application to ask its
user and call again with the origin in ``approved_origins``.

One module per part: ``errors``, ``guard`` (allowlist, origins, limits), ``cache``, ``results``,
``documents`` (from a document to providers), ``core`` (the sans-I/O rules), ``fetchers`` (one
hop of I/O), ``drivers`` (:func:`discover`, :func:`adiscover`) and ``tools`` (agent-framework
helpers). Every name stays importable from here.
"""

from athkit.client.discovery.cache import DiscoveryCache
from athkit.client.discovery.core import (
    REDIRECT_STATUSES,
    ConfirmRequest,
    DiscoveryCore,
    DiscoveryFlow,
    ManualInput,
    Reply,
    Step,
)
from athkit.client.discovery.core import _Target as _Target
from athkit.client.discovery.documents import (
    AUTHORIZE_PATH,
    PROXY_BASE_PATH,
    REGISTER_PATH,
    REGISTRY_SEARCH_PATH,
)
from athkit.client.discovery.drivers import (
    AsyncConfirmCallback,
    ConfirmCallback,
    adiscover,
    discover,
)
from athkit.client.discovery.errors import (
    BlockedURLError,
    ConfirmationDeniedError,
    DiscoveryError,
    DiscoveryTimeoutError,
    DocumentNotFoundError,
    DocumentTooLargeError,
    NeedsConfirmationError,
    TooManyRedirectsError,
)
from athkit.client.discovery.fetchers import _AsyncFetcher as _AsyncFetcher
from athkit.client.discovery.fetchers import _check_response_start as _check_response_start
from athkit.client.discovery.fetchers import _SyncFetcher as _SyncFetcher
from athkit.client.discovery.guard import Allowlist, FetchLimits, origin_of
from athkit.client.discovery.results import (
    DiscoveredProvider,
    Discovery,
    DiscoveryDocument,
    DiscoveryMode,
    RegistryProvider,
    RegistrySearchResponse,
)
from athkit.client.discovery.tools import (
    adiscover_provider_tool,
    asearch_providers_tool,
    discover_provider_tool,
    search_providers_tool,
)

__all__ = [
    "AUTHORIZE_PATH",
    "PROXY_BASE_PATH",
    "REDIRECT_STATUSES",
    "REGISTER_PATH",
    "REGISTRY_SEARCH_PATH",
    "Allowlist",
    "AsyncConfirmCallback",
    "BlockedURLError",
    "ConfirmCallback",
    "ConfirmRequest",
    "ConfirmationDeniedError",
    "DiscoveredProvider",
    "Discovery",
    "DiscoveryCache",
    "DiscoveryCore",
    "DiscoveryDocument",
    "DiscoveryError",
    "DiscoveryFlow",
    "DiscoveryMode",
    "DiscoveryTimeoutError",
    "DocumentNotFoundError",
    "DocumentTooLargeError",
    "FetchLimits",
    "ManualInput",
    "NeedsConfirmationError",
    "RegistryProvider",
    "RegistrySearchResponse",
    "Reply",
    "Step",
    "TooManyRedirectsError",
    "adiscover",
    "adiscover_provider_tool",
    "asearch_providers_tool",
    "discover",
    "discover_provider_tool",
    "origin_of",
    "search_providers_tool",
]
