"""The ``athkit`` command line: the demo as a real subprocess, operator commands, keygen."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from athkit.cli.demo import native as demo_module
from athkit.cli.main import app
from athkit.cli.trace import shorten_secret
from athkit.client import ATHClient
from athkit.core.policy import ApprovalPolicy
from athkit.crypto.keys import AgentKey
from athkit.demo.agent import DEVELOPER
from athkit.demo.browser import HTTPBrowser
from athkit.store import Database, Store
from athkit.web.serving import free_port
from tests.conftest import AgentIdentity, start_shop

runner = CliRunner()
WIDE = {"COLUMNS": "200", "NO_COLOR": "1"}


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(WIDE, PYTHONUNBUFFERED="1", **extra)
    env.pop("ATHKIT_SHOP_PASSWORD", None)
    env.update(extra)
    return env


def _athkit(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "athkit.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(**env),
    )


# -- athkit demo as a real process ---------------------------------------------------------


def test_demo_runs_every_step_and_exits_zero() -> None:
    proc = _athkit("demo", timeout=240)  # the bound is a hang guard, not a speed goal
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    for step in range(1, 8):
        assert f"Step {step}:" in out
    assert "/.well-known/ath-app.json" in out
    assert "/ath/agents/register" in out
    # Phase A: the untrusted agent is refused orders:write by the shop's policy.
    assert '"denied_scopes": ["orders:write"]' in out
    assert "code_challenge_method=S256" in out
    # Phase B: alice unticks cart:read on the consent page.
    assert "alice unticks cart:read" in out
    assert 'effective_scopes ["products:read", "cart:write"]' in out
    assert '"user_consented": ["products:read", "cart:write"]' in out
    assert "GET /api/products → 200" in out
    assert "POST /api/cart/items → 201" in out
    assert "GET /api/cart → 403 SCOPE_INSUFFICIENT" in out
    assert "POST /api/orders → 403 SCOPE_INSUFFICIENT" in out
    assert "/ath/proxy/ath-shop/api/products → 200" in out
    assert "TOKEN_REVOKED" in out and "401 TOKEN_REVOKED" in out
    assert "All 7 steps behaved as expected." in out
    assert "✗ expected" not in out


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("ath_secret_b_aUZgQ1w2e3r4t5y6", "ath_secret_b_aU…"),  # random part that starts "b_"
        ("ath_tk_ab_cdEFghIJklMNop", "ath_tk_ab_c…"),
        ("ath_secret_Zx9Q1w2e3r4t5y6u7i8", "ath_secret_Zx9Q…"),
        ("Bearer ath_tk_dIalq4LmNoPqRsTu", "Bearer ath_tk_dIal…"),
        ("gho_16C7e42F292c6912E7710c838347Ae178B4a", "gho_16C7…"),
    ],
)
def test_shown_secrets_keep_four_characters_after_the_type_prefix(value: str, shown: str) -> None:
    assert shorten_secret(value) == shown


def test_demo_never_prints_whole_secrets() -> None:
    out = _athkit("demo").stdout
    tokens = re.findall(r"ath_tk_[A-Za-z0-9_\-…]+", out)
    secrets = re.findall(r"ath_secret_[A-Za-z0-9_\-…]+", out)
    assert tokens and secrets
    assert all(t.endswith("…") and len(t) <= len("ath_tk_") + 5 for t in tokens), tokens
    assert all(s.endswith("…") and len(s) <= len("ath_secret_") + 5 for s in secrets), secrets
    # attestation JWTs are cut after their (public) header prefix
    assert not re.search(r"eyJ[A-Za-z0-9_\-]{30,}\.", out)


def test_demo_console_script_quiet(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("athkit")
    assert script.exists(), "install the package (pip install -e .) so the athkit script exists"
    data = tmp_path / "kept"
    proc = subprocess.run(
        [str(script), "demo", "--quiet", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All 7 steps behaved as expected." in proc.stdout
    assert "Step 1" not in proc.stdout  # quiet: only the verdict
    assert (data / "athkit.db").is_file()  # --data-dir is kept


def test_demo_exits_one_and_says_what_differed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend the walkthrough expected the shop to deny cart:read too: the real shop does not.
    monkeypatch.setattr(demo_module, "EXPECT_DENIED", ["cart:read", "orders:write"])
    result = runner.invoke(app, ["demo"], env=WIDE)
    assert result.exit_code == 1, result.stdout
    assert "did not behave as expected" in result.stdout
    assert "step 2 (Registration): expected denied ['cart:read', 'orders:write']" in result.stdout


def _start_browser_demo(password: str, *extra: str) -> tuple[subprocess.Popen[str], str, list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "athkit.cli", "demo", "--browser", "--wait", "30", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(ATHKIT_SHOP_PASSWORD=password),
    )
    assert proc.stdout is not None
    lines: list[str] = []
    seen_prompt = False
    for line in proc.stdout:
        lines.append(line)
        if "Your turn" in line:
            seen_prompt = True
        elif seen_prompt and line.startswith("http") and "/oauth/authorize?" in line:
            lines.append(proc.stdout.readline())  # the sign-in instructions
            return proc, line.strip(), lines
    proc.kill()
    raise AssertionError("no authorization URL printed:\n" + "".join(lines))


def _finish(proc: subprocess.Popen[str], lines: list[str]) -> str:
    assert proc.stdout is not None
    rest, _ = proc.communicate(timeout=60)
    return "".join(lines) + rest


def test_demo_browser_mode_waits_for_the_person() -> None:
    proc, url, lines = _start_browser_demo("pw-browser-test")
    try:
        assert "alice / pw-browser-test" in "".join(lines)
        time.sleep(1)  # the demo polls meanwhile: SESSION_NOT_READY until the person decides
        person = HTTPBrowser("alice", "pw-browser-test")
        page = person.open_consent(url)
        assert page.offered == ["products:read", "cart:read", "cart:write"]
        assert person.decide(approve=True).status_code == 200  # keeps cart:read ticked
        person.close()
        out = _finish(proc, lines)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert 'effective_scopes ["products:read", "cart:read", "cart:write"]' in out
    assert "GET /api/cart → 200" in out
    assert "POST /api/orders → 403 SCOPE_INSUFFICIENT" in out
    assert "401 TOKEN_REVOKED" in out


def test_demo_browser_mode_user_denies() -> None:
    proc, url, lines = _start_browser_demo("pw-deny-test")
    try:
        person = HTTPBrowser("alice", "pw-deny-test")
        person.open_consent(url)
        person.decide(approve=False)
        person.close()
        out = _finish(proc, lines)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out
    assert "USER_DENIED" in out
    assert "Step 6" not in out


# -- operator commands on a real store -------------------------------------------------------


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shop data dir left behind by a full demo run (one agent, a token, a revocation)."""
    data = tmp_path_factory.mktemp("demo-data")
    result = runner.invoke(app, ["demo", "--quiet", "--data-dir", str(data)], env=WIDE)
    assert result.exit_code == 0, result.stdout
    return data


def _only_agent(data: Path) -> str:
    db = Database(f"sqlite:///{data / 'athkit.db'}")
    try:
        (agent,) = Store(db).list_agents()
        return agent.client_id
    finally:
        db.dispose()


def test_agents_list_shows_the_demo_agent(demo_data: Path) -> None:
    client_id = _only_agent(demo_data)
    result = runner.invoke(app, ["agents", "list", "--data-dir", str(demo_data)], env=WIDE)
    assert result.exit_code == 0, result.stdout
    assert client_id in result.stdout
    assert "ATH Shop Demo Agent" in result.stdout
    assert "approved" in result.stdout and "orders:write" in result.stdout
    only_pending = runner.invoke(
        app, ["agents", "list", "--data-dir", str(demo_data), "--status", "pending"], env=WIDE
    )
    assert only_pending.exit_code == 0 and client_id not in only_pending.stdout


def test_audit_shows_the_demo_decisions(demo_data: Path) -> None:
    result = runner.invoke(app, ["audit", "--data-dir", str(demo_data)], env=WIDE)
    assert result.exit_code == 0, result.stdout
    for event in ("agent_registered", "access_granted", "token_revoked"):
        assert event in result.stdout
    limited = runner.invoke(app, ["audit", "--data-dir", str(demo_data), "--limit", "1"], env=WIDE)
    assert "1 rows" in limited.stdout and "agent_registered" not in limited.stdout


def test_agents_suspend_then_approve_writes_audit_rows(demo_data: Path) -> None:
    client_id = _only_agent(demo_data)
    args = ["--data-dir", str(demo_data)]
    suspended = runner.invoke(
        app, ["agents", "suspend", client_id, *args, "--reason", "test says so"], env=WIDE
    )
    assert suspended.exit_code == 0, suspended.stdout
    assert "suspended" in suspended.stdout
    approved = runner.invoke(app, ["agents", "approve", client_id, *args], env=WIDE)
    assert approved.exit_code == 0, approved.stdout

    db = Database(f"sqlite:///{demo_data / 'athkit.db'}")
    try:
        store = Store(db)
        agent = store.get_agent(client_id)
        assert agent is not None and agent.status == "approved"
        decisions = [
            r
            for r in store.list_audit(limit=10)
            if r.event in ("agent_approved", "agent_suspended")
        ]
        assert [r.outcome for r in decisions[:2]] == ["approved", "suspended"]
        assert decisions[1].denial_reason == "test says so"
        assert decisions[1].details["actor"] == "cli"
    finally:
        db.dispose()


def test_agents_decide_unknown_client_fails(demo_data: Path) -> None:
    result = runner.invoke(
        app, ["agents", "deny", "ath_nope", "--data-dir", str(demo_data)], env=WIDE
    )
    assert result.exit_code == 1
    assert "AGENT_NOT_REGISTERED" in result.stdout


def test_operator_commands_need_an_existing_store(tmp_path: Path) -> None:
    for args in (["agents", "list"], ["agents", "approve", "ath_x"], ["audit"]):
        result = runner.invoke(app, [*args, "--data-dir", str(tmp_path / "none")], env=WIDE)
        assert result.exit_code == 1
        assert "no athkit database" in result.stderr
    assert not (tmp_path / "none").exists()  # nothing was created by looking


def test_operator_approves_a_pending_agent_while_the_shop_runs(
    tmp_path: Path, new_agent: Callable[..., AgentIdentity]
) -> None:
    shop = start_shop(tmp_path, policy=ApprovalPolicy(auto_approve=False))
    try:
        agent = new_agent("pending")
        with ATHClient(shop.url, agent.agent_id, agent.key) as client:
            reg = client.register(
                DEVELOPER, [{"provider_id": "ath-shop", "scopes": ["products:read"]}]
            )
            assert reg.agent_status.value == "pending"
            data = ["--data-dir", str(tmp_path / "shop")]
            listed = runner.invoke(app, ["agents", "list", *data, "--status", "pending"], env=WIDE)
            assert reg.client_id in listed.stdout

            result = runner.invoke(
                app, ["agents", "approve", reg.client_id, *data, "--reason", "reviewed"], env=WIDE
            )
            assert result.exit_code == 0, result.stdout
            status = client.agent_status()
            assert status.agent_status.value == "approved"
            assert status.approved_providers[0].approved_scopes == ["products:read"]
            assert client.authorize("ath-shop", ["products:read"]).authorization_url

            log = runner.invoke(app, ["audit", *data, "--agent-id", agent.agent_id], env=WIDE)
            assert "agent_approved" in log.stdout and "reviewed" in log.stdout
    finally:
        shop.server.stop()


# -- keygen / version / packaging ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["P-256", "Ed25519"])
def test_keygen_writes_private_jwk_0600_and_prints_public(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "keys" / "agent.jwk"
    result = runner.invoke(app, ["keygen", "--type", kind, "--out", str(path)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    private = json.loads(path.read_text())
    assert "d" in private
    public = json.loads(result.stdout)
    assert "d" not in public and public["kid"] == private["kid"]
    assert public["alg"] == ("ES256" if kind == "P-256" else "Ed25519")
    key = AgentKey.load(path)
    assert key.public_jwk() == public


def test_keygen_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "agent.jwk"
    path.write_text("{}")
    path.chmod(0o644)
    refused = runner.invoke(app, ["keygen", "--out", str(path)])
    assert refused.exit_code == 1 and path.read_text() == "{}"
    forced = runner.invoke(app, ["keygen", "--out", str(path), "--force", "--kid", "k1"])
    assert forced.exit_code == 0
    assert AgentKey.load(path).kid == "k1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_version_and_python_dash_m() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and "athkit 0.1.0 (ATH 0.1)" in result.stdout
    proc = _athkit("version")
    assert proc.returncode == 0 and proc.stdout.strip() == "athkit 0.1.0 (ATH 0.1)"


BLOCK_SERVER = """
import sys
for name in ("fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "pydantic_settings"):
    sys.modules[name] = None  # as if the server extras were not installed
from athkit.cli.main import app
from athkit.cli.trace import shorten_secret
from typer.testing import CliRunner
r = CliRunner()
v = r.invoke(app, ["version"])
k = r.invoke(app, ["keygen", "--out", sys.argv[1]])
d = r.invoke(app, ["demo"])
a = r.invoke(app, ["agents", "list"])
print(v.exit_code, k.exit_code, d.exit_code, a.exit_code)
print(d.stderr)
"""


def test_cli_works_with_only_the_agent_side_install(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_SERVER, str(tmp_path / "k.jwk")],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr
    codes, _, message = proc.stdout.partition("\n")
    assert codes.split() == ["0", "0", "2", "2"]
    assert "pip install 'athkit[server]'" in message


def test_importing_the_cli_loads_no_server_module() -> None:
    code = "import sys, athkit.cli.main; print(sorted(m for m in ('fastapi','sqlalchemy','uvicorn') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_serve_shop_serves_discovery(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "athkit.cli",
            "serve-shop",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "shop"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90  # start-up on a loaded machine
        doc = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                doc = httpx.get(f"{url}/.well-known/ath-app.json", timeout=2).json()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert doc is not None and doc["app_id"] == "com.ath-shop.ecommerce"
        assert doc["api_base"] == f"{url}/api"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert f"ATH Shop at {url}" in out
    assert "alice / wonderland" in out
    assert "dev mode: on" in out
    assert (tmp_path / "shop" / "athkit.db").is_file()
