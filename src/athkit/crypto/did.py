"""``did:key`` (P-256, Ed25519) and ``did:web`` for the handshake (docs/handshake.md).

``did:key`` is ``did:key:z<base58btc(varint(multicodec) || public key bytes)>`` with multicodec
0xed (Ed25519, 32 raw bytes) or 0x1200 (P-256, 33-byte compressed point). The base58btc and
unsigned-varint codecs are small and live here, tested against the did:key spec's vectors.

``did:web`` is resolved over HTTPS through an injected fetch function (the server passes its
SSRF-guarded, cached fetcher); :func:`default_fetcher` is the client's httpx-based one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from athkit.crypto.canonical import b64url_encode
from athkit.crypto.signing import public_key_from_jwk

MULTICODEC_ED25519_PUB = 0xED
MULTICODEC_P256_PUB = 0x1200

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}

Fetcher = Callable[[str], Any]
"""``fetch(url) -> parsed JSON`` (raises on any failure)."""


class DIDError(ValueError):
    """A DID that cannot be parsed, resolved, or does not name a usable key."""


# -- base58btc and unsigned varint ------------------------------------------------------------


def base58btc_encode(data: bytes) -> str:
    """Bitcoin-alphabet base58 (leading zero bytes become '1')."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    n = int.from_bytes(data, "big")
    out: list[str] = []
    while n > 0:
        n, rem = divmod(n, 58)
        out.append(_B58_ALPHABET[rem])
    return "1" * zeros + "".join(reversed(out))


def base58btc_decode(text: str) -> bytes:
    """Inverse of :func:`base58btc_encode`; ``DIDError`` on a character outside the alphabet."""
    if len(text) > 256:
        raise DIDError("base58 value too long")
    n = 0
    for c in text:
        try:
            n = n * 58 + _B58_INDEX[c]
        except KeyError:
            raise DIDError(f"invalid base58btc character {c!r}") from None
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


def varint_encode(n: int) -> bytes:
    """Unsigned LEB128 varint (multiformats unsigned-varint)."""
    if n < 0:
        raise ValueError("varint must be non-negative")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint_decode(data: bytes) -> tuple[int, int]:
    """Decode a varint at the start of ``data``: ``(value, bytes used)``; minimal, ≤ 9 bytes."""
    value = 0
    for i, byte in enumerate(data[:9]):
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if i > 0 and byte == 0:
                raise DIDError("varint is not minimally encoded")
            return value, i + 1
    raise DIDError("truncated or overlong varint")


# -- did:key ----------------------------------------------------------------------------------


def _multikey_from_jwk(jwk: dict[str, Any]) -> bytes:
    try:
        public = public_key_from_jwk(jwk)
    except ValueError as exc:
        raise DIDError(str(exc)) from exc
    if isinstance(public, Ed25519PublicKey):
        raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return varint_encode(MULTICODEC_ED25519_PUB) + raw
    point = public.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    return varint_encode(MULTICODEC_P256_PUB) + point


def _jwk_from_multikey(data: bytes) -> dict[str, Any]:
    codec, used = varint_decode(data)
    key = data[used:]
    if codec == MULTICODEC_ED25519_PUB:
        if len(key) != 32:
            raise DIDError("Ed25519 did:key must carry 32 bytes")
        try:
            Ed25519PublicKey.from_public_bytes(key)
        except ValueError as exc:
            raise DIDError("invalid Ed25519 public key") from exc
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(key)}
    if codec == MULTICODEC_P256_PUB:
        if len(key) != 33 or key[0] not in (2, 3):
            raise DIDError("P-256 did:key must carry a 33-byte compressed point")
        try:
            pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)
        except ValueError as exc:
            raise DIDError("invalid P-256 point") from exc
        nums = pub.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url_encode(nums.x.to_bytes(32, "big")),
            "y": b64url_encode(nums.y.to_bytes(32, "big")),
        }
    raise DIDError(f"unsupported multicodec 0x{codec:x}")


def multibase_from_jwk(jwk: dict[str, Any]) -> str:
    """``z``-prefixed base58btc multikey (the did:key method-specific id)."""
    return "z" + base58btc_encode(_multikey_from_jwk(jwk))


def jwk_from_multibase(value: str) -> dict[str, Any]:
    if not isinstance(value, str) or not value.startswith("z") or len(value) < 2:
        raise DIDError("only base58btc ('z') multibase values are supported")
    return _jwk_from_multikey(base58btc_decode(value[1:]))


def did_key_from_jwk(jwk: dict[str, Any]) -> str:
    """The ``did:key`` naming a P-256 or Ed25519 public JWK (private members are ignored)."""
    return "did:key:" + multibase_from_jwk(jwk)


def jwk_from_did_key(did: str) -> dict[str, Any]:
    """The public JWK (kty/crv/x[/y] only) a ``did:key`` names; ``DIDError`` otherwise."""
    if not isinstance(did, str) or not did.startswith("did:key:"):
        raise DIDError("not a did:key")
    ident = did[len("did:key:") :]
    ident = ident.split("#", 1)[0]
    return jwk_from_multibase(ident)


def same_public_key(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when two JWKs carry the same public key (other members are ignored)."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False
    fields = ("kty", "crv", "x", "y")
    return all(a.get(f) == b.get(f) for f in fields) and a.get("kty") in ("EC", "OKP")


# -- did:web ----------------------------------------------------------------------------------


def did_web_url(did: str) -> str:
    """The HTTPS URL of a ``did:web`` document (W3C did:web method, read operation)."""
    if not isinstance(did, str) or not did.startswith("did:web:"):
        raise DIDError("not a did:web")
    parts = did[len("did:web:") :].split("#", 1)[0].split(":")
    if not parts or not parts[0]:
        raise DIDError("did:web has no host")
    host = unquote(parts[0])
    if any(c in host for c in "/@?#\\ ") or not host:
        raise DIDError("did:web host is malformed")
    path = [unquote(p) for p in parts[1:]]
    if any(not p or p in (".", "..") or "/" in p or "?" in p or "#" in p for p in path):
        raise DIDError("did:web path is malformed")
    if path:
        return "https://" + host + "/" + "/".join(path) + "/did.json"
    return "https://" + host + "/.well-known/did.json"


def _jwk_from_did_document(did: str, doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise DIDError("DID document is not a JSON object")
    if doc.get("id") != did:
        raise DIDError("DID document names a different id")
    methods = doc.get("verificationMethod")
    if not isinstance(methods, list) or not methods or not isinstance(methods[0], dict):
        raise DIDError("DID document has no verificationMethod")
    vm = methods[0]
    jwk = vm.get("publicKeyJwk")
    if isinstance(jwk, dict):
        if "d" in jwk:
            raise DIDError("DID document publishes a private key")
        try:
            public_key_from_jwk(jwk)
        except ValueError as exc:
            raise DIDError(f"DID document key is unusable: {exc}") from exc
        out = {k: jwk[k] for k in ("kty", "crv", "x", "y") if k in jwk}
        return out
    multibase = vm.get("publicKeyMultibase")
    if isinstance(multibase, str):
        return jwk_from_multibase(multibase)
    raise DIDError("verificationMethod has neither publicKeyJwk nor publicKeyMultibase")


def default_fetcher(
    *, dev_mode: bool = False, timeout: float = 5.0, max_bytes: int = 64 * 1024
) -> Fetcher:
    """An httpx fetcher for the agent side: SSRF guard, no redirects, time and size limits.

    ``dev_mode`` allows ``http`` and loopback addresses (tests and local demos only).
    """
    import httpx

    from athkit import netguard

    def fetch(url: str) -> Any:
        netguard.check_url(url, dev_mode=dev_mode)
        with (
            httpx.Client(
                timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
                follow_redirects=False,
                headers={"Accept": "application/did+json, application/json"},
            ) as client,
            client.stream("GET", url) as resp,
        ):
            if resp.status_code != 200:
                raise DIDError(f"DID document answered HTTP {resp.status_code}")
            body = bytearray()
            for chunk in resp.iter_bytes():
                body.extend(chunk)
                if len(body) > max_bytes:
                    raise DIDError("DID document is too large")
        return json.loads(bytes(body))

    return fetch


def dev_url_for(url: str) -> str:
    """In dev mode, a did:web for ``localhost``/``127.0.0.1`` is served over plain http."""
    host = url.split("/", 3)[2]
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    if name in ("localhost", "127.0.0.1", "[::1]"):
        return "http://" + url[len("https://") :]
    return url


class DIDResolver:
    """Resolve a DID to its public JWK: ``did:key`` locally, ``did:web`` through ``fetch``.

    ``did:web`` results are cached for ``cache_seconds`` (≤ 300). In ``dev_mode`` a did:web on a
    loopback host is fetched over http (never in production).
    """

    def __init__(
        self,
        fetch: Fetcher | None = None,
        *,
        dev_mode: bool = False,
        cache_seconds: float = 300.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        self.dev_mode = dev_mode
        self._fetch = fetch if fetch is not None else default_fetcher(dev_mode=dev_mode)
        self.cache_seconds = min(cache_seconds, 300.0)
        self._clock = clock or time.time
        self._cache: dict[str, tuple[dict[str, Any], float]] = {}
        self._lock = threading.Lock()

    def resolve(self, did: str) -> dict[str, Any]:
        """The public JWK of ``did``; ``DIDError`` when it cannot be resolved."""
        if not isinstance(did, str) or len(did) > 2048:
            raise DIDError("DID must be a string of reasonable length")
        if did.startswith("did:key:"):
            return jwk_from_did_key(did)
        if did.startswith("did:web:"):
            return self._resolve_web(did)
        raise DIDError("unsupported DID method (did:key and did:web only)")

    def _resolve_web(self, did: str) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(did)
        if hit is not None and now - hit[1] < self.cache_seconds:
            return dict(hit[0])
        url = did_web_url(did)
        if self.dev_mode:
            url = dev_url_for(url)
        try:
            doc = self._fetch(url)
        except DIDError:
            raise
        except Exception as exc:
            raise DIDError(f"did:web document could not be fetched ({type(exc).__name__})") from exc
        jwk = _jwk_from_did_document(did, doc)
        with self._lock:
            self._cache[did] = (jwk, now)
        return dict(jwk)


def did_document(did: str, public_jwk: dict[str, Any]) -> dict[str, Any]:
    """A minimal DID document for ``did`` with one JsonWebKey verification method."""
    vm_id = did + "#key-1"
    jwk = {k: public_jwk[k] for k in ("kty", "crv", "x", "y") if k in public_jwk}
    return {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": did,
        "verificationMethod": [
            {"id": vm_id, "type": "JsonWebKey2020", "controller": did, "publicKeyJwk": jwk}
        ],
        "authentication": [vm_id],
        "assertionMethod": [vm_id],
    }
