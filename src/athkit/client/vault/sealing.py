"""The vault's encryption at rest: AES-256-GCM under a key from the OS keyring, a passphrase
(scrypt) or an environment variable.

A sealed vault is a small JSON envelope ``{format, version, key_source, kdf, nonce,
ciphertext}``; the header fields (everything but nonce and ciphertext) are the AEAD's
associated data, so a swapped key source or salt fails to open instead of being trusted.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

FORMAT = "athkit-vault"
VERSION = 1
KEY_ENV = "ATHKIT_VAULT_KEY"
PASSPHRASE_ENV = "ATHKIT_VAULT_PASSPHRASE"
KEYRING_SERVICE = "athkit-vault"

#: scrypt cost (RFC 7914): 2**15 x 8 uses 32 MiB and ~0.1 s, once per process and vault.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1

KEY_SOURCES = ("env", "passphrase", "keyring")

PassphrasePrompt = Callable[[bool], str]  # (creating: bool) -> passphrase


class VaultError(Exception):
    """The vault cannot be opened or written; the message says what to do."""


class VaultLockedError(VaultError):
    """No key is available to open (or create) the vault."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def generate_env_key() -> str:
    """A fresh value for ``ATHKIT_VAULT_KEY`` (32 random bytes, base64url)."""
    return _b64(secrets.token_bytes(32))


def _env_key() -> bytes | None:
    raw = os.environ.get(KEY_ENV)
    if not raw:
        return None
    try:
        key = _unb64(raw.strip())
    except ValueError:
        key = b""
    if len(key) != 32:
        raise VaultLockedError(
            f"{KEY_ENV} must be 32 bytes in base64url (`athkit agent vault-key` makes one)"
        )
    return key


def usable_keyring() -> Any | None:
    """The OS keyring backend when one that can store secrets exists, else ``None``."""
    try:
        import keyring
        from keyring.backends import chainer, fail
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:
        return None
    if isinstance(backend, fail.Keyring):
        return None
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return None
    if getattr(backend, "priority", 1) <= 0:
        return None
    return backend


def keyring_name(backend: Any) -> str:
    return f"{type(backend).__module__}.{type(backend).__name__}"


@dataclass
class KeySource:
    """Where the vault key comes from and, once resolved, the key itself (kept in memory)."""

    prompt: PassphrasePrompt | None = None
    _keys: dict[str, bytes] = field(default_factory=dict, repr=False)

    def choose(self) -> str:
        """The source a new vault uses: env key, then passphrase env, then keyring, then prompt."""
        if os.environ.get(KEY_ENV):
            return "env"
        if os.environ.get(PASSPHRASE_ENV):
            return "passphrase"
        if usable_keyring() is not None:
            return "keyring"
        if self.prompt is not None:
            return "passphrase"
        raise VaultLockedError(
            "no key for the credential vault: no OS keyring backend is usable here; set "
            f"{PASSPHRASE_ENV} (a passphrase) or {KEY_ENV} (`athkit agent vault-key` makes one)"
        )

    def new_header(self, source: str) -> dict[str, Any]:
        header: dict[str, Any] = {"format": FORMAT, "version": VERSION, "key_source": source}
        if source == "passphrase":
            header["kdf"] = {
                "name": "scrypt",
                "salt": _b64(secrets.token_bytes(16)),
                "n": SCRYPT_N,
                "r": SCRYPT_R,
                "p": SCRYPT_P,
            }
        return header

    def key_for(self, header: Mapping[str, Any], vault_id: str, *, creating: bool) -> bytes:
        """The AES key for a vault with ``header`` (``vault_id`` names its keyring entry)."""
        source = header.get("key_source")
        cache_key = json.dumps([source, header.get("kdf"), vault_id], sort_keys=True)
        if cache_key in self._keys:
            return self._keys[cache_key]
        if source == "env":
            key = _env_key()
            if key is None:
                raise VaultLockedError(f"this vault is sealed with {KEY_ENV}; set it")
        elif source == "passphrase":
            key = self._from_passphrase(header.get("kdf") or {}, creating)
        elif source == "keyring":
            key = self._from_keyring(vault_id, creating)
        else:
            raise VaultError(f"unknown vault key source {source!r}")
        self._keys[cache_key] = key
        return key

    def _from_passphrase(self, kdf: Mapping[str, Any], creating: bool) -> bytes:
        passphrase = os.environ.get(PASSPHRASE_ENV)
        if not passphrase and self.prompt is not None:
            passphrase = self.prompt(creating)
        if not passphrase:
            raise VaultLockedError(f"this vault is sealed with a passphrase; set {PASSPHRASE_ENV}")
        if kdf.get("name") != "scrypt":
            raise VaultError("unsupported key derivation in the vault header")
        n, r, p = int(kdf.get("n", 0)), int(kdf.get("r", 0)), int(kdf.get("p", 0))
        if not (2**14 <= n <= 2**20 and 1 <= r <= 32 and 1 <= p <= 16):
            raise VaultError("vault key-derivation parameters out of range")
        salt = _unb64(str(kdf.get("salt", "")))
        return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())

    @staticmethod
    def _from_keyring(vault_id: str, creating: bool) -> bytes:
        backend = usable_keyring()
        if backend is None:
            raise VaultLockedError("this vault's key is in the OS keyring, which is not usable now")
        stored = backend.get_password(KEYRING_SERVICE, vault_id)
        if stored:
            return _unb64(stored)
        if not creating:
            raise VaultLockedError("the OS keyring holds no key for this vault")
        key = secrets.token_bytes(32)
        backend.set_password(KEYRING_SERVICE, vault_id, _b64(key))
        return key

    def describe(self, source: str | None) -> str:
        """A human sentence for ``athkit agent whoami``."""
        if source == "env":
            return f"a key from the {KEY_ENV} environment variable"
        if source == "passphrase":
            return "a passphrase (scrypt)" + (
                f" from {PASSPHRASE_ENV}" if os.environ.get(PASSPHRASE_ENV) else ""
            )
        if source == "keyring":
            backend = usable_keyring()
            name = keyring_name(backend) if backend is not None else "unavailable"
            return f"a key in the OS keyring ({name})"
        return "no key yet (the vault is created on first write)"


def _aad(header: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(header), sort_keys=True, separators=(",", ":")).encode()


def seal(header: Mapping[str, Any], key: bytes, plaintext: bytes) -> bytes:
    """The envelope bytes for ``plaintext`` (fresh 96-bit nonce each time)."""
    nonce = secrets.token_bytes(12)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, _aad(header))
    body = {**header, "nonce": _b64(nonce), "ciphertext": _b64(ciphertext)}
    return json.dumps(body, indent=1).encode() + b"\n"


def read_header(envelope: bytes) -> dict[str, Any]:
    try:
        data = json.loads(envelope)
    except ValueError as exc:
        raise VaultError("the vault file is not a sealed athkit vault") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise VaultError("the vault file is not a sealed athkit vault")
    if data.get("version") != VERSION:
        raise VaultError(f"unsupported vault version {data.get('version')!r}")
    return {k: v for k, v in data.items() if k not in ("nonce", "ciphertext")}


def unseal(envelope: bytes, key: bytes) -> bytes:
    data = json.loads(envelope)
    header = read_header(envelope)
    try:
        return AESGCM(key).decrypt(
            _unb64(data["nonce"]), _unb64(data["ciphertext"]), _aad(header)
        )
    except (InvalidTag, KeyError, ValueError) as exc:
        raise VaultLockedError("cannot open the vault: wrong key or passphrase") from exc
