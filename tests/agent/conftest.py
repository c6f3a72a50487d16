"""Agent-side fixtures: a sealed file vault in a temp config dir, a published agent identity.

``agent_home`` points XDG_CONFIG_HOME at a temp dir and sets a fresh ATHKIT_VAULT_KEY (no OS
keyring exists on CI machines); ``published`` creates an agent in that vault and serves its
documents with the real development identity server on a free loopback port.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from athkit.client.agent import ATHAgent, init_agent
from athkit.client.identity_server import IdentityServer
from athkit.client.vault import KEY_ENV, PASSPHRASE_ENV, Vault, default_vault, generate_env_key
from athkit.demo.browser import HTTPBrowser
from athkit.web.serving import free_port
from tests.conftest import SHOP_PASSWORD
from tests.gateway.conftest import _node_setup, oidc_factory  # noqa: F401 - fixtures


@dataclass
class AgentHome:
    config: Path
    vault_path: Path
    env: dict[str, str]


@pytest.fixture
def agent_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AgentHome:
    config = tmp_path / "config"
    key = generate_env_key()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.setenv(KEY_ENV, key)
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    monkeypatch.delenv("ATHKIT_VAULT", raising=False)
    env = {"XDG_CONFIG_HOME": str(config), KEY_ENV: key}
    return AgentHome(config, config / "athkit" / "vault.json", env)


@dataclass
class Published:
    vault: Vault
    agent: ATHAgent
    server: IdentityServer
    agent_id: str


def publish_agent(vault: Vault, name: str = "Test agent") -> tuple[IdentityServer, str]:
    port = free_port()
    agent_id = f"http://127.0.0.1:{port}/.well-known/agent.json"
    init_agent(vault, name, {"name": "Test Dev", "id": "test-dev"}, agent_id=agent_id)
    server = IdentityServer(lambda: ATHAgent(vault).profile.documents(), port=port).start()
    return server, agent_id


@pytest.fixture
def published(agent_home: AgentHome) -> Iterator[Published]:
    vault = default_vault()
    server, agent_id = publish_agent(vault)
    try:
        yield Published(vault, ATHAgent(vault, dev_mode=True), server, agent_id)
    finally:
        server.stop()


def approve(url: str, *, scopes: list[str] | None = None, deny: bool = False) -> int:
    """Alice signs in at the shop and answers the consent page (real HTTP)."""
    browser = HTTPBrowser("alice", SHOP_PASSWORD)
    try:
        browser.open_consent(url)
        return browser.decide(approve=not deny, scopes=scopes).status_code
    finally:
        browser.close()


@pytest.fixture
def user_at_browser() -> Iterator[Callable[..., threading.Thread]]:
    """``later(get_url)``: a thread that waits for a consent URL, then approves it."""
    threads: list[threading.Thread] = []

    def later(get_url: Callable[[], str | None], **kwargs: object) -> threading.Thread:
        def run() -> None:
            import time

            for _ in range(200):
                url = get_url()
                if url:
                    approve(url, **kwargs)  # type: ignore[arg-type]
                    return
                time.sleep(0.05)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        threads.append(t)
        return t

    yield later
    for t in threads:
        t.join(timeout=10)
