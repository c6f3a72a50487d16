"""The upstream harness itself, exercised by a hand-written OAuth 2.0 client (no gateway)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from athkit.demo.browser import complete_upstream_login
from athkit.demo.mail_api import download_bytes
from athkit.demo.upstream import OIDCProvider

REDIRECT_URI = "http://127.0.0.1:9/callback"  # never contacted: the helper stops before it
SCOPE = "openid offline_access api:read api:write"


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def seg(s: str) -> dict[str, Any]:
        return json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))

    header, payload, _sig = token.split(".")
    return seg(header), seg(payload)


def authorize_url(op: OIDCProvider, **extra: str | None) -> tuple[str, str, str]:
    verifier = secrets.token_urlsafe(48)
    state = secrets.token_urlsafe(16)
    params = {
        "response_type": "code",
        "client_id": op.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPE,
        "state": state,
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        "prompt": "consent",
        **extra,
    }
    params = {k: v for k, v in params.items() if v is not None}
    return f"{op.authorization_endpoint}?{urlencode(params)}", verifier, state


def callback_params(response: httpx.Response) -> dict[str, str]:
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def login_and_exchange(op: OIDCProvider, username: str = "alice") -> dict[str, Any]:
    url, verifier, state = authorize_url(op)
    with httpx.Client() as browser:
        redirect = complete_upstream_login(browser, url, username=username)
    params = callback_params(redirect)
    assert params["state"] == state
    assert params["iss"] == op.issuer
    response = httpx.post(
        op.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "client_id": op.client_id,
            "client_secret": op.client_secret,  # client_secret_post
        },
    )
    assert response.status_code == 200, response.text
    return response.json()


def refresh(op: OIDCProvider, refresh_token: str) -> httpx.Response:
    return httpx.post(
        op.token_endpoint,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(op.client_id, op.client_secret),  # client_secret_basic
    )


@pytest.fixture
def upstream(oidc_factory, resource_api_factory):
    def start(ttl: int = 60, **options: Any):
        op = oidc_factory.start([REDIRECT_URI], access_token_ttl=ttl, **options)
        api = resource_api_factory.start(op.issuer, op.resource)
        return op, api

    return start


def test_code_flow_jwt_access_token_and_resource_api(upstream) -> None:
    op, api = upstream()
    assert op.metadata["issuer"] == op.issuer
    assert op.metadata["code_challenge_methods_supported"] == ["S256"]
    tokens = login_and_exchange(op, "alice")
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "api:read api:write"
    assert tokens["refresh_token"] and tokens["id_token"]

    header, claims = jwt_parts(tokens["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256"
    assert claims["iss"] == op.issuer and claims["aud"] == op.resource
    assert claims["sub"] == "alice" and claims["client_id"] == op.client_id
    assert claims["scope"] == "api:read api:write"
    _, id_claims = jwt_parts(tokens["id_token"])
    assert id_claims["sub"] == "alice" and id_claims["email"] == "alice@example.test"
    assert id_claims["aud"] == op.client_id

    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    with httpx.Client(base_url=api.url, headers=auth) as client:
        me = client.get("/v1/me")
        assert me.status_code == 200, me.text
        assert me.json() == {
            "sub": "alice",
            "scope": "api:read api:write",
            "client_id": op.client_id,
        }
        assert (
            client.get("/v1/messages", params={"q": "x y", "n": "2"}).json()["query"] == "q=x+y&n=2"
        )
        created = client.post("/v1/messages", json={"text": "hi"})
        assert created.status_code == 201 and created.json()["body"] == {"text": "hi"}
        assert client.put("/v1/messages/7", json={"a": 1}).json()["id"] == "7"
        assert client.delete("/v1/messages/7").json()["method"] == "DELETE"
        down = client.get("/v1/download", params={"size": 200_000})
        assert down.headers["content-length"] == "200000" and down.content == download_bytes(
            200_000
        )
        blob = secrets.token_bytes(150_000)
        up = client.post("/v1/upload", content=iter([blob[:70_000], blob[70_000:]]))
        assert up.json() == {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
        seen = client.get("/v1/headers").json()["headers"]
        assert seen["authorization"] == f"Bearer {tokens['access_token']}"
    # Missing, foreign or wrong tokens are refused.
    assert httpx.get(f"{api.url}/v1/me").json() == {
        "error": "invalid_token",
        "error_description": "missing bearer token",
    }
    bad = httpx.get(f"{api.url}/v1/me", headers={"Authorization": f"Bearer {tokens['id_token']}"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_token"
    assert "invalid_token" in bad.headers["www-authenticate"]
    assert any(r["path"] == "/v1/me" for r in api.server.config.app.state.requests)


def test_scope_enforced_by_resource_api(upstream) -> None:
    op, api = upstream(api_scopes="api:read api:write")
    url, verifier, _ = authorize_url(op, scope="openid api:read")
    with httpx.Client() as browser:
        code = callback_params(complete_upstream_login(browser, url, username="bob"))["code"]
    tokens = httpx.post(
        op.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        auth=(op.client_id, op.client_secret),
    ).json()
    assert tokens["scope"] == "api:read"
    assert "refresh_token" in tokens  # issued even without offline_access (see provider.js)
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert httpx.get(f"{api.url}/v1/me", headers=auth).json()["sub"] == "bob"
    denied = httpx.post(f"{api.url}/v1/messages", headers=auth, json={})
    assert denied.status_code == 403 and denied.json()["error"] == "insufficient_scope"


def test_refresh_expiry_and_revocation(upstream) -> None:
    op, api = upstream(ttl=2)
    tokens = login_and_exchange(op)
    assert tokens["expires_in"] <= 2
    refreshed = refresh(op, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["access_token"] != tokens["access_token"]
    assert new["refresh_token"] == tokens["refresh_token"]  # not rotated by default
    assert new["scope"] == "api:read api:write"
    _, claims = jwt_parts(new["access_token"])
    assert claims["aud"] == op.resource and claims["scope"] == "api:read api:write"

    time.sleep(3)
    old = httpx.get(
        f"{api.url}/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert old.status_code == 401 and old.json()["error"] == "invalid_token"
    again = refresh(op, tokens["refresh_token"])  # not rotated: the same refresh token still works
    assert again.status_code == 200, again.text
    fresh = again.json()["access_token"]
    assert (
        httpx.get(f"{api.url}/v1/me", headers={"Authorization": f"Bearer {fresh}"}).status_code
        == 200
    )

    revoked = httpx.post(
        op.revocation_endpoint,
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        auth=(op.client_id, op.client_secret),
    )
    assert revoked.status_code == 200, revoked.text
    after = refresh(op, tokens["refresh_token"])
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"


def test_refresh_token_without_prompt_consent(upstream) -> None:
    """offline_access is dropped without prompt=consent, yet a refresh token is issued."""
    op, _api = upstream()
    url, verifier, _ = authorize_url(op, prompt=None)
    with httpx.Client() as browser:
        first = complete_upstream_login(browser, url, username="dave")
        code = callback_params(first)["code"]
        # Same browser, consent already given: straight back to the client, no pages.
        again_url, _v, _s = authorize_url(op, prompt=None)
        again = browser.get(again_url, follow_redirects=False)
        assert "code" in callback_params(again)
    tokens = httpx.post(
        op.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        auth=(op.client_id, op.client_secret),
    ).json()
    assert tokens["scope"] == "api:read api:write" and tokens["refresh_token"]
    assert refresh(op, tokens["refresh_token"]).status_code == 200


def test_rotating_refresh_tokens(upstream) -> None:
    op, _api = upstream(rotate_refresh_tokens=True)
    tokens = login_and_exchange(op)
    first = refresh(op, tokens["refresh_token"]).json()
    assert first["refresh_token"] != tokens["refresh_token"]
    reuse = refresh(op, tokens["refresh_token"])
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"


def test_pkce_is_required(upstream) -> None:
    op, _api = upstream()
    url, _verifier, _state = authorize_url(op)
    no_pkce = url.replace("&code_challenge_method=S256", "")
    no_pkce = "&".join(p for p in no_pkce.split("&") if not p.startswith("code_challenge="))
    assert "code_challenge" not in no_pkce
    with httpx.Client() as browser:
        response = browser.get(no_pkce, follow_redirects=False)
    params = callback_params(response)
    assert params["error"] == "invalid_request"
    assert "PKCE" in params["error_description"]


def test_wrong_code_verifier_is_refused(upstream) -> None:
    op, _api = upstream()
    url, _verifier, _ = authorize_url(op)
    with httpx.Client() as browser:
        code = callback_params(complete_upstream_login(browser, url))["code"]
    response = httpx.post(
        op.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": secrets.token_urlsafe(48),
        },
        auth=(op.client_id, op.client_secret),
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_deny_consent_yields_access_denied(upstream) -> None:
    op, _api = upstream()
    url, _verifier, state = authorize_url(op)
    with httpx.Client() as browser:
        params = callback_params(complete_upstream_login(browser, url, approve=False))
    assert params["error"] == "access_denied"
    assert params["state"] == state
    assert "code" not in params


def test_two_providers_side_by_side(oidc_factory) -> None:
    a = oidc_factory.start([REDIRECT_URI])
    b = oidc_factory.start([REDIRECT_URI], access_token_ttl=5)
    assert a.issuer != b.issuer and a.resource != b.resource
    assert httpx.get(a.jwks_uri).json()["keys"] != httpx.get(b.jwks_uri).json()["keys"]
