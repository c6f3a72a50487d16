"""Attestation verification: signature, ``sub``/``iss``, audience, time window, replay (§3).

Audience rule: on ``/ath/token`` the ``aud`` must be the token endpoint URL; on register and
authorize it must be the service's configured public base URL. Nothing else is accepted, and
the base URL never comes from the request's Host header.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard
from urllib.parse import urlsplit

from athkit.core.clock import Clock, to_datetime
from athkit.core.identity import IdentityFetcher
from athkit.core.secrets import hash_secret
from athkit.crypto.attestation import decode_unverified, verify_attestation_signature
from athkit.crypto.keys import AnyKey, load_public_jwk
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.protocol.messages import AgentIdentityDocument
from athkit.store.shared import ReplayCache

Endpoint = Literal["register", "authorize", "token", "status"]
#: Imported public keys kept (one per cached identity document and kid).
MAX_IMPORTED_KEYS = 10_000


@dataclass(frozen=True)
class VerifiedAttestation:
    agent_id: str
    claims: dict[str, Any]
    identity: AgentIdentityDocument


def _invalid(message: str, **details: Any) -> ATHError:
    return ATHError(ErrorCode.INVALID_ATTESTATION, message, details or None)


class UnknownKeyError(ValueError):
    """The attestation's ``kid`` names no key of the identity document."""


def key_for(doc: AgentIdentityDocument, kid: str | None) -> AnyKey:
    """The document's key a signed JWT (attestation, client assertion) names; never another.

    A JWK Set needs a ``kid`` that matches one of its keys (a set of one key may be used
    without a ``kid``). A single JWK that carries a ``kid`` must carry the one named; a JWK
    without ``kid`` or a PEM key is the document's only key and serves any ``kid``.
    """
    pk = doc.public_key
    if isinstance(pk, dict) and isinstance(pk.get("keys"), list):  # a JWK Set
        keys = [k for k in pk["keys"] if isinstance(k, dict)]
        if kid is None:
            if len(keys) != 1:
                raise UnknownKeyError("attestation names no key (kid) of the identity document")
            return load_public_jwk(keys[0])
        match = [k for k in keys if k.get("kid") == kid]
        if not match:
            raise UnknownKeyError("attestation kid names no key of the identity document")
        return load_public_jwk(match[0])
    if isinstance(pk, dict) and kid is not None and pk.get("kid") not in (None, kid):
        raise UnknownKeyError("attestation kid names no key of the identity document")
    return load_public_jwk(pk)


def _finite_number(value: object) -> TypeGuard[int | float]:
    """A JSON number usable as a NumericDate: not a bool, not NaN/Infinity (NaN compares false)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


#: ``(endpoint, claimed agent id or None, the error)`` for every refused attestation.
FailureHook = Callable[[str, str | None, ATHError], None]


def _claimed_sub(token: str) -> str | None:
    """The ``sub`` an attestation claims (unverified), bounded, for the audit row."""
    try:
        _, claims = decode_unverified(token)
    except (ValueError, UnicodeDecodeError):
        return None
    sub = claims.get("sub")
    return sub[:2048] if isinstance(sub, str) else None


class AttestationVerifier:
    """Verifies agent attestations for one service."""

    def __init__(
        self,
        *,
        base_url: str,
        fetcher: IdentityFetcher,
        replay: ReplayCache,
        clock: Clock,
        skew: int = 300,
        max_lifetime: int = 3600,
        on_failure: FailureHook | None = None,
    ) -> None:
        self.on_failure = on_failure
        self.base_url = base_url.rstrip("/")
        self.fetcher = fetcher
        self.replay = replay
        self.clock = clock
        self.skew = skew
        self.max_lifetime = max_lifetime
        self._keys: OrderedDict[tuple[int, str | None], tuple[AgentIdentityDocument, AnyKey]]
        self._keys = OrderedDict()
        self._keys_lock = threading.Lock()

    def audience_for(self, endpoint: Endpoint) -> str:
        return f"{self.base_url}/ath/token" if endpoint == "token" else self.base_url

    def verify(
        self, token: str, *, endpoint: Endpoint, expected_agent_id: str | None = None
    ) -> VerifiedAttestation:
        """Verify one attestation; a failure is reported to ``on_failure`` (the audit log's
        ``attestation_failed``) before it is raised."""
        try:
            return self._verify(token, endpoint=endpoint, expected_agent_id=expected_agent_id)
        except ATHError as exc:
            if self.on_failure is not None:
                self.on_failure(endpoint, _claimed_sub(token), exc)
            raise

    def _verify(
        self, token: str, *, endpoint: Endpoint, expected_agent_id: str | None = None
    ) -> VerifiedAttestation:
        try:
            header, unverified = decode_unverified(token)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _invalid("attestation is not a well-formed JWT") from exc
        sub = unverified.get("sub")
        if not isinstance(sub, str) or not sub:
            raise _invalid("attestation has no sub")
        if expected_agent_id is not None and sub != expected_agent_id:
            raise ATHError(
                ErrorCode.AGENT_IDENTITY_MISMATCH,
                "attestation sub does not match the registered agent_id",
                {"expected": expected_agent_id},
            )
        kid = header.get("kid") if isinstance(header.get("kid"), str) else None
        doc = self.fetcher.get(sub)
        claims = self._check_signature(token, doc, kid, sub)
        self._check_claims(claims, sub, endpoint)
        return VerifiedAttestation(sub, claims, doc)

    def _key(self, doc: AgentIdentityDocument, kid: str | None) -> AnyKey:
        """:func:`key_for`, imported once per cached document and ``kid`` (the fetcher hands
        out the same document object until it is re-fetched)."""
        slot = (id(doc), kid)
        with self._keys_lock:
            hit = self._keys.get(slot)
        if hit is not None and hit[0] is doc:
            return hit[1]
        key = key_for(doc, kid)
        with self._keys_lock:
            self._keys[slot] = (doc, key)
            while len(self._keys) > MAX_IMPORTED_KEYS:
                self._keys.popitem(last=False)
        return key

    def _check_signature(
        self, token: str, doc: AgentIdentityDocument, kid: str | None, agent_id: str
    ) -> dict[str, Any]:
        try:
            return verify_attestation_signature(token, self._key(doc, kid))
        except ValueError as first:
            fresh = self.fetcher.refetch_after_mismatch(agent_id)
            if fresh is None:
                raise _invalid(f"attestation signature is not valid ({first})") from first
            try:
                return verify_attestation_signature(token, key_for(fresh, kid))
            except ValueError as exc:
                raise _invalid(f"attestation signature is not valid ({exc})") from exc

    def _check_claims(self, claims: dict[str, Any], agent_id: str, endpoint: Endpoint) -> None:
        now = self.clock()
        if claims.get("sub") != agent_id:
            raise _invalid("attestation sub changed")
        iss = claims.get("iss")
        host = urlsplit(agent_id).netloc
        if iss not in (agent_id, host, f"{urlsplit(agent_id).scheme}://{host}"):
            raise _invalid("attestation iss must be the agent_id or its domain")
        aud = claims.get("aud")
        expected_aud = self.audience_for(endpoint)
        auds = aud if isinstance(aud, list) else [aud]
        if expected_aud not in auds:
            raise _invalid("attestation aud is wrong for this endpoint", expected_aud=expected_aud)
        iat, exp, jti = claims.get("iat"), claims.get("exp"), claims.get("jti")
        if not _finite_number(iat) or not _finite_number(exp):
            raise _invalid("attestation must carry numeric iat and exp")
        if abs(now - iat) > self.skew:
            raise _invalid("attestation iat is outside the allowed clock window")
        if exp <= now:
            raise _invalid("attestation has expired")
        nbf = claims.get("nbf")
        if nbf is not None and (not _finite_number(nbf) or nbf > now + self.skew):
            # RFC 7519 §4.1.5, with the same leeway as iat (``clock_skew``).
            raise _invalid("attestation is not valid yet (nbf)")
        if exp - iat > self.max_lifetime:
            raise _invalid("attestation lifetime is longer than this service accepts")
        if not isinstance(jti, str) or not 8 <= len(jti) <= 256:
            raise _invalid("attestation must carry a jti")
        key = hash_secret(f"{agent_id}\x00{jti}")
        if not self.replay.remember_once(key, to_datetime(exp), to_datetime(now)):
            raise _invalid("attestation jti was already used (replay)")
