"""Secrets: CSPRNG generation, hashing at rest, constant-time comparison (§11)."""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets


def new_secret(prefix: str = "", nbytes: int = 32) -> str:
    """A URL-safe random value from the OS CSPRNG (``nbytes`` of entropy)."""
    return prefix + _secrets.token_urlsafe(nbytes)


def hash_secret(value: str) -> str:
    """SHA-256 hex of a high-entropy secret: enough at rest since it cannot be brute-forced."""
    return hashlib.sha256(value.encode()).hexdigest()


def secret_matches(value: str, stored_hash: str | None) -> bool:
    """Constant-time check of ``value`` against a stored hash."""
    if not stored_hash:
        hmac.compare_digest("0" * 64, hash_secret(value))
        return False
    return hmac.compare_digest(hash_secret(value), stored_hash)
