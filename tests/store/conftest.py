"""A fresh :class:`Database` on SQLite and on PostgreSQL for every store test.

PostgreSQL tests run in a schema of their own inside the session's throwaway database
(``pg_url``), selected with ``search_path``; rows are deleted from the ``ath_*`` tables between
tests and the schema is dropped at the end. Nothing outside that schema is touched.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, inspect, text

from athkit.store.db import Database


@pytest.fixture(scope="session")
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """``pg_url`` with its own schema first on the search_path."""
    schema = f"athkit_store_{secrets.token_hex(4)}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in pg_url else "?"
    try:
        yield f"{pg_url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _clean(db: Database) -> None:
    names = [n for n in inspect(db.engine).get_table_names() if n.startswith("ath_")]
    with db.engine.begin() as conn:
        for name in names:
            conn.execute(text(f'DELETE FROM "{name}"'))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    if database.engine.dialect.name == "postgresql":
        _clean(database)
    try:
        yield database
    finally:
        database.dispose()
