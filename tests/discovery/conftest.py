"""Real servers on 127.0.0.1 for discovery tests.

* ``shop``: the real ATH Shop (service-side discovery), one per module.
* ``catalog``: a small FastAPI gateway-catalog app serving ``/.well-known/ath.json``.
* ``registry``: a stand-in for the registry search API (``GET /api/search``), answering the
  ``{"providers": [...], "intent", "count"}`` shape with a naive keyword score.
* ``srv``: a scripted server: each test adds routes (status, body, headers, ETag, delay, slow
  drip, redirects) under its own path prefix and reads back the requests it received.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from athkit.web.serving import BackgroundServer
from tests.conftest import Shop, start_shop

# -- documents ------------------------------------------------------------------------------


def service_doc(base: str, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ath_version": "0.1",
        "app_id": "com.example.mail",
        "name": "Example Mail",
        "auth": {
            "type": "oauth2",
            "authorization_endpoint": f"{base}/ath/authorize",
            "token_endpoint": f"{base}/ath/token",
            "registration_endpoint": f"{base}/ath/agents/register",
            "scopes_supported": ["mail:read", "mail:send"],
            "agent_attestation_required": True,
        },
        "api_base": f"{base}/api",
    }
    doc.update(overrides)
    return doc


def gateway_doc(base: str, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ath_version": "0.1",
        "gateway_id": "gw-test",
        "agent_registration_endpoint": f"{base}/ath/agents/register",
        "supported_providers": [
            {
                "provider_id": "github",
                "display_name": "GitHub",
                "categories": ["developer"],
                "available_scopes": ["repo:read", "issues:write"],
                "auth_mode": "OAUTH2",
                "agent_approval_required": True,
            },
            {
                "provider_id": "calendar",
                "display_name": "Calendar",
                "available_scopes": ["events:read"],
                "auth_mode": "OAUTH2",
                "agent_approval_required": False,
            },
        ],
    }
    doc.update(overrides)
    return doc


# -- ATH Shop -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """One real ATH Shop per module (overrides the per-test one: discovery only reads it)."""
    s = start_shop(tmp_path_factory.mktemp("discovery-shop"))
    try:
        yield s
    finally:
        s.server.stop()


# -- gateway catalog ------------------------------------------------------------------------


@dataclass
class Catalog:
    url: str
    server: BackgroundServer
    hits: int = 0


def create_catalog_app(state: dict[str, Any]) -> FastAPI:
    app = FastAPI()

    @app.get("/.well-known/ath.json")
    async def ath_json(request: Request) -> Response:
        state["hits"] += 1
        return JSONResponse(state["doc"], headers={"Cache-Control": "public, max-age=300"})

    return app


@pytest.fixture(scope="module")
def catalog() -> Iterator[Catalog]:
    state: dict[str, Any] = {"hits": 0}
    server = BackgroundServer(create_catalog_app(state)).start()
    state["doc"] = gateway_doc(server.url)
    try:
        yield Catalog(server.url, server)
    finally:
        server.stop()


# -- registry stand-in ----------------------------------------------------------------------


@dataclass
class Registry:
    url: str
    listings: list[dict[str, Any]]
    queries: list[dict[str, str]]


def create_registry_app(listings: list[dict[str, Any]], queries: list[dict[str, str]]) -> FastAPI:
    app = FastAPI()

    @app.get("/api/search")
    async def search(intent: str, limit: int = 10) -> dict[str, Any]:
        queries.append({"intent": intent, "limit": str(limit)})
        words = set(re.findall(r"[a-z]+", intent.lower()))
        hits = []
        for listing in listings:
            text = " ".join(
                [listing["name"], listing["description"], *listing.get("categories", [])]
            ).lower()
            found = words & set(re.findall(r"[a-z]+", text))
            if found:
                hits.append({**listing, "score": round(len(found) / len(words), 3)})
        hits.sort(key=lambda h: -h["score"])
        return {"providers": hits[:limit], "intent": intent, "count": len(hits[:limit])}

    return app


@pytest.fixture(scope="module")
def registry(shop: Shop, catalog: Catalog) -> Iterator[Registry]:
    listings = [
        {
            "name": "ATH Shop",
            "description": "Shoes, sneakers and athletic footwear; buy online",
            "url": shop.url,
            "issuer": shop.url,
            "scopes": ["products:read", "orders:write"],
            "categories": ["shopping"],
            "protocol": "ath",
            "verified": True,
        },
        {
            "name": "Dev Gateway",
            "description": "Code hosting and calendar through one gateway",
            "url": catalog.url,
            "scopes": [],
            "categories": ["developer"],
            "protocol": "ath",
            "verified": False,
        },
        {
            "name": "Shady Shoes",
            "description": "Cheap shoes",
            "url": "http://10.0.0.1",
            "categories": ["shopping"],
            "protocol": "ath",
            "verified": True,
        },
        {
            "name": "bank",
            "description": "Banking services: accounts, transfers and payments",
            "issuer": "https://auth.bank.example",
            "protocol": "agent-auth",
            "verified": True,
        },
    ]
    queries: list[dict[str, str]] = []
    server = BackgroundServer(create_registry_app(listings, queries)).start()
    try:
        yield Registry(server.url, listings, queries)
    finally:
        server.stop()


# -- the scripted server --------------------------------------------------------------------


@dataclass
class Route:
    status: int = 200
    body: Any = b""  # bytes as is; anything else is sent as JSON
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    delay: float = 0.0
    drip: tuple[int, float] | None = None  # (chunks, seconds between them)
    chunked: bool = False


@dataclass
class Script:
    routes: dict[str, Route] = field(default_factory=dict)
    hits: list[tuple[str, dict[str, str]]] = field(default_factory=list)


def create_script_app(script: Script) -> FastAPI:
    app = FastAPI()

    @app.get("/{path:path}")
    async def any_path(path: str, request: Request) -> Response:
        p = "/" + path
        script.hits.append((p, dict(request.headers)))
        route = script.routes.get(p)
        if route is None:
            return Response(status_code=404)
        if route.delay:
            await asyncio.sleep(route.delay)
        headers = dict(route.headers)
        if route.etag:
            headers["ETag"] = route.etag
            if request.headers.get("if-none-match") == route.etag:
                return Response(status_code=304, headers=headers)
        body = route.body if isinstance(route.body, bytes) else json.dumps(route.body).encode()
        if route.drip is not None:
            chunks, interval = route.drip

            async def drip() -> AsyncIterator[bytes]:
                for _ in range(chunks):
                    yield b" "
                    await asyncio.sleep(interval)
                yield body

            return StreamingResponse(drip(), route.status, headers, "application/json")
        if route.chunked:

            async def once() -> AsyncIterator[bytes]:
                yield body

            return StreamingResponse(once(), route.status, headers, "application/json")
        return Response(body, route.status, headers, "application/json")

    return app


@pytest.fixture(scope="session")
def script_server() -> Iterator[tuple[BackgroundServer, Script]]:
    script = Script()
    server = BackgroundServer(create_script_app(script), timeout_graceful_shutdown=1).start()
    try:
        yield server, script
    finally:
        server.stop()


_prefixes = itertools.count(1)


@dataclass
class Srv:
    """This test's corner of the scripted server: routes live under ``/t{n}``."""

    url: str  # server origin + prefix: the "base URL" of this test's service
    origin: str
    prefix: str
    script: Script

    def add(self, path: str, **route: Any) -> str:
        self.script.routes[self.prefix + path] = Route(**route)
        return self.url + path

    def hits(self, path: str = "") -> list[dict[str, str]]:
        return [h for p, h in self.script.hits if p.startswith(self.prefix + path)]

    def service(self, **overrides: Any) -> str:
        """Publish a service document at ``{url}/.well-known/ath-app.json``; returns ``url``."""
        route = {k: overrides.pop(k) for k in list(overrides) if k in Route.__dataclass_fields__}
        self.add("/.well-known/ath-app.json", body=service_doc(self.url, **overrides), **route)
        return self.url


@pytest.fixture
def srv(script_server: tuple[BackgroundServer, Script]) -> Srv:
    server, script = script_server
    prefix = f"/t{next(_prefixes)}"
    return Srv(server.url + prefix, server.url, prefix, script)


@pytest.fixture
def manual_file(tmp_path: Path) -> Path:
    path = tmp_path / "mail.json"
    path.write_text(
        json.dumps(
            {
                "provider": "mail",
                "api_base": "https://mail.example/api",
                "oauth": {
                    "authorization_url": "https://mail.example/ath/authorize",
                    "token_url": "https://mail.example/ath/token",
                },
            }
        )
    )
    return path
