"""``athkit gateway serve`` as a child process: bodies stream through it (50 MB each way must not
grow its memory by 50 MB), and its access log follows ``--log-level``.

The gateway runs as ``athkit gateway serve`` in a child process (secrets in its environment, a
TOML config), so /proc/<pid>/status shows its own resident memory: VmRSS before, VmHWM (the peak)
after. The upstream provider and Example Mail run as usual (node, and a thread of this process).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from athkit.client import ATHClient
from athkit.crypto.sealing import new_key_spec
from athkit.demo.mail_api import download_bytes
from athkit.demo.mail_gateway import GatewayProcess, mail_gateway_config, to_toml
from athkit.demo.upstream import OIDCProvider
from athkit.web.serving import free_port
from tests.conftest import AgentIdentity
from tests.gateway.test_gateway import connect

SIZE = 50 * 1024 * 1024
LIMIT_KIB = 20 * 1024
CHUNK = 256 * 1024
SECRET_ENV = "ATHKIT_TEST_MAIL_SECRET"
KEYS_ENV = "ATHKIT_TEST_GATEWAY_KEYS"


@dataclass
class ChildGateway:
    url: str
    op: OIDCProvider
    process: GatewayProcess
    env: dict[str, str]

    def client(self, agent: AgentIdentity) -> ATHClient:
        return ATHClient(self.url, agent.agent_id, agent.key)


@pytest.fixture
def child_gateway(
    oidc_factory: Any, resource_api_factory: Any, tmp_path: Path
) -> Iterator[ChildGateway]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    op = oidc_factory.start([f"{url}/ath/callback"])
    resource_api_factory.start(op.issuer, op.resource)
    config = mail_gateway_config(
        url,
        issuer=op.issuer,
        resource=op.resource,
        client_id=op.client_id,
        secret_env=SECRET_ENV,
        data_dir=tmp_path / "gw",
        token_keys_env=KEYS_ENV,
    )
    path = tmp_path / "gateway.toml"
    path.write_text(to_toml(config))
    env = {SECRET_ENV: op.client_secret, KEYS_ENV: new_key_spec("m1")}
    with GatewayProcess.start(path, env, port=port) as process:
        yield ChildGateway(url, op, process, env)


def _headers(client: ATHClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.access_token}", "X-ATH-Agent-ID": client.agent_id}


def _download(http: httpx.Client, gw: ChildGateway, client: ATHClient, size: int) -> int:
    url = f"{gw.url}/ath/proxy/mail/v1/download"
    seen = 0
    with http.stream("GET", url, params={"size": size}, headers=_headers(client)) as resp:
        assert resp.status_code == 200
        for chunk in resp.iter_bytes():
            seen += len(chunk)  # read and dropped
    return seen


def _upload(http: httpx.Client, gw: ChildGateway, client: ATHClient, size: int) -> dict[str, Any]:
    digest = hashlib.sha256()

    def body() -> Iterator[bytes]:
        for offset in range(0, size, CHUNK):
            chunk = download_bytes(min(CHUNK, size - offset), offset)
            digest.update(chunk)
            yield chunk

    resp = http.post(f"{gw.url}/ath/proxy/mail/v1/upload", content=body(), headers=_headers(client))
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    assert result["sha256"] == digest.hexdigest()
    return result


def test_50mb_each_way_streams_in_bounded_memory(
    child_gateway: ChildGateway, agent: AgentIdentity
) -> None:
    gw = child_gateway
    client = connect(gw, agent)  # type: ignore[arg-type]
    with httpx.Client(timeout=60) as http:
        # Warm up (imports, pools, first upstream call) so only the streaming remains.
        assert _download(http, gw, client, 2 * 1024 * 1024) == 2 * 1024 * 1024
        _upload(http, gw, client, 2 * 1024 * 1024)

        before = gw.process.memory_kib()
        assert _download(http, gw, client, SIZE) == SIZE
        after_download = gw.process.memory_kib()
        assert _upload(http, gw, client, SIZE)["bytes"] == SIZE
        after_upload = gw.process.memory_kib()

    download_growth = after_download["VmHWM"] - before["VmRSS"]
    upload_growth = after_upload["VmHWM"] - before["VmRSS"]
    report = f"before {before}, after download {after_download}, after upload {after_upload} (KiB)"
    print(report)
    assert download_growth < LIMIT_KIB, report
    assert upload_growth < LIMIT_KIB, report


def test_the_access_log_follows_the_log_level(
    child_gateway: ChildGateway, agent: AgentIdentity, tmp_path: Path
) -> None:
    """At ``info`` (the default) each call gets an access line, query values redacted; at
    ``warning`` there is none (uvicorn's access log is then off, not just filtered)."""
    gw = child_gateway
    client = connect(gw, agent)  # type: ignore[arg-type]
    line = '"GET /ath/proxy/mail/v1/download?size=[redacted] HTTP/1.1" 200'
    with httpx.Client(timeout=30) as http:
        assert _download(http, gw, client, 10) == 10
    assert line in gw.process.log()

    quiet_config = tmp_path / "quiet.toml"  # its own log file, beside the same database
    quiet_config.write_text((tmp_path / "gateway.toml").read_text())
    with GatewayProcess.start(quiet_config, gw.env, log_level="warning") as quiet:
        quiet_gw = ChildGateway(quiet.url, gw.op, quiet, gw.env)
        with httpx.Client(timeout=30) as http:
            assert _download(http, quiet_gw, client, 10) == 10
        assert "/ath/proxy/" not in quiet.log()
