"""The user's side: linking a key to an account, listing and answering, and the webhook."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
from fastapi import FastAPI, Request

from athkit.crypto.credentials import new_nonce, user_key_link_object
from athkit.crypto.did import jwk_from_did_key
from athkit.crypto.signing import sign_object, verify
from athkit.web.serving import BackgroundServer
from tests.handshake.conftest import SCOPES, HSServer
from tests.handshake.support import Flow, Party


def login(url: str) -> httpx.Client:
    c = httpx.Client(base_url=url, timeout=30)
    r = c.post("/login", data={"username": "alice", "password": "wonderland-test", "next": "/"})
    assert r.status_code == 303
    return c


def link(
    c: httpx.Client, hs_did: str, user: Party, account: str = "alice", **kw: Any
) -> httpx.Response:
    obj = user_key_link_object(user.did, account, hs_did, new_nonce(), int(time.time()))
    obj.update(kw)
    body = {
        "user_did": user.did,
        "public_jwk": user.pub,
        "signature": sign_object(user.key, obj),
        "nonce": obj["nonce"],
        "timestamp": obj["timestamp"],
    }
    return c.post("/ath/user/keys", json=body)


def test_link_key_then_confirm_as_account(server: HSServer, agent: Party, user: Party) -> None:
    did = server.hs.identity.did
    # not signed in
    anon = httpx.Client(base_url=server.url, timeout=30)
    assert anon.post("/ath/user/keys", json={}).json()["code"] == "USER_DENIED"
    assert anon.get("/ath/confirmations").status_code == 401
    r = anon.get("/ath/confirmations/page")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    c = login(server.url)
    # signed for another account
    assert link(c, did, user, account="mallory").json()["code"] == "INVALID_SIGNATURE"
    # signed for another server
    r = link(c, did, user, server_did="did:key:zOther")
    assert r.json()["code"] == "INVALID_SIGNATURE"
    r = link(c, did, user)
    assert r.status_code == 201 and r.json() == {
        "user_did": user.did,
        "account": "alice",
        "linked": True,
    }
    # a cross-origin POST is refused
    r = c.post("/ath/user/keys", json={}, headers={"Origin": "http://evil.example"})
    assert r.json()["code"] == "INVALID_REQUEST"
    f = Flow(server.url, agent, server.clock)
    assert f.to_pending(user, SCOPES).status_code == 202
    items = c.get("/ath/confirmations").json()["confirmations"]
    assert [i["request_id"] for i in items] == [f.request_id]
    page = c.get("/ath/confirmations/page")
    assert page.status_code == 200 and f.request_id in page.text
    assert "AI Shopping Assistant" in page.text and "as stated by the agent" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert f.confirm(user, True, SCOPES).status_code == 200
    assert c.get("/ath/confirmations").json()["confirmations"] == []
    r, channel = f.step9()
    assert r.status_code == 200 and channel is not None
    from tests.handshake.support import Session

    done = r.json()
    s = Session(server.url, agent, done["access_token"], done["session_id"], channel, f.http)
    body = json.dumps({"items": [{"product_id": "p-102", "quantity": 1}]}).encode()
    r, order = s.call("POST", "/api/orders/create", body)
    assert r.status_code == 201
    # the session acts for the linked account, not for a bare DID
    assert server.app.state.shop.orders["alice"][0]["id"] == order["id"]


def test_key_linked_to_another_account(server: HSServer, user: Party) -> None:
    c = login(server.url)
    assert link(c, server.hs.identity.did, user).status_code == 201
    assert link(c, server.hs.identity.did, user).status_code == 201  # idempotent
    server.hs.store.user_keys_of("alice")
    # the key page lists it
    page = c.get("/ath/user/keys")
    assert page.status_code == 200 and user.did in page.text


class Receiver:
    """A webhook receiver on 127.0.0.1 that records what it gets."""

    def __init__(self) -> None:
        self.app = FastAPI()
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.event = threading.Event()

        @self.app.post("/hook")
        async def hook(request: Request) -> dict[str, bool]:
            self.got.append((dict(request.headers), await request.body()))
            self.event.set()
            return {"ok": True}


def test_webhook_is_signed_and_answerable(make_server, agent: Party, user: Party) -> None:  # type: ignore[no-untyped-def]
    rec = Receiver()
    with BackgroundServer(rec.app) as hook_server:
        srv: HSServer = make_server(webhook_url=f"{hook_server.url}/hook")
        f = Flow(srv.url, agent, srv.clock)
        assert f.to_pending(user, SCOPES).status_code == 202
        assert rec.event.wait(10)
    headers, body = rec.got[0]
    # the receiver trusts the server's DID (pinned) and checks the signature over ts.body
    server_did = headers["x-ath-server-did"]
    assert server_did == srv.hs.identity.did
    ts = headers["x-ath-webhook-timestamp"]
    assert abs(int(ts) - time.time()) < 60
    jwk = jwk_from_did_key(server_did)
    assert verify(jwk, ts.encode() + b"." + body, headers["x-ath-signature"])
    assert not verify(jwk, ts.encode() + b"." + body + b" ", headers["x-ath-signature"])
    req = json.loads(body)
    assert req["request_id"] == f.request_id and req["client_did"] == agent.did
    assert req["requested_scopes"] == SCOPES
    assert req["client_info"] == {"name": "AI Shopping Assistant", "developer": "Acme AI"}
    assert req["handshake_id"] == f.handshake_id and req["user_did"] == user.did
    # the push receiver answers for the user (with the user's key)
    f.expires_at = req["expires_at"]
    assert f.confirm(user, True, ["order:create"]).status_code == 200
    assert f.result().json()["scopes_granted"] == ["order:create"]
