"""Protocol steps on the event loop's own thread (SQLite), never waiting on a lock there.

A protocol step on SQLite costs well under a millisecond of database work; handing it to a
worker thread and back costs as much again in thread wake-ups, and the worker threads then
compete with the loop for the interpreter lock and for SQLite's one write lock (whose busy
handler sleeps 1, 2, 5 … ms between tries). So a route may run a step inline, on the loop
(:func:`athkit.core.workers.run_step`), under one rule: **the loop never waits**.

* Every connection used inline has SQLite's busy timeout at 0: a lock held by anyone else
  (another thread's transaction, another process) is :class:`WouldBlock` at once, not a wait.
  So is an exhausted connection pool, and any outbound fetch (an identity document that is not
  cached yet): the step never sleeps on the loop.
* :class:`WouldBlock` may only be raised before the step has committed anything, so the route
  runs the whole step again in a worker thread, from the start, with the usual busy timeout
  (and its usual 503 when the database stays locked). Nothing was written: a write transaction
  that met a lock rolled back, and the step's attestation ``jti`` was not recorded (the worker's
  run checks and records it).
* Once the step has committed (its one write), what is left of it runs with the usual busy
  timeout: it is never run twice. The native steps commit last, so in practice that is nothing
  but the reply.

:class:`WouldBlock` derives from ``BaseException`` so that no ``except Exception`` on the way
(the replay cache's fail-closed handler, the audit writer) can turn it into an error.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Connection, Engine

#: Not on the loop / inline and nothing committed yet (never wait) / inline, committed.
OFF, NOWAIT, COMMITTED = 0, 1, 2
_mode: ContextVar[int] = ContextVar("athkit_store_on_loop", default=OFF)

#: SQLite's primary result codes for "someone else holds the lock".
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


class WouldBlock(BaseException):  # noqa: N818 - control flow, not an error
    """The inline step would wait (a lock, the pool, the network): run it in a worker."""


@contextmanager
def inline() -> Iterator[None]:
    """Run the enclosed step inline: waits become :class:`WouldBlock` until it commits."""
    token = _mode.set(NOWAIT)
    try:
        yield
    finally:
        _mode.reset(token)


def never_wait() -> bool:
    """Inline and nothing committed yet: any wait must be :class:`WouldBlock` instead."""
    return _mode.get() == NOWAIT


def refuse_wait() -> None:
    """Raise :class:`WouldBlock` if the caller is an inline step that has not committed."""
    if _mode.get() == NOWAIT:
        raise WouldBlock


def committed() -> None:
    """The inline step committed: from here on it waits like any other caller."""
    if _mode.get() == NOWAIT:
        _mode.set(COMMITTED)


def is_lock_wait(exc: BaseException) -> bool:
    """A SQLite "database is locked/busy" error (or SQLAlchemy's wrapper of one)."""
    orig: Any = getattr(exc, "orig", exc)
    if not isinstance(orig, sqlite3.OperationalError):
        return False
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    text = str(orig).lower()
    return "locked" in text or "busy" in text


def busy_timeout_ms(dbapi_connection: Any, record: Any, usual_ms: int) -> None:
    """On checkout: busy timeout 0 for an inline step before its commit, else the usual one
    (set only when it changes, so connections used inline stay at 0 between uses)."""
    want = 0 if _mode.get() == NOWAIT else usual_ms
    if record.info.get("athkit_busy_ms") != want:
        dbapi_connection.execute(f"PRAGMA busy_timeout = {int(want)}")
        record.info["athkit_busy_ms"] = want


def refuse_full_pool(engine: Engine) -> None:
    """:class:`WouldBlock` when the engine's pool has no idle connection (a checkout would wait)."""
    pool: Any = engine.pool
    size = getattr(pool, "size", None)
    if callable(size) and pool.checkedout() >= size():
        raise WouldBlock


#: Per engine, per (loop thread, use): the connections inline steps use (kept checked out).
_kept: weakref.WeakKeyDictionary[Engine, dict[tuple[int, str], Connection]] = (
    weakref.WeakKeyDictionary()
)
_kept_lock = threading.Lock()


def _kept_connection(engine: Engine, use: str) -> Connection:
    slot = (threading.get_ident(), use)
    with _kept_lock:
        conns = _kept.setdefault(engine, {})
        conn = conns.get(slot)
    if conn is None or conn.closed or conn.invalidated:
        refuse_full_pool(engine)  # no idle connection to keep: never wait for one
        conn = engine.connect()
        if use == "read":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        with _kept_lock:
            conns[slot] = conn
    return conn


def reader(engine: Engine) -> Connection:
    """The connection an inline step's reads use on this thread: checked out once (busy
    timeout 0, autocommit: every read sees the newest commit and holds no lock afterwards),
    so a read costs no pool check-out and check-in. Only for :func:`never_wait` callers."""
    return _kept_connection(engine, "read")


def writer(engine: Engine) -> Connection:
    """The connection an inline step's write transaction uses on this thread (busy timeout
    0): begun and committed (or rolled back) per step, never returned to the pool between."""
    return _kept_connection(engine, "write")


def close_kept(engine: Engine) -> None:
    """Close the inline connections of ``engine`` (the database is disposed)."""
    with _kept_lock:
        conns = _kept.pop(engine, {})
    for conn in conns.values():
        conn.close()
