"""Every refusal of PROTOCOL.md §3–§8, each with its ATH error code and HTTP status (§9).

All calls go over real HTTP to ATH Shop; attestations are crafted with the agent's real key (or
deliberately with a wrong one) and sent with raw httpx so nothing on the client side interferes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from athkit.client import ATHClient, errors
from athkit.crypto import sign_attestation
from athkit.crypto.keys import AgentKey
from tests.conftest import MANY_AGENTS, SHOP_PASSWORD, AgentIdentity, Shop, start_shop
from tests.integration.support import (
    PROVIDER,
    FakeClock,
    api_get,
    attest,
    authorize_body,
    consent,
    consented_session,
    error_of,
    register_body,
    registered_client,
    start_clocked_shop,
    token_body,
)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """One ATH Shop for this module: every test uses its own fresh agent identities."""
    s = start_shop(tmp_path_factory.mktemp("refusals"), ath_options=MANY_AGENTS)
    try:
        yield s
    finally:
        s.server.stop()


def post(shop: Shop, path: str, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{shop.url}{path}", json=body, **kwargs)


def creds(client: ATHClient) -> tuple[str, str]:
    assert client.client_id and client.client_secret
    return client.client_id, client.client_secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_jwt(agent: AgentIdentity, audience: str, alg: str, secret: bytes = b"") -> str:
    """A JWT with ``alg`` = ``none`` or an HMAC alg, claims otherwise perfect."""
    now = int(time.time())
    header = {"alg": alg, "typ": "JWT", "kid": "default"}
    claims = {
        "iss": agent.agent_id,
        "sub": agent.agent_id,
        "aud": audience,
        "iat": now,
        "exp": now + 600,
        "jti": f"forged-{now}-{alg}-{len(secret)}",
    }
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if alg == "none":
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


# -- §3 attestation ------------------------------------------------------------------------


def test_attestation_signed_with_another_key(shop: Shop, agent: AgentIdentity) -> None:
    other = AgentKey.generate("P-256", kid="default")
    bad = AgentKey.generate("P-256", kid="default")
    forged = sign_attestation(other, agent.agent_id, shop.url)
    resp = post(shop, "/ath/agents/register", register_body(agent, shop.url, attestation=forged))
    error_of(resp, 401, "INVALID_ATTESTATION")
    # Also at the token endpoint, after a good registration.
    client = registered_client(shop, agent)
    cid, secret = creds(client)
    auth = client.authorize(PROVIDER, ["products:read"])
    consent(shop, auth.authorization_url)
    wrong = sign_attestation(bad, agent.agent_id, f"{shop.url}/ath/token")
    resp = post(
        shop,
        "/ath/token",
        token_body(agent, shop.url, cid, secret, auth.ath_session_id, attestation=wrong),
    )
    error_of(resp, 401, "INVALID_ATTESTATION")
    # The refused call did not consume the session: the real agent still gets its token.
    assert client.exchange_token(auth.ath_session_id).effective_scopes == ["products:read"]


def test_expired_attestation(shop: Shop, agent: AgentIdentity) -> None:
    now = time.time()
    expired = attest(agent, shop.url, now=now - 200, lifetime=60)
    body = error_of(
        post(shop, "/ath/agents/register", register_body(agent, shop.url, attestation=expired)),
        401,
        "INVALID_ATTESTATION",
    )
    assert "expired" in body["message"]


@pytest.mark.parametrize("offset", [-400, 400])
def test_attestation_iat_more_than_five_minutes_off(
    shop: Shop, agent: AgentIdentity, offset: int
) -> None:
    skewed = attest(agent, shop.url, now=time.time() + offset, lifetime=3600)
    body = error_of(
        post(shop, "/ath/agents/register", register_body(agent, shop.url, attestation=skewed)),
        401,
        "INVALID_ATTESTATION",
    )
    assert "iat" in body["message"]


def test_attestation_lifetime_longer_than_accepted(shop: Shop, agent: AgentIdentity) -> None:
    long_lived = attest(agent, shop.url, lifetime=3601)
    error_of(
        post(shop, "/ath/agents/register", register_body(agent, shop.url, attestation=long_lived)),
        401,
        "INVALID_ATTESTATION",
    )


def test_replayed_attestation(shop: Shop, agent: AgentIdentity) -> None:
    client = registered_client(shop, agent)
    cid, _ = creds(client)
    jwt = attest(agent, shop.url)
    first = post(shop, "/ath/authorize", authorize_body(agent, shop.url, cid, attestation=jwt))
    assert first.status_code == 200, first.text
    second = post(shop, "/ath/authorize", authorize_body(agent, shop.url, cid, attestation=jwt))
    body = error_of(second, 401, "INVALID_ATTESTATION")
    assert "replay" in body["message"]


def test_attestation_replayed_across_endpoints(
    shop: Shop, new_agent: Callable[..., AgentIdentity]
) -> None:
    agent = new_agent("cross")
    jwt = attest(agent, shop.url)
    reg = post(shop, "/ath/agents/register", register_body(agent, shop.url, attestation=jwt))
    assert reg.status_code == 201
    resp = post(
        shop,
        "/ath/authorize",
        authorize_body(agent, shop.url, reg.json()["client_id"], attestation=jwt),
    )
    error_of(resp, 401, "INVALID_ATTESTATION")


def test_wrong_audience(shop: Shop, agent: AgentIdentity) -> None:
    token_aud = f"{shop.url}/ath/token"
    for aud in (
        token_aud,
        f"{shop.url}/",
        "http://other.example",
        f"{shop.url}/ath/authorize",
        shop.url.replace("127.0.0.1", "localhost"),
    ):
        body = error_of(
            post(
                shop,
                "/ath/agents/register",
                register_body(agent, shop.url, attestation=attest(agent, aud)),
            ),
            401,
            "INVALID_ATTESTATION",
        )
        assert body["details"] == {"expected_aud": shop.url}
    # The audience is the configured public URL, never the request's Host header.
    spoofed = post(
        shop,
        "/ath/agents/register",
        register_body(
            agent, "http://evil.example", attestation=attest(agent, "http://evil.example")
        ),
        headers={"Host": "evil.example"},
    )
    error_of(spoofed, 401, "INVALID_ATTESTATION")

    client = registered_client(shop, agent)
    cid, secret = creds(client)
    resp = post(
        shop,
        "/ath/authorize",
        authorize_body(agent, shop.url, cid, attestation=attest(agent, token_aud)),
    )
    error_of(resp, 401, "INVALID_ATTESTATION")
    auth = client.authorize(PROVIDER, ["products:read"])
    consent(shop, auth.authorization_url)
    for aud in (shop.url, "http://other.example/ath/token"):
        resp = post(
            shop,
            "/ath/token",
            token_body(
                agent, shop.url, cid, secret, auth.ath_session_id, attestation=attest(agent, aud)
            ),
        )
        body = error_of(resp, 401, "INVALID_ATTESTATION")
        assert body["details"] == {"expected_aud": token_aud}


def test_alg_none_and_hmac_refused(shop: Shop, agent: AgentIdentity) -> None:
    public_pem = json.dumps(agent.key.public_jwk()).encode()
    for jwt in (
        forged_jwt(agent, shop.url, "none"),
        forged_jwt(agent, shop.url, "HS256", public_pem),
        forged_jwt(agent, shop.url, "HS256", b"guess"),
    ):
        body = error_of(
            post(shop, "/ath/agents/register", register_body(agent, shop.url, attestation=jwt)),
            401,
            "INVALID_ATTESTATION",
        )
        assert "not allowed" in body["message"]


def test_malformed_attestation_and_wrong_iss(shop: Shop, agent: AgentIdentity) -> None:
    for jwt in (
        "not-a-jwt",
        "a.b.c",
        attest(agent, shop.url, extra={"iss": "https://evil.example"}),
    ):
        error_of(
            post(shop, "/ath/agents/register", register_body(agent, shop.url, attestation=jwt)),
            401,
            "INVALID_ATTESTATION",
        )


def test_attestation_sub_differs_from_agent(
    shop: Shop, new_agent: Callable[..., AgentIdentity]
) -> None:
    alice, mallory = new_agent("alice-agent"), new_agent("mallory-agent")
    # Register: body names alice, attestation is mallory's (valid for mallory).
    body = register_body(alice, shop.url, attestation=attest(mallory, shop.url))
    error_of(post(shop, "/ath/agents/register", body), 403, "AGENT_IDENTITY_MISMATCH")
    # Developer id must be the one in the identity document.
    body = register_body(alice, shop.url)
    body["developer"] = {"name": "someone", "id": "dev-someone-else"}
    error_of(post(shop, "/ath/agents/register", body), 403, "AGENT_IDENTITY_MISMATCH")

    client = registered_client(shop, alice)
    cid, secret = creds(client)
    resp = post(
        shop,
        "/ath/authorize",
        authorize_body(alice, shop.url, cid, attestation=attest(mallory, shop.url)),
    )
    error_of(resp, 403, "AGENT_IDENTITY_MISMATCH")
    auth = client.authorize(PROVIDER, ["products:read"])
    consent(shop, auth.authorization_url)
    resp = post(
        shop,
        "/ath/token",
        token_body(
            alice,
            shop.url,
            cid,
            secret,
            auth.ath_session_id,
            attestation=attest(mallory, f"{shop.url}/ath/token"),
        ),
    )
    error_of(resp, 403, "AGENT_IDENTITY_MISMATCH")


# -- §4 registration / §5 authorize --------------------------------------------------------


def test_duplicate_registration(shop: Shop, agent: AgentIdentity) -> None:
    first = post(shop, "/ath/agents/register", register_body(agent, shop.url))
    assert first.status_code == 201
    again = post(shop, "/ath/agents/register", register_body(agent, shop.url))
    error_of(again, 409, "AGENT_ALREADY_REGISTERED")
    assert first.json()["client_secret"] not in again.text


def test_authorize_unregistered_client(shop: Shop, agent: AgentIdentity) -> None:
    resp = post(shop, "/ath/authorize", authorize_body(agent, shop.url, "ath_nobody"))
    error_of(resp, 403, "AGENT_NOT_REGISTERED")


def test_authorize_scope_not_approved(shop: Shop, agent: AgentIdentity) -> None:
    client = registered_client(shop, agent, ["products:read", "orders:write"])
    cid, _ = creds(client)
    body = error_of(
        post(
            shop,
            "/ath/authorize",
            authorize_body(agent, shop.url, cid, ["products:read", "orders:write"]),
        ),
        403,
        "SCOPE_NOT_APPROVED",
    )
    assert body["details"] == {"scopes": ["orders:write"]}
    # Approved for the agent but never requested at registration: also not approved.
    error_of(
        post(shop, "/ath/authorize", authorize_body(agent, shop.url, cid, ["cart:read"])),
        403,
        "SCOPE_NOT_APPROVED",
    )


def test_authorize_provider_not_approved(shop: Shop, agent: AgentIdentity) -> None:
    client = registered_client(shop, agent)
    cid, _ = creds(client)
    resp = post(
        shop, "/ath/authorize", authorize_body(agent, shop.url, cid, provider_id="other-provider")
    )
    error_of(resp, 403, "PROVIDER_NOT_APPROVED")


def test_authorize_weak_state(shop: Shop, agent: AgentIdentity) -> None:
    client = registered_client(shop, agent)
    cid, _ = creds(client)
    error_of(
        post(shop, "/ath/authorize", authorize_body(agent, shop.url, cid, state="abc")),
        400,
        "INVALID_REQUEST",
    )


def test_user_redirect_uri_must_be_registered(
    shop: Shop, new_agent: Callable[..., AgentIdentity]
) -> None:
    plain, with_uri = new_agent("plain"), new_agent("with-uri")
    cid, _ = creds(registered_client(shop, plain))
    resp = post(
        shop,
        "/ath/authorize",
        authorize_body(plain, shop.url, cid, user_redirect_uri="https://agent.example/cb"),
    )
    error_of(resp, 400, "REDIRECT_URI_MISMATCH")

    registered = "https://agent.example/cb"
    cid2, _ = creds(registered_client(shop, with_uri, redirect_uris=[registered]))
    for uri in (
        registered + "/",
        registered + "?x=1",
        "https://agent.example/CB",
        "https://evil.example/cb",
        "http://agent.example/cb",
    ):
        resp = post(
            shop, "/ath/authorize", authorize_body(with_uri, shop.url, cid2, user_redirect_uri=uri)
        )
        error_of(resp, 400, "REDIRECT_URI_MISMATCH")
    ok = post(
        shop,
        "/ath/authorize",
        authorize_body(with_uri, shop.url, cid2, user_redirect_uri=registered),
    )
    assert ok.status_code == 200


def test_register_rejects_bad_redirect_uris(shop: Shop, agent: AgentIdentity) -> None:
    for uri in ("https://agent.example/cb#frag", "javascript:alert(1)", "/relative"):
        body = register_body(agent, shop.url, redirect_uris=[uri])
        error_of(post(shop, "/ath/agents/register", body), 400, "INVALID_REQUEST")


# -- §6 token ------------------------------------------------------------------------------


def test_wrong_client_secret_at_token_and_revoke(shop: Shop, agent: AgentIdentity) -> None:
    grant = consented_session(shop, agent)
    cid, secret = creds(grant.client)
    for bad_id, bad_secret in (
        (cid, secret + "x"),
        (cid, "ath_secret_wrong"),
        ("ath_unknown", secret),
    ):
        resp = post(
            shop, "/ath/token", token_body(agent, shop.url, bad_id, bad_secret, grant.session_id)
        )
        error_of(resp, 401, "INVALID_CLIENT")
    token = grant.client.exchange_token(grant.session_id).access_token
    resp = post(shop, "/ath/revoke", {"client_id": cid, "client_secret": "nope", "token": token})
    error_of(resp, 401, "INVALID_CLIENT")
    assert api_get(shop, "/api/products", token, agent.agent_id).status_code == 200


def test_unknown_session(shop: Shop, agent: AgentIdentity) -> None:
    cid, secret = creds(registered_client(shop, agent))
    resp = post(shop, "/ath/token", token_body(agent, shop.url, cid, secret, "ath_sess_nope"))
    error_of(resp, 400, "SESSION_NOT_FOUND")


def test_session_of_another_client(shop: Shop, new_agent: Callable[..., AgentIdentity]) -> None:
    owner, thief = new_agent("owner"), new_agent("thief")
    grant = consented_session(shop, owner)
    thief_client = registered_client(shop, thief)
    with pytest.raises(errors.SessionNotFoundError) as refused:
        thief_client.exchange_token(grant.session_id)
    assert refused.value.status == 400
    cid, secret = creds(thief_client)
    resp = post(shop, "/ath/token", token_body(thief, shop.url, cid, secret, grant.session_id))
    error_of(resp, 400, "SESSION_NOT_FOUND")
    # The owner is unaffected.
    assert grant.client.exchange_token(grant.session_id).effective_scopes == ["products:read"]


def test_session_used_twice(shop: Shop, agent: AgentIdentity) -> None:
    grant = consented_session(shop, agent)
    grant.client.exchange_token(grant.session_id)
    cid, secret = creds(grant.client)
    resp = post(shop, "/ath/token", token_body(agent, shop.url, cid, secret, grant.session_id))
    error_of(resp, 400, "SESSION_ALREADY_USED")


def test_session_raced_by_parallel_exchanges(shop: Shop, agent: AgentIdentity) -> None:
    """Single use holds under concurrency: exactly one of several parallel exchanges wins."""
    grant = consented_session(shop, agent)
    cid, secret = creds(grant.client)
    bodies = [token_body(agent, shop.url, cid, secret, grant.session_id) for _ in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda b: post(shop, "/ath/token", b), bodies))
    winners = [r for r in results if r.status_code == 200]
    assert len(winners) == 1
    for r in results:
        if r.status_code != 200:
            error_of(r, 400, "SESSION_ALREADY_USED")


def test_token_before_consent(shop: Shop, agent: AgentIdentity) -> None:
    client = registered_client(shop, agent)
    cid, secret = creds(client)
    auth = client.authorize(PROVIDER, ["products:read"])
    resp = post(shop, "/ath/token", token_body(agent, shop.url, cid, secret, auth.ath_session_id))
    error_of(resp, 400, "SESSION_NOT_READY")
    # The user has opened the consent page but not decided yet: still not ready.
    browser = signed_in(shop)
    assert browser.get(auth.authorization_url).status_code == 200
    browser.close()
    resp = post(shop, "/ath/token", token_body(agent, shop.url, cid, secret, auth.ath_session_id))
    error_of(resp, 400, "SESSION_NOT_READY")


def test_user_denies(shop: Shop, agent: AgentIdentity) -> None:
    grant = consented_session(shop, agent, approve=False)
    cid, secret = creds(grant.client)
    resp = post(shop, "/ath/token", token_body(agent, shop.url, cid, secret, grant.session_id))
    error_of(resp, 403, "USER_DENIED")


def test_unsupported_grant_type(shop: Shop, agent: AgentIdentity) -> None:
    grant = consented_session(shop, agent)
    cid, secret = creds(grant.client)
    body = token_body(agent, shop.url, cid, secret, grant.session_id)
    body["grant_type"] = "client_credentials"
    error_of(post(shop, "/ath/token", body), 400, "UNSUPPORTED_GRANT_TYPE")


# -- §5 the browser leg: binding and state --------------------------------------------------


def signed_in(shop: Shop) -> httpx.Client:
    """A fresh browser (own cookie jar) signed in as the demo user."""
    browser = httpx.Client(follow_redirects=False, timeout=10)
    resp = browser.post(
        f"{shop.url}/login", data={"username": "alice", "password": SHOP_PASSWORD, "next": "/"}
    )
    assert resp.status_code == 303
    return browser


def form_fields(html: str) -> dict[str, str]:
    fields = dict(re.findall(r'name="(state|csrf)" value="([^"]+)"', html))
    assert set(fields) == {"state", "csrf"}
    return fields


@pytest.fixture
def browsers(shop: Shop) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    a, b = signed_in(shop), signed_in(shop)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def approve_form(fields: dict[str, str]) -> dict[str, Any]:
    return {**fields, "scope": ["products:read"], "decision": "approve"}


def test_consent_submitted_from_another_browser(
    shop: Shop, agent: AgentIdentity, browsers: tuple[httpx.Client, httpx.Client]
) -> None:
    a, b = browsers
    client = registered_client(shop, agent)
    auth = client.authorize(PROVIDER, ["products:read"])
    page = a.get(auth.authorization_url)
    assert page.status_code == 200
    fields = form_fields(page.text)

    stolen = b.post(f"{shop.url}/ath/oauth/authorize", data=approve_form(fields))
    error_of(stolen, 400, "STATE_MISMATCH")
    # Opening the same authorization URL in browser B is refused as well.
    error_of(b.get(auth.authorization_url), 400, "STATE_MISMATCH")
    # A user's browser gets a page, not JSON, with the same code.
    html = b.get(auth.authorization_url, headers={"Accept": "text/html"})
    assert html.status_code == 400 and "STATE_MISMATCH" in html.text
    assert "Traceback" not in html.text

    # A consent form naming no known authorization.
    error_of(
        a.post(
            f"{shop.url}/ath/oauth/authorize", data=approve_form({**fields, "state": "bogus-state"})
        ),
        400,
        "STATE_MISMATCH",
    )
    # A wrong CSRF token from the right browser is refused too.
    forged = a.post(
        f"{shop.url}/ath/oauth/authorize", data=approve_form({**fields, "csrf": "x" * 32})
    )
    error_of(forged, 400, "STATE_MISMATCH")

    # The legitimate browser still completes the flow.
    done = a.post(f"{shop.url}/ath/oauth/authorize", data=approve_form(fields))
    assert done.status_code == 303
    assert a.get(done.headers["location"]).status_code == 200
    assert client.exchange_token(auth.ath_session_id).effective_scopes == ["products:read"]


def test_callback_from_another_browser_and_tampered_state(
    shop: Shop, agent: AgentIdentity, browsers: tuple[httpx.Client, httpx.Client]
) -> None:
    a, b = browsers
    client = registered_client(shop, agent)
    auth = client.authorize(PROVIDER, ["products:read"])
    fields = form_fields(a.get(auth.authorization_url).text)
    decided = a.post(f"{shop.url}/ath/oauth/authorize", data=approve_form(fields))
    assert decided.status_code == 303
    callback = httpx.URL(decided.headers["location"])
    assert callback.path == "/ath/callback"
    code, state = callback.params["code"], callback.params["state"]

    # Browser B presents A's code: no binding cookie for this session.
    error_of(b.get(str(callback)), 400, "STATE_MISMATCH")
    # A tampered state matches no authorization.
    tampered = callback.copy_set_param("state", state[:-2] + ("AA" if state[-2:] != "AA" else "BB"))
    error_of(a.get(str(tampered)), 400, "STATE_MISMATCH")
    error_of(
        a.get(f"{shop.url}/ath/callback", params={"state": "x" * 43, "code": code}),
        400,
        "STATE_MISMATCH",
    )
    # Right state, wrong code.
    error_of(a.get(str(callback.copy_set_param("code", "wrong-code"))), 400, "INVALID_CODE")
    # Token exchange is still not possible: the callback has not succeeded.
    cid, secret = creds(client)
    error_of(
        post(shop, "/ath/token", token_body(agent, shop.url, cid, secret, auth.ath_session_id)),
        400,
        "SESSION_NOT_READY",
    )

    ok = a.get(str(callback))
    assert ok.status_code == 200 and "Authorization complete" in ok.text
    # The code is single use; the binding cookie is gone once the callback succeeded.
    error_of(a.get(str(callback)), 400, "STATE_MISMATCH")
    # Reopening the finished authorization is refused: sessions are single use.
    error_of(a.get(auth.authorization_url), 400, "SESSION_ALREADY_USED")
    assert client.exchange_token(auth.ath_session_id).effective_scopes == ["products:read"]


def test_tampered_authorization_request(
    shop: Shop, agent: AgentIdentity, browsers: tuple[httpx.Client, httpx.Client]
) -> None:
    a, _ = browsers
    client = registered_client(shop, agent)
    auth = client.authorize(PROVIDER, ["products:read"])
    url = httpx.URL(auth.authorization_url)
    for name, value in (
        ("code_challenge", "A" * 43),
        ("redirect_uri", "https://evil.example/cb"),
        ("code_challenge_method", "plain"),
    ):
        error_of(a.get(str(url.copy_set_param(name, value))), 400, "INVALID_REQUEST")
    error_of(a.get(str(url.copy_set_param("state", "unknown-state"))), 400, "SESSION_NOT_FOUND")


# -- §7 using the API ----------------------------------------------------------------------


def test_token_bound_to_its_agent(shop: Shop, new_agent: Callable[..., AgentIdentity]) -> None:
    owner, other = new_agent("owner"), new_agent("other")
    grant = consented_session(shop, owner)
    token = grant.client.exchange_token(grant.session_id).access_token
    assert api_get(shop, "/api/products", token, owner.agent_id).status_code == 200
    for header in (other.agent_id, None, "", owner.agent_id + "x"):
        error_of(api_get(shop, "/api/products", token, header), 403, "AGENT_IDENTITY_MISMATCH")


def test_unknown_missing_and_revoked_tokens(shop: Shop, agent: AgentIdentity) -> None:
    error_of(api_get(shop, "/api/products", "ath_tk_unknown", agent.agent_id), 401, "TOKEN_INVALID")
    error_of(api_get(shop, "/api/products", None, agent.agent_id), 401, "TOKEN_INVALID")
    resp = httpx.get(
        f"{shop.url}/api/products",
        headers={"Authorization": "Basic abc", "X-ATH-Agent-ID": agent.agent_id},
    )
    error_of(resp, 401, "TOKEN_INVALID")
    assert resp.headers["www-authenticate"].startswith("Bearer")

    grant = consented_session(shop, agent)
    token = grant.client.exchange_token(grant.session_id).access_token
    cid, secret = creds(grant.client)
    resp = post(shop, "/ath/revoke", {"client_id": cid, "client_secret": secret, "token": token})
    assert resp.status_code == 200 and resp.json() == {"revoked": True}
    error_of(api_get(shop, "/api/products", token, agent.agent_id), 401, "TOKEN_REVOKED")
    error_of(
        api_get(shop, f"/ath/proxy/{PROVIDER}/api/products", token, agent.agent_id),
        401,
        "TOKEN_REVOKED",
    )
    # Revoking again is still 200 (RFC 7009).
    again = post(shop, "/ath/revoke", {"client_id": cid, "client_secret": secret, "token": token})
    assert again.status_code == 200


# -- §8 revocation -------------------------------------------------------------------------


def test_revoke_unknown_token_is_200(shop: Shop, agent: AgentIdentity) -> None:
    cid, secret = creds(registered_client(shop, agent))
    resp = post(
        shop,
        "/ath/revoke",
        {"client_id": cid, "client_secret": secret, "token": "ath_tk_never_issued"},
    )
    assert resp.status_code == 200 and resp.json() == {"revoked": True}


def test_revoke_of_another_agents_token(
    shop: Shop, new_agent: Callable[..., AgentIdentity]
) -> None:
    owner, other = new_agent("owner"), new_agent("other")
    grant = consented_session(shop, owner)
    token = grant.client.exchange_token(grant.session_id).access_token
    cid, secret = creds(registered_client(shop, other))
    resp = post(shop, "/ath/revoke", {"client_id": cid, "client_secret": secret, "token": token})
    assert resp.status_code == 200
    assert api_get(shop, "/api/products", token, owner.agent_id).status_code == 200
    svc = shop.app.state.athkit
    for agent_id in (owner.agent_id, other.agent_id):
        assert not [r for r in svc.store.list_audit(agent_id=agent_id) if r.event == "token_revoked"]


# -- expiry, with the service's clock under the test's control ------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clocked_shop(tmp_path: Path, clock: FakeClock) -> Iterator[Shop]:
    shop = start_clocked_shop(tmp_path, clock)
    try:
        yield shop
    finally:
        shop.server.stop()


def test_session_expiry(clocked_shop: Shop, clock: FakeClock, agent: AgentIdentity) -> None:
    shop = clocked_shop
    client = registered_client(shop, agent)
    cid, secret = creds(client)
    late = client.authorize(PROVIDER, ["products:read"])
    consent(shop, late.authorization_url)
    on_time = client.authorize(PROVIDER, ["products:read"])
    consent(shop, on_time.authorization_url)
    unopened = client.authorize(PROVIDER, ["products:read"])

    clock.advance(599)
    resp = post(
        shop,
        "/ath/token",
        token_body(
            agent,
            shop.url,
            cid,
            secret,
            on_time.ath_session_id,
            attestation=attest(agent, f"{shop.url}/ath/token", now=clock.now),
        ),
    )
    assert resp.status_code == 200, resp.text

    clock.advance(1)  # sessions live exactly 600 s
    resp = post(
        shop,
        "/ath/token",
        token_body(
            agent,
            shop.url,
            cid,
            secret,
            late.ath_session_id,
            attestation=attest(agent, f"{shop.url}/ath/token", now=clock.now),
        ),
    )
    error_of(resp, 400, "SESSION_EXPIRED")
    # The user arriving late at the consent page gets the same answer.
    error_of(httpx.get(unopened.authorization_url), 400, "SESSION_EXPIRED")


def test_token_expiry(clocked_shop: Shop, clock: FakeClock, agent: AgentIdentity) -> None:
    shop = clocked_shop
    grant = consented_session(shop, agent)
    token = grant.client.exchange_token(grant.session_id)
    assert token.expires_in == 3600
    clock.advance(3599)
    assert api_get(shop, "/api/products", token.access_token, agent.agent_id).status_code == 200
    clock.advance(1)
    error_of(
        api_get(shop, "/api/products", token.access_token, agent.agent_id), 401, "TOKEN_EXPIRED"
    )
    error_of(
        api_get(shop, f"/ath/proxy/{PROVIDER}/api/products", token.access_token, agent.agent_id),
        401,
        "TOKEN_EXPIRED",
    )


def test_attestation_expiry_is_exact(
    clocked_shop: Shop, clock: FakeClock, new_agent: Callable[..., AgentIdentity]
) -> None:
    shop = clocked_shop
    a, b = new_agent("exp-a"), new_agent("exp-b")
    signed_at = clock.now
    jwt_a = attest(a, shop.url, now=signed_at, lifetime=60)
    jwt_b = attest(b, shop.url, now=signed_at, lifetime=60)
    clock.advance(59)
    ok = post(shop, "/ath/agents/register", register_body(a, shop.url, attestation=jwt_a))
    assert ok.status_code == 201, ok.text
    clock.advance(1)  # now == exp
    body = error_of(
        post(shop, "/ath/agents/register", register_body(b, shop.url, attestation=jwt_b)),
        401,
        "INVALID_ATTESTATION",
    )
    assert "expired" in body["message"]


@pytest.mark.parametrize("offset", [300, -300])
def test_attestation_iat_window_edges(
    clocked_shop: Shop, clock: FakeClock, new_agent: Callable[..., AgentIdentity], offset: int
) -> None:
    shop = clocked_shop
    inside, outside = new_agent("inside"), new_agent("outside")
    step = 1 if offset > 0 else -1
    jwt_in = attest(inside, shop.url, now=clock.now + offset, lifetime=600)
    jwt_out = attest(outside, shop.url, now=clock.now + offset + step, lifetime=600)
    ok = post(shop, "/ath/agents/register", register_body(inside, shop.url, attestation=jwt_in))
    assert ok.status_code == 201, ok.text
    body = error_of(
        post(shop, "/ath/agents/register", register_body(outside, shop.url, attestation=jwt_out)),
        401,
        "INVALID_ATTESTATION",
    )
    assert "iat" in body["message"]


def test_expired_approval_blocks_authorize(
    clocked_shop: Shop, clock: FakeClock, agent: AgentIdentity
) -> None:
    shop = clocked_shop
    client = registered_client(shop, agent)
    cid, _ = creds(client)
    clock.advance(365 * 86400)
    resp = post(
        shop,
        "/ath/authorize",
        authorize_body(agent, shop.url, cid, attestation=attest(agent, shop.url, now=clock.now)),
    )
    error_of(resp, 403, "AGENT_UNAPPROVED")
