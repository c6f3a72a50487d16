"""The validated-token cache: it must never answer with a token that was revoked."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from athkit.core.token_cache import TokenCache
from athkit.core.tokens import TokenInfo
from athkit.store.revocation import Revocation
from athkit.store.revocation_channels import (
    Listener,
    LocalChannel,
    PostgresChannel,
    RedisChannel,
    SQLiteChannel,
    channel_for,
)

NOW = 1_800_000_000.0


def info(client: str = "c1", user: str = "u1", provider: str = "p1", ttl: float = 3600.0) -> TokenInfo:
    expires = datetime.fromtimestamp(NOW + ttl, UTC)
    return TokenInfo(client, "https://agent/a.json", user, provider, frozenset({"s"}), expires)


def trusted(**kw: object) -> TokenCache:
    cache = TokenCache(**kw)  # type: ignore[arg-type]
    cache.resume()
    return cache


def test_untrusted_until_the_channel_is_up_and_dropped_when_it_goes() -> None:
    cache = TokenCache()
    assert not cache.put("h", info(), NOW, cache.generation)  # subscribe before serving
    cache.resume()
    assert cache.put("h", info(), NOW, cache.generation)
    assert cache.get("h", NOW) is not None
    cache.suspend()
    assert cache.get("h", NOW) is None and len(cache) == 0
    assert not cache.put("h", info(), NOW, cache.generation)


def test_a_row_read_before_a_revocation_is_never_cached_after_it() -> None:
    cache = trusted()
    generation = cache.generation  # a check starts, reads the row (still live) ...
    cache.invalidate(Revocation(token_hashes=("h",)))  # ... the revocation commits meanwhile
    assert not cache.put("h", info(), NOW, generation)  # ... the stale row is refused
    assert cache.get("h", NOW) is None


@pytest.mark.parametrize(
    ("revocation", "gone"),
    [
        (Revocation(token_hashes=("h1",)), {"h1"}),
        (Revocation(client_id="c1"), {"h1", "h2"}),
        (Revocation(client_id="c1", user_id="u2"), {"h2"}),
        (Revocation(client_id="c2", user_id="u1", provider_id="p1"), {"h3"}),
        (Revocation(), {"h1", "h2", "h3"}),
    ],
)
def test_invalidation_by_token_client_user_or_grant(revocation: Revocation, gone: set[str]) -> None:
    cache = trusted()
    for h, i in (("h1", info()), ("h2", info(user="u2")), ("h3", info(client="c2"))):
        assert cache.put(h, i, NOW, cache.generation)
    cache.invalidate(Revocation.from_json(revocation.to_json()))  # as it crosses the wire
    assert {h for h in ("h1", "h2", "h3") if cache.get(h, NOW) is None} == gone


def test_malformed_broadcast_drops_everything() -> None:
    assert Revocation.from_json(b"\xff not json").everything
    assert Revocation.from_json("[1, 2]").everything


def test_entries_expire_with_the_token_and_after_max_age() -> None:
    cache = trusted(max_age=30.0)
    cache.put("short", info(ttl=10), NOW, cache.generation)
    cache.put("long", info(ttl=3600), NOW, cache.generation)
    assert cache.get("short", NOW + 9.9) is not None
    assert cache.get("short", NOW + 10) is None
    assert cache.get("long", NOW + 29.9) is not None
    assert cache.get("long", NOW + 30) is None


def test_bounded() -> None:
    cache = trusted(max_entries=3)
    for i in range(10):
        cache.put(f"h{i}", info(), NOW, cache.generation)
    assert len(cache) == 3
    assert cache.get("h9", NOW) is not None and cache.get("h0", NOW) is None


def test_channel_for_each_deployment(tmp_path: Path) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'a.db'}"
    pg_url = "postgresql+psycopg://u:pw@127.0.0.1:5432/db"
    assert isinstance(channel_for(sqlite_url, None, "p:"), SQLiteChannel)
    assert isinstance(channel_for("sqlite://", None, "p:"), LocalChannel)
    pg = channel_for(pg_url, None, "p:")
    assert isinstance(pg, PostgresChannel) and pg.conninfo.startswith("postgresql://u:pw@")
    assert isinstance(channel_for(pg_url, "redis://127.0.0.1:6379/0", "p:"), RedisChannel)


def test_sqlite_file_written_by_another_connection_drops_the_cache(tmp_path: Path) -> None:
    """One machine, two processes (a server and an `athkit` command) sharing the file."""
    import sqlite3

    path = tmp_path / "athkit.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.commit()
    cache = TokenCache()
    channel = SQLiteChannel(str(path), interval=0.01)
    channel.start(Listener(up=cache.resume, down=cache.suspend, revoked=cache.invalidate))
    try:
        deadline = time.monotonic() + 5
        while not cache.trusted:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert cache.put("h", info(), NOW, cache.generation)
        other = sqlite3.connect(path)
        other.execute("INSERT INTO t VALUES (1)")
        other.commit()
        other.close()
        while cache.get("h", NOW) is not None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        channel.close()


