"""A client-side bound on every PostgreSQL connection lent out of the pool.

``statement_timeout`` is enforced by the server, so it cannot help when the server (or the
network to it) stops answering: the client then waits on its socket forever. The watchdog
notes when each statement starts (and each checkout's ping) and, once one has run longer than
its limit, shuts the connection's socket down. The blocked call then fails at once as a lost
connection (503 ``SERVICE_UNAVAILABLE`` through :mod:`athkit.store.errors`) and the pool
discards it. Long work of many statements (migrations) is fine: each statement is bounded.

Each checkout also replaces SQLAlchemy's ``pool_pre_ping``: one ``SELECT 1`` under the same
watch, so a dead pooled connection is swapped for a fresh one instead of failing a request.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError

_KEY = "athkit_watch"


def _socket_fd(dbapi_conn: Any) -> int | None:
    pgconn = getattr(dbapi_conn, "pgconn", None)  # psycopg 3
    if pgconn is not None:
        return int(pgconn.socket)
    fileno = getattr(dbapi_conn, "fileno", None)  # psycopg2
    return int(fileno()) if callable(fileno) else None


def _cut(dbapi_conn: Any) -> None:
    """Shut the connection's socket down under whoever is blocked reading it."""
    with contextlib.suppress(Exception):
        fd = _socket_fd(dbapi_conn)
        if fd is not None and fd >= 0:
            sock = socket.socket(fileno=os.dup(fd))
            try:
                sock.shutdown(socket.SHUT_RDWR)
            finally:
                sock.close()


class ConnectionWatchdog:
    """One daemon thread watching the checkout deadlines of one engine's connections."""

    def __init__(self, limit: float, tick: float = 0.1) -> None:
        self.limit = limit
        self.tick = tick
        self._out: dict[int, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.fired = 0

    def watch(self, dbapi_conn: Any) -> None:
        with self._lock:
            self._out[id(dbapi_conn)] = (time.monotonic() + self.limit, dbapi_conn)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="athkit-db-watchdog", daemon=True
                )
                self._thread.start()

    def release(self, dbapi_conn: Any) -> None:
        with self._lock:
            self._out.pop(id(dbapi_conn), None)

    def _run(self) -> None:
        while True:
            time.sleep(self.tick)
            now = time.monotonic()
            with self._lock:
                late = [c for key, (deadline, c) in self._out.items() if deadline < now]
                for c in late:
                    self._out.pop(id(c), None)
            for c in late:
                self.fired += 1
                _cut(c)

    def install(self, engine: Engine) -> None:
        """Watch ``engine``'s statements and the ping of each checkout."""

        @event.listens_for(engine, "checkout")
        def _checkout(dbapi_conn: Any, record: Any, proxy: Any) -> None:
            self.watch(dbapi_conn)
            try:
                cursor = dbapi_conn.cursor()
                try:
                    cursor.execute("SELECT 1")
                finally:
                    cursor.close()
            except Exception as exc:
                raise DisconnectionError("pooled connection is dead") from exc
            finally:
                self.release(dbapi_conn)

        @event.listens_for(engine, "before_cursor_execute")
        def _before(conn: Any, cursor: Any, *args: Any) -> None:
            self.watch(conn.connection.dbapi_connection)

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn: Any, cursor: Any, *args: Any) -> None:
            self.release(conn.connection.dbapi_connection)

        @event.listens_for(engine, "handle_error")
        def _error(context: Any) -> None:
            dbapi_conn = getattr(context.connection, "connection", None)
            if dbapi_conn is not None:
                self.release(getattr(dbapi_conn, "dbapi_connection", None))

        @event.listens_for(engine, "checkin")
        def _checkin(dbapi_conn: Any, record: Any) -> None:
            if dbapi_conn is not None:
                self.release(dbapi_conn)

        @event.listens_for(engine, "close")
        def _close(dbapi_conn: Any, record: Any) -> None:
            self.release(dbapi_conn)
