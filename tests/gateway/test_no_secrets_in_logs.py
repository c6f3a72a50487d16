"""Item 11: the full native and gateway flows at DEBUG leave no secret in any log line: no client
secret, token, code, verifier, state, attestation or cookie value, in athkit's own logs (server
and agent client), the libraries' under the servers (SQLAlchemy, httpx/httpcore of outbound
calls, uvicorn) and the access log of a real uvicorn started here.

Client and servers share this process: the only records left out are the HTTP library logs of
the test's own user agents on the main thread (the person's browser is not athkit)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from athkit.client import ATHClient
from athkit.core.clock import system_clock
from athkit.crypto.sealing import TokenSealer, new_key_spec
from athkit.demo.browser import HTTPBrowser, complete_upstream_login
from athkit.demo.shop import create_shop_app
from athkit.gateway.app import create_gateway_app
from athkit.gateway.config import parse_config
from athkit.gateway.service import GatewayService
from athkit.web.serving import BackgroundServer, free_port
from tests.conftest import SHOP_PASSWORD, AgentIdentity
from tests.gateway.test_gateway import ALL_SCOPES, DEVELOPER, SECRET_ENV, gateway_config
from tests.integration.support import PROVIDER, registered_client

LOGGERS = (
    "",
    "athkit",
    "uvicorn",
    "uvicorn.access",
    "uvicorn.error",
    "sqlalchemy",
    "httpx",
    "httpcore",
)
#: Every JWT (attestations, id_tokens, upstream access tokens) starts with this.
JWT_PREFIX = re.compile(r"eyJ[A-Za-z0-9_-]{10,}")


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("httpx", "httpcore")) and record.threadName == "MainThread":
            return  # the test's browser and agent transport, not a server
        line = record.getMessage()
        if record.exc_info:
            line += logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name}: {line}")


@pytest.fixture
def capture() -> Iterator[Capture]:
    """Every log record at DEBUG; attach after the servers start (uvicorn reconfigures)."""
    handler = Capture()
    saved = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    yield handler
    for logger, level in saved:
        logger.removeHandler(handler)
        logger.setLevel(level)


def recording(browser: HTTPBrowser) -> list[str]:
    """Every URL the browser requests (redirect targets carry codes and states)."""
    urls: list[str] = []
    browser.http.event_hooks["request"].append(lambda r: urls.append(str(r.url)))
    return urls


def query_values(urls: list[str], *names: str) -> list[str]:
    return [v for u in urls for k, v in parse_qsl(urlsplit(u).query) if k in names and v]


def assert_clean(lines: list[str], secrets: dict[str, list[str]]) -> None:
    access = [line for line in lines if line.startswith("uvicorn.access")]
    assert access, "the access log was captured"
    assert any("[redacted]" in line for line in access), access[:5]
    for line in lines:
        for what, values in secrets.items():
            for value in values:
                assert len(value) >= 8, (what, value)
                assert value not in line, f"{what} in log line: {line[:300]}"
        assert not JWT_PREFIX.search(line), f"JWT in log line: {line[:300]}"


@pytest.fixture
def shop_server(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_shop_app(
        public_url=url, data_dir=tmp_path / "shop", dev_mode=True, password=SHOP_PASSWORD
    )
    server = BackgroundServer(app, port=port, access_log=True, log_level="debug").start()
    try:
        yield url, app
    finally:
        server.stop()


def test_native_flow_logs_no_secret(
    shop_server: tuple[str, Any], agent: AgentIdentity, capture: Capture
) -> None:
    from tests.conftest import Shop

    url, app = shop_server
    shop = Shop(url, app, None)  # type: ignore[arg-type]
    client = registered_client(shop, agent)
    auth = client.authorize(PROVIDER, ["products:read"])
    browser = HTTPBrowser("alice", SHOP_PASSWORD)
    urls = recording(browser)
    browser.open_consent(auth.authorization_url)
    assert browser.decide(approve=True).status_code == 200
    cookies = [c.value for c in browser.http.cookies.jar]
    browser.close()
    session = app.state.athkit.store.get_session(auth.ath_session_id)
    token = client.exchange_token(auth.ath_session_id).access_token
    api = httpx.get(
        f"{url}/api/products",
        headers={"Authorization": f"Bearer {token}", "X-ATH-Agent-ID": agent.agent_id},
    )
    assert api.status_code == 200
    client.revoke()
    # A failing step logs too: a replayed exchange and an unknown token.
    with pytest.raises(Exception):  # noqa: B017 - any refusal; the logs are what is checked
        client.exchange_token(auth.ath_session_id)
    assert httpx.get(f"{url}/api/products", headers={"Authorization": f"Bearer {token}"}).is_error

    assert_clean(
        capture.lines,
        {
            "client secret": [client.client_secret or ""],
            "access token": [token],
            "state": [auth.state, *query_values(urls, "state")],
            "code": query_values(urls, "code"),
            "code verifier": [session.code_verifier],
            "cookie": [c for c in cookies if len(c) >= 8],
            "password": [SHOP_PASSWORD],
        },
    )


def test_gateway_flow_logs_no_secret(
    oidc_factory: Any,
    resource_api_factory: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    agent: AgentIdentity,
    capture: Capture,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    op = oidc_factory.start([f"{base}/ath/callback"])
    monkeypatch.setenv(SECRET_ENV, op.client_secret)
    api = resource_api_factory.start(op.issuer, op.resource)
    cfg = parse_config(gateway_config(base, op))
    cfg.gateway.data_dir = tmp_path / "gw"
    sealer = TokenSealer.from_spec(new_key_spec("t1"))
    svc = GatewayService(cfg, sealer=sealer, clock=system_clock)
    app = create_gateway_app(cfg, service=svc)
    with BackgroundServer(app, port=port, access_log=True, log_level="debug"):
        capture.lines.clear()
        logging.getLogger("uvicorn.access").addHandler(capture)  # re-attach after start
        logging.getLogger("uvicorn.access").setLevel(logging.DEBUG)
        client = ATHClient(base, agent.agent_id, agent.key)
        client.register(
            developer=DEVELOPER, providers=[{"provider_id": "mail", "scopes": ALL_SCOPES}]
        )
        auth = client.authorize("mail", ALL_SCOPES)
        browser = HTTPBrowser("alice", "unused")
        urls = recording(browser)
        browser.open_consent(auth.authorization_url)
        to_provider = browser.decide(approve=True, scopes=ALL_SCOPES)
        back = complete_upstream_login(browser.http, to_provider.headers["location"], "alice")
        done = browser.http.get(back.headers["location"], headers={"Accept": "text/html"})
        assert done.status_code == 200, done.text
        cookies = [c.value for c in browser.http.cookies.jar]
        browser.close()
        token = client.exchange_token(auth.ath_session_id).access_token
        me = httpx.get(
            f"{base}/ath/proxy/mail/v1/me",
            headers={"Authorization": f"Bearer {token}", "X-ATH-Agent-ID": agent.agent_id},
            timeout=30,
        )
        assert me.status_code == 200, me.text
        upstream_auth = [r["authorization"] for r in api.server.config.app.state.requests]
        client.revoke()
        # Item 5 on the gateway, which owns its root: liveness and readiness.
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok"}
    upstream_tokens = [a.split(" ", 1)[1] for a in upstream_auth if a and " " in a]
    assert upstream_tokens
    assert_clean(
        capture.lines,
        {
            "client secret": [client.client_secret or "", op.client_secret],
            "access token": [token],
            "upstream access token": upstream_tokens,
            "state": [auth.state, *query_values(urls, "state")],
            "code": query_values(urls, "code"),
            "cookie": [c for c in cookies if len(c) >= 8],
        },
    )
