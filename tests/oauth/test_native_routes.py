"""``require_scopes`` on a service's own routes accepts an /oauth token without
``X-ATH-Agent-ID`` (the token binds its agent), refuses a header naming another agent, and
answers 401/403 with the RFC 9728 challenge and the scopes the route needs."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import Depends, FastAPI

from athkit.native import ATH, ApprovalPolicy, TokenInfo, require_scopes
from athkit.web.serving import BackgroundServer, free_port
from tests.oauth.support import ConsentingUser, query_of
from tests.oauth.test_oauth_rules import authorize_url, pkce


def test_require_scopes_with_oauth_tokens(tmp_path: Path, bob: ConsentingUser) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = FastAPI()
    ath = ATH(app, current_user=lambda req: req.cookies.get("notes_user"), public_url=base,
              provider_id="notes", scopes={"notes:read": "Read", "notes:write": "Write"},
              policy=ApprovalPolicy(auto_approve=True), dev_mode=True, data_dir=tmp_path)

    @app.get("/api/notes")
    def notes(token: TokenInfo = Depends(require_scopes("notes:read"))) -> dict[str, str]:
        return {"user": token.user_id, "agent": token.agent_id}

    @app.post("/api/notes")
    def add(token: TokenInfo = Depends(require_scopes("notes:write"))) -> dict[str, str]:
        return {"ok": "yes"}

    with BackgroundServer(app, port=port):
        redirect = "http://127.0.0.1:40300/cb"
        reg = httpx.post(f"{base}/oauth/register", json={
            "client_name": "route client", "redirect_uris": [redirect],
            "token_endpoint_auth_method": "none"}).json()
        verifier, challenge = pkce()
        back = query_of(bob.answer(authorize_url(base, reg["client_id"], redirect, challenge,
                                                 scope="notes:read")))
        tok = httpx.post(f"{base}/oauth/token", data={
            "grant_type": "authorization_code", "code": back["code"], "redirect_uri": redirect,
            "client_id": reg["client_id"], "code_verifier": verifier}).json()
        assert tok["ath_audience"] == f"{base}/api"  # no resource sent: the API base
        auth = {"Authorization": f"Bearer {tok['access_token']}"}

        ok = httpx.get(f"{base}/api/notes", headers=auth)
        assert ok.status_code == 200 and ok.json()["user"] == "bob"
        assert ok.json()["agent"] == reg["ath_agent_id"]
        spoof = httpx.get(f"{base}/api/notes", headers={**auth, "X-ATH-Agent-ID": "https://x"})
        assert spoof.status_code == 403 and spoof.json()["code"] == "AGENT_IDENTITY_MISMATCH"

        none = httpx.get(f"{base}/api/notes")
        assert none.status_code == 401
        assert none.headers["www-authenticate"] == (
            f'Bearer scope="notes:read", resource_metadata='
            f'"{base}/.well-known/oauth-protected-resource/api"'
        )
        bad = httpx.get(f"{base}/api/notes", headers={"Authorization": "Bearer nope"})
        assert 'error="invalid_token"' in bad.headers["www-authenticate"]
        write = httpx.post(f"{base}/api/notes", headers=auth)
        assert write.status_code == 403 and write.json()["code"] == "SCOPE_INSUFFICIENT"
        challenge_header = write.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge_header
        assert 'scope="notes:read notes:write"' in challenge_header
    ath.close()
