"""The in-memory HTTP cache of discovery documents (``Cache-Control``, ``ETag``, ``304``)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from athkit.client._core import RawResponse

_MAX_CACHE_SECONDS = 86_400.0


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
        etag = header_value(response.headers, "etag")
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
            entry.etag = header_value(headers, "etag") or entry.etag

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, url: object) -> bool:
        with self._lock:
            return any(k[0] == url for k in self._entries)


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        for key, v in headers.items():
            if key.lower() == name:
                return v
    return value


def _cache_policy(headers: Mapping[str, str]) -> tuple[bool, float]:
    """``(may_store, max_age_seconds)`` from ``Cache-Control`` and ``Age``."""
    directives: dict[str, str | None] = {}
    for part in (header_value(headers, "cache-control") or "").split(","):
        name, _, value = part.strip().partition("=")
        if name:
            directives[name.lower()] = value.strip().strip('"') if value else None
    if "no-store" in directives:
        return False, 0.0
    if "no-cache" in directives:
        return True, 0.0
    try:
        max_age = float(int(directives.get("max-age") or 0))
        age = float(int(header_value(headers, "age") or 0))
    except ValueError:
        return True, 0.0
    return True, max(0.0, min(max_age, _MAX_CACHE_SECONDS) - max(age, 0.0))
