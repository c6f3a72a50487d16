"""The newcomer path: the first commands a new user runs answer in one line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from athkit.web.serving import free_port

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATHKIT_")}
    env.update(extra)
    return env


def test_example_without_public_url_fails_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT), "examples.notes_app:app",
         "--port", str(free_port())],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "ATHKIT_PUBLIC_URL" in lines[0] and "ATHKIT_DEV_MODE" in lines[0]


def test_example_in_dev_mode_serves_with_the_default_url(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT), "examples.notes_app:app",
         "--port", str(port)],
        cwd=tmp_path, env=_env(ATHKIT_DEV_MODE="1"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                doc = httpx.get(f"http://127.0.0.1:{port}/.well-known/ath-app.json", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "example did not start"
                time.sleep(0.2)
        assert doc.status_code == 200
        assert "http://127.0.0.1:8000/ath/" in doc.text
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert "ATHKIT_PUBLIC_URL is not set" in output and "Traceback" not in output


def test_gateway_module_imports_without_authlib_warnings() -> None:
    # httpx2 absent is what makes Authlib warn (it falls back to httpx); block it for the run.
    code = "import sys; sys.modules['httpx2'] = None; import athkit.gateway.upstream"
    proc = subprocess.run(
        [sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr


def _cli_without(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    code = (
        f"import sys; sys.modules[{module!r}] = None; sys.argv = ['athkit', *sys.argv[1:]]\n"
        "from athkit.cli.main import app; app()"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
        env=_env(COLUMNS="200"),
    )


def test_gateway_commands_on_an_agent_only_install_give_the_install_hint(tmp_path: Path) -> None:
    for command in ("check", "serve"):
        proc = _cli_without("authlib", "gateway", command, "--config", str(tmp_path / "g.toml"))
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert "pip install 'athkit[server]'" in proc.stderr and "authlib" in proc.stderr


def test_registry_serve_without_server_extras_gives_the_install_hint() -> None:
    proc = _cli_without("uvicorn", "registry", "serve")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "pip install 'athkit[server]'" in proc.stderr


def test_discover_of_http_url_mentions_dev() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "athkit.cli", "agent", "discover", "--service",
         f"http://127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=60, env=_env(COLUMNS="200"),
    )
    assert proc.returncode == 1
    assert "https" in proc.stderr and "--dev" in proc.stderr


def test_demo_killed_with_sigterm_removes_its_temp_dir(tmp_path: Path) -> None:
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-m", "athkit.cli", "demo", "--browser"],
        env=_env(TMPDIR=str(tmp_path), COLUMNS="200"), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 90
    for line in proc.stdout:  # waits for the demo to reach the consent step
        seen.append(line)
        if "Your turn" in line or time.monotonic() > deadline:
            break
    assert any("Your turn" in line for line in seen), "".join(seen)
    assert list(tmp_path.glob("athkit-demo-*")), "the demo keeps its data in a temp dir"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert list(tmp_path.glob("athkit-demo-*")) == []
