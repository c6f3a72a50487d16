"""Sealing secrets at rest with AES-256-GCM (gateway upstream tokens, PROTOCOL.md §5, §11).

A sealed value is ``v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>``. The associated data
binds it to its owner (e.g. client/user/provider), so a value copied to another row fails to
open. Key rotation: put the new key first (it seals), keep old keys after it (they still open);
re-seal or let tokens refresh, then drop the old key.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_PREFIX = "v1"


class SealError(ValueError):
    """A sealed value cannot be opened (unknown key id, tampering, wrong owner)."""


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_keyring(spec: str) -> dict[str, bytes]:
    """Parse ``"kid:base64key,kid2:base64key"``; each key must be 32 bytes."""
    ring: dict[str, bytes] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        kid, sep, b64 = part.partition(":")
        if not sep or not kid or "." in kid:
            raise ValueError("each key is 'id:base64' and the id has no '.'")
        key = _b64d(b64.strip())
        if len(key) != 32:
            raise ValueError(f"key {kid!r} must be 32 bytes (AES-256)")
        ring[kid] = key
    if not ring:
        raise ValueError("no sealing key given")
    return ring


def new_key_spec(kid: str = "k1") -> str:
    """A fresh ``kid:base64`` key for configuration."""
    return f"{kid}:{base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip('=')}"


class TokenSealer:
    """AES-256-GCM with a keyring; the first key seals, all keys open."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise ValueError("a sealer needs at least one key")
        self._keys = {kid: AESGCM(k) for kid, k in keys.items()}
        self.primary = next(iter(keys))

    @classmethod
    def from_spec(cls, spec: str) -> TokenSealer:
        return cls(parse_keyring(spec))

    def seal(self, plaintext: str, aad: str) -> str:
        nonce = os.urandom(12)
        ct = self._keys[self.primary].encrypt(nonce, plaintext.encode(), aad.encode())
        body = base64.urlsafe_b64encode(nonce + ct).decode().rstrip("=")
        return f"{_PREFIX}.{self.primary}.{body}"

    def open(self, sealed: str, aad: str) -> str:
        try:
            version, kid, body = sealed.split(".", 2)
        except ValueError as exc:
            raise SealError("not a sealed value") from exc
        aead = self._keys.get(kid)
        if version != _PREFIX or aead is None:
            raise SealError(f"no key {kid!r} to open this value")
        raw = _b64d(body)
        try:
            return aead.decrypt(raw[:12], raw[12:], aad.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise SealError("sealed value failed authentication") from exc

    def needs_reseal(self, sealed: str) -> bool:
        return not sealed.startswith(f"{_PREFIX}.{self.primary}.")
