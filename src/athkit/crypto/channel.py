"""The step-9 session channel (docs/handshake.md, "Encrypted channel").

ECDH P-256 between fresh ephemeral keys, HKDF-SHA256 bound to both nonces, both DIDs and the
handshake id, then AES-256-GCM envelopes ``{sid, seq, ts, iv, ct}`` whose associated data is the
canonical JSON of ``{sid, seq, ts, dir, method, path}`` (requests) or ``{sid, seq, ts, dir}``
(responses, which reuse the request's ``seq``).

:class:`SessionChannel` is used by both ends: the agent with ``send_dir="c2s"`` (send key
``k_c2s``), the server with ``send_dir="s2c"`` (send key ``k_s2c``, receive key ``k_c2s``).
Its only state is the two sequence counters.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from athkit.crypto.canonical import b64url_decode, b64url_encode, canonical_json

Direction = Literal["c2s", "s2c"]
ChannelCode = Literal[
    "ENCRYPTION_ERROR", "MESSAGE_REPLAYED", "SESSION_KEY_EXPIRED", "HANDSHAKE_STALE"
]

KEY_EXCHANGE_ALG = "ECDH-P256"
CIPHER_SUITE = "AES-256-GCM"
CONTENT_TYPE = "application/ath+encrypted"
HKDF_INFO_PREFIX = b"ath-session-v1"
MAX_SKEW = 300
MAX_SESSION_SECONDS = 24 * 3600
_ENVELOPE_FIELDS = frozenset({"sid", "seq", "ts", "iv", "ct"})


class ChannelError(ValueError):
    """A refused envelope; ``code`` is the §9 error code the server answers with."""

    def __init__(self, code: ChannelCode, message: str) -> None:
        super().__init__(message)
        self.code: ChannelCode = code
        self.message = message


def derive_session_keys(
    shared_secret: bytes,
    nonce_a: str,
    nonce_b: str,
    client_did: str,
    server_did: str,
    handshake_id: str,
) -> tuple[bytes, bytes]:
    """``(k_c2s, k_s2c)`` from the ECDH shared secret (HKDF-SHA256, 64 bytes).

    ``salt = SHA-256(nonce_a || nonce_b)`` over the nonces' ASCII (base64url) text as sent;
    ``info = "ath-session-v1" 0x00 client_did 0x00 server_did 0x00 handshake_id``.
    """
    if len(shared_secret) < 32:
        raise ValueError("shared secret is too short")
    salt = hashlib.sha256(nonce_a.encode("utf-8") + nonce_b.encode("utf-8")).digest()
    info = b"\x00".join(
        [HKDF_INFO_PREFIX, client_did.encode(), server_did.encode(), handshake_id.encode()]
    )
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=salt, info=info).derive(shared_secret)
    return okm[:32], okm[32:]


def _p256_public_from_jwk(jwk: Any) -> ec.EllipticCurvePublicKey:
    if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise ChannelError("ENCRYPTION_ERROR", "epk must be a P-256 EC public JWK")
    if "d" in jwk:
        raise ChannelError("ENCRYPTION_ERROR", "epk must not carry a private key")
    try:
        x = b64url_decode(str(jwk.get("x", "")))
        y = b64url_decode(str(jwk.get("y", "")))
        if len(x) != 32 or len(y) != 32:
            raise ValueError("bad coordinate length")
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
    except ValueError as exc:
        raise ChannelError("ENCRYPTION_ERROR", "epk is not a valid P-256 point") from exc


class EphemeralKey:
    """A fresh P-256 key for one handshake's ECDH; never reuse an instance."""

    def __init__(self) -> None:
        self._private = ec.generate_private_key(ec.SECP256R1())
        self._used = False

    def public_jwk(self) -> dict[str, Any]:
        nums = self._private.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url_encode(nums.x.to_bytes(32, "big")),
            "y": b64url_encode(nums.y.to_bytes(32, "big")),
        }

    def agree(self, peer_jwk: Any) -> bytes:
        """The ECDH shared secret with ``peer_jwk``; usable once (``ChannelError`` on bad input)."""
        if self._used:
            raise ChannelError("ENCRYPTION_ERROR", "ephemeral key already used")
        peer = _p256_public_from_jwk(peer_jwk)
        self._used = True
        return self._private.exchange(ec.ECDH(), peer)


def _other(direction: Direction) -> Direction:
    return "s2c" if direction == "c2s" else "c2s"


class SessionChannel:
    """Seal and open envelopes for one session (see the module docstring)."""

    def __init__(
        self,
        session_id: str,
        send_key: bytes,
        recv_key: bytes,
        send_dir: Direction,
        expires_at: int | float,
        clock: Callable[[], float] = time.time,
        *,
        send_seq: int = 0,
        recv_seq: int = 0,
    ) -> None:
        if len(send_key) != 32 or len(recv_key) != 32:
            raise ValueError("session keys must be 32 bytes (AES-256)")
        if send_key == recv_key:
            raise ValueError("send and receive keys must differ")
        if send_dir not in ("c2s", "s2c"):
            raise ValueError("send_dir must be 'c2s' or 's2c'")
        self.session_id = session_id
        self.send_dir: Direction = send_dir
        self.recv_dir: Direction = _other(send_dir)
        self.expires_at = expires_at
        self.clock = clock
        self._send = AESGCM(send_key)
        self._recv = AESGCM(recv_key)
        self.send_seq = send_seq
        self.recv_seq = recv_seq

    # -- helpers --------------------------------------------------------------------------------

    def _check_alive(self) -> None:
        if self.clock() >= self.expires_at:
            raise ChannelError("SESSION_KEY_EXPIRED", "the session key has expired")

    def _aad(
        self, seq: int, ts: int, direction: Direction, method: str | None, path: str | None
    ) -> bytes:
        obj: dict[str, Any] = {"sid": self.session_id, "seq": seq, "ts": ts, "dir": direction}
        if method is not None:
            obj["method"] = method.upper()
            obj["path"] = path or ""
        return canonical_json(obj)

    def _seal(
        self, seq: int, plaintext: bytes, method: str | None, path: str | None
    ) -> dict[str, Any]:
        self._check_alive()
        ts = int(self.clock())
        iv = os.urandom(12)
        ct = self._send.encrypt(iv, plaintext, self._aad(seq, ts, self.send_dir, method, path))
        return {
            "sid": self.session_id,
            "seq": seq,
            "ts": ts,
            "iv": b64url_encode(iv),
            "ct": b64url_encode(ct),
        }

    def _open(self, envelope: Any, method: str | None, path: str | None) -> tuple[int, bytes]:
        self._check_alive()
        if not isinstance(envelope, dict) or set(envelope) != _ENVELOPE_FIELDS:
            raise ChannelError("ENCRYPTION_ERROR", "envelope must be {sid, seq, ts, iv, ct}")
        sid, seq, ts = envelope["sid"], envelope["seq"], envelope["ts"]
        if sid != self.session_id:
            raise ChannelError("ENCRYPTION_ERROR", "envelope is for another session")
        for v in (seq, ts):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ChannelError("ENCRYPTION_ERROR", "seq and ts must be integers")
        if seq < 1:
            raise ChannelError("ENCRYPTION_ERROR", "seq starts at 1")
        try:
            iv = b64url_decode(envelope["iv"])
            ct = b64url_decode(envelope["ct"])
        except ValueError as exc:
            raise ChannelError("ENCRYPTION_ERROR", "iv/ct are not base64url") from exc
        if len(iv) != 12 or len(ct) < 16:
            raise ChannelError("ENCRYPTION_ERROR", "iv must be 12 bytes and ct carry a tag")
        try:
            plaintext = self._recv.decrypt(iv, ct, self._aad(seq, ts, self.recv_dir, method, path))
        except InvalidTag as exc:
            raise ChannelError("ENCRYPTION_ERROR", "message authentication failed") from exc
        if abs(self.clock() - ts) > MAX_SKEW:
            raise ChannelError("HANDSHAKE_STALE", "message timestamp is more than 300 s off")
        return seq, plaintext

    # -- requests -------------------------------------------------------------------------------

    def seal(self, method: str, path: str, plaintext: bytes) -> dict[str, Any]:
        """Encrypt a request body; the next ``seq`` in the send direction."""
        self._check_alive()
        self.send_seq += 1
        return self._seal(self.send_seq, plaintext, method, path)

    def open_unordered(self, envelope: Any, method: str, path: str) -> tuple[int, bytes]:
        """Authenticate and decrypt a request without the ``seq`` ordering check.

        For servers that enforce "seq strictly increasing" atomically in their store (several
        workers); the caller must refuse ``seq`` ≤ the last accepted one (``MESSAGE_REPLAYED``).
        """
        return self._open(envelope, method, path)

    def open(self, envelope: Any, method: str, path: str) -> bytes:
        """Authenticate and decrypt a request; ``seq`` must exceed every earlier one."""
        seq, plaintext = self._open(envelope, method, path)
        if seq <= self.recv_seq:
            raise ChannelError("MESSAGE_REPLAYED", "seq is not greater than the last one seen")
        self.recv_seq = seq
        return plaintext

    # -- responses (bound to the request's seq) -------------------------------------------------

    def seal_response(self, seq: int, plaintext: bytes) -> dict[str, Any]:
        """Encrypt the response to request ``seq`` (same ``seq``, the send direction)."""
        if not isinstance(seq, int) or seq < 1:
            raise ValueError("seq must be a positive integer")
        return self._seal(seq, plaintext, None, None)

    def open_response(self, envelope: Any, seq: int) -> bytes:
        """Decrypt the response to our request ``seq``."""
        got, plaintext = self._open(envelope, None, None)
        if got != seq:
            raise ChannelError("MESSAGE_REPLAYED", "response is not for this request")
        return plaintext


def client_channel(
    session_id: str,
    keys: tuple[bytes, bytes],
    expires_at: int | float,
    clock: Callable[[], float] = time.time,
) -> SessionChannel:
    """The agent's end: sends with ``k_c2s``, receives with ``k_s2c``."""
    return SessionChannel(session_id, keys[0], keys[1], "c2s", expires_at, clock)


def server_channel(
    session_id: str,
    keys: tuple[bytes, bytes],
    expires_at: int | float,
    clock: Callable[[], float] = time.time,
    *,
    recv_seq: int = 0,
) -> SessionChannel:
    """The server's end: sends with ``k_s2c``, receives with ``k_c2s``."""
    return SessionChannel(session_id, keys[1], keys[0], "s2c", expires_at, clock, recv_seq=recv_seq)
