"""Fixtures for the fault tests: PostgreSQL behind a TCP proxy the test can break."""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import PG_ADMIN_DSN
from tests.faults.tcpfault import FaultyTCPProxy


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A throwaway database of this test (plain libpq DSN, no proxy)."""
    name = f"athkit_fault_{secrets.token_hex(6)}"
    for attempt in range(10):  # parallel workers: CREATE DATABASE copies a busy template1
        try:
            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            break
        except psycopg.errors.ObjectInUse:
            if attempt == 9:
                raise
            time.sleep(0.2 + random.random())
    try:
        yield f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_proxy() -> Iterator[FaultyTCPProxy]:
    """A TCP proxy in front of the local PostgreSQL: ``set_mode("refuse" | "hang")``."""
    proxy = FaultyTCPProxy("127.0.0.1", 5432).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def via_proxy(dsn: str, proxy: FaultyTCPProxy) -> str:
    """The SQLAlchemy URL of ``dsn``'s database reached through ``proxy``."""
    name = dsn.rsplit("/", 1)[1]
    return f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/{name}"
