"""Client ID metadata documents are fetched like identity documents (SSRF guard, size and
time limits, ≤5 min cache) and validated; the remote MCP token verifier over RFC 7662;
refresh-token idle and lifetime limits; the console shows every client kind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import FastAPI

from athkit.integrations.mcp import AthkitTokenVerifier
from athkit.native import ATH, ApprovalPolicy
from athkit.web.serving import BackgroundServer, free_port
from tests.oauth.conftest import NotesService
from tests.oauth.support import ConsentingUser, MetadataHost, query_of
from tests.oauth.test_oauth_rules import authorize_url, pkce


def test_bad_metadata_documents_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tls: tuple[Path, MetadataHost]
) -> None:
    ca, host = tls
    redirect = "http://127.0.0.1:40200/cb"
    monkeypatch.setenv("ATHKIT_IDENTITY_MAX_BYTES", "2048")
    svc = NotesService(tmp_path, monkeypatch, ca)
    try:
        _, challenge = pkce()
        cases = {
            "/other.json": {"redirect_uris": [redirect]},  # names another client_id below
            "/secret.json": {"redirect_uris": [redirect],
                             "token_endpoint_auth_method": "client_secret_post"},
            "/big.json": {"redirect_uris": [redirect], "client_name": "x" * 5000},
            "/noredirect.json": {"client_name": "no redirects"},
        }
        for path, fields in cases.items():
            url = host.publish(path, **fields)
            if path == "/other.json":
                host.docs[path]["client_id"] = host.base + "/someone-else.json"
            resp = httpx.get(authorize_url(svc.base, url, redirect, challenge))
            assert resp.status_code == 401, (path, resp.text)
            assert resp.json()["error"] == "invalid_client"
        missing = httpx.get(authorize_url(svc.base, host.base + "/absent.json", redirect,
                                          challenge))
        assert missing.status_code == 401
        assert svc.module.ath.service.store.list_agents() == []
        # a good one is admitted once and cached: a changed document is not refetched at once
        good = host.publish("/good.json", client_name="Good", redirect_uris=[redirect])
        assert httpx.get(authorize_url(svc.base, good, redirect, challenge)).status_code == 303
        host.docs["/good.json"]["redirect_uris"] = ["http://127.0.0.1:1/elsewhere"]
        assert httpx.get(authorize_url(svc.base, good, redirect, challenge)).status_code == 303
        kinds = [(a.agent_id, a.client_kind, a.developer_name)
                 for a in svc.module.ath.service.store.list_agents()]
        assert kinds == [(good, "cimd", host.base.removeprefix("https://"))]
    finally:
        svc.close()


@pytest.fixture
def clocked(tmp_path: Path) -> Iterator[tuple[str, ATH, list[float]]]:
    import time

    now = [time.time()]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = FastAPI()
    ath = ATH(app, current_user=lambda req: req.cookies.get("notes_user"), public_url=base,
              provider_id="notes", scopes={"notes:read": "Read your notes"},
              policy=ApprovalPolicy(auto_approve=True), dev_mode=True, data_dir=tmp_path,
              refresh_token_idle_ttl=600, refresh_token_ttl=1800, clock=lambda: now[0],
              introspection_clients={"mcp-rs": "rs-secret-456"}, operator=lambda req: True)
    with BackgroundServer(app, port=port):
        yield base, ath, now
    ath.close()


def _tokens(base: str, bob: ConsentingUser) -> tuple[str, dict[str, str]]:
    redirect = "http://127.0.0.1:40201/cb"
    reg = httpx.post(f"{base}/oauth/register", json={
        "client_name": "clocked", "redirect_uris": [redirect],
        "token_endpoint_auth_method": "none"}).json()
    verifier, challenge = pkce()
    back = query_of(bob.answer(authorize_url(base, reg["client_id"], redirect, challenge,
                                             resource=f"{base}/api")))
    tok = httpx.post(f"{base}/oauth/token", data={
        "grant_type": "authorization_code", "code": back["code"], "redirect_uri": redirect,
        "client_id": reg["client_id"], "code_verifier": verifier}).json()
    return reg["client_id"], tok


def test_refresh_idle_and_lifetime_limits(
    clocked: tuple[str, ATH, list[float]], bob: ConsentingUser
) -> None:
    base, _, now = clocked
    client_id, tok = _tokens(base, bob)

    def refresh(rt: str) -> httpx.Response:
        return httpx.post(f"{base}/oauth/token", data={
            "grant_type": "refresh_token", "refresh_token": rt, "client_id": client_id})

    rt = tok["refresh_token"]
    for _ in range(3):  # used within the idle limit, the family lives on ...
        now[0] += 500
        answer = refresh(rt)
        assert answer.status_code == 200, answer.text
        rt = answer.json()["refresh_token"]
    now[0] += 400  # ... but not past its absolute lifetime (1900 s > 1800 s)
    assert refresh(rt).json()["error"] == "invalid_grant"
    _, tok2 = _tokens(base, bob)
    now[0] += 601  # idle too long
    assert refresh(tok2["refresh_token"]).json()["error"] == "invalid_grant"


def test_remote_mcp_token_verifier_and_console(
    clocked: tuple[str, ATH, list[float]], bob: ConsentingUser
) -> None:
    base, _, _ = clocked
    _, tok = _tokens(base, bob)
    verifier = AthkitTokenVerifier(f"{base}/oauth/introspect", client_id="mcp-rs",
                                   client_secret="rs-secret-456", resource=f"{base}/api")
    access = anyio.run(verifier.verify_token, tok["access_token"])
    assert access is not None and access.scopes == ["notes:read"] and access.subject == "bob"
    assert access.resource == f"{base}/api"
    elsewhere = AthkitTokenVerifier(f"{base}/oauth/introspect", client_id="mcp-rs",
                                    client_secret="rs-secret-456", resource=f"{base}/mcp")
    assert anyio.run(elsewhere.verify_token, tok["access_token"]) is None
    wrong = AthkitTokenVerifier(f"{base}/oauth/introspect", client_id="mcp-rs",
                                client_secret="nope", resource=f"{base}/api")
    assert anyio.run(wrong.verify_token, tok["access_token"]) is None
    page = bob.browser.http.get(f"{base}/ath/console/agents")
    assert "OAuth dynamic registration (unattested)" in page.text
