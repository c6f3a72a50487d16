"""The /oauth/* rules one by one, on the example service over real HTTP: redirect URIs
(RFC 8252 loopback), PKCE S256, RFC 8707 resources (also on /ath/authorize), form bodies,
client authentication (incl. private_key_jwt for an attested agent), agent-bound tokens,
RFC 9068 JWT access tokens."""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from athkit.client import ATHClient
from athkit.client.errors import InvalidTargetError
from athkit.crypto.attestation import sign_attestation
from athkit.demo.browser import HTTPBrowser
from athkit.protocol.redirects import redirect_uri_matches
from athkit.web.serving import free_port
from tests.conftest import AgentIdentity
from tests.oauth.conftest import NotesService
from tests.oauth.support import ConsentingUser, query_of


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def register(base: str, redirect: str, **extra: Any) -> dict[str, Any]:
    body = {"client_name": "rules client", "redirect_uris": [redirect],
            "token_endpoint_auth_method": "none", **extra}
    resp = httpx.post(f"{base}/oauth/register", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


def authorize_url(base: str, client_id: str, redirect: str, challenge: str, **extra: str) -> str:
    q = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect,
         "state": "s-123", "code_challenge": challenge, "code_challenge_method": "S256", **extra}
    return f"{base}/oauth/authorize?{urlencode(q)}"


def test_redirect_uri_matching() -> None:
    assert redirect_uri_matches("http://127.0.0.1:1/cb", "http://127.0.0.1:53682/cb")
    assert not redirect_uri_matches("http://127.0.0.1/cb", "http://127.0.0.1:5/other")
    assert not redirect_uri_matches("https://a.example:1/cb", "https://a.example:2/cb")
    assert not redirect_uri_matches("https://a.example/cb", "https://a.example/cb/")


def test_authorize_refusals(notes: NotesService) -> None:
    base = notes.base
    redirect = "http://127.0.0.1:40000/cb"
    client = register(base, redirect)
    _, challenge = pkce()
    # unknown client and wrong redirect URI: shown, never redirected (RFC 6749 §4.1.2.1)
    bad = httpx.get(authorize_url(base, "nope", redirect, challenge))
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    wrong = httpx.get(authorize_url(base, client["client_id"], "http://127.0.0.1:1/x", challenge))
    assert wrong.status_code == 400 and not wrong.is_redirect
    # a loopback redirect on another port is the same redirect (RFC 8252 §7.3)
    ok = httpx.get(authorize_url(base, client["client_id"], "http://127.0.0.1:5555/cb", challenge))
    assert ok.status_code == 303 and "/ath/oauth/authorize?" in ok.headers["location"]

    def redirected_error(**params: str) -> dict[str, str]:
        url = authorize_url(base, client["client_id"], redirect, challenge)
        q = {**query_of(url), **params}
        resp = httpx.get(f"{base}/oauth/authorize?{urlencode(q)}")
        assert resp.status_code == 303, resp.text
        assert resp.headers["location"].startswith(redirect)
        back = query_of(resp.headers["location"])
        assert back["state"] == "s-123" and back["iss"] == base
        return back

    assert redirected_error(code_challenge_method="plain")["error"] == "invalid_request"
    assert redirected_error(code_challenge="short")["error"] == "invalid_request"
    assert redirected_error(response_type="token")["error"] == "unsupported_response_type"
    assert redirected_error(resource="https://elsewhere.example/api")["error"] == "invalid_target"
    assert redirected_error(scope="admin:all")["error"] == "invalid_scope"
    repeated = httpx.get(authorize_url(base, client["client_id"], redirect, challenge) + "&state=x")
    assert repeated.status_code == 400 and repeated.json()["error"] == "invalid_request"


def test_token_endpoint_refusals_and_agent_bound_tokens(
    notes: NotesService, bob: ConsentingUser
) -> None:
    base = notes.base
    redirect = "http://127.0.0.1:40001/cb"
    client = register(base, redirect)
    verifier, challenge = pkce()
    back = query_of(bob.answer(authorize_url(base, client["client_id"], redirect, challenge,
                                             scope="notes:read", resource=f"{base}/api")))
    token_url = f"{base}/oauth/token"
    form = {"grant_type": "authorization_code", "code": back["code"], "redirect_uri": redirect,
            "client_id": client["client_id"], "code_verifier": verifier}
    as_json = httpx.post(token_url, json=form)
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
    wrong = httpx.post(token_url, data={**form, "code_verifier": pkce()[0]})
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    other = httpx.post(token_url, data={**form, "redirect_uri": "http://127.0.0.1:40001/x"})
    assert other.json()["error"] == "invalid_grant"
    grant = httpx.post(token_url, data={**form, "grant_type": "password"})
    assert grant.json()["error"] == "unsupported_grant_type"
    anonymous = httpx.post(token_url, data={k: v for k, v in form.items() if k != "client_id"})
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    ok = httpx.post(token_url, data=form)
    assert ok.status_code == 200, ok.text
    assert ok.headers["cache-control"] == "no-store"
    token = ok.json()["access_token"]
    # agent-bound: no X-ATH-Agent-ID needed, but a header naming another agent is refused
    me = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{base}/api/notes", headers=me).status_code == 404  # no such route
    # the MCP endpoint is another resource: this API token is refused there
    mcp = httpx.post(f"{base}/mcp", headers=me, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert mcp.status_code == 401 and "another resource" in mcp.text
    spoof = httpx.post(f"{base}/oauth/introspect", data={"token": token},
                       auth=("nobody", "nothing"))
    assert spoof.status_code == 401


def test_ath_authorize_resource_is_checked_and_binds_the_audience(
    notes: NotesService, agent: AgentIdentity
) -> None:
    """Issue 9 item 19: /ath/authorize refuses an unknown resource with INVALID_TARGET and a
    known one becomes the audience (the same mechanism as /oauth/*)."""
    base = notes.base
    with ATHClient(base, agent.agent_id, agent.key) as client:
        client.register(developer={"name": "athkit demo team", "id": "dev-athkit-demo"},
                        providers=[{"provider_id": "notes", "scopes": ["notes:read"]}])
        with pytest.raises(InvalidTargetError):
            client.authorize("notes", ["notes:read"], resource="https://evil.example/api")
        auth = client.authorize("notes", ["notes:read"], resource=f"{base}/mcp")
        browser = HTTPBrowser("unused", "unused")
        browser.http.cookies.set("notes_user", "bob", domain="127.0.0.1")
        browser.open_consent(auth.authorization_url)
        browser.decide(approve=True)
        browser.close()
        token = client.exchange_token(auth.ath_session_id).access_token
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Authorization": f"Bearer {token}",
               "Accept": "application/json, text/event-stream"}
    # an ATH token keeps requiring X-ATH-Agent-ID
    assert httpx.post(f"{base}/mcp", headers=headers, json=rpc).status_code == 401
    headers["X-ATH-Agent-ID"] = agent.agent_id
    assert httpx.post(f"{base}/mcp", headers=headers, json=rpc).status_code != 401
    row = notes.module.ath.service.store.get_token(
        hashlib.sha256(token.encode()).hexdigest()
    )
    assert row is not None and row.audience == f"{base}/mcp" and not row.agent_bound


def test_dcr_with_ath_identity_and_private_key_jwt(
    notes: NotesService, agent: AgentIdentity, bob: ConsentingUser
) -> None:
    base = notes.base
    redirect = "http://127.0.0.1:40002/cb"
    attestation = sign_attestation(agent.key, agent.agent_id, base)
    client = register(base, redirect, token_endpoint_auth_method="private_key_jwt",
                      ath_agent_id=agent.agent_id, ath_agent_attestation=attestation,
                      ath_agent_type="assistant", scope="notes:read")
    assert client["ath_agent_id"] == agent.agent_id and "client_secret" not in client
    row = notes.module.ath.service.store.get_agent(client["client_id"])
    assert row.client_kind == "dcr_attested" and row.developer_id == "dev-athkit-demo"
    verifier, challenge = pkce()
    back = query_of(bob.answer(authorize_url(base, client["client_id"], redirect, challenge)))
    form = {"grant_type": "authorization_code", "code": back["code"], "redirect_uri": redirect,
            "code_verifier": verifier,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    other_key = sign_attestation(
        __import__("athkit.crypto.keys", fromlist=["AgentKey"]).AgentKey.generate(),
        client["client_id"], f"{base}/oauth/token", lifetime=120,
    )
    forged = httpx.post(f"{base}/oauth/token", data={**form, "client_assertion": other_key})
    assert forged.status_code == 401 and forged.json()["error"] == "invalid_client"
    assertion = sign_attestation(agent.key, client["client_id"], f"{base}/oauth/token",
                                 lifetime=120)
    ok = httpx.post(f"{base}/oauth/token", data={**form, "client_assertion": assertion})
    assert ok.status_code == 200, ok.text
    replay = httpx.post(f"{base}/oauth/token", data={**form, "client_assertion": assertion})
    assert replay.status_code == 401


def test_jwt_access_tokens_verify_with_the_published_jwks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bob: ConsentingUser
) -> None:
    monkeypatch.setenv("ATHKIT_ACCESS_TOKEN_FORMAT", "jwt")
    svc = NotesService(tmp_path, monkeypatch, None)
    try:
        base = svc.base
        meta = httpx.get(f"{base}/.well-known/oauth-authorization-server").json()
        keys = KeySet.import_key_set(httpx.get(meta["jwks_uri"]).json())
        redirect = f"http://127.0.0.1:{free_port()}/cb"
        client = register(base, redirect)
        verifier, challenge = pkce()
        back = query_of(bob.answer(authorize_url(base, client["client_id"], redirect, challenge,
                                                 resource=f"{base}/mcp")))
        tok = httpx.post(meta["token_endpoint"], data={
            "grant_type": "authorization_code", "code": back["code"], "redirect_uri": redirect,
            "client_id": client["client_id"], "code_verifier": verifier}).json()
        decoded = jwt.decode(tok["access_token"], keys, algorithms=["ES256"])
        assert decoded.header["typ"] == "at+jwt"
        c = decoded.claims
        assert (c["iss"], c["aud"], c["sub"], c["client_id"]) == (
            base, f"{base}/mcp", "bob", client["client_id"])
        assert set(c["scope"].split()) == {"notes:read", "notes:write"} and c["jti"]
        rpc = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        headers = {"Authorization": f"Bearer {tok['access_token']}",
                   "Accept": "application/json, text/event-stream"}
        assert httpx.post(f"{base}/mcp", headers=headers, json=rpc).status_code != 401
    finally:
        svc.close()


def test_private_key_jwt_during_key_rotation_uses_the_named_key(
    notes: NotesService, agent: AgentIdentity, bob: ConsentingUser
) -> None:
    from athkit.crypto.keys import AgentKey
    from athkit.demo.agent import identity_document

    base = notes.base
    redirect = "http://127.0.0.1:40003/cb"
    client = register(base, redirect, token_endpoint_auth_method="private_key_jwt",
                      ath_agent_id=agent.agent_id,
                      ath_agent_attestation=sign_attestation(agent.key, agent.agent_id, base),
                      scope="notes:read")
    # The agent rotates: during the grace period its document lists the old and the new key.
    new = AgentKey.generate("P-256", kid="rotated")
    doc = identity_document(agent.agent_id, new)
    doc["public_key"] = {"keys": [agent.key.public_jwk(), new.public_jwk()]}
    agent.app.state.documents[agent.path] = doc
    form = {"grant_type": "authorization_code", "redirect_uri": redirect,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    for key in (new, agent.key):  # both keys of the set verify, each by its kid
        verifier, challenge = pkce()
        back = query_of(bob.answer(authorize_url(base, client["client_id"], redirect, challenge)))
        assertion = sign_attestation(key, client["client_id"], f"{base}/oauth/token",
                                     lifetime=120)
        ok = httpx.post(f"{base}/oauth/token", data={
            **form, "code": back["code"], "code_verifier": verifier,
            "client_assertion": assertion})
        assert ok.status_code == 200, ok.text
    stranger = AgentKey.generate("P-256", kid="rotated")  # a known kid, the wrong key
    verifier, challenge = pkce()
    back = query_of(bob.answer(authorize_url(base, client["client_id"], redirect, challenge)))
    refused = httpx.post(f"{base}/oauth/token", data={
        **form, "code": back["code"], "code_verifier": verifier,
        "client_assertion": sign_attestation(stranger, client["client_id"],
                                             f"{base}/oauth/token", lifetime=120)})
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
