"""The validated-token cache: token hash → grant (and, in a gateway, the upstream token).

A cache that may serve a revoked token is a vulnerability, so it is built to be unable to:

* it is **untrusted until its revocation channel is subscribed** (``resume()``), and it drops
  everything and stops answering the moment the channel is lost (``suspend()``);
* every invalidation bumps a **generation**; a row read from the database is cached only if no
  invalidation happened since the read began (``put(..., generation)``), so a revocation that
  commits while a check is in flight can never be overwritten by the stale row;
* entries live at most ``max_age`` seconds and never past the token's expiry; the number of
  entries is bounded (oldest out first).

Invalidations are :class:`Revocation` values: token hashes, or every token of a client, of a
user with a client, or of a grant (client, user, provider); no field at all means everything.
Any kind of token keyed by its hash (ATH tokens, OAuth access tokens) uses the same calls.
Reads take no lock (one dict lookup under the GIL); writes and invalidations take one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from athkit.core.clock import Clock, to_datetime
from athkit.core.metrics import TOKEN_CHECKS
from athkit.core.secrets import hash_secret
from athkit.core.settings import ATHSettings
from athkit.core.tokens import TokenInfo, check_grant, check_token, token_info
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.models import TokenRow
from athkit.store.repositories import Store
from athkit.store.revocation import Revocation
from athkit.store.revocation_channels import (
    Listener,
    LocalChannel,
    RevocationChannel,
    channel_for,
)


@dataclass(slots=True)
class CachedToken:
    info: TokenInfo
    expires_ts: float  # the token's own expiry (epoch seconds)
    valid_until: float  # min(expiry, cached-at + max_age)
    upstream: str | None = None  # gateway: the user's upstream access token
    upstream_expires: float = 0.0


@dataclass
class TokenCache:
    """Bounded in-process cache of validated tokens; see the module docstring."""

    max_entries: int = 10_000
    max_age: float = 30.0
    enabled: bool = True
    trusted: bool = False
    generation: int = 0
    _entries: dict[str, CachedToken] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, token_hash: str, now: float) -> CachedToken | None:
        """The live entry for ``token_hash``, or None (miss, expired, or cache not trusted)."""
        if not self.trusted:
            return None
        entry = self._entries.get(token_hash)
        if entry is None or entry.valid_until <= now:
            return None
        return entry

    def put(self, token_hash: str, info: TokenInfo, now: float, generation: int) -> bool:
        """Cache a row read at ``generation``; refused if anything was invalidated since."""
        if not (self.enabled and self.trusted):
            return False
        expires = info.expires_at.timestamp()
        entry = CachedToken(info, expires, min(expires, now + self.max_age))
        with self._lock:
            if generation != self.generation or not self.trusted:
                return False
            if len(self._entries) >= self.max_entries and token_hash not in self._entries:
                self._entries.pop(next(iter(self._entries)))
            self._entries[token_hash] = entry
        return True

    def put_upstream(
        self, token_hash: str, upstream: str, expires: float, generation: int
    ) -> None:
        """Attach the upstream access token (expiring at ``expires``) to a cached entry."""
        with self._lock:
            entry = self._entries.get(token_hash)
            if entry is not None and generation == self.generation and self.trusted:
                entry.upstream, entry.upstream_expires = upstream, expires

    def invalidate(self, revocation: Revocation) -> None:
        with self._lock:
            self.generation += 1
            if revocation.everything:
                self._entries.clear()
                return
            doomed = [h for h, e in self._entries.items() if revocation.matches(h, e.info)]
            for h in doomed:
                del self._entries[h]

    def suspend(self) -> None:
        """The revocation channel is gone: forget everything and answer nothing from memory."""
        with self._lock:
            self.trusted = False
            self.generation += 1
            self._entries.clear()

    def resume(self) -> None:
        """The revocation channel is (again) subscribed: the cache may fill and answer."""
        with self._lock:
            self.generation += 1
            self._entries.clear()
            self.trusted = self.enabled

    def __len__(self) -> int:
        return len(self._entries)


class CachedRevocations:
    """The store's :class:`~athkit.store.revocation.RevocationSink` for one node: invalidates
    this node's cache and tells the other nodes through ``channel``; the channel's state
    decides whether the cache may answer at all (subscribe before serving, fail closed)."""

    def __init__(self, cache: TokenCache, channel: RevocationChannel) -> None:
        self.cache = cache
        self.channel = channel
        channel.start(Listener(up=cache.resume, down=cache.suspend, revoked=cache.invalidate))

    def stage(self, session: Session, revocation: Revocation) -> None:
        self.channel.stage(session, revocation)

    def committed(self, revocation: Revocation) -> None:
        self.cache.invalidate(revocation)
        self.channel.publish(revocation)

    def close(self) -> None:
        self.channel.close()
        self.cache.suspend()


#: Pre-bound metric children (a label lookup per check would cost more than the check).
_OK = TOKEN_CHECKS.labels("ok")


class TokenChecks:
    """§7 token checks for one service: from the cache when it can answer, else the database."""

    def __init__(self, store: Store, cache: TokenCache, clock: Clock) -> None:
        self.store = store
        self.cache = cache
        self.clock = clock

    def from_memory(
        self,
        token: str | None,
        *,
        agent_header: str | None,
        provider_id: str | None,
        required: Iterable[str] = (),
        resource: str | None = None,
    ) -> TokenInfo | None:
        """The checks on a cached token with no I/O (safe in the event loop); None on a miss.

        A hit that fails a check raises its ATH error like :meth:`validate` would."""
        if not token:
            return None
        entry = self.cache.get(hash_secret(token), self.clock())
        if entry is None:
            return None
        try:
            info = check_grant(
                entry.info,
                agent_header=agent_header,
                provider_id=provider_id,
                required=required,
                resource=resource,
            )
        except ATHError as exc:
            TOKEN_CHECKS.labels(exc.code_str).inc()
            raise
        _OK.inc()
        return info

    def validate(
        self,
        token: str | None,
        *,
        agent_header: str | None,
        provider_id: str | None,
        required: Iterable[str] = (),
        resource: str | None = None,
    ) -> TokenInfo:
        """Every §7 check; the token row comes from the cache or the database (then cached)."""
        hit = self.from_memory(
            token,
            agent_header=agent_header,
            provider_id=provider_id,
            required=required,
            resource=resource,
        )
        if hit is not None:
            return hit
        token_hash = hash_secret(token) if token else None
        generation = self.cache.generation
        row = self.store.get_token(token_hash) if token_hash else None
        now = self.clock()
        try:
            info = check_token(
                row,
                now=to_datetime(now),
                agent_header=agent_header,
                provider_id=provider_id,
                required=required,
                resource=resource,
            )
        except ATHError as exc:
            if row is not None and token_hash and exc.code in _GRANT_FAILURES:
                self._remember(token_hash, row, now, generation)  # the token itself is fine
            TOKEN_CHECKS.labels(exc.code_str).inc()
            raise
        if token_hash:
            self.cache.put(token_hash, info, now, generation)
        _OK.inc()
        return info

    def remember_upstream(
        self, token: str, upstream: str, expires: float, generation: int
    ) -> None:
        """Gateway: keep the upstream access token (expiring at ``expires``) with the grant."""
        self.cache.put_upstream(hash_secret(token), upstream, expires, generation)

    def cached_upstream(self, token: str, now: float, leeway: float) -> str | None:
        """The cached upstream token unless it is due for a refresh (``leeway`` before expiry)."""
        entry = self.cache.get(hash_secret(token), now)
        if entry is None or entry.upstream is None or entry.upstream_expires - leeway <= now:
            return None
        return entry.upstream

    def _remember(self, token_hash: str, row: TokenRow, now: float, generation: int) -> None:
        self.cache.put(token_hash, token_info(row), now, generation)


#: Failures of a live token used wrongly (the row is still worth caching).
_GRANT_FAILURES = frozenset(
    {ErrorCode.AGENT_IDENTITY_MISMATCH, ErrorCode.PROVIDER_MISMATCH, ErrorCode.SCOPE_INSUFFICIENT}
)


def attach_token_cache(settings: ATHSettings, store: Store, clock: Clock) -> TokenChecks:
    """The node's cache, wired to the store's revocations and the deployment's channel.

    A store shared by several services keeps one cache. ``token_cache_size = 0`` turns the
    cache off (every check reads the database)."""
    sink = store.revocations
    if not isinstance(sink, CachedRevocations):
        cache = TokenCache(
            max_entries=max(1, settings.token_cache_size),
            max_age=settings.token_cache_max_age,
            enabled=settings.token_cache_size > 0,
        )
        channel: RevocationChannel = LocalChannel()
        if cache.enabled:
            channel = channel_for(store.db.url, settings.redis_url, settings.redis_prefix)
        sink = CachedRevocations(cache, channel)
        store.revocations = sink
    return TokenChecks(store, sink.cache, clock)
