"""Step 5: the scope request with the user's signed credential; it goes on to 6 or to 8."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from athkit.core.clock import to_datetime
from athkit.core.handshake import states
from athkit.core.handshake.base import HandshakeBase, _new_id
from athkit.core.handshake.messages import (
    ScopeRequestBody,
    StepResult,
    confirmation_request,
    parse_body,
)
from athkit.core.handshake.policy import TOKEN_MAX_TTL
from athkit.core.handshake.states import State, Step
from athkit.crypto.credentials import CredentialError, SignedCredential, verify_credential
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.protocol.scopes import is_valid_scope
from athkit.store.models import ConfirmationRow


class ScopeRequest(HandshakeBase):
    """Step 5 → 6 (the user is asked) or → 8 (no confirmation required)."""

    # -- step 5 → 6 (or 8) --------------------------------------------------------------------

    def _client_info(self, client_did: str, context: Mapping[str, Any] | None) -> dict[str, Any]:
        known = self.policy.known_agents.get(client_did)
        if known is not None:
            return {
                "name": str(known.get("name", client_did)),
                "developer": str(known.get("developer", "")),
                "verified": True,
            }
        ctx = context or {}
        raw = ctx.get("client_info")
        info: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
        name = info.get("name") or ctx.get("agent_name") or "Unnamed agent"
        dev = info.get("developer") or ctx.get("developer") or "unknown developer"
        return {"name": str(name)[:200], "developer": str(dev)[:200], "verified": False}

    def request_scopes(self, handshake_id: str, data: Any) -> StepResult:
        now = self.clock()
        row = self._load(handshake_id)
        self._check_live(row, now)
        req: ScopeRequestBody = parse_body(ScopeRequestBody, data)
        states.require(Step.SCOPE_REQUEST, row.status)
        bad = [s for s in req.scopes if not is_valid_scope(s)]
        if bad:
            raise ATHError(ErrorCode.INVALID_REQUEST, "malformed scope", {"scopes": bad[:10]})
        if req.ttl <= 0:
            raise ATHError(ErrorCode.INVALID_REQUEST, "ttl must be a positive number of seconds")
        scopes = list(dict.fromkeys(req.scopes))
        auth = req.user_authorization
        if auth is None and row.credentials:
            auth = row.credentials[0]
        if auth is None:
            raise self._refuse(
                now,
                "handshake.scope",
                row,
                ATHError(ErrorCode.CREDENTIAL_INVALID, "user_authorization is required"),
            )
        try:
            signed = SignedCredential.from_dict(auth)
            cred = verify_credential(
                signed.credential,
                signed.signature,
                self.resolver,
                client_did=row.client_did,
                now=now,
            )
        except CredentialError as exc:
            code = {
                "invalid": ErrorCode.CREDENTIAL_INVALID,
                "expired": ErrorCode.CREDENTIAL_EXPIRED,
                "agent_mismatch": ErrorCode.CREDENTIAL_AGENT_MISMATCH,
            }[exc.reason]
            raise self._refuse(now, "handshake.scope", row, ATHError(code, exc.message)) from exc
        beyond = [s for s in scopes if s not in cred.scopes]
        if beyond:
            raise self._refuse(
                now,
                "handshake.scope",
                row,
                ATHError(
                    ErrorCode.CREDENTIAL_SCOPE_EXCEEDED,
                    "requested scopes exceed what the user's credential covers",
                    {"scopes": beyond},
                ),
            )
        when = to_datetime(now)
        common: dict[str, Any] = {
            "requested_scopes": scopes,
            "requested_ttl": req.ttl,
            "context": req.context or {},
            "user_did": cred.user_did,
            "credential_scopes": list(cred.scopes),
            "credential_expires_at": cred.expires_at,
            "updated_at": when,
        }
        if not self.policy.require_user_confirmation:
            result = self._scope_result(
                scopes, list(cred.scopes), cred.expires_at, scopes, req.ttl, now
            )
            source, target = states.move(Step.SCOPE_REQUEST, State.APPROVED)
            won = self.store.transition(
                row.handshake_id,
                source,
                audit=self._audit(
                    now,
                    "handshake.scope",
                    "granted",
                    row,
                    user_id=cred.user_did,
                    requested=scopes,
                    effective=result["scopes_granted"],
                    denied=[d["scope"] for d in result["scopes_denied"]],
                ),
                status=target,
                scope_result=result,
                **common,
            )
            if not won:
                raise states.out_of_order(Step.SCOPE_REQUEST, row.status)
            return StepResult(200, result)
        expires = min(now + self.policy.confirmation_ttl, cred.expires_at)
        request_id = _new_id("cr_")
        info = self._client_info(row.client_did, req.context)
        conf = ConfirmationRow(
            request_id=request_id,
            handshake_id=row.handshake_id,
            status="pending",
            user_did=cred.user_did,
            client_did=row.client_did,
            client_info=info,
            requested_scopes=scopes,
            created_at=when,
            expires_at=to_datetime(expires),
        )
        source, target = states.move(Step.SCOPE_REQUEST, State.PENDING_USER)
        won = self.store.transition(
            row.handshake_id,
            source,
            confirmation=conf,
            audit=self._audit(
                now,
                "handshake.scope",
                "pending_user",
                row,
                user_id=cred.user_did,
                requested=scopes,
                details={"request_id": request_id},
            ),
            status=target,
            request_id=request_id,
            expires_at=to_datetime(expires),
            **common,
        )
        if not won:
            raise states.out_of_order(Step.SCOPE_REQUEST, row.status)
        if self.webhook is not None:
            self.webhook.send(confirmation_request(conf))
        return StepResult(
            202,
            {
                "status": "pending_user_confirmation",
                "request_id": request_id,
                "expires_at": int(expires),
            },
        )

    def _scope_result(
        self,
        requested: list[str],
        credential_scopes: list[str],
        credential_expires_at: int,
        user_approved: list[str],
        ttl: int,
        now: float,
    ) -> dict[str, Any]:
        granted: list[str] = []
        denied: list[dict[str, str]] = []
        for s in requested:
            if s not in self.scopes_supported:
                denied.append({"scope": s, "reason": "not_supported"})
            elif s not in self.scopes_allowed:
                denied.append({"scope": s, "reason": "policy"})
            elif s not in credential_scopes:
                denied.append({"scope": s, "reason": "credential"})
            elif s not in user_approved:
                denied.append({"scope": s, "reason": "user"})
            else:
                granted.append(s)
        remaining = max(0, int(credential_expires_at - now))
        ttl_granted = max(0, min(ttl, remaining, self.policy.token_max_ttl, TOKEN_MAX_TTL))
        return {
            "scopes_granted": granted,
            "scopes_denied": denied,
            "ttl_granted": ttl_granted,
            "restrictions": self.restrictions.to_dict(),
        }
