"""Engine, sessions and schema migrations.

The schema is created or upgraded with Alembic when a :class:`Database` opens (``migrate=True``),
so a service starts on an empty SQLite file or PostgreSQL database with no manual step.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from athkit.store import on_loop
from athkit.store.errors import DatabaseUnreachableError, StoreUnavailableError, as_unavailable
from athkit.store.revocation import Revocation, RevocationSink
from athkit.store.watchdog import ConnectionWatchdog

_MIGRATIONS = str(Path(__file__).parent / "migrations")
#: Pooled connections to a SQLite file (as many again may overflow).
SQLITE_POOL = 16
_migrate_lock = threading.Lock()


def default_sqlite_url(data_dir: str | Path, filename: str = "athkit.db") -> str:
    path = Path(data_dir).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path / filename}"


def alembic_config(connection: Any = None, script_location: str = _MIGRATIONS) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", script_location)
    cfg.attributes["connection"] = connection
    return cfg


@dataclass(frozen=True)
class DatabaseTimeouts:
    """Bounds on every database wait, in seconds (a hung database answers 503, never hangs).

    ``connect``: establishing a connection (PostgreSQL ``connect_timeout``). ``statement``: one
    statement, lock waits included (PostgreSQL ``statement_timeout``; SQLite's busy timeout).
    ``pool``: waiting for a free pooled connection.
    """

    connect: float = 5.0
    statement: float = 5.0
    pool: float = 5.0


class Database:
    """One engine plus a session factory; every repository call is one transaction.

    ``MIGRATIONS`` is the Alembic script directory this database is upgraded with (the
    registry, which keeps its own schema, subclasses with its own).
    """

    MIGRATIONS = _MIGRATIONS

    def __init__(
        self,
        url: str,
        *,
        migrate: bool = True,
        echo: bool = False,
        timeouts: DatabaseTimeouts | None = None,
    ) -> None:
        self.url = url
        self.timeouts = t = timeouts or DatabaseTimeouts()
        # hide_parameters: bound values (codes, verifiers, states) never reach logs or errors.
        kwargs: dict[str, Any] = {"echo": echo, "future": True, "hide_parameters": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": t.statement}
            if url in ("sqlite://", "sqlite:///:memory:"):
                kwargs["poolclass"] = StaticPool
            else:
                # A file's connections are cheap to keep and dear to churn (each new one runs
                # the pragmas below): room for every worker thread, waits bounded like others.
                kwargs.update(pool_size=SQLITE_POOL, max_overflow=SQLITE_POOL, pool_timeout=t.pool)
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_timeout=t.pool)
            if url.startswith("postgresql"):
                # connect_args win over the URL's query: keep the URL's own libpq ``options``
                # (e.g. ``-csearch_path=...``) and add the statement timeout to them.
                given = make_url(url).query.get("options")
                own = " ".join(given) if isinstance(given, tuple) else (given or "")
                timeout = f"-c statement_timeout={int(t.statement * 1000)}"
                kwargs["connect_args"] = {
                    "connect_timeout": max(1, round(t.connect)),
                    "options": f"{own} {timeout}".strip(),
                }
        _hide_rows()
        self.engine: Engine = create_engine(url, **kwargs)
        #: A SQLite file: protocol steps may run on the event loop (store/on_loop.py).
        self.steps_on_loop = url.startswith("sqlite") and "poolclass" not in kwargs
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:  # a server that stops answering: bound the client's wait too (and pre-ping)
            ConnectionWatchdog(t.statement * 2 + t.connect).install(self.engine)
        if self.steps_on_loop:
            usual_ms = int(t.statement * 1000)
            event.listen(
                self.engine,
                "checkout",
                lambda dbapi, record, _proxy: on_loop.busy_timeout_ms(dbapi, record, usual_ms),
            )
            event.listen(self.engine, "commit", lambda _conn: on_loop.committed())
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if migrate:
            try:
                self.upgrade()
            except StoreUnavailableError as exc:
                self.engine.dispose()
                raise DatabaseUnreachableError(url, str(exc.details.get("reason"))) from None

    def upgrade(self) -> None:
        """Create or upgrade the schema to the newest migration."""
        with _migrate_lock, outages_as_unavailable(), self.engine.begin() as conn:
            command.upgrade(alembic_config(conn, self.MIGRATIONS), "head")

    def ping(self) -> None:
        """One round trip (``SELECT 1``); raises :class:`StoreUnavailableError` on an outage."""
        with outages_as_unavailable(), self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads only: never commits (its transaction is rolled back at the end),
        so a protocol step's lookups cost no commit; the step's one write is its transaction."""
        refuse_pool_wait(self.engine)
        with outages_as_unavailable(), self._sessions() as session:
            yield session

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A Core connection whose statements commit together or not at all: for writes that
        need no ORM session (the protocol steps' inserts and compare-and-set updates, which
        announce no revocation; those use :meth:`transaction`)."""
        if on_loop.never_wait():  # an inline step: its thread's own writer, no pool round
            with outages_as_unavailable():
                conn = on_loop.writer(self.engine)
                with conn.begin():
                    yield conn
            return
        with outages_as_unavailable(), self.engine.begin() as conn:
            yield conn

    #: Told about every revocation announced in a transaction (the node's token cache and
    #: its broadcast channel; see :func:`announce_revocation`).
    revocations: RevocationSink | None = None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits together or not at all.

        Revocations announced in it reach :attr:`revocations` inside the transaction (a
        PostgreSQL NOTIFY commits with it) and again once it has committed."""
        refuse_pool_wait(self.engine)
        with outages_as_unavailable(), self._sessions.begin() as session:
            yield session
            pending: list[Revocation] = session.info.get(_REVOCATIONS, [])
            sink = self.revocations
            if pending and sink is not None:
                for revocation in pending:
                    sink.stage(session, revocation)
        if pending and sink is not None:
            for revocation in pending:
                sink.committed(revocation)

    def dispose(self) -> None:
        on_loop.close_kept(self.engine)
        self.engine.dispose()


def refuse_pool_wait(engine: Engine) -> None:
    """An inline step (store/on_loop.py) never waits for a pooled connection: when none is
    idle it runs in a worker instead."""
    if on_loop.never_wait():
        on_loop.refuse_full_pool(engine)


@contextmanager
def outages_as_unavailable() -> Iterator[None]:
    """Re-raise a database outage as :class:`StoreUnavailableError` (503); others pass.
    An inline step that met a lock (store/on_loop.py) gets :class:`~on_loop.WouldBlock`."""
    try:
        yield
    except Exception as exc:
        if on_loop.never_wait() and on_loop.is_lock_wait(exc):
            raise on_loop.WouldBlock from exc
        mapped = as_unavailable(exc)
        if mapped is None or mapped is exc:
            raise
        raise mapped from exc


class _NoRowLogs(logging.Filter):
    """SQLAlchemy logs every result row at DEBUG; rows hold states, verifiers and sealed
    tokens, so they never reach a log (statements do, without their parameters)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(("Row ", "Col ")))


def _hide_rows() -> None:
    logger = logging.getLogger("sqlalchemy.engine.Engine")
    if not any(isinstance(f, _NoRowLogs) for f in logger.filters):
        logger.addFilter(_NoRowLogs())


_REVOCATIONS = "athkit_revocations"


def announce_revocation(session: Session, revocation: Revocation) -> None:
    """Inside a transaction that makes tokens invalid: say which (token hashes, or a client,
    user, grant); the database's sink hears it when the transaction commits."""
    session.info.setdefault(_REVOCATIONS, []).append(revocation)


def update_one(session: Session, statement: Any) -> bool:
    """Run an UPDATE and say whether it changed exactly one row: the compare-and-set step of
    every state transition (the row matched its expected state, so this call won)."""
    result = session.execute(statement)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
