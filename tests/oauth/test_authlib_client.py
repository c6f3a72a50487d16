"""A plain OAuth 2.1 library we did not write (Authlib's httpx client) completes
authorization code + PKCE + refresh against athkit's /oauth/* on a real server."""

from __future__ import annotations

import secrets

import httpx
from authlib.integrations.httpx_client import OAuth2Client

from athkit.web.serving import free_port
from tests.oauth.conftest import NotesService
from tests.oauth.support import ConsentingUser, query_of


def test_authlib_code_pkce_refresh_and_revocation(
    notes: NotesService, bob: ConsentingUser
) -> None:
    meta = httpx.get(f"{notes.base}/.well-known/oauth-authorization-server").json()
    redirect = f"http://127.0.0.1:{free_port()}/cb"
    reg = httpx.post(
        meta["registration_endpoint"],
        json={
            "client_name": "Authlib app",
            "redirect_uris": [redirect],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "notes:read notes:write",
        },
    )
    assert reg.status_code == 201, reg.text
    creds = reg.json()
    assert creds["ath_agent_status"] == "approved" and creds["client_secret"]

    resource = f"{notes.base}/api"
    with OAuth2Client(
        creds["client_id"],
        creds["client_secret"],
        redirect_uri=redirect,
        scope="notes:read",
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    ) as client:
        verifier = secrets.token_urlsafe(48)
        url, state = client.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, resource=resource
        )
        back = bob.answer(url)
        assert query_of(back)["state"] == state and query_of(back)["iss"] == meta["issuer"]
        token = client.fetch_token(
            meta["token_endpoint"],
            authorization_response=back,
            code_verifier=verifier,
            resource=resource,
        )
        assert token["token_type"] == "Bearer" and token["scope"] == "notes:read"
        assert token["ath_audience"] == resource and token["refresh_token"]

        # The code is single use: a second redemption fails and kills what the first made.
        again = httpx.post(
            meta["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": query_of(back)["code"],
                "code_verifier": verifier,
                "redirect_uri": redirect,
            },
            auth=(creds["client_id"], creds["client_secret"]),
        )
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
        intro = httpx.post(
            meta["introspection_endpoint"],
            data={"token": token["access_token"]},
            auth=(creds["client_id"], creds["client_secret"]),
        )
        assert intro.json() == {"active": False}

    # A fresh authorization; then refresh with Authlib (rotation).
    with OAuth2Client(
        creds["client_id"], creds["client_secret"], redirect_uri=redirect, scope="notes:read",
        code_challenge_method="S256",
    ) as client:
        verifier = secrets.token_urlsafe(48)
        url, _ = client.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, resource=resource
        )
        token = client.fetch_token(
            meta["token_endpoint"], authorization_response=bob.answer(url), code_verifier=verifier
        )
        first_refresh = token["refresh_token"]
        refreshed = client.refresh_token(meta["token_endpoint"], refresh_token=first_refresh)
        assert refreshed["access_token"] != token["access_token"]
        assert refreshed["refresh_token"] != first_refresh
        intro = httpx.post(
            meta["introspection_endpoint"],
            data={"token": refreshed["access_token"]},
            auth=(creds["client_id"], creds["client_secret"]),
        ).json()
        assert intro["active"] is True and intro["aud"] == resource
        assert intro["scope"] == "notes:read" and intro["sub"] == "bob"

        # Reuse of the rotated refresh token: refused, and the whole family is revoked.
        reuse = httpx.post(
            meta["token_endpoint"],
            data={"grant_type": "refresh_token", "refresh_token": first_refresh},
            auth=(creds["client_id"], creds["client_secret"]),
        )
        assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
        for t in (refreshed["access_token"], refreshed["refresh_token"]):
            dead = httpx.post(
                meta["introspection_endpoint"],
                data={"token": t},
                auth=(creds["client_id"], creds["client_secret"]),
            )
            assert dead.json() == {"active": False}
