"""Channels that carry :class:`~athkit.store.revocation.Revocation` values between nodes.

Each channel runs one daemon thread that listens and reports three things to its owner (the
token cache): ``up()`` once it is listening (only then may the cache answer), ``down()`` the
moment it stops listening (the cache drops everything and answers nothing), and each
``revoked(revocation)`` that arrives. It retries with a short backoff and reports ``up()``
again once it listens again.

* :class:`RedisChannel`: Redis pub/sub (``{prefix}revocations``), for nodes that share Redis;
  the listener pings every second and treats a missing answer as a lost channel.
* :class:`PostgresChannel`: ``LISTEN``/``NOTIFY`` where Redis is absent; the NOTIFY is sent in
  the revoking transaction itself, so it goes out exactly when the revocation commits.
* :class:`SQLiteChannel`: one machine; polls ``PRAGMA data_version`` (which changes whenever
  another connection, e.g. an ``athkit`` command, commits to the file) and drops the whole
  cache on any change.
* :class:`LocalChannel`: a single process with a private in-memory database: always up.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from athkit.store.revocation import Revocation

log = logging.getLogger("athkit.revocation")

PG_CHANNEL = "athkit_revocations"


@dataclass(frozen=True)
class Listener:
    up: Callable[[], None]
    down: Callable[[], None]
    revoked: Callable[[Revocation], None]


class RevocationChannel(Protocol):
    def start(self, listener: Listener) -> None: ...
    def stage(self, session: Session, revocation: Revocation) -> None: ...
    def publish(self, revocation: Revocation) -> None: ...
    def close(self) -> None: ...


class LocalChannel:
    """No other node can revoke: the cache is trusted from the start."""

    def start(self, listener: Listener) -> None:
        listener.up()

    def stage(self, session: Session, revocation: Revocation) -> None:
        return None

    def publish(self, revocation: Revocation) -> None:
        return None

    def close(self) -> None:
        return None


class _Thread(ABC):
    """A daemon listener thread with a stop flag and backoff between attempts."""

    name = "athkit-revocations"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listener: Listener | None = None

    def start(self, listener: Listener) -> None:
        self.listener = listener
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self.listener is not None
        delay = 0.05
        while not self._stop.is_set():
            try:
                self.listen(self.listener)
                delay = 0.05
            except Exception as exc:  # any failure: the channel is lost until it listens again
                log.warning("revocation channel lost (%s); token cache off", type(exc).__name__)
            self.listener.down()
            self._stop.wait(delay)
            delay = min(delay * 2, 1.0)

    @abstractmethod
    def listen(self, listener: Listener) -> None:
        """Deliver revocations to ``listener`` until the channel fails or stops (one attempt)."""

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class RedisChannel(_Thread):
    name = "athkit-revocations-redis"

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__()
        import redis

        self.channel = f"{prefix}revocations"
        kwargs: dict[str, Any] = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}
        self._pub = redis.Redis.from_url(url, **kwargs)
        self._sub = redis.Redis.from_url(url, **kwargs, socket_keepalive=True)

    def listen(self, listener: Listener) -> None:
        pubsub = self._sub.pubsub()  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(self.channel)
            last_pong = time.monotonic()
            last_ping = last_pong
            while not self.stopping:
                msg = pubsub.get_message(timeout=0.25)
                now = time.monotonic()
                if msg is not None:
                    kind = msg.get("type")
                    if kind == "subscribe":
                        listener.up()
                    elif kind == "message":
                        listener.revoked(Revocation.from_json(msg["data"]))
                    elif kind == "pong":
                        last_pong = now
                if now - last_ping >= 1.0:
                    pubsub.ping()
                    last_ping = now
                if now - last_pong > 3.0:
                    raise TimeoutError("no answer to ping on the revocation channel")
        finally:
            pubsub.close()

    def stage(self, session: Session, revocation: Revocation) -> None:
        return None

    def publish(self, revocation: Revocation) -> None:
        """Tell the other nodes; retried, and logged loudly if Redis cannot be reached."""
        payload = revocation.to_json()
        for attempt in range(3):
            try:
                self._pub.publish(self.channel, payload)
                return
            except Exception as exc:
                if attempt == 2:
                    log.error(
                        "revocation could not be broadcast (%s): other nodes drop cached "
                        "tokens only when their channel or max_age does",
                        type(exc).__name__,
                    )
                time.sleep(0.05 * (attempt + 1))

    def close(self) -> None:
        super().close()
        self._pub.close()
        self._sub.close()


class PostgresChannel(_Thread):
    name = "athkit-revocations-pg"

    def __init__(self, sqlalchemy_url: str) -> None:
        super().__init__()
        url = make_url(sqlalchemy_url).set(drivername="postgresql")
        self.conninfo = url.render_as_string(hide_password=False)

    def listen(self, listener: Listener) -> None:
        import psycopg

        with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"LISTEN {PG_CHANNEL}")
            listener.up()
            while not self.stopping:
                for note in conn.notifies(timeout=0.5):
                    listener.revoked(Revocation.from_json(note.payload))
                conn.execute("SELECT 1")  # a dead connection raises here

    def stage(self, session: Session, revocation: Revocation) -> None:
        session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": PG_CHANNEL, "payload": revocation.to_json()},
        )

    def publish(self, revocation: Revocation) -> None:
        return None


class SQLiteChannel(_Thread):
    name = "athkit-revocations-sqlite"

    def __init__(self, path: str, interval: float = 0.05) -> None:
        super().__init__()
        self.path = path
        self.interval = interval

    def listen(self, listener: Listener) -> None:
        conn = sqlite3.connect(self.path, timeout=5, check_same_thread=False)
        try:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            listener.up()
            while not self._stop.wait(self.interval):
                now = conn.execute("PRAGMA data_version").fetchone()[0]
                if now != version:
                    version = now
                    listener.revoked(Revocation())
        finally:
            conn.close()

    def stage(self, session: Session, revocation: Revocation) -> None:
        return None

    def publish(self, revocation: Revocation) -> None:
        return None


def channel_for(database_url: str, redis_url: str | None, redis_prefix: str) -> RevocationChannel:
    """Redis when configured, else PostgreSQL NOTIFY, else the SQLite file, else local."""
    if redis_url:
        return RedisChannel(redis_url, redis_prefix)
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return PostgresChannel(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return SQLiteChannel(url.database)
    return LocalChannel()
