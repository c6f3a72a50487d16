"""Step 9: the signed key agreement, the session (its keys sealed at rest) and its token;
then opening the encrypted requests of that session.
"""

from __future__ import annotations

import secrets
from typing import Any

from joserfc import jwt

from athkit.core.clock import to_datetime
from athkit.core.handshake import states
from athkit.core.handshake.base import HandshakeBase, _epoch, _new_id
from athkit.core.handshake.messages import CompleteBody, StepResult, parse_body
from athkit.core.handshake.policy import TOKEN_MAX_TTL
from athkit.core.handshake.states import State, Step
from athkit.crypto.canonical import b64url_decode, b64url_encode
from athkit.crypto.channel import (
    CIPHER_SUITE,
    KEY_EXCHANGE_ALG,
    ChannelError,
    EphemeralKey,
    SessionChannel,
    derive_session_keys,
    server_channel,
)
from athkit.crypto.credentials import client_kex_object, server_kex_object
from athkit.crypto.sealing import SealError
from athkit.crypto.signing import sign_object, verify_object
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.models import HandshakeSessionRow


class Completion(HandshakeBase):
    """Step 9 (:meth:`complete`) and the session it creates."""

    # -- step 9 -------------------------------------------------------------------------------

    def complete(self, handshake_id: str, data: Any) -> StepResult:
        now = self.clock()
        row = self._load(handshake_id)
        req: CompleteBody = parse_body(CompleteBody, data)
        states.require(Step.COMPLETE, row.status)
        self._check_live(row, now)
        if req.key_exchange_alg != KEY_EXCHANGE_ALG or req.cipher_suite != CIPHER_SUITE:
            raise ATHError(
                ErrorCode.INVALID_REQUEST,
                f"key_exchange_alg must be {KEY_EXCHANGE_ALG} and cipher_suite {CIPHER_SUITE}",
            )
        result = dict(row.scope_result or {})
        granted = list(result.get("scopes_granted") or [])
        ttl = int(result.get("ttl_granted") or 0)
        if not granted or ttl <= 0:
            raise ATHError(ErrorCode.SCOPE_NOT_APPROVED, "no scope was granted by this handshake")
        client_epk = req.key_exchange_params.get("epk")
        kex_client = client_kex_object(
            row.handshake_id,
            row.client_did,
            row.server_did,
            client_epk if isinstance(client_epk, dict) else {},
        )
        if not verify_object(
            row.client_pubkey, kex_client, req.key_exchange_params.get("signature")
        ):
            raise ATHError(
                ErrorCode.INVALID_SIGNATURE,
                "key_exchange_params.signature must be the agent's signature over its epk",
            )
        ephemeral = EphemeralKey()
        try:
            shared = ephemeral.agree(client_epk)
        except ChannelError as exc:
            raise ATHError(ErrorCode.INVALID_REQUEST, exc.message) from exc
        k_c2s, k_s2c = derive_session_keys(
            shared, row.nonce_a, row.nonce_b, row.client_did, row.server_did, row.handshake_id
        )
        session_id = _new_id("hss_")
        sealed = self.sealer.seal(
            b64url_encode(k_c2s + k_s2c), self._seal_aad(session_id, row.handshake_id)
        )
        iat = int(now)
        exp = iat + min(ttl, TOKEN_MAX_TTL)
        session_exp = iat + self.policy.session_key_ttl
        user_did = row.user_did or ""
        link = self.store.get_user_key(user_did) if user_did else None
        account = link.account if link is not None else None
        when = to_datetime(now)
        session = HandshakeSessionRow(
            session_id=session_id,
            handshake_id=row.handshake_id,
            client_did=row.client_did,
            user_did=user_did,
            account=account,
            scopes=granted,
            restrictions=result.get("restrictions") or {},
            sealed_keys=sealed,
            last_seq_c2s=0,
            rate_window=0,
            rate_count=0,
            created_at=when,
            token_expires_at=to_datetime(exp),
            expires_at=to_datetime(session_exp),
        )
        claims = {
            "iss": self.identity.did,
            "sub": row.client_did,
            "aud": self.settings.public_url,
            "iat": iat,
            "exp": exp,
            "jti": secrets.token_urlsafe(16),
            "scope": " ".join(granted),
            "sid": session_id,
            "uid": account or user_did,
        }
        header = {"alg": self.identity.algorithm, "typ": "JWT", "kid": self.identity.kid}
        token = jwt.encode(header, claims, self.identity.key.key, algorithms=[header["alg"]])
        source, target = states.move(Step.COMPLETE, State.COMPLETED)
        won = self.store.transition(
            row.handshake_id,
            source,
            session=session,
            audit=self._audit(
                now,
                "handshake.complete",
                "granted",
                row,
                user_id=account or user_did,
                effective=granted,
                details={"session_id": session_id},
            ),
            status=target,
            session_id=session_id,
            updated_at=when,
        )
        if not won:
            raise states.out_of_order(Step.COMPLETE, row.status)
        return StepResult(
            200,
            {
                "key_exchange_alg": KEY_EXCHANGE_ALG,
                "key_exchange_params": {
                    "epk": ephemeral.public_jwk(),
                    "signature": sign_object(
                        self.identity.key,
                        server_kex_object(
                            row.handshake_id,
                            row.client_did,
                            row.server_did,
                            kex_client["epk"],
                            ephemeral.public_jwk(),
                            session_id,
                        ),
                    ),
                },
                "cipher_suite": CIPHER_SUITE,
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": exp - iat,
                "session_id": session_id,
                "session_expires_at": session_exp,
            },
        )

    # -- the session: keys, channel, token ----------------------------------------------------

    @staticmethod
    def _seal_aad(session_id: str, handshake_id: str) -> str:
        return f"ath-handshake-session\0{session_id}\0{handshake_id}"

    def session_keys(self, session: HandshakeSessionRow) -> tuple[bytes, bytes]:
        try:
            raw = b64url_decode(
                self.sealer.open(
                    session.sealed_keys, self._seal_aad(session.session_id, session.handshake_id)
                )
            )
        except (SealError, ValueError) as exc:
            raise ATHError(ErrorCode.ENCRYPTION_ERROR, "session keys cannot be opened") from exc
        return raw[:32], raw[32:]

    def live_session(self, session_id: str) -> HandshakeSessionRow:
        now = self.clock()
        row = self.store.get_session(session_id) if len(session_id) <= 64 else None
        if row is None:
            raise ATHError(ErrorCode.TOKEN_INVALID, "no such handshake session")
        if row.revoked_at is not None:
            raise ATHError(ErrorCode.TOKEN_REVOKED, "this session has been revoked")
        if now >= _epoch(row.expires_at):
            raise ATHError(ErrorCode.SESSION_KEY_EXPIRED, "the session key has expired")
        return row

    def channel_for(self, session: HandshakeSessionRow) -> SessionChannel:
        return server_channel(
            session.session_id,
            self.session_keys(session),
            _epoch(session.expires_at),
            self.clock,
            recv_seq=int(session.last_seq_c2s or 0),
        )

    def open_request(
        self, session_id: str, envelope: Any, method: str, path: str
    ) -> tuple[SessionChannel, int, bytes]:
        """Decrypt a request envelope; refuse tampering (400), replay or reordering (409)."""
        session = self.live_session(session_id)
        channel = self.channel_for(session)
        try:
            seq, plaintext = channel.open_unordered(envelope, method, path)
        except ChannelError as exc:
            raise ATHError(ErrorCode(exc.code), exc.message) from exc
        if seq <= int(session.last_seq_c2s or 0) or not self.store.advance_seq(session_id, seq):
            raise ATHError(ErrorCode.MESSAGE_REPLAYED, "seq is not greater than the last message's")
        return channel, seq, plaintext
