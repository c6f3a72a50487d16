"""The full handshake over real HTTP, then encrypted and plain API calls with the session."""

from __future__ import annotations

import json
import os
import stat

import httpx

from athkit.crypto.channel import CONTENT_TYPE
from athkit.crypto.did import jwk_from_did_key, same_public_key
from tests.handshake.conftest import SCOPES, HSServer
from tests.handshake.support import Flow, Party, full_handshake


def test_full_handshake_and_encrypted_calls(server: HSServer, agent: Party, user: Party) -> None:
    meta = httpx.get(f"{server.url}/.well-known/ath-handshake.json").json()
    assert same_public_key(jwk_from_did_key(meta["server_did"]), meta["server_pubkey"])
    f = Flow(server.url, agent, server.clock)
    r = f.step1()
    assert r.status_code == 201
    assert r.json()["handshake_response"]["version"] == "0.1"
    r = f.step3()
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True and body["error"] is None
    assert set(body["metadata"]["scopes_supported"]) == set(SCOPES)
    assert body["metadata"]["require_user_confirmation"] is True
    from athkit.crypto.credentials import issue

    cred = issue(user.key, agent.did, SCOPES, 7200, f.now())
    r = f.step5(SCOPES, cred, ttl=7200)
    assert r.status_code == 202
    assert r.json()["status"] == "pending_user_confirmation"
    assert f.result().status_code == 202
    # the confirmation is listed for the user (CLI path: X-ATH-User-Proof), never for the agent
    from athkit.crypto.credentials import user_request_proof

    proof = user_request_proof(user.key, user.did, meta["server_did"], "GET", "/ath/confirmations")
    r = httpx.get(f"{server.url}/ath/confirmations", headers={"X-ATH-User-Proof": proof})
    assert r.status_code == 200
    [item] = r.json()["confirmations"]
    assert item["request_id"] == f.request_id
    assert item["client_info"] == {"name": "AI Shopping Assistant", "developer": "Acme AI"}
    assert item["requested_scopes"] == SCOPES
    # a replayed proof header is refused
    r = httpx.get(f"{server.url}/ath/confirmations", headers={"X-ATH-User-Proof": proof})
    assert r.status_code == 401 and r.json()["code"] == "NONCE_REPLAYED"
    # the user approves only goods:read
    r = f.confirm(user, True, ["goods:read"])
    assert r.status_code == 200 and r.json()["status"] == "approved"
    r = f.result(wait=5)
    assert r.status_code == 200
    result = r.json()
    assert result["scopes_granted"] == ["goods:read"]
    assert result["scopes_denied"] == [{"scope": "order:create", "reason": "user"}]
    assert result["ttl_granted"] == 3600  # min(7200 asked, credential ~7200, 1 h)
    assert result["restrictions"] == {"rate_limit": "100/second"}
    r, channel = f.step9()
    assert r.status_code == 200 and channel is not None
    done = r.json()
    assert done["token_type"] == "Bearer" and done["expires_in"] == 3600
    assert done["cipher_suite"] == "AES-256-GCM" and done["key_exchange_alg"] == "ECDH-P256"
    assert done["session_expires_at"] <= f.now() + 24 * 3600
    # a second complete is refused
    r2, _ = f.step9()
    assert r2.status_code == 409 and r2.json()["code"] == "HANDSHAKE_OUT_OF_ORDER"

    from tests.handshake.support import Session

    s = Session(server.url, agent, done["access_token"], done["session_id"], channel, f.http)
    r, data = s.call("GET", "/api/goods")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(CONTENT_TYPE)
    assert r.headers["x-ath-content-type"].startswith("application/json")
    assert "goods" not in r.text  # the body really is encrypted
    assert [g["id"] for g in data["goods"]][:1] == ["p-100"]
    # the scope the user did not approve is refused, and the refusal is encrypted too
    order = json.dumps({"items": [{"product_id": "p-100", "quantity": 1}]}).encode()
    r, data = s.call("POST", "/api/orders/create", order)
    assert r.status_code == 403 and data["code"] == "SCOPE_INSUFFICIENT"
    # plain calls with the token work as well
    r = s.plain("GET", "/api/goods")
    assert r.status_code == 200 and r.json()["goods"]
    r = httpx.get(f"{server.url}/api/goods", headers={**s.headers(), "X-ATH-Agent-ID": "x"})
    assert r.status_code == 403 and r.json()["code"] == "AGENT_IDENTITY_MISMATCH"
    # the opaque-token routes keep working side by side
    r = httpx.get(f"{server.url}/api/products", headers=s.headers())
    assert r.status_code == 403 and r.json()["code"] == "SCOPE_INSUFFICIENT"


def test_both_scopes_and_order(server: HSServer, agent: Party, user: Party) -> None:
    s = full_handshake(server.url, agent, user, SCOPES, server.clock)
    order = json.dumps({"items": [{"product_id": "p-101", "quantity": 2}]}).encode()
    r, data = s.call("POST", "/api/orders/create", order)
    assert r.status_code == 201, data
    assert data["items"] == [{"product_id": "p-101", "quantity": 2}]
    # the order is recorded for the user (their DID: no account linked)
    assert server.app.state.shop.orders[user.did][0]["id"] == data["id"]


def test_no_user_confirmation_policy(make_server, agent: Party, user: Party) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(require_user_confirmation=False)
    f = Flow(srv.url, agent, srv.clock)
    r = f.to_pending(user, ["goods:read"], ttl=600)
    assert r.status_code == 200
    assert r.json()["scopes_granted"] == ["goods:read"] and r.json()["ttl_granted"] == 600
    r, channel = f.step9()
    assert r.status_code == 200 and r.json()["expires_in"] == 600


def test_ed25519_agent(server: HSServer, user: Party) -> None:
    agent = Party.new("Ed25519")
    s = full_handshake(server.url, agent, user, ["goods:read"], server.clock)
    r, data = s.call("GET", "/api/goods")
    assert r.status_code == 200 and data["goods"]


def test_server_key_and_sealing_key_persisted_0600(
    server: HSServer, agent: Party, user: Party
) -> None:
    base = server.hs.settings.data_dir / "handshake"
    for name in ("server_key.jwk", "sealing.key"):
        mode = stat.S_IMODE(os.stat(base / name).st_mode)
        assert mode == 0o600, (name, oct(mode))
    s = full_handshake(server.url, agent, user, ["goods:read"], server.clock)
    row = server.hs.store.get_session(s.session_id)
    assert row is not None and row.sealed_keys.startswith("v1.")
    # the keys at rest are sealed, not the raw 64 bytes
    k_c2s, k_s2c = server.hs.session_keys(row)
    from tests.handshake.support import b64

    assert b64(k_c2s) not in row.sealed_keys and b64(k_c2s + k_s2c) not in row.sealed_keys


def test_did_web_agent_and_server(make_server, user: Party) -> None:  # type: ignore[no-untyped-def]
    """did:web on both sides: the agent's document is fetched through the SSRF guard (dev
    mode allows loopback over http); the server publishes its own at /.well-known/did.json."""
    from urllib.parse import quote

    from fastapi import FastAPI

    from athkit.crypto.did import did_document
    from athkit.web.serving import BackgroundServer

    docs = FastAPI()
    key = Party.new()
    with BackgroundServer(docs) as host:
        did = "did:web:" + quote(f"127.0.0.1:{host.port}", safe="") + ":agents:shopper"
        doc = did_document(did, key.pub)
        docs.get("/agents/shopper/did.json")(lambda: doc)
        agent = Party(key.key, did)
        srv = make_server(use_did_web=True)
        server_did = srv.hs.identity.did
        assert server_did == "did:web:" + quote(srv.url.split("//")[1], safe="")
        r = httpx.get(f"{srv.url}/.well-known/did.json")
        assert r.status_code == 200 and r.json()["id"] == server_did
        s = full_handshake(srv.url, agent, user, ["goods:read"], srv.clock)
        assert s.plain("GET", "/api/goods").status_code == 200
        # a did:web whose document names another key is refused at step 1
        liar = Party(Party.new().key, did)
        r = Flow(srv.url, liar, srv.clock).step1()
        assert r.status_code == 401 and r.json()["code"] == "INVALID_SIGNATURE"
        # a did:web that cannot be fetched
        ghost = Party(key.key, did.replace("shopper", "ghost"))
        r = Flow(srv.url, ghost, srv.clock).step1()
        assert r.status_code == 401 and r.json()["code"] == "INVALID_SIGNATURE"
