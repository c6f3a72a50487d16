"""The 9-step handshake with the user's credential from the vault (put there by
``athkit user grant --store-for``) and the session recorded in the vault, at a real ATH Shop."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from athkit.cli.main import app
from athkit.cli.user import answer_confirmation, fetch_server_did, list_confirmations
from athkit.client.agent import NotConnected
from athkit.client.agent_handshake import agent_did, handshake
from athkit.client.handshake import PendingConfirmation
from athkit.client.vault import default_vault
from athkit.crypto.keys import AgentKey
from tests.agent.conftest import Published
from tests.conftest import Shop

SCOPES = ["goods:read", "order:create"]


def test_handshake_with_vault_credential(published: Published, shop: Shop, tmp_path: Path) -> None:
    agent = published.agent
    with pytest.raises(NotConnected, match="athkit user grant"):
        handshake(agent, shop.url, SCOPES)

    user_key = tmp_path / "user.jwk"
    runner = CliRunner()
    made = runner.invoke(app, ["user", "keygen", "--out", str(user_key), "--kind", "Ed25519"])
    assert made.exit_code == 0, made.output
    granted = runner.invoke(app, ["user", "grant", "--key", str(user_key), "--agent",
                                  agent_did(agent), "--scopes", ",".join(SCOPES),
                                  "--store-for", shop.url])
    assert granted.exit_code == 0, granted.output
    # the credential is sealed in the vault, not in a plain file beside it
    assert not (tmp_path / "config" / "athkit" / "user_credentials.json").exists()
    assert default_vault().find_user_credential(shop.url, scopes=SCOPES) is not None

    user = AgentKey.load(user_key)
    with httpx.Client(timeout=10) as user_http:

        def on_pending(p: PendingConfirmation) -> None:
            sd = fetch_server_did(user_http, shop.url)
            [item] = [i for i in list_confirmations(user_http, shop.url, user, sd)
                      if i["request_id"] == p.request_id]
            answer_confirmation(user_http, shop.url, user, item, ["goods:read"])

        session = handshake(agent, shop.url, SCOPES, on_pending=on_pending)
    assert session.scopes_granted == ["goods:read"]
    assert session.get("/goods").status_code == 200
    stored = default_vault().handshake(shop.url)
    assert stored is not None and stored["scopes_granted"] == ["goods:read"]
    assert stored["session_id"] == session.session_id
    assert "keys" not in json.dumps(stored)
