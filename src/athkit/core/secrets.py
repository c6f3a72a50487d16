"""Secrets: CSPRNG generation, hashing at rest, constant-time comparison (§11)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets as _secrets
import threading


def new_secret(prefix: str = "", nbytes: int = 32) -> str:
    """A URL-safe random value from the OS CSPRNG (``nbytes`` of entropy)."""
    return prefix + _secrets.token_urlsafe(nbytes)


class _RandomPool:
    """OS CSPRNG bytes fetched 4 KiB at a time, so an identifier minted per request (a request
    id) costs no system call of its own. Never for secrets: those come from
    :func:`new_secret`, straight from the OS. Emptied in a forked child, which must not
    repeat its parent's bytes."""

    SIZE = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buf = b""
        self._at = 0

    def take(self, n: int) -> bytes:
        with self._lock:
            if self._at + n > len(self._buf):
                self._buf, self._at = os.urandom(max(self.SIZE, n)), 0
            start = self._at
            self._at += n
            return self._buf[start : self._at]

    def forget(self) -> None:
        self._buf, self._at = b"", 0


_POOL = _RandomPool()
os.register_at_fork(after_in_child=_POOL.forget)


def new_identifier(nbytes: int = 12) -> str:
    """A URL-safe random identifier (request ids): as unguessable as :func:`new_secret`, but
    drawn from a pooled CSPRNG buffer. Not for anything that grants access."""
    return base64.urlsafe_b64encode(_POOL.take(nbytes)).rstrip(b"=").decode("ascii")


def hash_secret(value: str) -> str:
    """SHA-256 hex of a high-entropy secret: enough at rest since it cannot be brute-forced."""
    return hashlib.sha256(value.encode()).hexdigest()


def secret_matches(value: str, stored_hash: str | None) -> bool:
    """Constant-time check of ``value`` against a stored hash."""
    if not stored_hash:
        hmac.compare_digest("0" * 64, hash_secret(value))
        return False
    return hmac.compare_digest(hash_secret(value), stored_hash)
