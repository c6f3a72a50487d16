"""Shared fixtures: a throwaway PostgreSQL database, the agent identity server, ATH Shop.

Every server is a real uvicorn on 127.0.0.1 with a free port; every fixture stops what it starts.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from athkit.core.policy import ApprovalPolicy
from athkit.crypto.keys import AgentKey
from athkit.demo.agent import create_agent_identity_app, publish
from athkit.demo.shop import create_shop_app
from athkit.web.serving import BackgroundServer, free_port

# The CLI's Rich consoles are created at import and read COLUMNS then: without a width, output
# captured under pytest-xdist wraps at 80 columns and tables truncate the values tests look for.
os.environ.setdefault("COLUMNS", "200")

PG_ADMIN_DSN = os.environ.get("ATHKIT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SHOP_PASSWORD = "wonderland-test"
#: For a shop shared by a whole module whose tests register dozens of agents within a minute
#: from one address (the default per-IP limits are for real clients, not test suites).
MANY_AGENTS: dict[str, Any] = {
    "rate_limits": {"register": "600/minute", "authorize": "600/minute", "token": "600/minute"}
}


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL database created for this test run and dropped after it."""
    import psycopg

    name = f"athkit_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class AgentIdentity:
    """A published agent: its key and agent_id URL on the shared identity host."""

    key: AgentKey
    agent_id: str
    app: FastAPI
    server: BackgroundServer
    path: str

    def rotate(self, key: AgentKey) -> None:
        """Publish a new key at the same agent_id (the old key no longer verifies)."""
        self.key = key
        publish(self.app, self.server.url, key, path=self.path)


@pytest.fixture(scope="session")
def identity_host() -> Iterator[tuple[FastAPI, BackgroundServer]]:
    """One real identity host for the whole run; each agent gets its own path."""
    app = create_agent_identity_app()
    with BackgroundServer(app) as server:
        yield app, server


@pytest.fixture
def new_agent(identity_host: tuple[FastAPI, BackgroundServer]) -> Callable[..., AgentIdentity]:
    """Factory: ``new_agent("name")`` publishes a fresh agent identity and returns it."""
    app, server = identity_host

    def make(name: str = "agent", kind: str = "P-256") -> AgentIdentity:
        key = AgentKey.generate(kind, kid="default")  # type: ignore[arg-type]
        path = f"/agents/{name}-{secrets.token_hex(6)}/agent.json"
        agent_id = publish(app, server.url, key, path=path)
        return AgentIdentity(key, agent_id, app, server, path)

    return make


@pytest.fixture
def agent(new_agent: Callable[..., AgentIdentity]) -> AgentIdentity:
    return new_agent("shopper")


@dataclass
class Shop:
    url: str
    app: FastAPI
    server: BackgroundServer
    password: str = SHOP_PASSWORD


def start_shop(
    tmp_path: Path,
    *,
    policy: ApprovalPolicy | None = None,
    database_url: str | None = None,
    ath_options: dict[str, Any] | None = None,
) -> Shop:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_shop_app(
        public_url=url,
        data_dir=tmp_path / "shop",
        database_url=database_url,
        policy=policy,
        dev_mode=True,
        password=SHOP_PASSWORD,
        ath_options=ath_options,
    )
    server = BackgroundServer(app, port=port).start()
    return Shop(url, app, server)


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    """ATH Shop on SQLite, default policy (auto-approve; orders:write only for trusted agents)."""
    s = start_shop(tmp_path)
    try:
        yield s
    finally:
        s.server.stop()
