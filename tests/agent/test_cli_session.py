"""The README's CLI session against a real ATH Shop: init, serve-identity, connect, call,
grants, rotate-key, whoami, revoke (``athkit`` commands; serve-identity as a real process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from typer.testing import CliRunner

from athkit.cli.main import app
from athkit.client.vault import default_vault
from athkit.protocol.errors import ERROR_HINTS, ErrorCode
from athkit.web.serving import free_port
from tests.agent.conftest import AgentHome
from tests.conftest import Shop

runner = CliRunner()


def athkit(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def identity_url(agent_home: AgentHome) -> Iterator[str]:
    """``athkit agent init`` then ``athkit agent serve-identity`` as a real process."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    code, output = athkit("agent", "init", "--name", "Trip planner", "--developer", "Acme Labs",
                          "--url", url)
    assert code == 0, output
    assert f"{url}/.well-known/agent.json" in output
    env = {**os.environ, **agent_home.env, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "athkit.cli", "agent", "serve-identity"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/.well-known/agent.json").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            pytest.fail("serve-identity did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


def _pending_url() -> str | None:
    pending = default_vault().pending()
    return pending[-1].authorization_url if pending else None


def test_cli_session(
    shop: Shop, identity_url: str, user_at_browser: Callable[..., object], monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "200")
    doc = httpx.get(f"{identity_url}/.well-known/agent.json")
    assert doc.headers["cache-control"] == "max-age=300"
    cimd = httpx.get(f"{identity_url}/oauth/client-metadata.json").json()
    assert cimd["client_id"] == f"{identity_url}/oauth/client-metadata.json"
    assert "client_secret" not in cimd and len(cimd["jwks"]["keys"]) == 1
    # athkit's own OAuth authorization server accepts it as a metadata-document client
    from athkit.oauth.client_metadata import parse_document

    meta = parse_document(cimd["client_id"], json.dumps(cimd).encode(), dev_mode=True)
    assert meta.client_name == "Trip planner" and meta.token_endpoint_auth_method == "none"

    user_at_browser(_pending_url)
    code, output = athkit("agent", "connect", shop.url, "--provider", "ath-shop",
                          "--scopes", "products:read cart:read cart:write", "--dev")
    assert code == 0, output
    assert "/ath/oauth/authorize?" in output and "connected" in output

    code, output = athkit("agent", "call", "ath-shop", "GET", "/products", "--dev")
    assert code == 0, output
    assert "Trail running shoes" in output
    code, output = athkit("agent", "call", "ath-shop", "POST", "/cart/items", "--dev",
                          "--json", '{"product_id": "p-101", "quantity": 2}')
    assert code == 0 and "p-101" in output, output
    code, output = athkit("agent", "call", "ath-shop", "POST", "/orders", "--dev",
                          "--json", '{"items": [{"product_id": "p-101"}]}')
    assert code == 1
    assert "SCOPE_INSUFFICIENT" in output and "what to do:" in output

    code, output = athkit("agent", "grants")
    assert code == 0, output
    for text in ("ath-shop", "products:read cart:read cart:write", "refreshable", shop.url):
        assert text in output
    code, output = athkit("agent", "grants", "--json")
    [grant] = json.loads(output)
    assert grant["refreshable"] is False and "access_token" not in grant

    # rotate: both kids are published during the grace period, and the new key is accepted
    code, output = athkit("agent", "whoami", "--json")
    old_kid = json.loads(output)["signing_kid"]
    code, output = athkit("agent", "rotate-key", "--grace", "600")
    assert code == 0 and "keeps verifying" in output, output
    served = httpx.get(f"{identity_url}/.well-known/agent.json").json()["public_key"]
    kids = [k["kid"] for k in served["keys"]]
    assert len(kids) == 2 and kids[1] == old_kid
    assert len(httpx.get(f"{identity_url}/oauth/client-metadata.json").json()["jwks"]["keys"]) == 2
    code, output = athkit("agent", "whoami")
    assert "AES-256-GCM" in output and "ATHKIT_VAULT_KEY" in output and old_kid in output
    [first] = default_vault().grants()
    user_at_browser(_pending_url)
    code, output = athkit("agent", "connect", shop.url, "--provider", "ath-shop",
                          "--scopes", "products:read", "--dev")
    assert code == 0 and "connected" in output, output
    # one live token per user and provider: the superseded one was revoked at the shop
    old = httpx.get(f"{shop.url}/api/products", headers={
        "Authorization": f"Bearer {first.access_token}", "X-ATH-Agent-ID": first.agent_id})
    assert old.status_code == 401 and old.json()["code"] == "TOKEN_REVOKED"

    code, output = athkit("agent", "revoke", "ath-shop", "--dev")
    assert code == 0 and "revoked" in output, output
    code, output = athkit("agent", "grants")
    assert "no grants" in output
    code, output = athkit("agent", "call", "ath-shop", "GET", "/products", "--dev")
    assert code == 1 and "connect first" in output


def test_connect_refusals_explain_what_to_do(shop: Shop, identity_url: str) -> None:
    code, output = athkit("agent", "connect", shop.url, "--provider", "ath-shop",
                          "--scopes", "orders:write", "--dev", "--no-wait")
    assert code == 1
    assert "SCOPE_NOT_APPROVED" in output and "what to do:" in output
    code, output = athkit("agent", "connect", "http://127.0.0.1:9", "--dev")
    assert code == 1 and "Traceback" not in output


def test_every_error_code_has_a_hint() -> None:
    assert set(ERROR_HINTS) == set(ErrorCode)
    assert all(0 < len(h) <= 200 and "\n" not in h for h in ERROR_HINTS.values())


def test_readme_session_runs_as_printed(
    shop: Shop, agent_home: AgentHome, user_at_browser: Callable[..., object], monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The README's console session, command by command (ports are the test's own)."""
    import re
    import shlex
    from pathlib import Path

    from athkit.client.agent import ATHAgent
    from athkit.client.identity_server import IdentityServer

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Build an agent", 1)[1]
    session = re.findall(r"```console\n(.*?)```", section, flags=re.S)[0]
    commands = [line[2:].split("#")[0].strip() for line in session.splitlines()
                if line.startswith("$ ")]
    assert [c.split()[:3] for c in commands][:2] == [["athkit", "serve-shop", "&"],
                                                    ["athkit", "agent", "init"]]
    port = free_port()
    identity = f"http://127.0.0.1:{port}"
    server = None
    try:
        for command in commands[1:]:
            argv = shlex.split(command.replace("http://127.0.0.1:8000", shop.url))[1:]
            if argv[:2] == ["agent", "serve-identity"]:
                vault = default_vault()
                server = IdentityServer(lambda: ATHAgent(vault).profile.documents(), port=port)
                server.start()
                continue
            if argv[:2] == ["agent", "init"]:
                argv += ["--url", identity]
            if argv[:2] == ["agent", "connect"]:
                user_at_browser(_pending_url)
            code, output = athkit(*argv)
            assert code == 0, (command, output)
            if argv[:2] == ["agent", "grants"]:
                assert "ath-shop" in output and "products:read cart:read cart:write" in output
    finally:
        if server is not None:
            server.stop()
    assert default_vault().grants() == []  # revoked at the end


def test_pending_registration_connects_once_the_operator_approved(
    tmp_path, identity_url: str, user_at_browser: Callable[..., object]
) -> None:  # type: ignore[no-untyped-def]
    from athkit.core.policy import ApprovalPolicy
    from tests.conftest import start_shop
    from tests.integration.test_native_flow import service_of

    shop = start_shop(tmp_path, policy=ApprovalPolicy(unknown_agents="pending"))
    try:
        code, output = athkit("agent", "connect", shop.url, "--provider", "ath-shop",
                              "--scopes", "products:read", "--dev", "--no-wait")
        assert code == 1 and "AGENT_UNAPPROVED" in output and "operator" in output
        [record] = default_vault().clients()
        assert record.agent_status == "pending"
        assert service_of(shop).decide_agent(record.client_id, "approved")
        user_at_browser(_pending_url)
        code, output = athkit("agent", "connect", shop.url, "--provider", "ath-shop",
                              "--scopes", "products:read", "--dev")
        assert code == 0 and "connected" in output, output
        assert default_vault().clients()[0].agent_status == "approved"
    finally:
        shop.server.stop()
