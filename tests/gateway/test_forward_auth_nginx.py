"""Forward-auth behind real nginx: docs/forward-auth.md's snippet, Example Mail, athkit deciding.

Debian's nginx runs as our own process (config, pid and temp paths in tmp_path, free ports) in
front of Example Mail, a JWT-checking API behind a real OpenID provider. The agent goes through
the whole ATH flow at the gateway, then calls the API through nginx with its ATH token: nginx
asks athkit (``auth_request``), gets the user's upstream token and forwards. Refusals come back
with their ATH status and body; a revocation is refused at the next call and ever after.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from athkit.crypto.sealing import TokenSealer, new_key_spec
from athkit.gateway.app import create_gateway_app
from athkit.gateway.config import parse_config
from athkit.gateway.service import GatewayService
from athkit.web.serving import BackgroundServer, free_port
from tests.conftest import AgentIdentity
from tests.gateway.test_gateway import SECRET_ENV, Gateway, connect, gateway_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "forward-auth.md"
FA_ENV = "ATHKIT_TEST_FORWARD_AUTH_SECRET"

NGINX_MAIN = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
{snippet}
}}
"""


def doc_block(marker: str, lang: str) -> str:
    m = re.search(rf"<!-- {marker} -->\s*```{lang}\n(.*?)```", DOC.read_text(), re.S)
    assert m, f"docs/forward-auth.md lost its {marker} snippet"
    return m.group(1)


def start_deciding_gateway(
    oidc_factory: Any, resource_api_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Gateway, str]:
    """A gateway with [forward_auth] in front of Example Mail; returns it and its secret."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    op = oidc_factory.start([f"{base}/ath/callback"], access_token_ttl=300)
    monkeypatch.setenv(SECRET_ENV, op.client_secret)
    fa_secret = secrets.token_urlsafe(24)
    monkeypatch.setenv(FA_ENV, fa_secret)
    api = resource_api_factory.start(op.issuer, op.resource)
    raw = gateway_config(base, op)
    raw["forward_auth"] = {"secret_env": FA_ENV}
    cfg = parse_config(raw)
    cfg.gateway.data_dir = tmp_path / "gw"
    sealer = TokenSealer.from_spec(new_key_spec("t1"))
    svc = GatewayService(cfg, sealer=sealer)
    server = BackgroundServer(create_gateway_app(cfg, service=svc), port=port).start()
    return Gateway(base, op, api, svc, server, sealer), fa_secret


def with_ports(snippet: str, gw: Gateway, front_port: int, secret: str) -> str:
    return (
        snippet.replace("127.0.0.1:8080", f"127.0.0.1:{gw.server.port}")
        .replace("127.0.0.1:9000", f"127.0.0.1:{gw.api.port}")
        .replace("127.0.0.1:8443", f"127.0.0.1:{front_port}")
        .replace("CHANGE-ME-forward-auth-secret", secret)
    )


def wait_until_up(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            httpx.get(url + "/v1/me", timeout=2)
            return
        except httpx.HTTPError:
            assert proc.poll() is None, log.read_text() if log.exists() else "exited"
            assert time.monotonic() < deadline, "the proxy did not start"
            time.sleep(0.05)


@pytest.fixture
def nginx_front(
    oidc_factory: Any,
    resource_api_factory: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Gateway, str]]:
    exe = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if exe is None:
        pytest.fail("nginx is not installed: apt-get install -y nginx", pytrace=False)
    gw, secret = start_deciding_gateway(oidc_factory, resource_api_factory, tmp_path, monkeypatch)
    nginx_port = free_port()
    snippet = with_ports(doc_block("nginx-forward-auth", "nginx"), gw, nginx_port, secret)
    ngx = tmp_path / "nginx"
    ngx.mkdir()
    (ngx / "nginx.conf").write_text(NGINX_MAIN.format(tmp=ngx, snippet=snippet))
    proc = subprocess.Popen(  # noqa: S603 - Debian's nginx with our own config
        [exe, "-c", str(ngx / "nginx.conf"), "-p", str(ngx), "-e", str(ngx / "error.log")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{nginx_port}"
    try:
        wait_until_up(proc, url, ngx / "error.log")
        yield gw, url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        gw.server.stop()


def call(url: str, path: str, headers: dict[str, str], method: str = "GET") -> httpx.Response:
    return httpx.request(method, url + path, headers=headers, timeout=30)


def test_full_flow_refusals_and_revocation_through_nginx(
    nginx_front: tuple[Gateway, str], agent: AgentIdentity
) -> None:
    full_flow_through(*nginx_front, agent)


def full_flow_through(gw: Gateway, url: str, agent: AgentIdentity) -> None:
    """The whole ATH flow at the gateway, then API calls through the proxy in front."""
    client = connect(gw, agent, scopes=["mail:read"])
    token = client.access_token or ""
    ath = {"Authorization": f"Bearer {token}", "X-ATH-Agent-ID": agent.agent_id}

    me = call(url, "/v1/me", ath)
    assert me.status_code == 200, me.text
    assert me.json()["sub"] == "alice"
    seen = call(url, "/v1/headers", ath).json()["headers"]
    assert seen["authorization"].startswith("Bearer ey")  # the provider's JWT, not the ATH token
    assert token not in seen["authorization"]
    assert "x-ath-agent-id" not in seen and "x-ath-forward-auth" not in seen
    listed = call(url, "/v1/messages?q=hello&n=2", ath)
    assert listed.status_code == 200 and listed.json()["query"] == "q=hello&n=2"

    def refused(resp: httpx.Response, status: int, code: str) -> None:
        assert resp.status_code == status, resp.text
        assert resp.headers["content-type"].startswith("application/json")
        assert resp.json()["code"] == code

    refused(call(url, "/v1/messages", ath, "POST"), 403, "SCOPE_INSUFFICIENT")  # mail:send
    refused(call(url, "/v1/not-mapped", ath), 403, "ROUTE_NOT_MAPPED")
    no_token = call(url, "/v1/me", {"X-ATH-Agent-ID": agent.agent_id})
    refused(no_token, 401, "TOKEN_INVALID")
    assert no_token.headers["www-authenticate"].startswith("Bearer")
    other = {**ath, "X-ATH-Agent-ID": "https://evil.example/agent.json"}
    refused(call(url, "/v1/me", other), 403, "AGENT_IDENTITY_MISMATCH")
    upstream = {"Authorization": seen["authorization"]}  # a provider token is no ATH token
    refused(call(url, "/v1/me", upstream), 401, "TOKEN_INVALID")

    # The decider answers only the proxy: an agent asking it directly learns nothing.
    direct = httpx.get(
        f"{gw.url}/ath/forward-auth/mail",
        headers={**ath, "X-Original-URI": "/v1/me", "X-Original-Method": "GET"},
    )
    assert direct.status_code == 403 and "authorization" not in direct.headers

    client.revoke()
    for _ in range(5):
        refused(call(url, "/v1/me", ath), 401, "TOKEN_REVOKED")


@pytest.fixture
def decider(nginx_front: tuple[Gateway, str]) -> Callable[..., httpx.Response]:
    gw, _ = nginx_front
    secret = __import__("os").environ[FA_ENV]

    def ask(path: str = "/ath/forward-auth/mail", **headers: str) -> httpx.Response:
        method = headers.pop("method", "GET")
        h = {"X-ATH-Forward-Auth": secret, **{k.replace("_", "-"): v for k, v in headers.items()}}
        return httpx.request(method, gw.url + path, headers=h)

    return ask


def test_decider_speaks_each_proxys_headers(
    nginx_front: tuple[Gateway, str], agent: AgentIdentity, decider: Callable[..., httpx.Response]
) -> None:
    gw, _ = nginx_front
    client = connect(gw, agent, scopes=["mail:read"])
    auth = {"Authorization": f"Bearer {client.access_token}", "X-ATH-Agent-ID": agent.agent_id}
    nginx = decider(**auth, X_Original_Method="GET", X_Original_URI="/v1/me?x=1")
    assert nginx.status_code == 200 and nginx.headers["authorization"].startswith("Bearer ey")
    caddy = decider(**auth, X_Forwarded_Method="GET", X_Forwarded_Uri="/v1/messages")
    assert caddy.status_code == 200
    envoy = decider("/ath/forward-auth/mail/v1/me", **auth)  # ext_authz path_prefix style
    assert envoy.status_code == 200
    shaped = decider("/ath/forward-auth", **auth, X_Original_URI="/ath/proxy/mail/v1/me")
    assert shaped.status_code == 200
    post = decider(**auth, X_Original_Method="POST", X_Original_URI="/v1/messages")
    assert post.status_code == 403 and post.json()["code"] == "SCOPE_INSUFFICIENT"
    assert post.headers["x-ath-error"] == post.text
    sneaky = decider(**auth, X_Original_URI="/v1/messages%2F..%2Fadmin")
    assert sneaky.status_code == 403 and sneaky.json()["code"] == "ROUTE_NOT_MAPPED"
    unknown = decider("/ath/forward-auth/nope", **auth, X_Original_URI="/v1/me")
    assert unknown.status_code == 404
    wrong = decider(**{**auth, "X-ATH-Forward-Auth": "x" * 32}, X_Original_URI="/v1/me")
    assert wrong.status_code == 403 and "authorization" not in wrong.headers
