"""``athkit demo --gateway`` as a real process, and the packaged upstream's node install."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from athkit.cli.demo import gateway as demo_module
from athkit.cli.main import app
from athkit.demo import upstream

WIDE = {"COLUMNS": "200", "NO_COLOR": "1"}


def _run(*args: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **WIDE, "PYTHONUNBUFFERED": "1", **env},
    )


def test_demo_gateway_runs_every_step_and_exits_zero(_node_setup: str) -> None:
    proc = _run("-m", "athkit.cli", "demo", "--gateway")
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    for step in range(1, 8):
        assert f"Step {step}:" in out
    assert "GET http://127.0.0.1:" in out and "/.well-known/ath.json" in out
    assert '"available_scopes": ["mail:read", "mail:send", "mail:delete"]' in out
    assert '"denied_scopes": ["mail:delete"]' in out
    assert "alice unticks mail:send and authorizes ['mail:read']" in out
    assert "scope=openid offline_access api:read code_challenge_method=S256" in out
    assert re.search(r"browser POST http://127\.0\.0\.1:\d+/interaction/", out)  # provider login
    assert "/ath/callback?code=" in out
    assert '"user_consented": ["mail:read"]' in out and 'effective_scopes ["mail:read"]' in out
    assert "GET /ath/proxy/mail/v1/me → 200" in out
    assert '"sub": "alice", "scope": "api:read"' in out  # Example Mail's answer, via the gateway
    assert "POST /ath/proxy/mail/v1/messages → 403 SCOPE_INSUFFICIENT" in out
    assert "DELETE /ath/proxy/mail/v1/messages/1 → 403 SCOPE_INSUFFICIENT" in out
    assert "GET /ath/proxy/mail/v1/admin/users → 403 ROUTE_NOT_MAPPED" in out
    assert "✓ 401 TOKEN_REVOKED" in out
    assert "400 invalid_grant (the upstream grant was revoked)" in out
    assert "All 7 steps behaved as expected." in out
    assert "✗ expected" not in out
    # No whole secret on screen: ATH tokens and client secrets are cut.
    assert all(t.endswith("…") for t in re.findall(r"ath_tk_[A-Za-z0-9_\-…]+", out))
    assert all(t.endswith("…") for t in re.findall(r"ath_secret_[A-Za-z0-9_\-…]+", out))


def test_demo_gateway_exits_one_and_lists_differences(
    _node_setup: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo_module, "GW_EXPECT_DENIED", ["mail:send", "mail:delete"])
    result = CliRunner().invoke(app, ["demo", "--gateway", "--quiet"], env=WIDE)
    assert result.exit_code == 1, result.stdout
    assert "did not behave as expected" in result.stdout
    assert "step 2 (Registration): expected denied ['mail:send', 'mail:delete']" in result.stdout


def test_demo_gateway_without_node_says_so(tmp_path: Path) -> None:
    # A fresh install dir (nothing cached) and a PATH without node or npm.
    proc = _run(
        "-m",
        "athkit.cli",
        "demo",
        "--gateway",
        timeout=60,
        PATH=str(tmp_path),
        ATHKIT_UPSTREAM_NODE_MODULES=str(tmp_path / "nm"),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "node is not on PATH" in proc.stdout
    assert "Node.js >= 20" in proc.stdout


def test_demo_gateway_refuses_browser_mode() -> None:
    result = CliRunner().invoke(app, ["demo", "--gateway", "--browser"], env=WIDE)
    assert result.exit_code == 2


def test_npm_ci_into_an_explicit_dir_then_the_provider_runs_from_there(
    _node_setup: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fresh-machine path: ``python -m athkit.demo.upstream --install`` into an empty dir."""
    target = tmp_path / "upstream" / "node_modules"
    proc = _run("-m", "athkit.demo.upstream", "--install", ATHKIT_UPSTREAM_NODE_MODULES=str(target))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "installing the upstream OpenID provider (npm ci)" in proc.stderr
    assert proc.stdout.strip() == str(target.parent)
    assert (target / "oidc-provider" / "package.json").is_file()

    monkeypatch.setenv(upstream.NODE_MODULES_ENV, str(target))
    assert upstream.install_dir() == target.parent and upstream.is_installed()
    again = _run(
        "-m", "athkit.demo.upstream", "--install", ATHKIT_UPSTREAM_NODE_MODULES=str(target)
    )
    assert again.returncode == 0 and "installing" not in again.stderr  # done once only
    with upstream.start_oidc_provider(["http://127.0.0.1:9/cb"]) as op:
        assert op.process.args[1] == str(target.parent / "provider.js")  # type: ignore[index]
        assert op.metadata["issuer"] == op.issuer


def test_package_ships_the_provider_files() -> None:
    for name in ("provider.js", "package.json", "package-lock.json"):
        assert (upstream.PACKAGE_DIR / name).is_file(), name
    assert not (upstream.PACKAGE_DIR / "node_modules").exists()  # installs go to the cache


def test_demo_gateway_serve_keeps_the_stack_up_until_stopped(
    _node_setup: str, tmp_path: Path
) -> None:
    import signal
    import time

    import httpx

    from athkit.web.serving import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "athkit.cli", "demo", "--gateway", "--serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **WIDE, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_path)},
    )
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 180
    for line in proc.stdout:
        seen.append(line)
        if "Press Ctrl-C" in line or time.monotonic() > deadline:
            break
    try:
        assert any("Press Ctrl-C" in line for line in seen), "".join(seen)
        gw = f"http://127.0.0.1:{port}"
        doc = httpx.get(f"{gw}/.well-known/ath.json", timeout=10).json()
        assert [p["provider_id"] for p in doc["supported_providers"]] == ["mail"]
        # The proxy is up and refuses a caller without a token, as a gateway must.
        refused = httpx.get(f"{gw}/ath/proxy/mail/v1/me", timeout=10)
        assert refused.status_code == 401 and refused.json()["code"]
        assert list(tmp_path.glob("athkit-demo-*")), "data lives in a temp dir while it runs"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert list(tmp_path.glob("athkit-demo-*")) == []
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/.well-known/ath.json", timeout=2)


def test_serve_needs_gateway() -> None:
    result = CliRunner().invoke(app, ["demo", "--serve"], env=WIDE)
    assert result.exit_code == 2 and "serve-shop" in result.output
