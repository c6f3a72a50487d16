"""Upstream fixtures for the gateway tests: a real OpenID provider and a real resource API.

* ``oidc_factory.start(redirect_uris, access_token_ttl=60, *, resource=None,
  api_scopes="api:read api:write", client_id=None, client_secret=None,
  rotate_refresh_tokens=False) -> OIDCProvider`` starts the packaged provider
  (athkit/demo/upstream/provider.js, node oidc-provider); several may run at once; all are
  stopped at teardown.
* ``resource_api_factory.start(issuer, resource) -> BackgroundServer`` serves
  :mod:`athkit.demo.mail_api` on the host:port of ``resource`` (so pass
  ``provider.resource``); all are stopped at teardown.
* ``complete_upstream_login(http, url, username="alice", approve=True)`` (from
  athkit.demo.browser) drives the provider's login + consent pages with plain HTTP.

The provider's node modules are installed on first use (``npm ci`` into the user cache, see
:mod:`athkit.demo.upstream`; ``python -m athkit.demo.upstream --install`` does it ahead).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from athkit.demo.browser import complete_upstream_login
from athkit.demo.mail_api import create_resource_api
from athkit.demo.upstream import (
    OIDCProvider,
    ProviderSetupError,
    ensure_installed,
    find_node,
    start_oidc_provider,
)
from athkit.web.serving import BackgroundServer
from tests.conftest import PG_ADMIN_DSN

__all__ = ["OIDCProvider", "complete_upstream_login"]


class OIDCFactory:
    """Starts upstream OpenID providers; ``close()`` stops every one it started."""

    def __init__(self) -> None:
        self.started: list[OIDCProvider] = []

    def start(
        self, redirect_uris: list[str], access_token_ttl: int = 60, **options: Any
    ) -> OIDCProvider:
        try:
            provider = start_oidc_provider(redirect_uris, access_token_ttl, **options)
        except ProviderSetupError as exc:
            pytest.fail(str(exc), pytrace=False)
        self.started.append(provider)
        return provider

    def close(self) -> None:
        errors: list[BaseException] = []
        while self.started:
            try:
                self.started.pop().stop()
            except BaseException as exc:  # keep stopping the others
                errors.append(exc)
        if errors:
            raise errors[0]


class ResourceAPIFactory:
    """Starts resource APIs trusting one issuer; ``close()`` stops every one it started."""

    def __init__(self) -> None:
        self.started: list[BackgroundServer] = []

    def start(self, issuer: str, resource: str) -> BackgroundServer:
        parts = urlsplit(resource)
        server = BackgroundServer(
            create_resource_api(issuer, resource),
            host=parts.hostname or "127.0.0.1",
            port=parts.port,
        )
        self.started.append(server)
        server.start()
        return server

    def close(self) -> None:
        while self.started:
            self.started.pop().stop()


@pytest.fixture(scope="session")
def _node_setup() -> str:
    try:
        node = find_node()
        ensure_installed()
        return node
    except ProviderSetupError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def oidc_factory(_node_setup: str) -> Iterator[OIDCFactory]:
    factory = OIDCFactory()
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def resource_api_factory() -> Iterator[ResourceAPIFactory]:
    factory = ResourceAPIFactory()
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """A database of this test's own (provider versions must not leak into other gateways)."""
    name = f"athkit_ops_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
