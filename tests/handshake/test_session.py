"""Restrictions enforced at every use of the token, and the encrypted channel's refusals."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
from joserfc import jwt

from athkit.crypto.keys import AgentKey
from tests.handshake.conftest import SCOPES, HSServer
from tests.handshake.support import Party, full_handshake


def code(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json().get("code", "")


# -- restrictions ------------------------------------------------------------------------------


def test_ip_whitelist_excluding_loopback(make_server, agent: Party, user: Party) -> None:  # type: ignore[no-untyped-def]
    srv: HSServer = make_server(ip_whitelist=["10.0.0.0/8", "192.168.1.7"])
    s = full_handshake(srv.url, agent, user, ["goods:read"], srv.clock)
    assert code(s.plain("GET", "/api/goods")) == (403, "IP_NOT_ALLOWED")
    r, data = s.call("GET", "/api/goods")
    assert r.status_code == 403 and data["code"] == "IP_NOT_ALLOWED"


def test_ip_whitelist_including_loopback(make_server, agent: Party, user: Party) -> None:  # type: ignore[no-untyped-def]
    srv: HSServer = make_server(ip_whitelist=["127.0.0.0/8", "::1"])
    s = full_handshake(srv.url, agent, user, ["goods:read"], srv.clock)
    assert s.plain("GET", "/api/goods").status_code == 200


def test_rate_limit(make_server, agent: Party, user: Party) -> None:  # type: ignore[no-untyped-def]
    srv: HSServer = make_server(rate_limit="3/minute")
    srv.clock.freeze()
    s = full_handshake(srv.url, agent, user, ["goods:read"], srv.clock)
    for _ in range(2):
        assert s.plain("GET", "/api/goods").status_code == 200
    r, _ = s.call("GET", "/api/goods")  # encrypted calls count too
    assert r.status_code == 200
    r = s.plain("GET", "/api/goods")
    assert code(r) == (429, "RATE_LIMITED")
    assert 1 <= int(r.headers["retry-after"]) <= 60
    srv.clock.advance(60)  # the next window
    assert s.plain("GET", "/api/goods").status_code == 200


def _window(tz: str, start_in: int, length: int) -> str:
    h = datetime.now(ZoneInfo(tz)).hour
    return f"{(h + start_in) % 24:02d}:00-{(h + start_in + length) % 24:02d}:00"


def test_access_time_excluding_now(make_server, agent: Party, user: Party) -> None:  # type: ignore[no-untyped-def]
    srv: HSServer = make_server(access_time=_window("UTC", 2, 1))
    s = full_handshake(srv.url, agent, user, ["goods:read"], srv.clock)
    r = s.plain("GET", "/api/goods")
    assert code(r) == (403, "OUTSIDE_ACCESS_TIME")
    assert r.json()["details"]["timezone"] == "UTC"


def test_access_time_with_timezone(make_server, agent: Party, user: Party) -> None:  # type: ignore[no-untyped-def]
    window = _window("Asia/Tokyo", 0, 2)
    srv: HSServer = make_server(access_time=window, timezone="Asia/Tokyo")
    s = full_handshake(srv.url, agent, user, ["goods:read"], srv.clock)
    result = srv.hs.store.get_session(s.session_id)
    assert result is not None
    assert result.restrictions["access_time"] == window
    assert result.restrictions["timezone"] == "Asia/Tokyo"
    assert s.plain("GET", "/api/goods").status_code == 200


# -- the token ---------------------------------------------------------------------------------


def test_token_expiry_and_forgery(server: HSServer, agent: Party, user: Party) -> None:
    s = full_handshake(server.url, agent, user, ["goods:read"], server.clock)
    claims = jwt.decode(s.token, server.hs.identity.key.key).claims
    assert claims["sub"] == agent.did and claims["sid"] == s.session_id
    assert claims["iss"] == server.hs.identity.did and claims["aud"] == server.url
    assert claims["exp"] - claims["iat"] <= 3600 and claims["scope"] == "goods:read"
    # a token with the same claims signed by another key
    other = AgentKey.generate("P-256")
    forged = jwt.encode({"alg": "ES256"}, dict(claims), other.key, algorithms=["ES256"])
    r = httpx.get(
        f"{server.url}/api/goods",
        headers={"Authorization": f"Bearer {forged}", "X-ATH-Agent-ID": agent.did},
    )
    assert code(r) == (401, "TOKEN_INVALID")
    server.clock.advance(3601)
    assert code(s.plain("GET", "/api/goods")) == (401, "TOKEN_EXPIRED")


def test_token_of_another_session_on_this_channel(
    server: HSServer, agent: Party, user: Party
) -> None:
    s1 = full_handshake(server.url, agent, user, ["goods:read"], server.clock)
    s2 = full_handshake(server.url, agent, user, ["goods:read"], server.clock)
    s1.token = s2.token
    r, data = s1.call("GET", "/api/goods")
    assert r.status_code == 401 and data["code"] == "TOKEN_INVALID"


# -- the encrypted channel ---------------------------------------------------------------------


def test_tampered_message(server: HSServer, agent: Party, user: Party) -> None:
    s = full_handshake(server.url, agent, user, SCOPES, server.clock)
    env = s.envelope("GET", "/api/goods")
    ct = env["ct"]
    env["ct"] = ct[:-2] + ("A" if ct[-2] != "A" else "B") + ct[-1]
    assert code(s.send("GET", "/api/goods", env)) == (400, "ENCRYPTION_ERROR")
    env = s.envelope("GET", "/api/goods")
    env["seq"] += 5  # the AAD no longer matches
    assert code(s.send("GET", "/api/goods", env)) == (400, "ENCRYPTION_ERROR")
    # sealed for one path, sent to another
    body = json.dumps({"items": [{"product_id": "p-100"}]}).encode()
    env = s.envelope("POST", "/api/orders/create", body)
    assert code(s.send("POST", "/api/orders", env)) == (400, "ENCRYPTION_ERROR")
    # a rejected forgery does not burn sequence numbers: the channel still works
    r, data = s.call("GET", "/api/goods")
    assert r.status_code == 200 and data["goods"]


def test_replayed_and_reordered_messages(server: HSServer, agent: Party, user: Party) -> None:
    s = full_handshake(server.url, agent, user, SCOPES, server.clock)
    first = s.envelope("GET", "/api/goods")
    second = s.envelope("GET", "/api/goods")
    assert s.send("GET", "/api/goods", second).status_code == 200
    assert code(s.send("GET", "/api/goods", first)) == (409, "MESSAGE_REPLAYED")
    assert code(s.send("GET", "/api/goods", second)) == (409, "MESSAGE_REPLAYED")
    # a response cannot be passed off as the answer to another request
    third = s.envelope("GET", "/api/goods")
    r = s.send("GET", "/api/goods", third)
    fourth_seq = third["seq"] + 1
    import pytest

    from athkit.crypto.channel import ChannelError

    with pytest.raises(ChannelError):
        s.channel.open_response(r.json(), fourth_seq)


def test_stale_and_expired_messages(server: HSServer, agent: Party, user: Party) -> None:
    s = full_handshake(server.url, agent, user, SCOPES, server.clock)
    env = s.envelope("GET", "/api/goods")
    server.clock.advance(400)
    assert code(s.send("GET", "/api/goods", env)) == (401, "HANDSHAKE_STALE")
    env = s.envelope("GET", "/api/goods")
    server.clock.advance(24 * 3600)
    assert code(s.send("GET", "/api/goods", env)) == (401, "SESSION_KEY_EXPIRED")


def test_malformed_envelopes(server: HSServer, agent: Party, user: Party) -> None:
    s = full_handshake(server.url, agent, user, SCOPES, server.clock)
    h = {**s.headers(), "Content-Type": "application/ath+encrypted"}
    r = s.http.get(f"{server.url}/api/goods", headers=h)  # no X-ATH-Session
    assert code(r) == (400, "ENCRYPTION_ERROR")
    h["X-ATH-Session"] = s.session_id
    r = s.http.request("GET", f"{server.url}/api/goods", headers=h, content=b"not json")
    assert code(r) == (400, "ENCRYPTION_ERROR")
    env = s.envelope("GET", "/api/goods")
    env["sid"] = "hss_other"
    assert code(s.send("GET", "/api/goods", env)) == (400, "ENCRYPTION_ERROR")
    h["X-ATH-Session"] = "hss_unknown"
    env["sid"] = "hss_unknown"
    r = s.http.request("GET", f"{server.url}/api/goods", headers=h, content=json.dumps(env))
    assert code(r) == (401, "TOKEN_INVALID")
