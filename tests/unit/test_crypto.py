"""Agent keys and attestation JWTs (PROTOCOL.md §3): only ES256/Ed25519, never none or HMAC."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from athkit.crypto.attestation import (
    ALLOWED_ALGORITHMS,
    decode_unverified,
    sign_attestation,
    verify_attestation_signature,
)
from athkit.crypto.keys import AgentKey, load_public_jwk

AGENT = "https://agent.example/.well-known/agent.json"
AUD = "https://shop.example"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _seg(obj: dict[str, Any]) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def _claims(**over: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": AGENT,
        "sub": AGENT,
        "aud": AUD,
        "iat": 1_700_000_000,
        "exp": 1_700_003_600,
        "jti": "j" * 32,
    }
    claims.update(over)
    return claims


@pytest.fixture(params=["P-256", "Ed25519"])
def key(request: pytest.FixtureRequest) -> AgentKey:
    return AgentKey.generate(request.param)


def test_round_trip(key: AgentKey) -> None:
    token = sign_attestation(key, AGENT, AUD, now=1_700_000_000)
    header, _ = decode_unverified(token)
    assert header == {"alg": key.algorithm, "typ": "JWT", "kid": key.kid}
    assert header["alg"] in ALLOWED_ALGORITHMS
    claims = verify_attestation_signature(token, load_public_jwk(key.public_jwk()))
    assert claims["sub"] == AGENT and claims["aud"] == AUD


def test_algorithms() -> None:
    assert AgentKey.generate("P-256").algorithm == "ES256"
    assert AgentKey.generate("Ed25519").algorithm == "Ed25519"
    assert "none" not in ALLOWED_ALGORITHMS
    assert not any(a.startswith(("HS", "RS", "PS")) for a in ALLOWED_ALGORITHMS)


def test_claims_and_fresh_jti(key: AgentKey) -> None:
    tokens = [sign_attestation(key, AGENT, AUD, now=1_700_000_000, lifetime=600) for _ in range(20)]
    claims = [decode_unverified(t)[1] for t in tokens]
    for c in claims:
        assert {"iss", "sub", "aud", "iat", "exp", "jti"} <= c.keys()
        assert c["iss"] == AGENT and c["sub"] == AGENT and c["aud"] == AUD
        assert c["iat"] == 1_700_000_000 and c["exp"] == 1_700_000_600
        assert len(c["jti"]) >= 16
    assert len({c["jti"] for c in claims}) == len(claims)


def test_default_lifetime_is_an_hour_from_now() -> None:
    import time

    before = int(time.time())
    c = decode_unverified(sign_attestation(AgentKey.generate(), AGENT, AUD))[1]
    assert before <= c["iat"] <= before + 5
    assert c["exp"] - c["iat"] == 3600


def test_tampered_payload_rejected(key: AgentKey) -> None:
    token = sign_attestation(key, AGENT, AUD)
    h, _, s = token.split(".")
    forged = f"{h}.{_seg(_claims(sub='https://evil.example/agent.json'))}.{s}"
    with pytest.raises(ValueError):
        verify_attestation_signature(forged, key.key)


def test_tampered_signature_rejected(key: AgentKey) -> None:
    token = sign_attestation(key, AGENT, AUD)
    h, p, s = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
    raw[5] ^= 0x01
    with pytest.raises(ValueError):
        verify_attestation_signature(f"{h}.{p}.{_b64(bytes(raw))}", key.key)
    with pytest.raises(ValueError):
        verify_attestation_signature(f"{h}.{p}.", key.key)


def test_other_key_rejected(key: AgentKey) -> None:
    token = sign_attestation(key, AGENT, AUD)
    other = AgentKey.generate("P-256" if key.algorithm == "ES256" else "Ed25519")
    with pytest.raises(ValueError):
        verify_attestation_signature(token, load_public_jwk(other.public_jwk()))


def test_key_of_other_type_rejected() -> None:
    ec, ed = AgentKey.generate("P-256"), AgentKey.generate("Ed25519")
    with pytest.raises(ValueError):
        verify_attestation_signature(sign_attestation(ec, AGENT, AUD), ed.key)
    with pytest.raises(ValueError):
        verify_attestation_signature(sign_attestation(ed, AGENT, AUD), ec.key)


def test_alg_none_rejected(key: AgentKey) -> None:
    for alg in ("none", "None", "NONE"):
        token = f"{_seg({'alg': alg, 'typ': 'JWT'})}.{_seg(_claims())}."
        with pytest.raises(ValueError, match="not allowed"):
            verify_attestation_signature(token, key.key)


def test_hs256_key_confusion_rejected(key: AgentKey) -> None:
    # The classic attack: sign with HMAC using the *public* key bytes as the secret, hoping the
    # verifier feeds the public key it fetched into an HMAC check.
    public_pem = key.key.as_pem(private=False)
    public_json = json.dumps(key.public_jwk()).encode()
    for secret in (public_pem, public_json):
        for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
            signing_input = f"{_seg({'alg': alg, 'typ': 'JWT', 'kid': key.kid})}.{_seg(_claims())}"
            sig = hmac.new(secret, signing_input.encode(), digest).digest()
            with pytest.raises(ValueError, match="not allowed"):
                verify_attestation_signature(f"{signing_input}.{_b64(sig)}", key.key)


def test_rs256_rejected_even_with_matching_key() -> None:
    rsa = RSAKey.generate_key(2048, private=True)
    token = jwt.encode({"alg": "RS256"}, _claims(), rsa, algorithms=["RS256"])
    with pytest.raises(ValueError, match="not allowed"):
        verify_attestation_signature(token, rsa)  # type: ignore[arg-type]


def test_eddsa_alias_is_accepted() -> None:
    import warnings

    key = AgentKey.generate("Ed25519")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        token = jwt.encode({"alg": "EdDSA"}, _claims(), key.key, algorithms=["EdDSA"])
    assert verify_attestation_signature(token, key.key)["sub"] == AGENT


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d", "!!!.e30.x", "e30.bm90anNvbg.x"])
def test_malformed_tokens_raise_value_error(token: str) -> None:
    with pytest.raises(ValueError):
        verify_attestation_signature(token, AgentKey.generate().key)


def test_decode_unverified_requires_json_objects() -> None:
    with pytest.raises(ValueError):
        decode_unverified(f"{_b64(b'[1]')}.{_seg(_claims())}.x")
    header, claims = decode_unverified(f"{_seg({'alg': 'ES256'})}.{_seg(_claims())}.x")
    assert header == {"alg": "ES256"} and claims["sub"] == AGENT


# -- public keys from identity documents ---------------------------------------------------------


def test_load_public_jwk_refuses_private_key(key: AgentKey) -> None:
    with pytest.raises(ValueError, match="private"):
        load_public_jwk(key.private_jwk())
    with pytest.raises(ValueError, match="private"):
        load_public_jwk(key.private_pem().decode())


@pytest.mark.parametrize(
    "jwk",
    [
        ECKey.generate_key("P-384", private=False).as_dict(private=False),
        ECKey.generate_key("secp256k1", private=False).as_dict(private=False),
        OKPKey.generate_key("Ed448", private=False).as_dict(private=False),
        OKPKey.generate_key("X25519", private=False).as_dict(private=False),
    ],
    ids=["P-384", "secp256k1", "Ed448", "X25519"],
)
def test_load_public_jwk_refuses_wrong_curves(jwk: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="only"):
        load_public_jwk(dict(jwk))


def test_load_public_jwk_refuses_wrong_curves_in_pem() -> None:
    for key in (ECKey.generate_key("P-384"), OKPKey.generate_key("X25519")):
        with pytest.raises(ValueError, match="only"):
            load_public_jwk(key.as_pem(private=False).decode())


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
        {"kty": "oct", "k": "c2VjcmV0"},
        {"x": "abc"},
        {"kty": "ec", "crv": "P-256"},
    ],
)
def test_load_public_jwk_refuses_unknown_kty(jwk: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="unsupported key type"):
        load_public_jwk(jwk)


def test_load_public_jwk_malformed_is_value_error() -> None:
    good = AgentKey.generate().public_jwk()
    for bad in ({"kty": "EC", "crv": "P-256"}, {**good, "x": 5}, {**good, "y": _b64(b"\0" * 32)}):
        with pytest.raises(ValueError):
            load_public_jwk(bad)
    for pem in ("not a pem", RSAKey.generate_key(2048).as_pem(private=False).decode()):
        with pytest.raises(ValueError):
            load_public_jwk(pem)


def test_pem_import_verifies(key: AgentKey) -> None:
    pem = key.key.as_pem(private=False).decode()
    token = sign_attestation(key, AGENT, AUD)
    assert verify_attestation_signature(token, load_public_jwk(pem))["sub"] == AGENT
    restored = AgentKey.from_pem(key.private_pem())
    assert restored.kid == key.key.thumbprint()
    assert verify_attestation_signature(sign_attestation(restored, AGENT, AUD), key.key)


def test_public_jwk_shape(key: AgentKey) -> None:
    jwk = key.public_jwk()
    assert "d" not in jwk
    assert jwk["kid"] == key.kid and jwk["alg"] == key.algorithm and jwk["use"] == "sig"
    default = AgentKey.generate()
    assert default.kid == default.key.thumbprint()


def test_save_is_0600_and_load_round_trips(key: AgentKey, tmp_path: Path) -> None:
    path = tmp_path / "nested" / "agent-key.json"
    old_umask = os.umask(0)  # even with a permissive umask the file stays private
    try:
        key.save(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = AgentKey.load(path)
    assert loaded.kid == key.kid and loaded.algorithm == key.algorithm
    assert loaded.public_jwk() == key.public_jwk()
    token = sign_attestation(loaded, AGENT, AUD)
    assert verify_attestation_signature(token, load_public_jwk(key.public_jwk()))["aud"] == AUD


def test_save_tightens_existing_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text("{}")
    path.chmod(0o644)
    AgentKey.generate().save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
