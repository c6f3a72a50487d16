"""The replay cache and rate limiter every node of one deployment shares."""

from __future__ import annotations

from dataclasses import dataclass

from athkit.core.settings import ATHSettings
from athkit.store.repositories import Store
from athkit.store.shared import (
    MemoryRateLimiter,
    RateLimiter,
    RedisShared,
    ReplayCache,
    SQLReplayCache,
)


@dataclass(frozen=True)
class SharedState:
    """The replay cache and rate limiter every node of a deployment must share."""

    replay: ReplayCache
    rate: RateLimiter


def shared_state(settings: ATHSettings, store: Store) -> SharedState:
    """Redis when ``redis_url`` is set (many nodes), else the database and process memory."""
    if settings.redis_url:
        redis_shared = RedisShared.from_url(settings.redis_url, settings.redis_prefix)
        return SharedState(redis_shared, redis_shared)
    return SharedState(SQLReplayCache(store), MemoryRateLimiter())
