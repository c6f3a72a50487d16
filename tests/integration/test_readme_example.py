"""The README's "add ATH to my FastAPI app" example works as printed, end to end."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from athkit.client import ATHClient
from athkit.demo.browser import HTTPBrowser
from athkit.web.serving import BackgroundServer, free_port
from tests.conftest import AgentIdentity

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "notes_app.py"


def test_readme_shows_the_example_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert EXAMPLE.read_text() in blocks


def test_example_app_serves_the_whole_flow(
    tmp_path: Path, agent: AgentIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("ATHKIT_PUBLIC_URL", base)
    monkeypatch.setenv("ATHKIT_DEV_MODE", "true")
    monkeypatch.setenv("ATHKIT_DATA_DIR", str(tmp_path))
    spec = importlib.util.spec_from_file_location("notes_app", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    with BackgroundServer(module.app, port=port), ATHClient(base, agent.agent_id, agent.key) as client:
        assert client.discover().auth.scopes_supported == ["notes:read"]
        client.register(
            developer={"name": "athkit demo team", "id": "dev-athkit-demo"},
            providers=[{"provider_id": "notes", "scopes": ["notes:read"]}],
        )
        auth = client.authorize("notes", ["notes:read"])
        browser = HTTPBrowser("unused", "unused")
        browser.http.cookies.set("notes_user", "bob", domain="127.0.0.1")
        page = browser.open_consent(auth.authorization_url)
        assert "Read your notes" in page.text
        assert browser.decide(approve=True).status_code == 200
        token = client.exchange_token(auth.ath_session_id)
        assert token.effective_scopes == ["notes:read"]
        assert client.request("GET", "/notes").json() == {"user": "bob", "notes": ["buy milk"]}
        client.revoke()
    module.ath.close()

