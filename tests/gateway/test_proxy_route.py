"""The proxy's fast path past the router answers failures as the router's layers would."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from starlette.types import Receive, Scope, Send

from athkit.gateway.proxy_route import ProxyFastPath
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.web.errors import install_error_handlers


def app_with(proxy_raises: Exception, *, after_start: bool = False) -> FastAPI:
    async def proxy(scope: Scope, receive: Receive, send: Send) -> None:
        if after_start:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        raise proxy_raises

    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(ProxyFastPath, proxy=proxy)

    @app.get("/other")
    def other() -> dict[str, str]:
        return {"route": "other"}

    return app


def test_ath_errors_and_database_errors_use_the_apps_handlers() -> None:
    with TestClient(app_with(ATHError(ErrorCode.SCOPE_INSUFFICIENT, "no"))) as client:
        resp = client.get("/ath/proxy/mail/v1/me")
        assert resp.status_code == 403 and resp.json()["code"] == "SCOPE_INSUFFICIENT"
        assert resp.headers["cache-control"] == "no-store"
        assert client.get("/other").json() == {"route": "other"}  # other paths: the router
    outage = OperationalError("SELECT 1", {}, Exception("connection refused"))
    with TestClient(app_with(outage)) as client:
        assert client.get("/ath/proxy/mail/v1/me").status_code == 503


def test_other_failures_reach_the_server_error_middleware() -> None:
    with TestClient(app_with(ValueError("bug")), raise_server_exceptions=False) as client:
        resp = client.get("/ath/proxy/mail/v1/me")
        assert resp.status_code == 500 and resp.json()["code"] == "INTERNAL_ERROR"
    late = app_with(ATHError(ErrorCode.UPSTREAM_UNAVAILABLE, "gone"), after_start=True)
    with TestClient(late) as client, pytest.raises(RuntimeError, match="response started"):
        client.get("/ath/proxy/mail/v1/me")


def test_forward_auth_decisions_take_the_fast_path_and_keep_the_apps_handlers() -> None:
    seen: list[str] = []

    async def decider(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["path"])
        if scope["path"].endswith("/down"):
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def proxy(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("not a proxied call")

    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(ProxyFastPath, proxy=proxy, decider=decider)

    @app.get("/ath/forward-authority")
    def lookalike() -> dict[str, str]:
        return {"route": "router"}

    with TestClient(app) as client:
        assert client.get("/ath/forward-auth").status_code == 200
        assert client.get("/ath/forward-auth/mail/v1/me").status_code == 200
        assert client.get("/ath/forward-auth/mail/down").status_code == 503
        assert client.get("/ath/forward-authority").json() == {"route": "router"}
    assert seen == [
        "/ath/forward-auth",
        "/ath/forward-auth/mail/v1/me",
        "/ath/forward-auth/mail/down",
    ]
