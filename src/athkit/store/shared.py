"""State that every node of a deployment must share: the replay cache and rate counters.

One node: the SQL database (replay) and process memory (rate limits). Many nodes: Redis, with a
key prefix per deployment. Redis failures fail closed: a request whose replay or rate check
cannot be made is refused with ``SERVICE_UNAVAILABLE``, never waved through.
"""

from __future__ import annotations

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
        """Count one event for ``key``: at most ``limit`` per ``window`` seconds."""


def gcra(tat: float | None, limit: int, window: float, now: float) -> tuple[RateDecision, float]:
    """One step of the generic cell rate algorithm: ``limit`` events may come at once, then
    one every ``window / limit`` seconds (no doubled burst at a fixed window's edge).

    ``tat`` is the key's theoretical arrival time; returns the decision and the new ``tat``.
    """
    interval = window / limit
    base = max(tat if tat is not None else now, now)
    new_tat = base + interval
    allow_at = new_tat - window
    if allow_at > now:
        return RateDecision(False, 0, allow_at - now), base
    return RateDecision(True, int((now - allow_at) / interval), 0.0), new_tat


#: The same step in Redis, atomic per key (KEYS[1]; ARGV: now, limit, window).
_GCRA_LUA = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local interval = window / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - window
if allow_at > now then
  return {0, 0, tostring(allow_at - now)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
return {1, math.floor((now - allow_at) / interval), '0'}
"""


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
    """Rate counters in process memory (one node): :func:`gcra` per key."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def hit(self, key: str, limit: int, window: float, now: float) -> RateDecision:
        with self._lock:
            if len(self._tat) > self._max_keys:
                self._tat = {k: v for k, v in self._tat.items() if v > now}
            decision, self._tat[key] = gcra(self._tat.get(key), limit, window, now)
        return decision


class RedisShared:
    """Replay cache and rate limiter in Redis, for many nodes."""

    def __init__(self, client: Any, prefix: str = "athkit:") -> None:
        self.r = client
        self.prefix = prefix
        self._gcra: Any = None

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
        try:
            if self._gcra is None:
                self._gcra = self.r.register_script(_GCRA_LUA)
            allowed, remaining, retry = self._gcra(
                keys=[f"{self.prefix}rate:{key}"], args=[repr(now), limit, repr(float(window))]
            )
        except Exception as exc:
            raise _unavailable("Redis", exc) from exc
        return RateDecision(bool(int(allowed)), int(remaining), float(retry))
