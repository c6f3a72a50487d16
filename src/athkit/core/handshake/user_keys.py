"""The user's keys: linking a user DID to a signed-in account (the key signs the link)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from athkit.core.audit import audit_row
from athkit.core.clock import to_datetime
from athkit.core.handshake.base import HandshakeBase, _nonce_key
from athkit.core.handshake.messages import KeyLinkBody, parse_body
from athkit.core.handshake.policy import MAX_SKEW
from athkit.crypto.credentials import user_key_link_object
from athkit.crypto.did import DIDError, did_key_from_jwk
from athkit.crypto.signing import verify_object
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.models import UserKeyRow
from athkit.store.repositories import DuplicateError


class UserKeys(HandshakeBase):
    """Link a user key to an account; the DIDs of an account."""

    # -- user keys ----------------------------------------------------------------------------

    def link_user_key(self, account: str, data: Any) -> dict[str, Any]:
        """Link a user DID to the signed-in ``account`` (proof: the key signs the link object)."""
        now = self.clock()
        req: KeyLinkBody = parse_body(KeyLinkBody, data)
        self._check_timestamp(req.timestamp, now)
        pub: dict[str, Any] = {
            k: req.public_jwk[k] for k in ("kty", "crv", "x", "y") if k in req.public_jwk
        }
        if "d" in req.public_jwk:
            raise ATHError(ErrorCode.INVALID_REQUEST, "public_jwk must be a public key")
        try:
            did = did_key_from_jwk(pub)
        except (DIDError, ValueError) as exc:
            raise ATHError(ErrorCode.INVALID_REQUEST, f"public_jwk is not usable: {exc}") from exc
        if did != req.user_did:
            raise ATHError(ErrorCode.INVALID_REQUEST, "user_did is not the did:key of public_jwk")
        obj = user_key_link_object(
            req.user_did, account, self.identity.did, req.nonce, req.timestamp
        )
        if not verify_object(pub, obj, req.signature):
            raise ATHError(ErrorCode.INVALID_SIGNATURE, "the key link signature is invalid")
        when = to_datetime(now)
        if not self.service.store.remember_once(
            _nonce_key("key-link", req.nonce), when + timedelta(seconds=2 * MAX_SKEW), when
        ):
            raise ATHError(ErrorCode.NONCE_REPLAYED, "this nonce was already used")
        existing = self.store.get_user_key(did)
        if existing is not None:
            if existing.account != account:
                raise ATHError(
                    ErrorCode.AGENT_ALREADY_REGISTERED,
                    "this key is already linked to another account",
                    status=409,
                )
            return {"user_did": did, "account": account, "linked": True}
        try:
            self.store.link_user_key(
                UserKeyRow(user_did=did, account=account, public_jwk=pub, created_at=when),
                audit_row(
                    now, "user.key_link", "linked", user_id=account, details={"user_did": did}
                ),
            )
        except DuplicateError as exc:
            raise ATHError(
                ErrorCode.AGENT_ALREADY_REGISTERED, "this key is already linked", status=409
            ) from exc
        return {"user_did": did, "account": account, "linked": True}

    def user_dids_of(self, account: str) -> list[str]:
        return [r.user_did for r in self.store.user_keys_of(account)]
