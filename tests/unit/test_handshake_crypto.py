"""Unit tests for the handshake crypto: canonical JSON, signatures, DIDs, credentials, channel."""

from __future__ import annotations

from typing import Any

import pytest

from athkit.crypto.canonical import b64url_decode, b64url_encode, canonical_json
from athkit.crypto.channel import (
    ChannelError,
    EphemeralKey,
    SessionChannel,
    client_channel,
    derive_session_keys,
    server_channel,
)
from athkit.crypto.credentials import (
    CredentialError,
    SignedCredential,
    UserProofError,
    client_proof_object,
    confirmation_object,
    confirmation_response,
    issue,
    server_proof_object,
    user_request_proof,
    verify_credential,
    verify_user_request_proof,
)
from athkit.crypto.did import (
    DIDError,
    DIDResolver,
    base58btc_decode,
    base58btc_encode,
    did_document,
    did_key_from_jwk,
    did_web_url,
    jwk_from_did_key,
    same_public_key,
    varint_decode,
    varint_encode,
)
from athkit.crypto.keys import AgentKey
from athkit.crypto.signing import sign, sign_object, verify, verify_object

NOW = 1_760_000_000

# --------------------------------------------------------------------------- canonical JSON


def test_canonical_sorted_compact_utf8() -> None:
    assert (
        canonical_json({"b": 1, "a": [True, None, "é"]}) == '{"a":[true,null,"é"],"b":1}'.encode()
    )
    assert canonical_json({"z": {"y": 1, "x": 2}}) == b'{"z":{"x":2,"y":1}}'
    assert canonical_json({}) == b"{}"
    assert canonical_json("\u2028") == '"\u2028"'.encode()


@pytest.mark.parametrize("bad", [1.0, float("nan"), float("inf"), {"a": 0.5}, [1, 2.0], {1: "x"}])
def test_canonical_refuses_floats_and_non_string_keys(bad: Any) -> None:
    with pytest.raises(ValueError):
        canonical_json(bad)


def test_canonical_refuses_other_types() -> None:
    with pytest.raises(ValueError):
        canonical_json({"a": b"bytes"})
    with pytest.raises(ValueError):
        canonical_json({"a": object()})


def test_canonical_big_ints_and_key_order_independence() -> None:
    assert canonical_json({"n": 2**70}) == b'{"n":1180591620717411303424}'
    assert canonical_json({"a": 1, "b": 2}) == canonical_json({"b": 2, "a": 1})


def test_b64url_roundtrip_and_errors() -> None:
    for n in range(0, 40):
        data = bytes(range(n))
        enc = b64url_encode(data)
        assert "=" not in enc and "+" not in enc and "/" not in enc
        assert b64url_decode(enc) == data
    with pytest.raises(ValueError):
        b64url_decode("ab+/")
    with pytest.raises(ValueError):
        b64url_decode("a")


# --------------------------------------------------------------------------- signatures


@pytest.mark.parametrize("kind", ["P-256", "Ed25519"])
def test_sign_verify_roundtrip(kind: Any) -> None:
    key = AgentKey.generate(kind)
    sig = sign(key, b"hello")
    assert len(b64url_decode(sig)) == 64
    assert verify(key.public_jwk(), b"hello", sig)
    assert not verify(key.public_jwk(), b"hellO", sig)
    other = AgentKey.generate(kind)
    assert not verify(other.public_jwk(), b"hello", sig)


@pytest.mark.parametrize("kind", ["P-256", "Ed25519"])
def test_verify_never_raises(kind: Any) -> None:
    key = AgentKey.generate(kind)
    jwk = key.public_jwk()
    sig = sign(key, b"x")
    for bad_sig in ["", "!!!", "a", b64url_encode(b"\0" * 63), b64url_encode(b"\xff" * 64), 5]:
        assert verify(jwk, b"x", bad_sig) is False  # type: ignore[arg-type]
    for bad_jwk in [
        {},
        {"kty": "EC"},
        {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
        {"kty": "RSA"},
        "nope",
        None,
    ]:
        assert verify(bad_jwk, b"x", sig) is False  # type: ignore[arg-type]
    # a P-256 point not on the curve
    off = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url_encode(b"\1" * 32),
        "y": b64url_encode(b"\2" * 32),
    }
    assert verify(off, b"x", sig) is False


def test_sign_object_is_order_independent_and_refuses_floats() -> None:
    key = AgentKey.generate()
    sig = sign_object(key, {"a": 1, "b": "2"})
    assert verify_object(key.public_jwk(), {"b": "2", "a": 1}, sig)
    assert not verify_object(key.public_jwk(), {"b": "2", "a": 2}, sig)
    assert not verify_object(key.public_jwk(), {"a": 1.0, "b": "2"}, sig)
    assert not verify_object(key.public_jwk(), {"a": 1, "b": "2"}, None)


def test_high_s_p256_signature_is_still_raw_64_bytes() -> None:
    key = AgentKey.generate()
    for i in range(20):  # r or s with leading zero bytes must still be padded to 32 bytes
        sig = sign(key, str(i).encode())
        assert len(b64url_decode(sig)) == 64
        assert verify(key.public_jwk(), str(i).encode(), sig)


# --------------------------------------------------------------------------- DIDs

ED_VECTOR = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
P256_VECTOR = "did:key:zDnaerx9CtbPJ1q36T5Ln5wYt3MQYeGRG5ehnPAmxcf5mDZpv"
P256_VECTOR_JWK = {
    "kty": "EC",
    "crv": "P-256",
    "x": "igrFmi0whuihKnj9R3Om1SoMph72wUGeFaBbzG2vzns",
    "y": "efsX5b10x8yjyrj4ny3pGfLcY7Xby1KzgqOdqnsrJIM",
}


def test_did_key_p256_spec_vector() -> None:
    assert jwk_from_did_key(P256_VECTOR) == P256_VECTOR_JWK
    assert did_key_from_jwk(P256_VECTOR_JWK) == P256_VECTOR
    assert did_key_from_jwk({**P256_VECTOR_JWK, "kid": "x", "alg": "ES256"}) == P256_VECTOR


def test_did_key_ed25519_spec_vector() -> None:
    jwk = jwk_from_did_key(ED_VECTOR)
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519"
    assert len(b64url_decode(jwk["x"])) == 32
    raw = base58btc_decode(ED_VECTOR.split(":")[2][1:])
    assert raw[:2] == b"\xed\x01"
    assert did_key_from_jwk(jwk) == ED_VECTOR


@pytest.mark.parametrize("kind", ["P-256", "Ed25519"])
def test_did_key_roundtrip(kind: Any) -> None:
    key = AgentKey.generate(kind)
    did = did_key_from_jwk(key.public_jwk())
    assert did.startswith("did:key:zDn" if kind == "P-256" else "did:key:z6Mk")
    assert same_public_key(jwk_from_did_key(did), key.public_jwk())
    assert jwk_from_did_key(did + "#frag") == jwk_from_did_key(did)


@pytest.mark.parametrize(
    "bad",
    [
        "did:key:",
        "did:key:abc",  # not base58btc multibase
        "did:key:z0OIl",  # characters outside the alphabet
        "did:key:z" + base58btc_encode(varint_encode(0xED) + b"\1" * 31),  # short key
        "did:key:z"
        + base58btc_encode(varint_encode(0x1200) + b"\4" + b"\1" * 32),  # not compressed
        "did:key:z" + base58btc_encode(varint_encode(0x1200) + b"\2" + b"\xff" * 32),  # off curve
        "did:key:z" + base58btc_encode(varint_encode(0xE7) + b"\2" * 33),  # secp256k1
        "did:web:example.com",
        "not a did",
    ],
)
def test_did_key_refusals(bad: str) -> None:
    with pytest.raises(DIDError):
        jwk_from_did_key(bad)


def test_base58_and_varint() -> None:
    assert base58btc_encode(b"") == ""
    assert base58btc_encode(b"\0\0\1") == "112"
    assert base58btc_decode("112") == b"\0\0\1"
    assert base58btc_encode(b"hello world") == "StV1DL6CwTryKyV"
    for data in [b"\0", b"\xff" * 33, bytes(range(50))]:
        assert base58btc_decode(base58btc_encode(data)) == data
    assert varint_encode(0xED) == b"\xed\x01"
    assert varint_encode(0x1200) == b"\x80\x24"
    assert varint_decode(b"\x80\x24rest") == (0x1200, 2)
    assert varint_decode(b"\x01") == (1, 1)
    with pytest.raises(DIDError):
        varint_decode(b"\x80")
    with pytest.raises(DIDError):
        varint_decode(b"\x81\x00")  # not minimal
    with pytest.raises(ValueError):
        varint_encode(-1)


def test_did_web_url() -> None:
    assert did_web_url("did:web:example.com") == "https://example.com/.well-known/did.json"
    assert (
        did_web_url("did:web:example.com:user:alice") == "https://example.com/user/alice/did.json"
    )
    assert (
        did_web_url("did:web:example.com%3A3000") == "https://example.com:3000/.well-known/did.json"
    )
    assert did_web_url("did:web:localhost%3A8443:a") == "https://localhost:8443/a/did.json"
    for bad in [
        "did:web:",
        "did:web:ex/ample.com",
        "did:web:example.com:..",
        "did:web:a@b",
        "did:web:example.com::x",
        "did:key:z6Mk",
    ]:
        with pytest.raises(DIDError):
            did_web_url(bad)


def test_resolver_did_web_with_injected_fetcher_and_cache() -> None:
    key = AgentKey.generate()
    did = "did:web:shop.example"
    calls: list[str] = []

    def fetch(url: str) -> Any:
        calls.append(url)
        return did_document(did, key.public_jwk())

    t = [1000.0]
    r = DIDResolver(fetch, clock=lambda: t[0])
    assert same_public_key(r.resolve(did), key.public_jwk())
    assert same_public_key(r.resolve(did), key.public_jwk())
    assert calls == ["https://shop.example/.well-known/did.json"]
    t[0] += 301
    r.resolve(did)
    assert len(calls) == 2
    assert r.resolve(ED_VECTOR)["crv"] == "Ed25519"  # did:key stays local
    assert len(calls) == 2


def test_resolver_did_web_multibase_and_refusals() -> None:
    key = AgentKey.generate("Ed25519")
    mb = did_key_from_jwk(key.public_jwk()).split(":")[2]
    did = "did:web:a.example:u:1"
    docs: dict[str, Any] = {
        "ok": {"id": did, "verificationMethod": [{"publicKeyMultibase": mb}]},
        "wrong_id": {"id": "did:web:other", "verificationMethod": [{"publicKeyMultibase": mb}]},
        "private": {"id": did, "verificationMethod": [{"publicKeyJwk": key.private_jwk()}]},
        "empty": {"id": did, "verificationMethod": []},
        "list": [1],
    }
    for name, doc in docs.items():
        r = DIDResolver(lambda url, doc=doc: doc)
        if name == "ok":
            assert same_public_key(r.resolve(did), key.public_jwk())
        else:
            with pytest.raises(DIDError):
                r.resolve(did)

    def boom(url: str) -> Any:
        raise OSError("network down")

    with pytest.raises(DIDError):
        DIDResolver(boom).resolve(did)
    with pytest.raises(DIDError):
        DIDResolver(boom).resolve("did:example:123")


def test_resolver_dev_mode_uses_http_for_loopback() -> None:
    key = AgentKey.generate()
    did = "did:web:127.0.0.1%3A8080"
    seen: list[str] = []

    def fetch(url: str) -> Any:
        seen.append(url)
        return did_document(did, key.public_jwk())

    DIDResolver(fetch, dev_mode=True).resolve(did)
    assert seen == ["http://127.0.0.1:8080/.well-known/did.json"]


def test_default_fetcher_refuses_private_addresses() -> None:
    with pytest.raises(DIDError):
        DIDResolver().resolve("did:web:127.0.0.1")  # loopback outside dev mode: SSRF guard


# --------------------------------------------------------------------------- credentials


class _Res:
    def resolve(self, did: str) -> dict[str, Any]:
        return jwk_from_did_key(did)


RES = _Res()


@pytest.mark.parametrize("kind", ["P-256", "Ed25519"])
def test_credential_issue_and_verify(kind: Any) -> None:
    user = AgentKey.generate(kind)
    agent_did = did_key_from_jwk(AgentKey.generate().public_jwk())
    sc = issue(user, agent_did, ["goods:read", "order:create"], 7200, now=NOW)
    assert sc.credential["purpose"] == "ath-user-credential"
    assert sc.credential["expires_at"] == NOW + 7200
    cred = verify_credential(sc.credential, sc.signature, RES, client_did=agent_did, now=NOW + 10)
    assert cred.scopes == ("goods:read", "order:create")
    assert cred.user_did == did_key_from_jwk(user.public_jwk())
    assert SignedCredential.from_dict(sc.to_dict()) == sc


def _reason(fn: Any) -> str:
    with pytest.raises(CredentialError) as info:
        fn()
    return info.value.reason


def test_credential_refusals() -> None:
    user = AgentKey.generate()
    agent = "did:key:" + "zDn" + "x"
    sc = issue(user, agent, ["goods:read"], 60, now=NOW)
    c, s = sc.credential, sc.signature
    assert (
        _reason(lambda: verify_credential(c, s, RES, client_did=agent, now=NOW + 60)) == "expired"
    )
    assert _reason(lambda: verify_credential(c, s, RES, client_did="did:key:other", now=NOW)) == (
        "agent_mismatch"
    )
    forged = {**c, "scopes": ["goods:read", "order:create"]}
    assert (
        _reason(lambda: verify_credential(forged, s, RES, client_did=agent, now=NOW)) == "invalid"
    )
    other = AgentKey.generate()
    wrong_signer = sign_object(other, c)
    assert _reason(lambda: verify_credential(c, wrong_signer, RES, client_did=agent, now=NOW)) == (
        "invalid"
    )
    # a signature for another purpose cannot be replayed as a credential
    assert (
        _reason(
            lambda: verify_credential(
                {**c, "purpose": "ath-user-confirmation"}, s, RES, client_did=agent, now=NOW
            )
        )
        == "invalid"
    )
    assert _reason(
        lambda: verify_credential({**c, "extra": 1}, s, RES, client_did=agent, now=NOW)
    ) == ("invalid")
    assert _reason(lambda: verify_credential("x", s, RES, client_did=agent, now=NOW)) == "invalid"
    assert (
        _reason(lambda: verify_credential(c, s, RES, client_did=agent, now=NOW - 400)) == "invalid"
    )
    with pytest.raises(ValueError):
        issue(user, agent, [], 60)
    with pytest.raises(ValueError):
        issue(user, agent, ["a"], 0)


def test_proof_objects_differ_by_purpose() -> None:
    args = ("hs_1", "did:key:a", "did:key:b", "na", "nb", NOW)
    s, c = server_proof_object(*args), client_proof_object(*args)
    assert s["purpose"] == "ath-handshake-server" and c["purpose"] == "ath-handshake-client"
    key = AgentKey.generate()
    assert not verify_object(key.public_jwk(), c, sign_object(key, s))


def test_confirmation_object_and_response() -> None:
    user = AgentKey.generate()
    user_did = did_key_from_jwk(user.public_jwk())
    body = confirmation_response(
        user,
        request_id="cr_1",
        handshake_id="hs_1",
        client_did="did:key:a",
        approved=True,
        approved_scopes=["goods:read"],
        expires_at=NOW + 300,
    )
    obj = confirmation_object(
        "cr_1", "hs_1", user_did, "did:key:a", True, ["goods:read"], NOW + 300
    )
    assert obj["purpose"] == "ath-user-confirmation"
    assert verify_object(user.public_jwk(), obj, body["signature"])
    deny = confirmation_object("cr_1", "hs_1", user_did, "did:key:a", False, ["goods:read"], 1)
    assert deny["approved_scopes"] == [] and deny["approved"] is False


def test_user_request_proof() -> None:
    user = AgentKey.generate("Ed25519")
    user_did = did_key_from_jwk(user.public_jwk())
    h = user_request_proof(user, user_did, "did:key:srv", "get", "/ath/confirmations", now=NOW)
    assert verify_user_request_proof(h, RES, "did:key:srv", "GET", "/ath/confirmations", NOW) == (
        user_did
    )
    seen: set[str] = set()

    def unused(nonce: str, exp: int) -> bool:
        if nonce in seen:
            return False
        seen.add(nonce)
        return True

    verify_user_request_proof(
        h, RES, "did:key:srv", "GET", "/ath/confirmations", NOW, nonce_unused=unused
    )
    cases: list[tuple[str, str, str, str, int]] = [
        (h, "did:key:other", "GET", "/ath/confirmations", NOW),
        (h, "did:key:srv", "POST", "/ath/confirmations", NOW),
        (h, "did:key:srv", "GET", "/ath/confirmations/x", NOW),
        (h[:-3] + "AAA", "did:key:srv", "GET", "/ath/confirmations", NOW),
        ("garbage", "did:key:srv", "GET", "/ath/confirmations", NOW),
        (h + ".x", "did:key:srv", "GET", "/ath/confirmations", NOW),
    ]
    for args in cases:
        with pytest.raises(UserProofError) as info:
            verify_user_request_proof(*args)
        assert info.value.reason == "invalid"
    with pytest.raises(UserProofError) as info:
        verify_user_request_proof(h, RES, "did:key:srv", "GET", "/ath/confirmations", NOW + 301)
    assert info.value.reason == "stale"
    with pytest.raises(UserProofError) as info:
        verify_user_request_proof(
            h, RES, "did:key:srv", "GET", "/ath/confirmations", NOW, nonce_unused=unused
        )
    assert info.value.reason == "replayed"


# --------------------------------------------------------------------------- channel


def _pair(now: list[float], ttl: int = 3600) -> tuple[SessionChannel, SessionChannel]:
    a, b = EphemeralKey(), EphemeralKey()
    sa, sb = a.agree(b.public_jwk()), b.agree(a.public_jwk())
    assert sa == sb and len(sa) == 32
    ka = derive_session_keys(sa, "nA", "nB", "did:key:c", "did:key:s", "hs_1")
    kb = derive_session_keys(sb, "nA", "nB", "did:key:c", "did:key:s", "hs_1")
    assert ka == kb
    exp = int(now[0]) + ttl
    return (
        client_channel("ses_1", ka, exp, clock=lambda: now[0]),
        server_channel("ses_1", kb, exp, clock=lambda: now[0]),
    )


def test_key_derivation_binds_every_input() -> None:
    secret = b"\x07" * 32
    base = derive_session_keys(secret, "nA", "nB", "did:c", "did:s", "hs")
    assert len(base[0]) == 32 and len(base[1]) == 32 and base[0] != base[1]
    variants = [
        (b"\x08" * 32, "nA", "nB", "did:c", "did:s", "hs"),
        (secret, "nX", "nB", "did:c", "did:s", "hs"),
        (secret, "nA", "nX", "did:c", "did:s", "hs"),
        (secret, "nB", "nA", "did:c", "did:s", "hs"),
        (secret, "nA", "nB", "did:x", "did:s", "hs"),
        (secret, "nA", "nB", "did:c", "did:x", "hs"),
        (secret, "nA", "nB", "did:c", "did:s", "hx"),
    ]
    for v in variants:
        assert derive_session_keys(*v) != base
    with pytest.raises(ValueError):
        derive_session_keys(b"short", "a", "b", "c", "d", "e")


def test_ephemeral_key_single_use_and_bad_peer() -> None:
    a, b = EphemeralKey(), EphemeralKey()
    a.agree(b.public_jwk())
    with pytest.raises(ChannelError):
        a.agree(b.public_jwk())
    c = EphemeralKey()
    for bad in [
        {},
        {"kty": "OKP", "crv": "X25519", "x": "AA"},
        {**P256_VECTOR_JWK, "d": "x"},
        {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url_encode(b"\1" * 32),
            "y": b64url_encode(b"\2" * 32),
        },
    ]:
        with pytest.raises(ChannelError) as info:
            c.agree(bad)
        assert info.value.code == "ENCRYPTION_ERROR"


def test_channel_roundtrip_request_and_response() -> None:
    now = [float(NOW)]
    cli, srv = _pair(now)
    env = cli.seal("POST", "/api/orders", b'{"sku":"A1"}')
    assert set(env) == {"sid", "seq", "ts", "iv", "ct"} and env["seq"] == 1
    assert srv.open(env, "POST", "/api/orders") == b'{"sku":"A1"}'
    resp = srv.seal_response(env["seq"], b'{"ok":true}')
    assert cli.open_response(resp, env["seq"]) == b'{"ok":true}'
    env2 = cli.seal("GET", "/api/goods", b"")
    assert env2["seq"] == 2
    assert srv.open(env2, "GET", "/api/goods") == b""
    assert env["iv"] != env2["iv"]


def _code(fn: Any) -> str:
    with pytest.raises(ChannelError) as info:
        fn()
    return info.value.code


def test_channel_tamper() -> None:
    now = [float(NOW)]
    cli, srv = _pair(now)
    env = cli.seal("POST", "/api/orders", b"payload")
    ct = bytearray(b64url_decode(env["ct"]))
    ct[0] ^= 1
    assert _code(
        lambda: srv.open({**env, "ct": b64url_encode(bytes(ct))}, "POST", "/api/orders")
    ) == ("ENCRYPTION_ERROR")
    assert _code(lambda: srv.open({**env, "seq": 5}, "POST", "/api/orders")) == "ENCRYPTION_ERROR"
    assert _code(lambda: srv.open({**env, "ts": env["ts"] + 1}, "POST", "/api/orders")) == (
        "ENCRYPTION_ERROR"
    )
    assert _code(lambda: srv.open(env, "PUT", "/api/orders")) == "ENCRYPTION_ERROR"
    assert _code(lambda: srv.open(env, "POST", "/api/admin")) == "ENCRYPTION_ERROR"
    assert _code(lambda: srv.open({**env, "sid": "ses_2"}, "POST", "/api/orders")) == (
        "ENCRYPTION_ERROR"
    )
    for bad in [
        None,
        {},
        {**env, "x": 1},
        {**env, "iv": "AA"},
        {**env, "seq": "1"},
        {**env, "seq": True},
        {**env, "seq": 0},
        {**env, "ct": "!!"},
    ]:
        assert _code(lambda bad=bad: srv.open(bad, "POST", "/api/orders")) == "ENCRYPTION_ERROR"
    # the untampered message still opens: failures do not advance the counter
    assert srv.open(env, "POST", "/api/orders") == b"payload"


def test_channel_replay_and_reorder() -> None:
    now = [float(NOW)]
    cli, srv = _pair(now)
    e1, e2, e3 = (cli.seal("GET", "/x", b"%d" % i) for i in range(3))
    assert srv.open(e1, "GET", "/x") == b"0"
    assert _code(lambda: srv.open(e1, "GET", "/x")) == "MESSAGE_REPLAYED"
    assert srv.open(e3, "GET", "/x") == b"2"
    assert _code(lambda: srv.open(e2, "GET", "/x")) == "MESSAGE_REPLAYED"  # reordered
    # open_unordered leaves ordering to the caller but still authenticates
    seq, pt = srv.open_unordered(e2, "GET", "/x")
    assert (seq, pt) == (2, b"1")
    # a response bound to another request's seq is refused
    r = srv.seal_response(3, b"r3")
    assert _code(lambda: cli.open_response(r, 2)) == "MESSAGE_REPLAYED"
    assert cli.open_response(r, 3) == b"r3"


def test_channel_wrong_direction_and_wrong_key() -> None:
    now = [float(NOW)]
    cli, srv = _pair(now)
    env = cli.seal("GET", "/x", b"hi")
    # reflecting the client's own message back to it: wrong key and wrong dir
    assert _code(lambda: cli.open(env, "GET", "/x")) == "ENCRYPTION_ERROR"
    # a response presented as a request (no method/path, s2c) is refused by the server
    resp = srv.seal_response(1, b"r")
    assert _code(lambda: srv.open(resp, "GET", "/x")) == "ENCRYPTION_ERROR"
    # a request envelope presented as the response
    assert _code(lambda: cli.open_response(env, 1)) == "ENCRYPTION_ERROR"
    other_cli, other_srv = _pair(now)
    assert _code(lambda: other_srv.open(env, "GET", "/x")) == "ENCRYPTION_ERROR"
    # same direction key on both sides (misconfigured swap) is refused at construction
    with pytest.raises(ValueError):
        SessionChannel("s", b"k" * 32, b"k" * 32, "c2s", NOW + 1)


def test_channel_stale_and_expired() -> None:
    now = [float(NOW)]
    cli, srv = _pair(now, ttl=1000)
    env = cli.seal("GET", "/x", b"")
    now[0] += 301
    assert _code(lambda: srv.open(env, "GET", "/x")) == "HANDSHAKE_STALE"
    fresh = cli.seal("GET", "/x", b"")
    assert srv.open(fresh, "GET", "/x") == b""
    now[0] = NOW + 1000
    assert _code(lambda: cli.seal("GET", "/x", b"")) == "SESSION_KEY_EXPIRED"
    assert _code(lambda: srv.open(fresh, "GET", "/x")) == "SESSION_KEY_EXPIRED"
    assert _code(lambda: srv.seal_response(2, b"")) == "SESSION_KEY_EXPIRED"
