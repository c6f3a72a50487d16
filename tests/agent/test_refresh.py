"""Transparent refresh before expiry (RFC 6749 §6), and two processes refreshing at once.

The token endpoint is the real node oidc-provider with refresh-token rotation on: a second
refresh with an already rotated refresh token would be refused (invalid_grant), so the test
passes only if the vault's lock makes the second process see the first one's result.
"""

from __future__ import annotations

import base64
import hashlib
import multiprocessing
import os
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from athkit.client.vault import (
    KEY_ENV,
    FileBackend,
    GrantRecord,
    ReauthorizationNeeded,
    RefreshFailed,
    Vault,
    default_vault,
    ensure_fresh,
    oauth_refresher,
)
from tests.agent.conftest import AgentHome
from tests.gateway.conftest import OIDCProvider, complete_upstream_login

REDIRECT = "http://127.0.0.1:9/callback"


def _tokens(provider: OIDCProvider) -> dict[str, Any]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    query = {
        "response_type": "code",
        "client_id": provider.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid offline_access api:read",
        "state": secrets.token_urlsafe(16),
        "code_challenge": challenge.decode(),
        "code_challenge_method": "S256",
        "resource": provider.resource,
        "prompt": "consent",
    }
    with httpx.Client(timeout=10) as http:
        final = complete_upstream_login(http, f"{provider.authorization_endpoint}?{urlencode(query)}")
        code = parse_qs(urlsplit(final.headers["location"]).query)["code"][0]
        resp = http.post(
            provider.token_endpoint,
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                  "code_verifier": verifier, "resource": provider.resource},
            auth=(provider.client_id, provider.client_secret),
        )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _expired_grant(provider: OIDCProvider, tokens: dict[str, Any]) -> GrantRecord:
    assert tokens.get("refresh_token")
    return GrantRecord(
        service=provider.issuer,
        provider_id="mail",
        scopes=["api:read"],
        access_token=tokens["access_token"],
        expires_at=time.time() + 5,  # inside the refresh skew: due now
        agent_id="http://127.0.0.1:1/.well-known/agent.json",
        refresh_token=tokens["refresh_token"],
        token_endpoint=provider.token_endpoint,
        client_id=provider.client_id,
        kind="oauth",
    )


def _refresh_in_child(path: str, key: str, secret: str, start: float, out: Any) -> None:
    os.environ[KEY_ENV] = key
    vault = Vault(FileBackend(path))
    [grant] = vault.grants("alice")
    while time.time() < start:
        time.sleep(0.001)
    try:
        fresh = ensure_fresh(vault, grant, oauth_refresher(secret), user="alice")
        out.put(("ok", fresh.access_token))
    except Exception as exc:
        out.put(("error", repr(exc)))


def test_two_processes_refreshing_at_once(agent_home: AgentHome, oidc_factory) -> None:  # type: ignore[no-untyped-def]
    provider = oidc_factory.start([REDIRECT], access_token_ttl=600, rotate_refresh_tokens=True)
    tokens = _tokens(provider)
    vault = default_vault()
    vault.save_grant(_expired_grant(provider, tokens), user="alice")

    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    start = time.time() + 3.0
    procs = [
        ctx.Process(
            target=_refresh_in_child,
            args=(str(agent_home.vault_path), agent_home.env[KEY_ENV], provider.client_secret,
                  start, results),
        )
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    answers = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert [a[0] for a in answers] == ["ok", "ok"], answers
    assert answers[0][1] == answers[1][1] != tokens["access_token"]  # one refresh, shared

    [stored] = default_vault().grants("alice")
    assert stored.access_token == answers[0][1]
    assert stored.refresh_token != tokens["refresh_token"]  # rotated, and the new one kept
    assert stored.expires_at > time.time() + 30
    # the stored refresh token is the live one (it refreshes again) ...
    again = ensure_fresh(
        default_vault(), stored, oauth_refresher(provider.client_secret), user="alice", skew=3600
    )
    assert again.access_token != stored.access_token
    # ... while the original one was rotated away and is refused by the provider
    with pytest.raises(RefreshFailed, match="invalid_grant"):
        oauth_refresher(provider.client_secret)(_expired_grant(provider, tokens))


def test_grant_without_refresh_token_asks_for_reauthorization(agent_home: AgentHome) -> None:
    vault = default_vault()
    grant = GrantRecord("http://127.0.0.1:9", "ath-shop", ["a"], "tok", time.time() + 1, "agent")
    vault.save_grant(grant, user="alice")
    with pytest.raises(ReauthorizationNeeded, match="authorize again"):
        ensure_fresh(vault, grant, oauth_refresher(), user="alice")
    fresh = GrantRecord("http://127.0.0.1:9", "ath-shop", ["a"], "tok", time.time() + 900, "a")
    assert ensure_fresh(vault, fresh, oauth_refresher(), user="alice") is fresh  # no I/O
