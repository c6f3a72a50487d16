"""Helpers shared by the integration tests: a controllable clock, raw ATH calls, full flows.

Everything here talks to real servers over HTTP; nothing replaces any part of athkit.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from athkit.client import ATHClient
from athkit.core.policy import ApprovalPolicy
from athkit.crypto import sign_attestation
from athkit.demo.agent import DEVELOPER
from athkit.demo.browser import HTTPBrowser
from athkit.demo.shop import create_shop_app
from athkit.web.serving import BackgroundServer, free_port
from tests.conftest import SHOP_PASSWORD, AgentIdentity, Shop

PROVIDER = "ath-shop"
#: What the default shop policy approves for an untrusted agent (orders:write is trusted-only).
UNTRUSTED_SCOPES = ["products:read", "cart:read", "cart:write", "orders:read"]


class FakeClock:
    """A settable clock (seconds since the epoch) handed to the shop's ATH service."""

    def __init__(self, start: float | None = None) -> None:
        self._now = float(int(start if start is not None else time.time()))
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    @property
    def now(self) -> int:
        return int(self())


def start_clocked_shop(
    tmp_path: Path, clock: FakeClock, *, policy: ApprovalPolicy | None = None
) -> Shop:
    """ATH Shop (real uvicorn, SQLite) whose ATH service reads time from ``clock``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_shop_app(
        public_url=url,
        data_dir=tmp_path / "clocked-shop",
        policy=policy,
        dev_mode=True,
        password=SHOP_PASSWORD,
        clock=clock,
    )
    server = BackgroundServer(app, port=port).start()
    return Shop(url, app, server)


def error_of(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert an ATH error response (§9): status, JSON ``{code, message, details?}``."""
    assert "Traceback" not in resp.text
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert isinstance(body, dict)
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    assert set(body) <= {"code", "message", "details"}
    if "details" in body:
        assert isinstance(body["details"], dict)
    return body


def attest(agent: AgentIdentity, audience: str, **kwargs: Any) -> str:
    return sign_attestation(agent.key, agent.agent_id, audience, **kwargs)


def register_body(
    agent: AgentIdentity,
    audience: str,
    scopes: list[str] | None = None,
    *,
    attestation: str | None = None,
    redirect_uris: list[str] | None = None,
    provider_id: str = PROVIDER,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "agent_id": agent.agent_id,
        "agent_attestation": attestation or attest(agent, audience),
        "developer": dict(DEVELOPER),
        "requested_providers": [
            {"provider_id": provider_id, "scopes": scopes or ["products:read"]}
        ],
        "purpose": "integration test",
    }
    if redirect_uris is not None:
        body["redirect_uris"] = redirect_uris
    return body


def authorize_body(
    agent: AgentIdentity,
    shop_url: str,
    client_id: str,
    scopes: list[str] | None = None,
    *,
    attestation: str | None = None,
    provider_id: str = PROVIDER,
    state: str = "s" * 43,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_id": client_id,
        "agent_attestation": attestation or attest(agent, shop_url),
        "provider_id": provider_id,
        "scopes": scopes or ["products:read"],
        "state": state,
    }
    body.update(extra)
    return body


def token_body(
    agent: AgentIdentity,
    shop_url: str,
    client_id: str,
    client_secret: str,
    session_id: str,
    *,
    code: str = "ath_callback",
    attestation: str | None = None,
) -> dict[str, Any]:
    return {
        "grant_type": "authorization_code",
        "client_id": client_id,
        "client_secret": client_secret,
        "agent_attestation": attestation or attest(agent, f"{shop_url}/ath/token"),
        "code": code,
        "ath_session_id": session_id,
    }


def registered_client(
    shop: Shop,
    agent: AgentIdentity,
    scopes: list[str] | None = None,
    *,
    redirect_uris: list[str] | None = None,
) -> ATHClient:
    """Our sync client, discovered and registered (default: every untrusted-approvable scope)."""
    client = ATHClient(shop.url, agent.agent_id, agent.key)
    client.discover()
    reg = client.register(
        developer=DEVELOPER,
        providers=[{"provider_id": PROVIDER, "scopes": scopes or UNTRUSTED_SCOPES}],
        purpose="integration test",
        redirect_uris=redirect_uris,
    )
    assert reg.agent_status.value == "approved"
    return client


def consent(
    shop: Shop, authorization_url: str, *, approve: bool = True, scopes: list[str] | None = None
) -> httpx.Response:
    """The user signs in and answers the consent page in a real (HTTP) browser."""
    browser = HTTPBrowser("alice", shop.password)
    try:
        browser.open_consent(authorization_url)
        return browser.decide(approve=approve, scopes=scopes)
    finally:
        browser.close()


@dataclass
class Grant:
    client: ATHClient
    session_id: str
    state: str


def consented_session(
    shop: Shop,
    agent: AgentIdentity,
    scopes: list[str] | None = None,
    *,
    client: ATHClient | None = None,
    approve: bool = True,
) -> Grant:
    """Register (unless ``client`` is given), authorize and let the user decide."""
    client = client or registered_client(shop, agent)
    auth = client.authorize(PROVIDER, scopes or ["products:read"])
    done = consent(shop, auth.authorization_url, approve=approve)
    assert done.status_code == 200, done.text
    return Grant(client, auth.ath_session_id, auth.state)


def api_get(shop: Shop, path: str, token: str | None, agent_id: str | None) -> httpx.Response:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if agent_id is not None:
        headers["X-ATH-Agent-ID"] = agent_id
    return httpx.get(f"{shop.url}{path}", headers=headers)
