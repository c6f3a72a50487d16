"""Gateway mode against a real upstream: oidc-provider (Node) + a JWT-checking resource API.

Every §7 refusal, the OAuth bridge (PKCE, state, browser binding, sealed upstream tokens),
transparent refresh, upstream failures, streaming both ways, and revocation reaching upstream.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from athkit.client import ATHClient
from athkit.core.clock import system_clock
from athkit.crypto.sealing import TokenSealer, new_key_spec
from athkit.demo.browser import HTTPBrowser, complete_upstream_login
from athkit.demo.mail_api import download_bytes
from athkit.demo.upstream import OIDCProvider
from athkit.gateway.app import create_gateway_app
from athkit.gateway.config import ConfigError, parse_config
from athkit.gateway.service import GatewayService
from athkit.web.serving import BackgroundServer, free_port
from tests.conftest import AgentIdentity

SECRET_ENV = "ATHKIT_TEST_MAIL_SECRET"
DEVELOPER = {"name": "athkit demo team", "id": "dev-athkit-demo"}
ALL_SCOPES = ["mail:read", "mail:send"]


def gateway_config(base: str, op: OIDCProvider, **provider: Any) -> dict[str, Any]:
    return {
        "gateway": {"public_url": base, "gateway_id": "test-gw", "dev_mode": True},
        "policy": {"auto_approve": True},
        "providers": [
            {
                "provider_id": "mail",
                "display_name": "Example Mail",
                "categories": ["email"],
                "issuer": op.issuer,
                "client_id": op.client_id,
                "client_secret_env": SECRET_ENV,
                "upstream_scopes": ["openid", "offline_access"],
                "resource": op.resource,
                "api_base": op.resource,
                "scopes": {
                    "mail:read": {"description": "Read your mail", "upstream": ["api:read"]},
                    "mail:send": {"description": "Send mail", "upstream": ["api:write"]},
                },
                "routes": [
                    {"method": "GET", "path": "/v1/me", "scope": "mail:read"},
                    {"method": "GET", "path": "/v1/messages", "scope": "mail:read"},
                    {"method": "GET", "path": "/v1/headers", "scope": "mail:read"},
                    {"method": "GET", "path": "/v1/download", "scope": "mail:read"},
                    {"method": "GET", "path": "/v1/nothing-here", "scope": "mail:read"},
                    {"method": "POST", "path": "/v1/messages", "scope": "mail:send"},
                    {"method": "*", "path": "/v1/messages/{id}", "scope": "mail:send"},
                    {"method": "POST", "path": "/v1/upload", "scope": "mail:send"},
                ],
                **provider,
            }
        ],
    }


@dataclass
class Gateway:
    url: str
    op: OIDCProvider
    api: BackgroundServer
    service: GatewayService
    server: BackgroundServer
    sealer: TokenSealer
    now: list[float] = field(default_factory=lambda: [0.0])

    def client(self, agent: AgentIdentity) -> ATHClient:
        return ATHClient(self.url, agent.agent_id, agent.key)

    def upstream_requests(self) -> list[dict[str, Any]]:
        return list(self.api.server.config.app.state.requests)


@pytest.fixture
def start_gateway(
    oidc_factory: Any, resource_api_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Gateway]]:
    started: list[BackgroundServer] = []

    def start(access_token_ttl: int = 60, offset_clock: bool = False, **provider: Any) -> Gateway:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        op = oidc_factory.start([f"{base}/ath/callback"], access_token_ttl=access_token_ttl)
        monkeypatch.setenv(SECRET_ENV, op.client_secret)
        api = resource_api_factory.start(op.issuer, op.resource)
        cfg = parse_config(gateway_config(base, op, **provider))
        cfg.gateway.data_dir = tmp_path / f"gw-{port}"
        sealer = TokenSealer.from_spec(new_key_spec("t1"))
        now = [0.0]
        clock = (lambda: system_clock() + now[0]) if offset_clock else system_clock
        svc = GatewayService(cfg, sealer=sealer, clock=clock)
        server = BackgroundServer(create_gateway_app(cfg, service=svc), port=port).start()
        started.append(server)
        return Gateway(base, op, api, svc, server, sealer, now)

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def gateway(start_gateway: Callable[..., Gateway]) -> Gateway:
    return start_gateway()


def consent(
    gw: Gateway,
    client: ATHClient,
    scopes: list[str],
    *,
    tick: list[str] | None = None,
    upstream_approve: bool = True,
) -> tuple[str, httpx.Response]:
    """Authorize, tick scopes on the gateway's page, sign in and consent at the provider."""
    auth = client.authorize("mail", scopes)
    browser = HTTPBrowser("alice", "unused")
    page = browser.open_consent(auth.authorization_url)
    assert "Example Mail" in page.text
    to_provider = browser.decide(approve=True, scopes=tick if tick is not None else scopes)
    assert to_provider.is_redirect
    location = to_provider.headers["location"]
    assert location.startswith(gw.op.authorization_endpoint)
    assert "code_challenge_method=S256" in location and "code_challenge=" in location
    back = complete_upstream_login(browser.http, location, "alice", approve=upstream_approve)
    callback = back.headers["location"]
    assert callback.startswith(f"{gw.url}/ath/callback")
    done = browser.http.get(callback, headers={"Accept": "text/html"})
    browser.close()
    return auth.ath_session_id, done


def connect(gw: Gateway, agent: AgentIdentity, scopes: list[str] = ALL_SCOPES, **kw: Any) -> ATHClient:
    client = gw.client(agent)
    client.register(developer=DEVELOPER, providers=[{"provider_id": "mail", "scopes": ALL_SCOPES}])
    session_id, done = consent(gw, client, scopes, **kw)
    assert done.status_code == 200, done.text
    client.exchange_token(session_id)
    return client


def proxy(gw: Gateway, client: ATHClient, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {client.access_token}", "X-ATH-Agent-ID": client.agent_id}
    headers.update(kw.pop("headers", {}))
    return httpx.request(method, f"{gw.url}/ath/proxy/mail{path}", headers=headers, timeout=30, **kw)


def assert_error(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["code"] == code


# -- catalog and configuration ------------------------------------------------------------


def test_catalog_is_generated_from_config(gateway: Gateway) -> None:
    doc = httpx.get(f"{gateway.url}/.well-known/ath.json").json()
    assert doc == {
        "ath_version": "0.1",
        "gateway_id": "test-gw",
        "agent_registration_endpoint": f"{gateway.url}/ath/agents/register",
        "supported_providers": [
            {
                "provider_id": "mail",
                "display_name": "Example Mail",
                "categories": ["email"],
                "available_scopes": ["mail:read", "mail:send"],
                "auth_mode": "OAUTH2",
                "agent_approval_required": True,
            }
        ],
    }


def test_invalid_config_names_the_key(oidc_factory: Any) -> None:
    op = oidc_factory.start(["http://127.0.0.1:1/ath/callback"])
    bad = gateway_config("http://127.0.0.1:1", op)
    bad["providers"][0]["routes"][0]["scope"] = "mail:delete"
    with pytest.raises(ConfigError, match=r"providers\[0\].*routes\[0\].scope"):
        parse_config(bad)
    bad = gateway_config("http://127.0.0.1:1", op)
    del bad["providers"][0]["client_id"]
    with pytest.raises(ConfigError, match=r"providers\[0\]\.client_id"):
        parse_config(bad)


# -- the flow ---------------------------------------------------------------------------------


def test_full_flow_through_the_gateway(gateway: Gateway, agent: AgentIdentity) -> None:
    client = connect(gateway, agent)
    me = proxy(gateway, client, "GET", "/v1/me")
    assert me.status_code == 200
    assert me.json()["sub"] == "alice"
    assert set(me.json()["scope"].split()) == {"api:read", "api:write"}

    listed = proxy(gateway, client, "GET", "/v1/messages", params={"folder": "inbox", "q": "a b&c"})
    assert listed.json()["query"] == "folder=inbox&q=a+b%26c"

    sent = proxy(gateway, client, "POST", "/v1/messages", json={"to": "bob", "body": "hi"})
    assert sent.status_code == 201 and sent.json()["body"] == {"to": "bob", "body": "hi"}
    put = proxy(gateway, client, "PUT", "/v1/messages/42", json={"read": True})
    assert put.json()["method"] == "PUT" and put.json()["id"] == "42"
    assert proxy(gateway, client, "DELETE", "/v1/messages/42").json()["method"] == "DELETE"

    # Upstream statuses and bodies come back unchanged.
    missing = proxy(gateway, client, "GET", "/v1/nothing-here")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not Found"}


def test_agent_credentials_never_reach_upstream_and_upstream_token_never_returns(
    gateway: Gateway, agent: AgentIdentity
) -> None:
    client = connect(gateway, agent)
    resp = proxy(
        gateway,
        client,
        "GET",
        "/v1/headers",
        headers={"Connection": "keep-alive, X-Drop-Me", "X-Drop-Me": "1", "X-Keep": "yes", "Cookie": "a=b"},
    )
    seen = resp.json()["headers"]
    upstream_auth = seen["authorization"]
    assert upstream_auth.startswith("Bearer ") and client.access_token not in upstream_auth
    assert upstream_auth.count(".") == 2  # the provider's JWT access token
    assert "x-ath-agent-id" not in seen and "cookie" not in seen and "x-drop-me" not in seen
    assert seen["x-keep"] == "yes"
    assert upstream_auth.split()[1] not in resp.text.replace(upstream_auth, "")
    assert upstream_auth.split()[1] not in str(resp.headers)


def test_upstream_tokens_are_sealed_at_rest(gateway: Gateway, agent: AgentIdentity) -> None:
    client = connect(gateway, agent)
    info = gateway.service.validate(client.access_token, agent_header=agent.agent_id, provider_id="mail")
    row = gateway.service.store.get_upstream_token(info.client_id, "alice", "mail")
    assert row is not None and row.access_token.startswith("v1.t1.")
    plain = gateway.service.upstream_access_token(info)
    assert plain not in row.access_token and plain.count(".") == 2
    assert row.refresh_token is not None and row.refresh_token.startswith("v1.t1.")


def test_official_sdk_gateway_client_completes_the_flow(gateway: Gateway, agent: AgentIdentity) -> None:
    import ath

    with ath.ATHGatewayClient(gateway.url, agent.agent_id, agent.key.private_pem(), key_id="default") as sdk:
        doc = sdk.discover()
        assert doc.supported_providers[0].provider_id == "mail"
        reg = sdk.register(developer=DEVELOPER, providers=[{"provider_id": "mail", "scopes": ["mail:read"]}], purpose="interop")
        assert reg.agent_status.value == "approved"
        auth = sdk.authorize("mail", ["mail:read"])
        browser = HTTPBrowser("alice", "unused")
        browser.open_consent(auth.authorization_url)
        to_provider = browser.decide(approve=True)
        back = complete_upstream_login(browser.http, to_provider.headers["location"])
        assert browser.http.get(back.headers["location"]).status_code == 200
        token = sdk.exchange_token("placeholder", auth.ath_session_id)
        assert token.effective_scopes == ["mail:read"]
        assert sdk.proxy("mail", "GET", "/v1/me")["sub"] == "alice"
        with pytest.raises(ath.ATHError) as refused:
            sdk.proxy("mail", "POST", "/v1/messages", {"to": "x"})
        assert refused.value.status == 403
        sdk.revoke()


# -- §7 refusals ------------------------------------------------------------------------------


def test_proxy_refusals(gateway: Gateway, agent: AgentIdentity, new_agent: Any) -> None:
    client = connect(gateway, agent, tick=["mail:read"])
    url = f"{gateway.url}/ath/proxy/mail/v1/me"
    before = len(gateway.upstream_requests())

    assert_error(httpx.get(url), 401, "TOKEN_INVALID")
    assert_error(httpx.get(url, headers={"Authorization": "Bearer ath_tk_nope", "X-ATH-Agent-ID": agent.agent_id}), 401, "TOKEN_INVALID")
    assert_error(httpx.get(url, headers={"Authorization": f"Bearer {client.access_token}"}), 403, "AGENT_IDENTITY_MISMATCH")
    other = new_agent("other")
    assert_error(
        httpx.get(url, headers={"Authorization": f"Bearer {client.access_token}", "X-ATH-Agent-ID": other.agent_id}),
        403,
        "AGENT_IDENTITY_MISMATCH",
    )
    assert_error(
        httpx.get(f"{gateway.url}/ath/proxy/calendar/v1/me", headers={"Authorization": f"Bearer {client.access_token}", "X-ATH-Agent-ID": agent.agent_id}),
        403,
        "PROVIDER_MISMATCH",
    )
    assert_error(proxy(gateway, client, "GET", "/v1/admin"), 403, "ROUTE_NOT_MAPPED")
    assert_error(proxy(gateway, client, "PATCH", "/v1/messages"), 403, "ROUTE_NOT_MAPPED")
    assert_error(proxy(gateway, client, "GET", "/v1/me/../admin"), 403, "ROUTE_NOT_MAPPED")
    assert_error(proxy(gateway, client, "GET", "/v1%2fme"), 403, "ROUTE_NOT_MAPPED")
    # The user unticked mail:send on the gateway's consent page.
    assert_error(proxy(gateway, client, "POST", "/v1/messages", json={}), 403, "SCOPE_INSUFFICIENT")
    assert len(gateway.upstream_requests()) == before  # nothing refused reached upstream

    token = client.access_token
    client.revoke()
    assert_error(httpx.get(url, headers={"Authorization": f"Bearer {token}", "X-ATH-Agent-ID": agent.agent_id}), 401, "TOKEN_REVOKED")


def test_revoked_and_expired_tokens(start_gateway: Callable[..., Gateway], agent: AgentIdentity, new_agent: Any) -> None:
    gw = start_gateway(offset_clock=True)
    client = connect(gw, agent)
    token = client.access_token
    assert proxy(gw, client, "GET", "/v1/me").status_code == 200
    gw.now[0] = 3601  # past the ATH token's hour
    assert_error(proxy(gw, client, "GET", "/v1/me"), 401, "TOKEN_EXPIRED")
    gw.now[0] = 0
    client.revoke()
    client.set_token(token)
    assert_error(proxy(gw, client, "GET", "/v1/me"), 401, "TOKEN_REVOKED")


# -- upstream behaviour --------------------------------------------------------------------------


def test_expired_upstream_token_is_refreshed_transparently(start_gateway: Callable[..., Gateway], agent: AgentIdentity) -> None:
    gw = start_gateway(access_token_ttl=40)
    client = connect(gw, agent)
    first = proxy(gw, client, "GET", "/v1/headers").json()["headers"]["authorization"]
    gw.service.config.gateway.refresh_leeway = 45  # the 40 s token now counts as stale
    second = proxy(gw, client, "GET", "/v1/headers").json()["headers"]["authorization"]
    assert second != first
    events = [(a.event, a.outcome) for a in gw.service.store.list_audit()]
    assert ("upstream_refresh", "refreshed") in events


def test_refused_refresh_asks_for_reconsent(start_gateway: Callable[..., Gateway], agent: AgentIdentity) -> None:
    gw = start_gateway(access_token_ttl=40)
    client = connect(gw, agent)
    info = gw.service.validate(client.access_token, agent_header=agent.agent_id, provider_id="mail")
    row = gw.service.store.get_upstream_token(info.client_id, info.user_id, "mail")
    assert row is not None and row.refresh_token
    refresh = gw.sealer.open(row.refresh_token, f"{info.client_id}\x00{info.user_id}\x00mail")
    revoked = httpx.post(gw.op.revocation_endpoint, data={"token": refresh}, auth=(gw.op.client_id, gw.op.client_secret))
    assert revoked.status_code == 200
    gw.service.config.gateway.refresh_leeway = 45
    resp = proxy(gw, client, "GET", "/v1/me")
    assert_error(resp, 403, "REAUTHORIZATION_REQUIRED")
    assert "consent again" in resp.json()["message"]
    assert gw.service.store.get_upstream_token(info.client_id, info.user_id, "mail") is None


def test_upstream_api_down_is_a_clear_502(gateway: Gateway, agent: AgentIdentity) -> None:
    client = connect(gateway, agent)
    gateway.api.stop()
    resp = proxy(gateway, client, "GET", "/v1/me")
    assert_error(resp, 502, "UPSTREAM_UNAVAILABLE")
    assert "Example Mail" in resp.json()["message"]


def test_user_denies_at_the_provider(gateway: Gateway, agent: AgentIdentity) -> None:
    client = gateway.client(agent)
    client.register(developer=DEVELOPER, providers=[{"provider_id": "mail", "scopes": ALL_SCOPES}])
    session_id, done = consent(gateway, client, ["mail:read"], upstream_approve=False)
    assert done.status_code == 200 and "denied" in done.text
    with pytest.raises(Exception) as denied:
        client.exchange_token(session_id)
    assert getattr(denied.value, "code_str", None) == "USER_DENIED"


def test_callback_from_another_browser_is_refused(gateway: Gateway, agent: AgentIdentity) -> None:
    client = gateway.client(agent)
    client.register(developer=DEVELOPER, providers=[{"provider_id": "mail", "scopes": ALL_SCOPES}])
    auth = client.authorize("mail", ["mail:read"])
    browser = HTTPBrowser("alice", "unused")
    browser.open_consent(auth.authorization_url)
    to_provider = browser.decide(approve=True)
    back = complete_upstream_login(browser.http, to_provider.headers["location"])
    with httpx.Client() as attacker:
        resp = attacker.get(back.headers["location"])
    assert_error(resp, 400, "STATE_MISMATCH")
    tampered = back.headers["location"].replace("state=", "state=x")
    assert_error(browser.http.get(tampered), 400, "STATE_MISMATCH")


def test_revoking_the_last_token_revokes_upstream(gateway: Gateway, agent: AgentIdentity) -> None:
    client = connect(gateway, agent)
    info = gateway.service.validate(client.access_token, agent_header=agent.agent_id, provider_id="mail")
    key = (info.client_id, info.user_id, "mail")
    row = gateway.service.store.get_upstream_token(*key)
    assert row is not None and row.refresh_token
    refresh = gateway.sealer.open(row.refresh_token, "\x00".join(key))
    client.revoke()
    assert gateway.service.store.get_upstream_token(*key) is None
    again = httpx.post(
        gateway.op.token_endpoint,
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        auth=(gateway.op.client_id, gateway.op.client_secret),
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


# -- streaming ----------------------------------------------------------------------------------


def test_large_upload_streams_through(gateway: Gateway, agent: AgentIdentity) -> None:
    client = connect(gateway, agent)
    size = 8 * 1024 * 1024
    payload = secrets.token_bytes(size)

    def chunks() -> Iterator[bytes]:
        for i in range(0, size, 256 * 1024):
            yield payload[i : i + 256 * 1024]

    resp = proxy(gateway, client, "POST", "/v1/upload", content=chunks())
    assert resp.status_code == 200
    assert resp.json() == {"bytes": size, "sha256": hashlib.sha256(payload).hexdigest()}


def test_large_download_streams_with_bounded_memory(gateway: Gateway, agent: AgentIdentity) -> None:
    client = connect(gateway, agent)
    size = 8 * 1024 * 1024
    resp = proxy(gateway, client, "GET", "/v1/download", params={"size": size})
    assert resp.content == download_bytes(size)
