"""The 9-step handshake in gateway mode: the user signs in at the gateway with the provider,
links a key, confirms out of band, and the agent's encrypted calls go through the proxy with the
user's own grant, within the confirmed scopes and the route map."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from athkit.cli.user import answer_confirmation, fetch_server_did, list_confirmations
from athkit.client import ATHClient
from athkit.client.errors import ProviderMismatchError, RouteNotMappedError, ScopeInsufficientError
from athkit.client.handshake import PendingConfirmation
from athkit.crypto.credentials import issue, new_nonce, user_key_link_object
from athkit.crypto.did import did_key_from_jwk
from athkit.crypto.keys import AgentKey
from athkit.crypto.sealing import TokenSealer, new_key_spec
from athkit.crypto.signing import sign_object
from athkit.demo.browser import complete_upstream_login
from athkit.gateway.app import create_gateway_app
from athkit.gateway.config import parse_config
from athkit.gateway.service import GatewayService
from athkit.web.serving import BackgroundServer, free_port
from tests.gateway.test_gateway import SECRET_ENV, gateway_config


@dataclass
class HSGateway:
    url: str
    api: BackgroundServer
    service: GatewayService


@pytest.fixture
def hs_gateway(
    oidc_factory: Any, resource_api_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[HSGateway]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    op = oidc_factory.start([f"{base}/ath/callback", f"{base}/ath/user/callback"])
    monkeypatch.setenv(SECRET_ENV, op.client_secret)
    api = resource_api_factory.start(op.issuer, op.resource)
    cfg = parse_config({**gateway_config(base, op), "handshake": {"rate_limit": "50/second"}})
    cfg.gateway.data_dir = tmp_path / "gw"
    svc = GatewayService(cfg, sealer=TokenSealer.from_spec(new_key_spec("t1")))
    app = create_gateway_app(cfg, service=svc)  # [handshake] in the config enables it
    server = BackgroundServer(app, port=port).start()
    try:
        yield HSGateway(base, api, svc)
    finally:
        server.stop()


def sign_in(gw: HSGateway, http: httpx.Client, next_path: str = "/ath/user/keys") -> httpx.Response:
    """The user signs in at the gateway with Example Mail (alice), like in a browser."""
    start = http.get(f"{gw.url}/ath/user/signin", params={"provider": "mail", "next": next_path})
    assert start.status_code == 303
    back = complete_upstream_login(http, start.headers["location"], "alice")
    return http.get(back.headers["location"])


def link_key(gw: HSGateway, http: httpx.Client, user: AgentKey) -> str:
    server_did = fetch_server_did(http, gw.url)
    user_did = did_key_from_jwk(user.public_jwk())
    nonce, ts = new_nonce(), int(time.time())
    link = user_key_link_object(user_did, "mail:alice", server_did, nonce, ts)
    pub = {k: v for k, v in user.public_jwk().items() if k in ("kty", "crv", "x", "y")}
    resp = http.post(
        f"{gw.url}/ath/user/keys",
        json={
            "user_did": user_did,
            "public_jwk": pub,
            "signature": sign_object(user, link),
            "nonce": nonce,
            "timestamp": ts,
        },
        headers={"Origin": gw.url},
    )
    assert resp.status_code in (200, 201), resp.text
    return server_did


def test_user_pages_ask_for_a_provider_sign_in(hs_gateway: HSGateway) -> None:
    with httpx.Client() as http:
        page = http.get(f"{hs_gateway.url}/ath/user/keys")
        assert page.status_code == 303 and page.headers["location"].startswith("/ath/user/signin")
        done = sign_in(hs_gateway, http)
        assert done.status_code == 303 and done.headers["location"] == "/ath/user/keys"
        assert http.get(f"{hs_gateway.url}/ath/user/keys").status_code == 200


def test_sign_in_callback_from_another_browser_is_refused(hs_gateway: HSGateway) -> None:
    with httpx.Client() as http, httpx.Client() as attacker:
        start = http.get(f"{hs_gateway.url}/ath/user/signin", params={"provider": "mail"})
        back = complete_upstream_login(http, start.headers["location"], "alice")
        stolen = attacker.get(back.headers["location"])
        assert stolen.status_code == 400 and stolen.json()["code"] == "STATE_MISMATCH"


def test_handshake_session_reaches_the_api_through_the_proxy(hs_gateway: HSGateway) -> None:
    user = AgentKey.generate("P-256")
    with httpx.Client() as user_http:
        sign_in(hs_gateway, user_http)
        server_did = link_key(hs_gateway, user_http, user)

        agent = AgentKey.generate("P-256")
        agent_did = did_key_from_jwk(agent.public_jwk())
        credential = issue(user, agent_did, ["mail:read", "mail:send"], 7200)

        def approve(pending: PendingConfirmation) -> None:
            items = [
                i
                for i in list_confirmations(user_http, hs_gateway.url, user, server_did)
                if i["request_id"] == pending.request_id
            ]
            answer_confirmation(user_http, hs_gateway.url, user, items[0], ["mail:read"])

        client = ATHClient(hs_gateway.url, agent_did, agent, api_base=hs_gateway.url)
        session = client.handshake(
            ["mail:read", "mail:send"], credential, on_pending=approve, wait=30
        )
        assert session.scopes_granted == ["mail:read"]

        me = session.get("/ath/proxy/mail/v1/me")  # encrypted both ways
        assert me.status_code == 200 and me.json()["sub"] == "alice"
        seen = session.get("/ath/proxy/mail/v1/headers").json()["headers"]
        assert "x-ath-session" not in seen and "x-ath-agent-id" not in seen
        assert seen["authorization"].count(".") == 2  # the provider's JWT, not the ATH token

        # The user confirmed mail:read only; the route map and the provider are checked too.
        with pytest.raises(ScopeInsufficientError):
            session.post("/ath/proxy/mail/v1/messages", json={"to": "bob"})
        with pytest.raises(RouteNotMappedError):
            session.get("/ath/proxy/mail/v1/admin")
        with pytest.raises(ProviderMismatchError):
            session.get("/ath/proxy/calendar/v1/me")
        client.close()
