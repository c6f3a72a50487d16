"""The compose.yaml topology, started natively: nginx (a real nginx from a temp config) in front
of two gateway nodes sharing PostgreSQL and Redis.

No container engine runs in CI, so the image itself is not built here; these are the same
processes compose.yaml starts. An agent goes through nginx for the whole flow; nginx's request
id reaches the reply; with node A stopped, nginx's next pick (node B) carries on with the same
token; a revocation through nginx is refused at once on the remaining node.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from athkit.client import ATHClient
from athkit.crypto.sealing import TokenSealer, new_key_spec
from athkit.gateway.app import create_gateway_app
from athkit.gateway.config import parse_config
from athkit.gateway.service import GatewayService
from athkit.web.serving import BackgroundServer, free_port
from tests.conftest import AgentIdentity
from tests.gateway.test_gateway import DEVELOPER, SECRET_ENV, gateway_config
from tests.gateway.test_operating_browser import connect

REDIS_URL = "redis://127.0.0.1:6379/0"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_conf(tmp: Path, listen: int, nodes: list[int]) -> str:
    servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=30s;" for p in nodes)
    temp = "\n".join(
        f"  {kind}_temp_path {tmp / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}daemon off;
worker_processes 1;
pid {tmp / "nginx.pid"};
error_log {tmp / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
{temp}
  upstream athkit_gateway {{
{servers}
    keepalive 8;
  }}
  server {{
    listen 127.0.0.1:{listen};
    location / {{
      proxy_pass http://athkit_gateway;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Request-ID $request_id;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_next_upstream error timeout;
      proxy_connect_timeout 2s;
    }}
  }}
}}
"""


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"athkit-test:{secrets.token_hex(6)}:"
    yield prefix
    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(match=prefix + "*"))
    if keys:
        r.delete(*keys)
    r.close()


@pytest.fixture
def topology(
    oidc_factory: Any,
    resource_api_factory: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_pg: str,
    redis_prefix: str,
) -> Iterator[dict[str, Any]]:
    assert Path(NGINX).exists(), "install Debian's nginx: apt-get install -y nginx"
    front, port_a, port_b = free_port(), free_port(), free_port()
    public = f"http://127.0.0.1:{front}"
    op = oidc_factory.start([f"{public}/ath/callback", f"{public}/ath/user/callback"])
    monkeypatch.setenv(SECRET_ENV, op.client_secret)
    resource_api_factory.start(op.issuer, op.resource)
    data = gateway_config(public, op)
    data["gateway"].update(database_url=fresh_pg, redis_url=REDIS_URL, redis_prefix=redis_prefix)
    keys = new_key_spec("t1")
    nodes = []
    for name, port in (("a", port_a), ("b", port_b)):
        cfg = parse_config(data)
        cfg.gateway.data_dir = tmp_path / name
        svc = GatewayService(cfg, sealer=TokenSealer.from_spec(keys))
        nodes.append(BackgroundServer(create_gateway_app(cfg, service=svc), port=port).start())
    conf_dir = tmp_path / "nginx"
    conf_dir.mkdir()
    (conf_dir / "nginx.conf").write_text(nginx_conf(conf_dir, front, [port_a, port_b]))
    proc = subprocess.Popen(
        [NGINX, "-p", str(conf_dir), "-c", str(conf_dir / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"{public}/.well-known/ath.json", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise AssertionError(f"nginx did not start: {err}") from None
                time.sleep(0.1)
        yield {"url": public, "nodes": nodes}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for n in nodes:
            n.stop()


def test_agent_through_nginx_survives_a_node_and_revocation_holds(
    topology: dict[str, Any], agent: AgentIdentity
) -> None:
    url = topology["url"]

    client = ATHClient(url, agent.agent_id, agent.key)
    client.register(
        developer=DEVELOPER, providers=[{"provider_id": "mail", "scopes": ["mail:read"]}]
    )
    connect(None, client, "mail", ["mail:read"])
    headers = {"Authorization": f"Bearer {client.access_token}", "X-ATH-Agent-ID": agent.agent_id}
    for _ in range(4):  # round robin over both nodes
        ok = httpx.get(f"{url}/ath/proxy/mail/v1/me", headers=headers, timeout=30)
        assert ok.status_code == 200, ok.text
        assert len(ok.headers["x-request-id"]) == 32  # nginx's $request_id, kept by the node

    topology["nodes"][0].stop()  # node A goes away
    for _ in range(3):
        again = httpx.get(f"{url}/ath/proxy/mail/v1/me", headers=headers, timeout=30)
        assert again.status_code == 200 and again.json()["sub"] == "alice"

    client.revoke()
    refused = httpx.get(f"{url}/ath/proxy/mail/v1/me", headers=headers, timeout=30)
    assert refused.status_code == 401 and refused.json()["code"] == "TOKEN_REVOKED"
