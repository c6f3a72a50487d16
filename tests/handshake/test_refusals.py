"""Every refusal of the handshake, over real HTTP (docs/handshake.md, "Error codes added")."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from athkit.crypto.channel import EphemeralKey
from athkit.crypto.credentials import confirmation_response, issue
from athkit.crypto.signing import sign_object
from tests.handshake.conftest import SCOPES, HSServer
from tests.handshake.support import Flow, Party


def code(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json().get("code", "")


# -- steps 1-4 ---------------------------------------------------------------------------------


def test_bad_agent_signature(server: HSServer, agent: Party) -> None:
    f = Flow(server.url, agent, server.clock)
    assert f.step1().status_code == 201
    assert code(f.step3(key=Party.new().key)) == (401, "INVALID_SIGNATURE")
    # the genuine agent can still prove itself afterwards
    assert f.step3().status_code == 200


def test_pubkey_not_named_by_did(server: HSServer, agent: Party) -> None:
    f = Flow(server.url, agent, server.clock)
    assert code(f.step1(client_pubkey=Party.new().pub)) == (401, "INVALID_SIGNATURE")


def test_replayed_nonce(server: HSServer, agent: Party) -> None:
    f = Flow(server.url, agent, server.clock)
    assert f.step1().status_code == 201
    nonce = f.nonce_a
    assert code(Flow(server.url, agent, server.clock).step1(nonce=nonce)) == (
        401,
        "NONCE_REPLAYED",
    )


def test_short_nonce(server: HSServer, agent: Party) -> None:
    f = Flow(server.url, agent, server.clock)
    assert code(f.step1(nonce="!" * 30)) == (400, "INVALID_REQUEST")  # not base64url
    assert code(f.step1(nonce="A" * 21)) == (422, "VALIDATION_ERROR")  # under 128 bits
    assert f.step1(nonce="A" * 22).status_code == 201  # exactly 128 bits


@pytest.mark.parametrize("skew", [-400, 400])
def test_stale_timestamps(server: HSServer, agent: Party, skew: int) -> None:
    f = Flow(server.url, agent, server.clock)
    assert code(f.step1(timestamp=f.now() + skew)) == (401, "HANDSHAKE_STALE")
    assert f.step1().status_code == 201
    assert code(f.step3(timestamp=f.now() + skew)) == (401, "HANDSHAKE_STALE")


def test_unsupported_version(server: HSServer, agent: Party) -> None:
    f = Flow(server.url, agent, server.clock)
    assert code(f.step1(versions=["9.0"])) == (400, "UNSUPPORTED_VERSION")


# -- step 5: the user's credential -------------------------------------------------------------


def identified(server: HSServer, agent: Party) -> Flow:
    f = Flow(server.url, agent, server.clock)
    assert f.step1().status_code == 201
    assert f.step3().status_code == 200
    return f


def test_expired_credential(server: HSServer, agent: Party, user: Party) -> None:
    f = identified(server, agent)
    cred = issue(user.key, agent.did, SCOPES, 60, f.now() - 120)
    assert code(f.step5(SCOPES, cred)) == (401, "CREDENTIAL_EXPIRED")


def test_forged_credentials(server: HSServer, agent: Party, user: Party) -> None:
    f = identified(server, agent)
    cred = issue(user.key, agent.did, ["goods:read"], 3600, f.now())
    # widened after signing
    forged = dict(cred.credential, scopes=SCOPES)
    r = f.step5(SCOPES, {"credential": forged, "signature": cred.signature})
    assert code(r) == (401, "CREDENTIAL_INVALID")
    # signed by someone else than user_did
    other = dict(cred.credential)
    r = f.step5(["goods:read"], {"credential": other, "signature": sign_object(agent.key, other)})
    assert code(r) == (401, "CREDENTIAL_INVALID")
    # missing altogether
    assert code(f.step5(["goods:read"], None)) == (401, "CREDENTIAL_INVALID")
    # garbage
    assert code(f.step5(["goods:read"], {"credential": 1, "signature": 2})) == (
        401,
        "CREDENTIAL_INVALID",
    )


def test_credential_for_another_agent(server: HSServer, agent: Party, user: Party) -> None:
    f = identified(server, agent)
    cred = issue(user.key, Party.new().did, SCOPES, 3600, f.now())
    assert code(f.step5(SCOPES, cred)) == (403, "CREDENTIAL_AGENT_MISMATCH")


def test_scopes_beyond_credential(server: HSServer, agent: Party, user: Party) -> None:
    f = identified(server, agent)
    cred = issue(user.key, agent.did, ["goods:read"], 3600, f.now())
    r = f.step5(SCOPES, cred)
    assert code(r) == (403, "CREDENTIAL_SCOPE_EXCEEDED")
    assert r.json()["details"]["scopes"] == ["order:create"]


def test_unsupported_scope_is_denied_not_granted(
    server: HSServer, agent: Party, user: Party
) -> None:
    f = Flow(server.url, agent, server.clock)
    r = f.to_pending(user, ["goods:read", "cart:read", "admin:all"])
    assert r.status_code == 202
    assert f.confirm(user, True, ["goods:read", "cart:read", "admin:all"]).status_code == 200
    result = f.result().json()
    assert result["scopes_granted"] == ["goods:read"]
    assert {"scope": "cart:read", "reason": "policy"} in result["scopes_denied"]
    assert {"scope": "admin:all", "reason": "not_supported"} in result["scopes_denied"]


# -- steps 6-8: the user -----------------------------------------------------------------------


def test_user_denies(server: HSServer, agent: Party, user: Party) -> None:
    f = Flow(server.url, agent, server.clock)
    assert f.to_pending(user, SCOPES).status_code == 202
    r = f.confirm(user, False, [])
    assert r.status_code == 200 and r.json()["status"] == "denied"
    assert code(f.result()) == (403, "USER_DENIED")
    r, _ = f.step9()
    assert code(r) == (403, "USER_DENIED")
    # a second answer is refused
    assert code(f.confirm(user, True, SCOPES)) == (409, "HANDSHAKE_OUT_OF_ORDER")


def test_user_never_answers(server: HSServer, agent: Party, user: Party) -> None:
    f = Flow(server.url, agent, server.clock)
    assert f.to_pending(user, SCOPES).status_code == 202
    assert f.result().status_code == 202
    server.clock.advance(301)  # confirmation_ttl is 300 s
    assert code(f.result()) == (408, "CONFIRMATION_TIMEOUT")
    assert code(f.result()) == (408, "CONFIRMATION_TIMEOUT")
    assert code(f.confirm(user, True, SCOPES)) == (409, "HANDSHAKE_OUT_OF_ORDER")


def test_late_answer_is_timeout(server: HSServer, agent: Party, user: Party) -> None:
    f = Flow(server.url, agent, server.clock)
    assert f.to_pending(user, SCOPES).status_code == 202
    server.clock.advance(301)
    assert code(f.confirm(user, True, SCOPES)) == (408, "CONFIRMATION_TIMEOUT")


def test_long_poll_returns_once_approved(server: HSServer, agent: Party, user: Party) -> None:
    import threading
    import time

    f = Flow(server.url, agent, server.clock)
    assert f.to_pending(user, SCOPES).status_code == 202
    timer = threading.Timer(0.6, lambda: f.confirm(user, True, SCOPES))
    timer.start()
    t0 = time.monotonic()
    r = f.result(wait=10)
    timer.join()
    assert r.status_code == 200 and r.json()["scopes_granted"] == SCOPES
    assert 0.5 < time.monotonic() - t0 < 5


def test_confirmation_refusals(server: HSServer, agent: Party, user: Party) -> None:
    f = Flow(server.url, agent, server.clock)
    assert f.to_pending(user, ["goods:read"], cred_scopes=SCOPES).status_code == 202
    # signed by another user
    intruder = Party.new()
    body = confirmation_response(
        intruder.key,
        request_id=f.request_id,
        handshake_id=f.handshake_id,
        client_did=agent.did,
        approved=True,
        approved_scopes=["goods:read"],
        expires_at=f.expires_at,
    )
    r = f.http.post(f"{server.url}/ath/confirmations/{f.request_id}", json=body)
    assert code(r) == (400, "INVALID_REQUEST")  # user_did differs from the request's
    body.pop("user_did")
    r = f.http.post(f"{server.url}/ath/confirmations/{f.request_id}", json=body)
    assert code(r) == (401, "INVALID_SIGNATURE")
    # approving more than was requested
    assert code(f.confirm(user, True, SCOPES)) == (400, "INVALID_REQUEST")
    # unknown request
    r = f.http.post(
        f"{server.url}/ath/confirmations/cr_nope", json={**body, "request_id": "cr_nope"}
    )
    assert r.status_code == 404
    assert f.confirm(user, True, ["goods:read"]).status_code == 200


# -- order and expiry --------------------------------------------------------------------------


def test_out_of_order_steps(server: HSServer, agent: Party, user: Party) -> None:
    f = Flow(server.url, agent, server.clock)
    assert f.step1().status_code == 201
    cred = issue(user.key, agent.did, SCOPES, 3600, f.now())
    assert code(f.step5(SCOPES, cred)) == (409, "HANDSHAKE_OUT_OF_ORDER")
    assert code(f.result()) == (409, "HANDSHAKE_OUT_OF_ORDER")
    r, _ = f.step9()
    assert code(r) == (409, "HANDSHAKE_OUT_OF_ORDER")
    assert f.step3().status_code == 200
    assert code(f.step3()) == (409, "HANDSHAKE_OUT_OF_ORDER")
    assert f.step5(SCOPES, cred).status_code == 202
    assert code(f.step5(SCOPES, cred)) == (409, "HANDSHAKE_OUT_OF_ORDER")
    r, _ = f.step9()
    assert code(r) == (409, "HANDSHAKE_OUT_OF_ORDER")


def test_unknown_handshake(server: HSServer, agent: Party) -> None:
    f = Flow(server.url, agent, server.clock)
    f.handshake_id = "hs_does-not-exist"
    assert code(f.result()) == (404, "HANDSHAKE_NOT_FOUND")


def test_expired_handshake(server: HSServer, agent: Party, user: Party) -> None:
    f = Flow(server.url, agent, server.clock)
    assert f.step1().status_code == 201
    server.clock.advance(601)
    assert code(f.step3()) == (410, "HANDSHAKE_EXPIRED")
    # an approved handshake that is never completed expires too
    f = Flow(server.url, agent, server.clock)
    assert f.to_pending(user, SCOPES).status_code == 202
    assert f.confirm(user, True, SCOPES).status_code == 200
    server.clock.advance(601)
    assert code(f.result()) == (410, "HANDSHAKE_EXPIRED")
    r, _ = f.step9()
    assert code(r) == (410, "HANDSHAKE_EXPIRED")


def test_bad_key_exchange(server: HSServer, agent: Party, user: Party) -> None:
    f = Flow(server.url, agent, server.clock)
    assert f.to_pending(user, SCOPES).status_code == 202
    assert f.confirm(user, True, SCOPES).status_code == 200
    url = f"{server.url}/ath/handshake/{f.handshake_id}/complete"
    bad_epk = {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}
    bad: dict[str, Any] = {
        "key_exchange_alg": "ECDH-P256",
        "key_exchange_params": {"epk": bad_epk, "signature": f.kex_signature(bad_epk)},
        "cipher_suite": "AES-256-GCM",
    }
    assert code(f.http.post(url, json=bad)) == (400, "INVALID_REQUEST")
    assert code(f.http.post(url, json={**bad, "cipher_suite": "NULL"})) == (400, "INVALID_REQUEST")
    # An ephemeral key the agent did not sign (someone in between swapped it) is refused.
    good_epk = EphemeralKey().public_jwk()
    unsigned = {**bad, "key_exchange_params": {"epk": good_epk}}
    assert code(f.http.post(url, json=unsigned)) == (401, "INVALID_SIGNATURE")
    by_other = {**bad, "key_exchange_params": {"epk": good_epk, "signature": f.kex_signature(good_epk, Party.new().key)}}
    assert code(f.http.post(url, json=by_other)) == (401, "INVALID_SIGNATURE")
    r, channel = f.step9()  # still possible with a good key
    assert r.status_code == 200 and channel is not None
