"""State that every node of a deployment must share: the replay cache and rate counters.

One node: the SQL database (replay) and process memory (rate limits). Many nodes: Redis, with a
key prefix per deployment. Redis failures fail closed: a request whose replay or rate check
cannot be made is refused with ``SERVICE_UNAVAILABLE``, never waved through.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.repositories import Store
from athkit.store.steps import defer_replay


class ReplayCache(Protocol):
    def remember_once(self, key: str, expires_at: datetime, now: datetime) -> bool:
        """Record ``key`` until ``expires_at``; False when it was already recorded (a replay)."""


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    remaining: int
    retry_after: float


class RateLimiter(Protocol):
    def hit(self, key: str, limit: int, window: float, now: float) -> RateDecision:
        """Count one event for ``key`` in a fixed window of ``window`` seconds."""


def _unavailable(what: str, exc: Exception) -> ATHError:
    return ATHError(
        ErrorCode.SERVICE_UNAVAILABLE,
        f"{what} is unreachable; refusing rather than skipping the check",
        {"reason": type(exc).__name__},
    )


class SQLReplayCache:
    """The replay cache in the service's database (single node, or nodes sharing one DB)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def remember_once(self, key: str, expires_at: datetime, now: datetime) -> bool:
        try:
            if self.store.replay_seen(key, now):
                return False
            if defer_replay(key, expires_at):  # recorded by the protocol step's own write
                return True
            return self.store.remember_once(key, expires_at, now)
        except Exception as exc:  # database down: fail closed
            if isinstance(exc, ATHError):
                raise
            raise _unavailable("the replay cache database", exc) from exc


class MemoryRateLimiter:
    """Fixed-window counters in process memory (one node)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def hit(self, key: str, limit: int, window: float, now: float) -> RateDecision:
        slot = math.floor(now / window)
        with self._lock:
            if len(self._counts) > self._max_keys:
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= slot}
            count = self._counts.get((key, slot), 0) + 1
            self._counts[(key, slot)] = count
        retry = (slot + 1) * window - now
        return RateDecision(count <= limit, max(0, limit - count), 0.0 if count <= limit else retry)


class RedisShared:
    """Replay cache and rate limiter in Redis, for many nodes."""

    def __init__(self, client: Any, prefix: str = "athkit:") -> None:
        self.r = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = "athkit:") -> RedisShared:
        import redis

        return cls(
            redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0), prefix
        )

    def ping(self) -> None:
        """One round trip; raises ``SERVICE_UNAVAILABLE`` when Redis cannot answer."""
        try:
            self.r.ping()
        except Exception as exc:
            raise _unavailable("Redis", exc) from exc

    def remember_once(self, key: str, expires_at: datetime, now: datetime) -> bool:
        ttl_ms = max(1, int((expires_at - now).total_seconds() * 1000))
        try:
            return bool(self.r.set(f"{self.prefix}replay:{key}", b"1", nx=True, px=ttl_ms))
        except Exception as exc:
            raise _unavailable("Redis", exc) from exc

    def hit(self, key: str, limit: int, window: float, now: float) -> RateDecision:
        slot = math.floor(now / window)
        name = f"{self.prefix}rate:{key}:{slot}"
        try:
            pipe = self.r.pipeline()
            pipe.incr(name)
            pipe.pexpire(name, int(window * 1000) + 1000)
            count = int(pipe.execute()[0])
        except Exception as exc:
            raise _unavailable("Redis", exc) from exc
        retry = (slot + 1) * window - now
        return RateDecision(count <= limit, max(0, limit - count), 0.0 if count <= limit else retry)
