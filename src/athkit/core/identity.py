"""Fetching and caching agent identity documents (PROTOCOL.md §3).

Documents are cached for at most five minutes. After a signature mismatch the verifier may force
one re-fetch per agent_id per minute, so key rotation works without letting a stream of bad
attestations turn the service into a request amplifier.
"""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass

import httpx
from pydantic import ValidationError

from athkit.core.clock import Clock, system_clock
from athkit.core.netguard import check_url
from athkit.core.outbound import BoundedTransport, OutboundLimits, ResponseTooLarge
from athkit.netguard_http import guarded_transport
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.protocol.messages import AgentIdentityDocument

FORCED_REFETCH_INTERVAL = 60.0


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
        self._cache: dict[str, _Entry] = {}
        self._forced: dict[str, float] = {}
        self._lock = threading.Lock()
        self._bounded: BoundedTransport | None = None
        if transport is None:
            limits = outbound or OutboundLimits()
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
            headers={"Accept": "application/json", "User-Agent": "athkit-identity-fetcher"},
        )

    def close(self) -> None:
        self._http.close()
        if self._bounded is not None:
            self._bounded.shutdown()

    def get(self, agent_id: str) -> AgentIdentityDocument:
        """The cached document, or a fresh fetch when the cache entry is old."""
        with self._lock:
            entry = self._cache.get(agent_id)
        if entry and self.clock() - entry.fetched_at < self.cache_seconds:
            return entry.doc
        return self._fetch(agent_id)

    def refetch_after_mismatch(self, agent_id: str) -> AgentIdentityDocument | None:
        """Bypass the cache once per minute per agent; None when the budget is spent."""
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
        check_url(url, dev_mode=self.dev_mode, code=code)
        try:
            with self._http.stream("GET", url) as resp:
                if resp.status_code != 200:
                    raise ATHError(
                        code, f"{label} answered HTTP {resp.status_code}", {"url": url}
                    )
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

    def _fetch(self, agent_id: str) -> AgentIdentityDocument:
        body = self.fetch_bytes(agent_id)
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
        with self._lock:
            self._cache[agent_id] = _Entry(doc, self.clock())
        return doc
