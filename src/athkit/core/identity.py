"""Fetching and caching agent identity documents (PROTOCOL.md §3).

Documents are cached for at most five minutes. After a signature mismatch the verifier may force
one re-fetch per agent_id per minute, so key rotation works without letting a stream of bad
attestations turn the service into a request amplifier.

A blocking caller (a protocol step in a worker thread) fetches through the shared outbound loop
(:class:`~athkit.core.outbound.BoundedTransport`). An async caller can fetch first, on its own
event loop, with the same guard, deadline, size cap and in-flight slots
(:meth:`IdentityFetcher.prefetch`): the step that runs next reads the document, or the fetch's
error, without a second fetch and without the two thread hops of the blocking path.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
import threading
from collections import OrderedDict
from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio.to_thread
import httpx
from pydantic import ValidationError

from athkit import netguard
from athkit.core.clock import Clock, system_clock
from athkit.core.netguard import check_url
from athkit.core.outbound import BoundedTransport, OutboundLimits, ResponseTooLarge
from athkit.core.outbound_get import FetchError, get_document
from athkit.netguard_http import guarded_transport
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.protocol.messages import AgentIdentityDocument
from athkit.store import on_loop

FORCED_REFETCH_INTERVAL = 60.0
#: Documents kept at most (least recently fetched go first); each expires after five minutes.
MAX_CACHED = 10_000
_HEADERS = {"Accept": "application/json", "User-Agent": "athkit-identity-fetcher"}

#: What :meth:`IdentityFetcher.prefetch` found for the current request: (fetcher, agent_id) →
#: the document's fetch failure. A worker call copies the request's context, so the step that
#: follows raises the same error instead of fetching again.
_prefetch_failures: ContextVar[dict[tuple[int, str], ATHError] | None] = ContextVar(
    "athkit_identity_prefetch", default=None
)


@dataclass
class _Entry:
    doc: AgentIdentityDocument
    fetched_at: float


class IdentityFetcher:
    """Fetches ``agent_id`` URLs behind the SSRF guard, with time and size limits.

    ``timeout`` is the deadline of the whole fetch, and ``outbound`` caps how many fetches are
    in flight (:mod:`athkit.core.outbound`); a ``transport`` given by a test replaces both.
    """

    def __init__(
        self,
        *,
        dev_mode: bool = False,
        cache_seconds: float = 300.0,
        max_bytes: int = 64 * 1024,
        timeout: float = 5.0,
        clock: Clock = system_clock,
        transport: httpx.BaseTransport | None = None,
        outbound: OutboundLimits | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.dev_mode = dev_mode
        self.cache_seconds = min(cache_seconds, 300.0)
        self.max_bytes = max_bytes
        self.clock = clock
        self.timeout = timeout
        self._verify = verify
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._forced: dict[str, float] = {}
        self._lock = threading.Lock()
        self._bounded: BoundedTransport | None = None
        self._limits: OutboundLimits | None = None
        self._tls: ssl.SSLContext | None = None
        if transport is None:
            limits = self._limits = outbound or OutboundLimits()
            transport = self._bounded = limits.transport(
                deadline=timeout,
                max_bytes=max_bytes,
                verify=verify,
                # Connect only to the addresses the SSRF guard checked (no DNS rebinding).
                inner=guarded_transport(dev_mode=dev_mode, verify=verify),
            )
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            follow_redirects=False,
            transport=transport,
            verify=verify,
            headers=_HEADERS,
        )

    def close(self) -> None:
        self._http.close()
        if self._bounded is not None:
            self._bounded.shutdown()

    def _cached(self, agent_id: str) -> AgentIdentityDocument | None:
        with self._lock:
            entry = self._cache.get(agent_id)
        if entry and self.clock() - entry.fetched_at < self.cache_seconds:
            return entry.doc
        return None

    def get(self, agent_id: str) -> AgentIdentityDocument:
        """The cached document, or a fresh fetch when the cache entry is old (or the fetch's
        error, when :meth:`prefetch` already tried it for this request)."""
        doc = self._cached(agent_id)
        if doc is not None:
            return doc
        failures = _prefetch_failures.get()
        if failures and (id(self), agent_id) in failures:
            raise failures[(id(self), agent_id)]
        return self._fetch(agent_id)

    async def prefetch(self, agent_id: str) -> None:
        """Fetch ``agent_id``'s document on the running loop unless it is cached: the same
        checks and limits as :meth:`get`; a failure is kept for this request's :meth:`get`.
        Does nothing when a test transport replaced the fetcher's own."""
        if self._limits is None or self._cached(agent_id) is not None:
            return
        try:
            body = await self._afetch_bytes(agent_id)
            self._store(agent_id, self._parse(agent_id, body))
        except ATHError as exc:
            failures = _prefetch_failures.get()
            if failures is None:
                failures = {}
                _prefetch_failures.set(failures)
            failures[(id(self), agent_id)] = exc  # this fetcher's, for this request

    def refetch_after_mismatch(self, agent_id: str) -> AgentIdentityDocument | None:
        """Bypass the cache once per minute per agent; None when the budget is spent."""
        on_loop.refuse_wait()  # an inline step fetches nothing: it reruns in a worker
        now = self.clock()
        with self._lock:
            last = self._forced.get(agent_id)
            if last is not None and now - last < FORCED_REFETCH_INTERVAL:
                return None
            self._forced[agent_id] = now
        return self._fetch(agent_id)

    def fetch_bytes(
        self, url: str, *, code: ErrorCode = ErrorCode.INVALID_ATTESTATION, what: str = "agent"
    ) -> bytes:
        """GET ``url`` behind the SSRF guard with the time and size limits; the body.

        Shared by identity documents and OAuth client ID metadata documents."""
        label = f"{what} identity document" if what == "agent" else what
        on_loop.refuse_wait()  # an inline step fetches nothing: it reruns in a worker
        check_url(url, dev_mode=self.dev_mode, code=code)
        try:
            with self._http.stream("GET", url) as resp:
                if resp.status_code != 200:
                    raise ATHError(code, f"{label} answered HTTP {resp.status_code}", {"url": url})
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body.extend(chunk)
                    if len(body) > self.max_bytes:
                        raise ATHError(
                            code,
                            f"{label} is too large",
                            {"url": url, "limit_bytes": self.max_bytes},
                        )
        except ResponseTooLarge as exc:
            raise ATHError(
                code, f"{label} is too large", {"url": url, "limit_bytes": self.max_bytes}
            ) from exc
        except httpx.HTTPError as exc:
            raise ATHError(
                code, f"{label} could not be fetched", {"url": url, "reason": type(exc).__name__}
            ) from exc
        return bytes(body)

    async def _afetch_bytes(self, url: str) -> bytes:
        """:meth:`fetch_bytes` for an async caller, on its own loop (no thread hop): one GET
        to an address the SSRF guard checked (:mod:`athkit.core.outbound_get`)."""
        code, label = ErrorCode.INVALID_ATTESTATION, "agent identity document"
        if _is_ip_literal(url):  # nothing to resolve: checked here
            addresses = _checked(url, self.dev_mode, code)
        else:  # a host name: resolved (and checked) off the loop
            addresses = await anyio.to_thread.run_sync(_checked, url, self.dev_mode, code)
        assert self._limits is not None
        try:
            status, body = await get_document(
                url,
                addresses,
                limits=self._limits,
                deadline=self.timeout,
                max_bytes=self.max_bytes,
                tls=self._tls_context(),
                headers=_HEADERS,
            )
        except FetchError as exc:
            if exc.reason == "ResponseTooLarge":
                raise ATHError(
                    code, f"{label} is too large", {"url": url, "limit_bytes": self.max_bytes}
                ) from exc
            raise ATHError(
                code, f"{label} could not be fetched", {"url": url, "reason": exc.reason}
            ) from exc
        if status != 200:
            raise ATHError(code, f"{label} answered HTTP {status}", {"url": url})
        return body

    def _tls_context(self) -> ssl.SSLContext:
        """The TLS trust of the blocking path's httpx client, for the loop's fetches."""
        if self._tls is None:
            if isinstance(self._verify, ssl.SSLContext):
                self._tls = self._verify
            else:
                self._tls = httpx.create_ssl_context(verify=self._verify)
        return self._tls

    def _fetch(self, agent_id: str) -> AgentIdentityDocument:
        doc = self._parse(agent_id, self.fetch_bytes(agent_id))
        self._store(agent_id, doc)
        return doc

    def _store(self, agent_id: str, doc: AgentIdentityDocument) -> None:
        with self._lock:
            self._cache[agent_id] = _Entry(doc, self.clock())
            self._cache.move_to_end(agent_id)
            while len(self._cache) > MAX_CACHED:
                self._cache.popitem(last=False)

    @staticmethod
    def _parse(agent_id: str, body: bytes) -> AgentIdentityDocument:
        try:
            doc = AgentIdentityDocument.model_validate(json.loads(bytes(body)))
        except (ValueError, ValidationError) as exc:
            raise ATHError(
                ErrorCode.INVALID_ATTESTATION,
                "agent identity document is not valid",
                {"agent_id": agent_id},
            ) from exc
        if doc.agent_id != agent_id:
            raise ATHError(
                ErrorCode.INVALID_ATTESTATION,
                "identity document names a different agent_id",
                {"agent_id": agent_id},
            )
        return doc


def _is_ip_literal(url: str) -> bool:
    try:
        host = urlsplit(url).hostname or ""
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _checked(url: str, dev_mode: bool, code: ErrorCode) -> list[str]:
    """The SSRF guard's checks and the addresses to connect to (all of them allowed)."""
    try:
        return netguard.resolve_checked(url, dev_mode=dev_mode)
    except netguard.UnsafeURLError as exc:
        raise ATHError(code, exc.message, exc.details) from exc
