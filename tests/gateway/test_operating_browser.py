"""Operating a gateway, in headless Chromium, on two gateway nodes sharing PostgreSQL.

* A user signs in with the provider on "my agents" (node A), revokes an agent with one click,
  and the agent's next proxied call fails on node B.
* An operator signs in, approves a pending agent with chosen scopes, adds a provider live in
  the console, and an agent reaches that provider through node B without a restart.
* The audit page shows each of these events (with the operator's name).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright
from typer.testing import CliRunner

from athkit.cli.main import app as cli
from athkit.client import ATHClient
from athkit.crypto.keys import AgentKey
from athkit.crypto.sealing import TokenSealer, new_key_spec
from athkit.demo.browser import HTTPBrowser, complete_upstream_login
from athkit.demo.upstream import OIDCProvider
from athkit.gateway.app import create_gateway_app
from athkit.gateway.config import parse_config
from athkit.gateway.service import GatewayService
from athkit.protocol.errors import ATHError
from athkit.web.serving import BackgroundServer, free_port
from tests.conftest import AgentIdentity
from tests.gateway.test_gateway import DEVELOPER, SECRET_ENV, gateway_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OPERATOR = "ops-olivia"
OPERATOR_PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert CHROMIUM, "install Debian's chromium: apt-get install -y chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield b
        finally:
            b.close()


@dataclass
class TwoNodes:
    url: str  # node A, also the public URL
    url_b: str
    op: OIDCProvider
    db_url: str
    services: list[GatewayService]

    def proxy(self, base: str, client: ATHClient, provider: str, path: str) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {client.access_token}",
            "X-ATH-Agent-ID": client.agent_id,
        }
        return httpx.get(f"{base}/ath/proxy/{provider}{path}", headers=headers, timeout=30)


@pytest.fixture
def two_nodes(
    oidc_factory: Any,
    resource_api_factory: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_pg: str,
) -> Iterator[Callable[..., TwoNodes]]:
    started: list[BackgroundServer] = []

    def start(**policy: Any) -> TwoNodes:
        port_a, port_b = free_port(), free_port()
        base = f"http://127.0.0.1:{port_a}"
        op = oidc_factory.start([f"{base}/ath/callback", f"{base}/ath/user/callback"])
        monkeypatch.setenv(SECRET_ENV, op.client_secret)
        resource_api_factory.start(op.issuer, op.resource)
        data = gateway_config(base, op)
        data["gateway"].update(database_url=fresh_pg, provider_poll_seconds=0.5)
        data["policy"] = policy or {"auto_approve": True}
        keys = new_key_spec("t1")  # both nodes share the sealing keyring
        services = []
        for name, port in (("a", port_a), ("b", port_b)):
            cfg = parse_config(data)
            cfg.gateway.data_dir = tmp_path / name
            svc = GatewayService(cfg, sealer=TokenSealer.from_spec(keys))
            services.append(svc)
            app = create_gateway_app(cfg, service=svc)
            started.append(BackgroundServer(app, port=port).start())
        return TwoNodes(base, f"http://127.0.0.1:{port_b}", op, fresh_pg, services)

    yield start
    for s in started:
        s.stop()


def create_operator(db_url: str) -> None:
    result = CliRunner().invoke(
        cli,
        ["admin", "create-operator", OPERATOR, "--database-url", db_url, "--password-stdin"],
        input=OPERATOR_PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert f"operator {OPERATOR} created" in result.output


def provider_login(page: Page, gateway_origin: str, username: str = "alice") -> None:
    """The upstream provider's sign-in and consent pages, in the browser, until it returns."""
    for _ in range(6):
        page.wait_for_load_state()
        if page.url.startswith(gateway_origin):
            return
        if page.locator("input[name=login]").count():
            page.fill("input[name=login]", username)
            page.fill("input[name=password]", "any")
        with page.expect_navigation():
            page.locator("button[type=submit]").first.click()
    raise AssertionError(f"still at the provider: {page.url}")


def connect(gw: TwoNodes | None, client: ATHClient, provider: str, scopes: list[str]) -> None:
    """Authorize, consent on the gateway's page and at the provider, exchange the code."""
    auth = client.authorize(provider, scopes)
    http = HTTPBrowser("alice", "unused")
    http.open_consent(auth.authorization_url)
    to_provider = http.decide(approve=True, scopes=scopes)
    back = complete_upstream_login(http.http, to_provider.headers["location"], "alice")
    done = http.http.get(back.headers["location"], headers={"Accept": "text/html"})
    http.close()
    assert done.status_code == 200, done.text
    client.exchange_token(auth.ath_session_id)


def operator_sign_in(page: Page, gw: TwoNodes, path: str = "/ath/console/agents") -> None:
    page.goto(f"{gw.url}{path}")
    assert "/ath/operator/signin" in page.url  # browsers are sent to sign in
    page.fill("input[name=name]", OPERATOR)
    page.fill("input[name=password]", "wrong password!!")
    page.click("#operator-signin button[type=submit]")
    assert page.locator("#signin-error").inner_text() == "wrong name, password or code"
    page.fill("input[name=name]", OPERATOR)
    page.fill("input[name=password]", OPERATOR_PASSWORD)
    page.click("#operator-signin button[type=submit]")
    page.wait_for_load_state()
    assert urlsplit(page.url).path == path, page.content()[:3000]


def audit_events(page: Page, gw: TwoNodes, **filters: str) -> list[dict[str, str]]:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    page.goto(f"{gw.url}/ath/console/audit?{query}")
    return page.eval_on_selector_all(
        "tr.audit-row",
        "rows => rows.map(r => ({event: r.dataset.event,"
        " operator: r.querySelector('.operator').textContent}))",
    )


def test_user_revokes_in_my_agents_and_the_other_node_refuses_at_once(
    two_nodes: Callable[..., TwoNodes], agent: AgentIdentity, browser: Any
) -> None:
    gw = two_nodes()
    create_operator(gw.db_url)
    client = ATHClient(gw.url, agent.agent_id, agent.key)
    client.register(
        developer=DEVELOPER, providers=[{"provider_id": "mail", "scopes": ["mail:read"]}]
    )
    connect(gw, client, "mail", ["mail:read"])
    assert gw.proxy(gw.url_b, client, "mail", "/v1/me").json()["sub"] == "alice"

    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(f"{gw.url}/ath/my/agents")
    provider_login(page, gw.url)  # "sign in with Example Mail"
    page.wait_for_url(f"{gw.url}/ath/my/agents")
    grant = page.locator("li.grant")
    assert grant.count() == 1 and "mail:read" in grant.inner_text()
    assert page.locator("li.grant code").first.inner_text() == "mail:read"
    grant.locator("button[type=submit]").click()
    page.wait_for_selector("#empty")

    refused = gw.proxy(gw.url_b, client, "mail", "/v1/me")  # the other node, next call
    assert refused.status_code == 401 and refused.json()["code"] == "TOKEN_REVOKED"

    op_page = browser.new_context().new_page()
    operator_sign_in(op_page, gw, "/ath/console/audit")
    rows = audit_events(op_page, gw, agent_id=agent.agent_id)
    events = [r["event"] for r in rows]
    assert events[0] == "proxy_request" or "token_revoked" in events
    assert "token_revoked" in events and "access_granted" in events
    assert "authorization_started" in events and "agent_registered" in events
    deadline = time.monotonic() + 10
    while "proxy_request" not in events and time.monotonic() < deadline:
        time.sleep(0.3)  # per-call rows are written by the batch writer
        events = [r["event"] for r in audit_events(op_page, gw, agent_id=agent.agent_id)]
    assert "proxy_request" in events
    ctx.close()


def test_operator_approves_with_chosen_scopes_and_adds_a_provider_live(
    two_nodes: Callable[..., TwoNodes],
    new_agent: Callable[..., AgentIdentity],
    oidc_factory: Any,
    resource_api_factory: Any,
    browser: Any,
) -> None:
    gw = two_nodes(unknown_agents="pending")
    create_operator(gw.db_url)
    first = new_agent("pending-one")
    client = ATHClient(gw.url, first.agent_id, first.key)
    reg = client.register(
        developer=DEVELOPER,
        providers=[{"provider_id": "mail", "scopes": ["mail:read", "mail:send"]}],
    )
    assert reg.agent_status.value == "pending"

    page = browser.new_context().new_page()
    operator_sign_in(page, gw)
    item = page.locator(f"li.agent[data-client-id='{reg.client_id}']")
    item.locator("input[value='mail mail:send']").uncheck()
    item.locator("button[value=approve]").click()
    page.wait_for_url(f"{gw.url}/ath/console/agents")
    status = client.agent_status()
    assert status.agent_status.value == "approved"
    assert status.approved_providers[0].approved_scopes == ["mail:read"]
    assert status.approved_providers[0].denied_scopes == ["mail:send"]

    # A second upstream, added while both nodes run.
    op2 = oidc_factory.start([f"{gw.url}/ath/callback", f"{gw.url}/ath/user/callback"])
    resource_api_factory.start(op2.issuer, op2.resource)
    toml = f'''
provider_id = "files"
display_name = "Example Files"
issuer = "{op2.issuer}"
client_id = "{op2.client_id}"
client_secret_env = "UNUSED_FILES_SECRET"
upstream_scopes = ["openid", "offline_access"]
resource = "{op2.resource}"
api_base = "{op2.resource}"
[scopes."files:read"]
description = "Read your files"
upstream = ["api:read"]
[[routes]]
method = "GET"
path = "/v1/me"
scope = "files:read"
'''
    page.goto(f"{gw.url}/ath/console/providers")
    page.fill("textarea[name=config]", toml.replace('"files:read"\n', '"files:write"\n', 1))
    page.fill("input[name=client_secret]", op2.client_secret)
    page.click("#provider-form button[type=submit]")
    assert "routes[0].scope" in page.locator("#provider-error").inner_text()  # checked like TOML
    page.fill("textarea[name=config]", toml)
    page.fill("input[name=client_secret]", op2.client_secret)
    page.click("#provider-form button[type=submit]")
    page.wait_for_selector("li.provider[data-provider-id=files]")

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # node B polls the version, no restart
        catalog = httpx.get(f"{gw.url_b}/.well-known/ath.json").json()
        if any(p["provider_id"] == "files" for p in catalog["supported_providers"]):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("node B never listed the new provider")

    second = new_agent("files-agent")
    # Both nodes answer for the public URL (node A's): attestations name it as audience.
    client2 = ATHClient(gw.url, second.agent_id, second.key)
    reg2 = client2.register(
        developer=DEVELOPER, providers=[{"provider_id": "files", "scopes": ["files:read"]}]
    )
    page.goto(f"{gw.url}/ath/console/agents?status=pending")
    page.locator(f"li.agent[data-client-id='{reg2.client_id}'] button[value=approve]").click()
    page.wait_for_url(f"{gw.url}/ath/console/agents")
    connect(gw, client2, "files", ["files:read"])
    answer = gw.proxy(gw.url_b, client2, "files", "/v1/me")
    assert answer.status_code == 200, answer.text
    assert answer.json()["client_id"] == op2.client_id  # reached the new upstream

    # An impostor: the agent's id with a key its identity document does not hold.
    impostor = ATHClient(gw.url, second.agent_id, AgentKey.generate("P-256", kid="default"))
    with pytest.raises(ATHError):
        impostor.register(
            developer=DEVELOPER, providers=[{"provider_id": "files", "scopes": ["files:read"]}]
        )
    deadline = time.monotonic() + 10
    rows = audit_events(page, gw)
    while "attestation_failed" not in {r["event"] for r in rows} and time.monotonic() < deadline:
        time.sleep(0.3)  # per-call rows go through the batch writer
        rows = audit_events(page, gw)
    events = {r["event"] for r in rows}
    assert "attestation_failed" in events
    assert {"operator_signed_in", "agent_approved", "provider_changed"} <= events
    assert "operator_signin_failed" in events and "access_granted" in events
    approved = [r for r in rows if r["event"] == "agent_approved"]
    assert approved and all(r["operator"] == OPERATOR for r in approved)
    assert [r["operator"] for r in rows if r["event"] == "provider_changed"] == [OPERATOR]
    assert urlsplit(page.url).path == "/ath/console/audit"
