"""Forward-auth behind real Caddy: docs/forward-auth.md's Caddyfile, Example Mail, athkit deciding.

Debian's caddy runs as our own process (admin API off, its data and config dirs in tmp_path,
free ports) in front of Example Mail; the same flow as behind nginx: the whole ATH flow, calls
through Caddy with the ATH token, refusals with their ATH body, and a revocation.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from athkit.web.serving import free_port
from tests.conftest import AgentIdentity
from tests.gateway.test_forward_auth_nginx import (
    doc_block,
    full_flow_through,
    start_deciding_gateway,
    wait_until_up,
    with_ports,
)
from tests.gateway.test_gateway import Gateway


@pytest.fixture
def caddy_front(
    oidc_factory: Any,
    resource_api_factory: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Gateway, str]]:
    exe = shutil.which("caddy")
    if exe is None:
        pytest.fail("caddy is not installed: apt-get install -y caddy", pytrace=False)
    gw, secret = start_deciding_gateway(oidc_factory, resource_api_factory, tmp_path, monkeypatch)
    port = free_port()
    home = tmp_path / "caddy"
    home.mkdir()
    config = home / "Caddyfile"
    config.write_text(with_ports(doc_block("caddy-forward-auth", "caddy"), gw, port, secret))
    log = home / "caddy.log"
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - Debian's caddy with our own Caddyfile
            [exe, "run", "--config", str(config), "--adapter", "caddyfile"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, url, log)
        yield gw, url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        gw.server.stop()


def test_full_flow_refusals_and_revocation_through_caddy(
    caddy_front: tuple[Gateway, str], agent: AgentIdentity
) -> None:
    full_flow_through(*caddy_front, agent)
