"""Agent key pairs: P-256 (ES256, the default) or Ed25519, with JWK and PEM export."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey

KeyType = Literal["P-256", "Ed25519"]
AnyKey = ECKey | OKPKey


@dataclass(frozen=True)
class AgentKey:
    """A private signing key with its ``kid`` (the RFC 7638 thumbprint unless given)."""

    key: AnyKey
    kid: str

    @classmethod
    def generate(cls, kind: KeyType = "P-256", kid: str | None = None) -> AgentKey:
        key: AnyKey
        if kind == "P-256":
            key = ECKey.generate_key("P-256", private=True)
        elif kind == "Ed25519":
            key = OKPKey.generate_key("Ed25519", private=True)
        else:  # pragma: no cover - Literal guards this for typed callers
            raise ValueError(f"unsupported key type {kind!r}")
        return cls(key, kid or key.thumbprint())

    @classmethod
    def from_pem(cls, pem: str | bytes, kid: str | None = None) -> AgentKey:
        data = pem.encode() if isinstance(pem, str) else pem
        key: AnyKey
        try:
            key = ECKey.import_key(data)
        except Exception:
            key = OKPKey.import_key(data)
        return cls(key, kid or key.thumbprint())

    @classmethod
    def from_jwk(cls, jwk: dict[str, Any]) -> AgentKey:
        key: AnyKey = ECKey.import_key(jwk) if jwk.get("kty") == "EC" else OKPKey.import_key(jwk)
        return cls(key, str(jwk.get("kid") or key.thumbprint()))

    @property
    def algorithm(self) -> str:
        """The JWS ``alg`` this key signs with (RFC 9864 name for Ed25519)."""
        return "ES256" if isinstance(self.key, ECKey) else "Ed25519"

    def public_jwk(self) -> dict[str, Any]:
        jwk = dict(self.key.as_dict(private=False))
        jwk["kid"] = self.kid
        jwk["alg"] = self.algorithm
        jwk["use"] = "sig"
        return jwk

    def private_jwk(self) -> dict[str, Any]:
        jwk = dict(self.key.as_dict(private=True))
        jwk["kid"] = self.kid
        return jwk

    def private_pem(self) -> bytes:
        return self.key.as_pem(private=True)

    def save(self, path: str | Path) -> None:
        """Write the private JWK to ``path`` with mode 0600."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file that already exists
        with os.fdopen(fd, "w") as f:
            json.dump(self.private_jwk(), f)

    @classmethod
    def load(cls, path: str | Path) -> AgentKey:
        return cls.from_jwk(json.loads(Path(path).read_text()))


def load_public_jwk(public_key: dict[str, Any] | str) -> AnyKey:
    """Import the ``public_key`` of an identity document (JWK object or PEM text).

    Only public P-256 (EC) and Ed25519 (OKP) keys are accepted, whatever the encoding; anything
    unusable raises ``ValueError``.
    """
    if isinstance(public_key, str):
        data = public_key.encode()
        pem: AnyKey
        try:
            pem = ECKey.import_key(data)
        except Exception:
            try:
                pem = OKPKey.import_key(data)
            except Exception as exc:
                raise ValueError("public_key PEM is not an EC or OKP key") from exc
        if pem.is_private:
            raise ValueError("identity document publishes a private key")
        public_key = dict(pem.as_dict(private=False))
    if public_key.get("d") is not None:
        raise ValueError("identity document publishes a private key")
    kty = public_key.get("kty")
    try:
        if kty == "EC":
            if public_key.get("crv") != "P-256":
                raise ValueError("only P-256 EC keys are accepted")
            ec: ECKey = ECKey.import_key(public_key)
            return ec
        if kty == "OKP":
            if public_key.get("crv") != "Ed25519":
                raise ValueError("only Ed25519 OKP keys are accepted")
            okp: OKPKey = OKPKey.import_key(public_key)
            return okp
    except JoseError as exc:
        raise ValueError(f"public_key is malformed: {exc.error}") from exc
    raise ValueError(f"unsupported key type {kty!r}")
