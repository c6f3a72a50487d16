"""Engine, sessions and schema migrations.

The schema is created or upgraded with Alembic when a :class:`Database` opens (``migrate=True``),
so a service starts on an empty SQLite file or PostgreSQL database with no manual step.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

_MIGRATIONS = str(Path(__file__).parent / "migrations")
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


class Database:
    """One engine plus a session factory; every repository call is one transaction.

    ``MIGRATIONS`` is the Alembic script directory this database is upgraded with (the
    registry, which keeps its own schema, subclasses with its own).
    """

    MIGRATIONS = _MIGRATIONS

    def __init__(self, url: str, *, migrate: bool = True, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if url in ("sqlite://", "sqlite:///:memory:"):
                kwargs["poolclass"] = StaticPool
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if migrate:
            self.upgrade()

    def upgrade(self) -> None:
        """Create or upgrade the schema to the newest migration."""
        with _migrate_lock, self.engine.begin() as conn:
            command.upgrade(alembic_config(conn, self.MIGRATIONS), "head")

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits together or not at all."""
        with self._sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


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
