"""Phase A decides for OAuth clients as for ATH agents: an unknown client stays pending until
an operator approves it; suspending it kills its tokens and refresh families at once; the
anonymous registration endpoint is rate limited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from athkit.native import ATH, ApprovalPolicy
from athkit.web.serving import BackgroundServer, free_port
from tests.oauth.support import ConsentingUser, query_of
from tests.oauth.test_oauth_rules import authorize_url, pkce


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[tuple[str, ATH]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = FastAPI()
    ath = ATH(
        app,
        current_user=lambda req: req.cookies.get("notes_user"),
        public_url=base,
        provider_id="notes",
        scopes={"notes:read": "Read your notes"},
        policy=ApprovalPolicy(unknown_agents="pending"),
        dev_mode=True,
        data_dir=tmp_path,
        registration_rate_limit=3,
        introspection_clients={"rs-1": "rs-secret-123"},
    )
    with BackgroundServer(app, port=port):
        yield base, ath
    ath.close()


def test_pending_until_the_operator_approves_then_suspension_kills_the_family(
    strict: tuple[str, ATH], bob: ConsentingUser
) -> None:
    base, ath = strict
    redirect = "http://127.0.0.1:40100/cb"
    reg: dict[str, Any] = httpx.post(f"{base}/oauth/register", json={
        "client_name": "stranger", "redirect_uris": [redirect],
        "token_endpoint_auth_method": "none"}).json()
    assert reg["ath_agent_status"] == "pending" and reg["ath_approved_scopes"] == []
    verifier, challenge = pkce()
    url = authorize_url(base, reg["client_id"], redirect, challenge)
    refused = httpx.get(url)
    assert refused.status_code == 303
    assert query_of(refused.headers["location"])["error"] == "unauthorized_client"

    ath.service.decide_agent(reg["client_id"], "approved", actor="operator")
    back = query_of(bob.answer(url))
    tok = httpx.post(f"{base}/oauth/token", data={
        "grant_type": "authorization_code", "code": back["code"], "redirect_uri": redirect,
        "client_id": reg["client_id"], "code_verifier": verifier}).json()
    rs = ("rs-1", "rs-secret-123")
    live = httpx.post(f"{base}/oauth/introspect", data={"token": tok["access_token"]}, auth=rs)
    assert live.json()["active"] is True and live.json()["client_id"] == reg["client_id"]

    ath.service.decide_agent(reg["client_id"], "suspended", actor="operator")
    for t in (tok["access_token"], tok["refresh_token"]):
        gone = httpx.post(f"{base}/oauth/introspect", data={"token": t}, auth=rs)
        assert gone.json() == {"active": False}
    refresh = httpx.post(f"{base}/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": tok["refresh_token"],
        "client_id": reg["client_id"]})
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    kinds = {a.client_id: a.client_kind for a in ath.service.store.list_agents()}
    assert kinds[reg["client_id"]] == "dcr"
    events = [a.event for a in ath.service.store.list_audit(limit=20)]
    assert "agent_registered" in events and "access_granted" in events


def test_registration_is_rate_limited_and_metadata_is_validated(
    strict: tuple[str, ATH]
) -> None:
    base, _ = strict
    bad = httpx.post(f"{base}/oauth/register", json={"redirect_uris": ["ftp://x/cb"]})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_redirect_uri"
    bad = httpx.post(f"{base}/oauth/register", json={
        "redirect_uris": ["http://127.0.0.1:1/cb"], "grant_types": ["client_credentials"]})
    assert bad.json()["error"] == "invalid_client_metadata"
    answers = [
        httpx.post(f"{base}/oauth/register", json={"redirect_uris": ["http://127.0.0.1:1/cb"]})
        for _ in range(2)
    ]
    assert answers[0].status_code == 201  # the third of 3 per minute from this address
    assert answers[-1].status_code == 429 and answers[-1].headers["retry-after"]
