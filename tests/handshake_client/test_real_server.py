"""The agent's handshake client and ``athkit user`` against a real ATH Shop (uvicorn, SQLite)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from athkit.cli.user import answer_confirmation, fetch_server_did, list_confirmations, user_app
from athkit.client import ATHClient
from athkit.client.errors import (
    ConfirmationTimeoutError,
    CredentialAgentMismatchError,
    CredentialExpiredError,
    CredentialInvalidError,
    CredentialScopeExceededError,
    UserDeniedError,
)
from athkit.client.handshake import PendingConfirmation
from athkit.crypto.credentials import SignedCredential, issue
from athkit.crypto.did import did_key_from_jwk
from athkit.crypto.keys import AgentKey
from athkit.demo.shop import create_shop_app, shop_handshake_policy
from athkit.web.serving import BackgroundServer, free_port

SCOPES = ["goods:read", "order:create"]


def _shop(tmp: Path, **policy: Any) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_shop_app(
        public_url=url,
        data_dir=tmp,
        dev_mode=True,
        password="pw-test",
        handshake=shop_handshake_policy(**policy),
    )
    with BackgroundServer(app, port=port):
        yield url


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _shop(tmp_path_factory.mktemp("shop"), rate_limit="1000/second")


@pytest.fixture(scope="module")
def web_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """did:web server identity and a 2-second confirmation window."""
    yield from _shop(tmp_path_factory.mktemp("webshop"), use_did_web=True, confirmation_ttl=2)


class Actors:
    def __init__(self, url: str) -> None:
        self.url = url
        self.agent = AgentKey.generate()
        self.agent_did = did_key_from_jwk(self.agent.public_jwk())
        self.user = AgentKey.generate("Ed25519")
        self.http = httpx.Client(timeout=30.0)
        self.user_http = httpx.Client(timeout=10.0)
        self.client = ATHClient(
            url, self.agent_did, self.agent, http_client=self.http, api_base=url + "/api"
        )

    def cred(self, scopes: list[str] = SCOPES, ttl: int = 7200, **kw: Any) -> SignedCredential:
        return issue(self.user, kw.get("agent", self.agent_did), scopes, ttl, now=kw.get("now"))

    def answer(self, approve: list[str] | None) -> Any:
        def on_pending(p: PendingConfirmation) -> None:
            sd = fetch_server_did(self.user_http, self.url)
            assert sd == p.server_did
            items = [
                i
                for i in list_confirmations(self.user_http, self.url, self.user, sd)
                if i["request_id"] == p.request_id
            ]
            assert len(items) == 1
            answer_confirmation(self.user_http, self.url, self.user, items[0], approve)

        return on_pending

    def close(self) -> None:
        self.http.close()
        self.user_http.close()


@pytest.fixture
def actors(shop: str) -> Iterator[Actors]:
    a = Actors(shop)
    yield a
    a.close()


def test_full_handshake_encrypted_calls_and_replay(actors: Actors) -> None:
    session = actors.client.handshake(
        SCOPES, actors.cred(), on_pending=actors.answer(["goods:read"])
    )
    assert session.scopes_granted == ["goods:read"]
    assert {"scope": "order:create", "reason": "user"} in session.result.scopes_denied
    assert 0 < session.result.ttl_granted <= 3600
    r = session.get("/goods")
    assert r.status_code == 200 and r.json()["goods"]
    # order:create was not approved by the user: refused, over the encrypted channel
    from athkit.client.errors import ScopeInsufficientError

    with pytest.raises(ScopeInsufficientError):
        session.post("/orders/create", json={"items": [{"product_id": "p-100", "quantity": 1}]})
    # a captured envelope sent again is refused
    wire: list[httpx.Request] = []
    actors.http.event_hooks["request"] = [wire.append]
    session.get("/goods")
    sent = wire[-1]
    # the same ciphertext re-sent as a POST: the method is in the AAD
    moved = actors.http.post(str(sent.url), content=sent.content, headers=sent.headers)
    assert moved.status_code == 400 and moved.json()["code"] == "ENCRYPTION_ERROR"
    replay = actors.http.request("GET", str(sent.url), content=sent.content, headers=sent.headers)
    assert replay.status_code == 409
    env = json.loads(sent.content)
    env["seq"] += 100
    headers = {k: v for k, v in sent.headers.items() if k.lower() != "content-length"}
    tampered = actors.http.request(
        "GET", str(sent.url), content=json.dumps(env).encode(), headers=headers
    )
    assert tampered.status_code == 400
    assert session.get("/goods").status_code == 200  # the session survives refused messages


def test_credential_refusals(actors: Actors) -> None:
    c = actors.client
    with pytest.raises(CredentialScopeExceededError):
        c.handshake(SCOPES, actors.cred(["goods:read"]))
    with pytest.raises(CredentialAgentMismatchError):
        c.handshake(
            SCOPES, actors.cred(agent="did:key:zDnaerx9CtbPJ1q36T5Ln5wYt3MQYeGRG5ehnPAmxcf5mDZpv")
        )
    with pytest.raises(CredentialExpiredError):
        c.handshake(SCOPES, actors.cred(ttl=10, now=1_000_000))
    good = actors.cred(["goods:read"])
    forged = SignedCredential({**good.credential, "scopes": SCOPES}, good.signature)
    with pytest.raises(CredentialInvalidError):
        c.handshake(SCOPES, forged)


def test_user_denies(actors: Actors) -> None:
    with pytest.raises(UserDeniedError):
        actors.client.handshake(SCOPES, actors.cred(), on_pending=actors.answer(None))


def test_did_web_server_and_confirmation_timeout(web_shop: str) -> None:
    a = Actors(web_shop)
    try:
        # the client resolves the shop's did:web (loopback: http allowed) before step 3 ...
        seen: list[str] = []
        with pytest.raises(ConfirmationTimeoutError):
            a.client.handshake(
                SCOPES, a.cred(), wait=20, on_pending=lambda p: seen.append(p.server_did)
            )
        assert seen and seen[0].startswith("did:web:127.0.0.1%3A")
    finally:
        a.close()


def test_user_cli_keygen_grant_confirm(shop: str, tmp_path: Path) -> None:
    runner = CliRunner()
    key_file = tmp_path / "user.jwk"
    res = runner.invoke(user_app, ["keygen", "--out", str(key_file)])
    assert res.exit_code == 0, res.output
    user_did = res.output.strip()
    assert user_did.startswith("did:key:zDn") and key_file.stat().st_mode & 0o777 == 0o600
    agent = AgentKey.generate()
    agent_did = did_key_from_jwk(agent.public_jwk())
    cred_file = tmp_path / "cred.json"
    res = runner.invoke(
        user_app,
        [
            "grant",
            "--key",
            str(key_file),
            "--agent",
            agent_did,
            "--scopes",
            "goods:read,order:create",
            "--ttl",
            "2h",
            "--out",
            str(cred_file),
        ],
    )
    assert res.exit_code == 0, res.output
    signed = json.loads(cred_file.read_text())
    assert signed["credential"]["user_did"] == user_did
    assert signed["credential"]["expires_at"] - signed["credential"]["issued_at"] == 7200

    def on_pending(p: PendingConfirmation) -> None:
        listed = runner.invoke(
            user_app, ["confirm", "--service", shop, "--key", str(key_file), "--json"]
        )
        assert listed.exit_code == 0, listed.output
        items = json.loads(listed.output)["confirmations"]
        assert [i["request_id"] for i in items] == [p.request_id]
        done = runner.invoke(
            user_app, ["confirm", "--service", shop, "--key", str(key_file), "--approve", "all"]
        )
        assert done.exit_code == 0, done.output
        assert "approved" in done.output

    with httpx.Client(timeout=30.0) as http:
        client = ATHClient(shop, agent_did, agent, http_client=http, api_base=shop + "/api")
        session = client.handshake(SCOPES, signed, on_pending=on_pending)
        assert sorted(session.scopes_granted) == sorted(SCOPES)
        r = session.post("/orders/create", json={"items": [{"product_id": "p-101", "quantity": 2}]})
        assert r.status_code == 201 and r.json()["status"] == "placed"
    res = runner.invoke(user_app, ["confirm", "--service", shop, "--key", str(key_file)])
    assert res.exit_code == 0 and "no pending confirmations" in res.output
    res = runner.invoke(
        user_app, ["confirm", "--service", "http://example.com", "--key", str(key_file)]
    )
    assert res.exit_code == 1  # plain http to a non-loopback host is refused
