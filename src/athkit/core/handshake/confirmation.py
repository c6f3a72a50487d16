"""Steps 6–8 out of band: the confirmation request (page, CLI, webhook), the user's signed
answer (step 7) and the scope_result the agent polls for (step 8).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from athkit.core.clock import to_datetime
from athkit.core.handshake import states
from athkit.core.handshake.base import _epoch, _nonce_key
from athkit.core.handshake.messages import (
    ConfirmationResponseBody,
    StepResult,
    confirmation_request,
    parse_body,
)
from athkit.core.handshake.policy import MAX_SKEW
from athkit.core.handshake.scope import ScopeRequest
from athkit.core.handshake.states import State, Step
from athkit.crypto.credentials import UserProofError, confirmation_object, verify_user_request_proof
from athkit.crypto.signing import verify_object
from athkit.protocol.errors import ATHError, ErrorCode


class Confirmation(ScopeRequest):
    """Steps 6–8: what the user is shown, their answer, the result."""

    # -- step 6: the confirmation request (out of band) ---------------------------------------

    def pending_for(self, user_dids: Sequence[str]) -> list[dict[str, Any]]:
        rows = self.store.pending_confirmations(list(user_dids), to_datetime(self.clock()))
        return [confirmation_request(r) for r in rows]

    def user_from_proof(self, header: str | None, method: str, path: str) -> str:
        """Verify ``X-ATH-User-Proof`` and return the user's DID (401 otherwise)."""
        if not header:
            raise ATHError(ErrorCode.INVALID_SIGNATURE, "X-ATH-User-Proof is required")
        now = self.clock()

        def unused(nonce: str, expires_at: int) -> bool:
            return self.service.store.remember_once(
                _nonce_key("user-request", nonce),
                to_datetime(max(expires_at, int(now)) + MAX_SKEW),
                to_datetime(now),
            )

        try:
            return verify_user_request_proof(
                header, self.resolver, self.identity.did, method, path, now, nonce_unused=unused
            )
        except UserProofError as exc:
            code = {
                "invalid": ErrorCode.INVALID_SIGNATURE,
                "stale": ErrorCode.HANDSHAKE_STALE,
                "replayed": ErrorCode.NONCE_REPLAYED,
            }[exc.reason]
            raise ATHError(code, exc.message) from exc

    # -- step 7 -------------------------------------------------------------------------------

    def confirm(self, request_id: str, data: Any) -> dict[str, Any]:
        now = self.clock()
        req: ConfirmationResponseBody = parse_body(ConfirmationResponseBody, data)
        if req.request_id != request_id:
            raise ATHError(ErrorCode.INVALID_REQUEST, "request_id differs from the URL")
        conf = self.store.get_confirmation(request_id) if len(request_id) <= 64 else None
        if conf is None:
            raise ATHError(ErrorCode.NOT_FOUND, "no such confirmation request")
        for name in ("handshake_id", "user_did", "client_did"):
            given = getattr(req, name)
            if given is not None and given != getattr(conf, name):
                raise ATHError(ErrorCode.INVALID_REQUEST, f"{name} does not match the request")
        if conf.status != "pending":
            raise ATHError(
                ErrorCode.HANDSHAKE_OUT_OF_ORDER,
                "this confirmation request was already answered",
                {"state": conf.status},
            )
        if now >= _epoch(conf.expires_at):
            raise ATHError(ErrorCode.CONFIRMATION_TIMEOUT, "this confirmation request has expired")
        obj = confirmation_object(
            conf.request_id,
            conf.handshake_id,
            conf.user_did,
            conf.client_did,
            req.approved,
            list(req.approved_scopes),
            req.expires_at,
        )
        jwk = self._resolve(conf.user_did, ErrorCode.INVALID_SIGNATURE, "user_did")
        if not verify_object(jwk, obj, req.signature):
            raise ATHError(
                ErrorCode.INVALID_SIGNATURE, "the user's signature over the confirmation is invalid"
            )
        extra = [s for s in req.approved_scopes if s not in conf.requested_scopes]
        if extra:
            raise ATHError(
                ErrorCode.INVALID_REQUEST,
                "approved_scopes must be a subset of requested_scopes",
                {"scopes": extra},
            )
        row = self._load(conf.handshake_id)
        approved_scopes = list(dict.fromkeys(req.approved_scopes)) if req.approved else []
        approved = bool(req.approved and approved_scopes)
        when = to_datetime(now)
        changes: dict[str, Any] = {
            "approved_scopes": approved_scopes,
            "response": {**req.model_dump(), "signed": obj},
        }
        if approved:
            result = self._scope_result(
                list(row.requested_scopes or []),
                list(row.credential_scopes or []),
                int(row.credential_expires_at or 0),
                approved_scopes,
                int(row.requested_ttl or 0),
                now,
            )
            changes["scope_result"] = result
            changes["expires_at"] = when + timedelta(seconds=self.policy.handshake_ttl)
            effective = list(result["scopes_granted"])
            denied = [d["scope"] for d in result["scopes_denied"]]
        else:
            effective, denied = [], list(conf.requested_scopes)
        won = self.store.decide(
            conf.request_id,
            conf.handshake_id,
            confirmation_status="approved" if approved else "denied",
            handshake_status=states.move(
                Step.CONFIRMATION, State.APPROVED if approved else State.DENIED
            )[1],
            now=when,
            audit=self._audit(
                now,
                "handshake.confirmation",
                "approved" if approved else "denied",
                row,
                user_id=conf.user_did,
                requested=list(conf.requested_scopes),
                effective=effective,
                denied=denied,
                reason=None if approved else "user denied",
            ),
            **changes,
        )
        if not won:
            raise ATHError(
                ErrorCode.HANDSHAKE_OUT_OF_ORDER, "this confirmation request was already answered"
            )
        return {"request_id": conf.request_id, "status": "approved" if approved else "denied"}

    # -- step 8 -------------------------------------------------------------------------------

    def result(self, handshake_id: str) -> StepResult:
        """``scope_result`` (200), still waiting (202), or the refusal of the handshake."""
        now = self.clock()
        row = self._load(handshake_id)
        if row.status == State.PENDING_USER:
            if now < _epoch(row.expires_at):
                return StepResult(
                    202,
                    {
                        "status": "pending_user_confirmation",
                        "request_id": row.request_id,
                        "expires_at": _epoch(row.expires_at),
                    },
                )
            self.store.expire_confirmation(
                row.handshake_id,
                row.request_id or "",
                to_datetime(now),
                self._audit(now, "handshake.confirmation", "timeout", row, reason="no answer"),
            )
            row = self._load(handshake_id)
        states.require(Step.SCOPE_RESULT, row.status)
        self._check_live(row, now)
        return StepResult(200, dict(row.scope_result or {}))
