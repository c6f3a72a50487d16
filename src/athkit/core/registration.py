"""Registration and Phase A decisions (PROTOCOL.md §4): register, status, operator decisions.

Also the client authentication and the approved-agent checks later phases build on.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from athkit.core import audit_events as ev
from athkit.core.attestation import VerifiedAttestation
from athkit.core.audit import audit_row
from athkit.core.clock import as_utc, iso, to_datetime
from athkit.core.secrets import hash_secret, new_secret, secret_matches
from athkit.core.service_base import ServiceBase
from athkit.crypto.attestation import decode_unverified
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.protocol.messages import (
    AgentStatus,
    AgentStatusResponse,
    ProviderApproval,
    RegisterRequest,
    RegisterResponse,
)
from athkit.protocol.redirects import check_redirect_uri
from athkit.protocol.scopes import is_valid_scope
from athkit.store.models import AgentRow
from athkit.store.repositories import DuplicateError
from athkit.store.steps import protocol_step


def _client_auth_error() -> ATHError:
    return ATHError(ErrorCode.INVALID_CLIENT, "client authentication failed")


class Registration(ServiceBase):
    """§4 Phase A: the agent registers; policy or the operator decides."""

    @property
    def supported(self) -> dict[str, list[str]]:
        """Provider id → the scopes it offers (native mode: the service itself)."""
        return {self.settings.provider_id: self.settings.scope_names}

    def scope_description(self, provider_id: str, scope: str) -> str:
        return self.settings.scope_description(scope)

    def provider_display_name(self, provider_id: str) -> str:
        return self.settings.app_name

    # -- §4 Phase A -----------------------------------------------------------------------

    @protocol_step
    def register(self, req: RegisterRequest) -> RegisterResponse:
        now = self.clock()
        req = req.model_copy(
            update={
                "requested_providers": [
                    p.model_copy(update={"provider_id": self.canonical_provider(p.provider_id)})
                    for p in req.requested_providers
                ]
            }
        )
        self._check_register_request(req)
        verified = self.verifier.verify(req.agent_attestation, endpoint="register")
        if verified.agent_id != req.agent_id:
            raise ATHError(
                ErrorCode.AGENT_IDENTITY_MISMATCH, "attestation sub does not match agent_id"
            )
        if req.developer.id != verified.identity.developer.id:
            raise ATHError(
                ErrorCode.AGENT_IDENTITY_MISMATCH,
                "developer.id differs from the agent's identity document",
            )
        existing = self.store.get_agent_by_agent_id(req.agent_id)
        if existing is not None:
            return self._reregister(existing, req, verified, now)
        decision = self.policy.decide(
            req.agent_id,
            req.developer.id,
            [(p.provider_id, p.scopes) for p in req.requested_providers],
            self.supported,
        )
        client_id = new_secret("ath_", 18)
        client_secret = new_secret("ath_secret_", 32)
        when = to_datetime(now)
        expires = when + timedelta(days=self.settings.approval_ttl_days)
        proposed = [p.as_dict() for p in decision.providers]
        row = AgentRow(
            client_id=client_id,
            client_secret_hash=hash_secret(client_secret),
            agent_id=req.agent_id,
            name=verified.identity.name,
            developer_name=verified.identity.developer.name,
            developer_id=verified.identity.developer.id,
            purpose=req.purpose,
            redirect_uris=list(req.redirect_uris or []),
            requested_providers=[p.model_dump() for p in req.requested_providers],
            approved_providers=proposed,
            status=decision.status,
            approval_expires=expires,
            created_at=when,
            updated_at=when,
            decided_by="policy",
            decision_reason=decision.reason,
        )
        requested = [s for p in req.requested_providers for s in p.scopes]
        audit = audit_row(
            now,
            ev.AGENT_REGISTRATION_DENIED if decision.status == "denied" else ev.AGENT_REGISTERED,
            decision.status,
            agent_id=req.agent_id,
            requested=requested,
            effective=[s for p in decision.providers for s in p.approved_scopes],
            denied=[s for p in decision.providers for s in p.denied_scopes],
            reason=None if decision.status == "approved" else f"policy: {decision.reason}",
            details={"client_id": client_id},
        )
        try:
            self.store.add_agent(row, audit)
        except DuplicateError as exc:
            raise ATHError(
                ErrorCode.AGENT_ALREADY_REGISTERED, "this agent_id is already registered"
            ) from exc
        return RegisterResponse(
            client_id=client_id,
            client_secret=client_secret,
            agent_status=AgentStatus(decision.status),
            approved_providers=self._visible_approvals(row),
            approval_expires=iso(expires),
        )

    def _check_register_request(self, req: RegisterRequest) -> None:
        """The checks of a registration that come before its attestation (no I/O)."""
        for uri in req.redirect_uris or []:
            check_redirect_uri(uri, dev_mode=self.settings.dev_mode)
        for p in req.requested_providers:
            bad = [s for s in p.scopes if not is_valid_scope(s)]
            if bad:
                raise ATHError(ErrorCode.INVALID_REQUEST, "malformed scope", {"scopes": bad})

    async def prefetch_identity(self, req: RegisterRequest) -> None:
        """On the caller's event loop, before :meth:`register` runs in a worker: fetch the
        identity document the registration's attestation names (one fetch, the same guard and
        limits, no thread hop), when the request gets as far as that fetch. The step then
        reads the document, or the fetch's error, from this request's prefetch."""
        try:
            _, claims = decode_unverified(req.agent_attestation)
            self._check_register_request(req)
        except (ValueError, UnicodeDecodeError, ATHError):
            return  # refused before any fetch: the step says why
        sub = claims.get("sub")
        if isinstance(sub, str) and sub and sub == req.agent_id:
            await self.verifier.fetcher.prefetch(sub)  # the fetcher the step will ask

    def _reregister(
        self, existing: AgentRow, req: RegisterRequest, verified: VerifiedAttestation, now: float
    ) -> RegisterResponse:
        """A registration of an agent_id that is already registered (PROTOCOL-NOTES.md §4).

        The fresh attestation has just proven control of the agent's key. An operator's deny
        or suspension stands (403); the same request again is the §4 duplicate (409); any other
        request (after a policy denial, or for other providers or scopes) is decided anew by
        the policy: same ``client_id``, a new ``client_secret``, live tokens revoked."""
        if existing.decided_by == "operator" and existing.status in ("denied", "suspended"):
            raise ATHError(
                ErrorCode.AGENT_UNAPPROVED,
                f"an operator of this service {existing.status} this agent; "
                "only an operator can lift that",
                {"agent_status": existing.status, "decided_by": "operator"},
            )
        wanted = [p.model_dump() for p in req.requested_providers]
        if existing.status in ("approved", "pending") and (
            _same_request(existing.requested_providers, wanted)
            and list(existing.redirect_uris or []) == list(req.redirect_uris or [])
        ):
            raise ATHError(
                ErrorCode.AGENT_ALREADY_REGISTERED,
                "this agent_id is already registered with this request",
                {"client_id": existing.client_id, "agent_status": existing.status},
            )
        decision = self.policy.decide(
            req.agent_id,
            req.developer.id,
            [(p.provider_id, p.scopes) for p in req.requested_providers],
            self.supported,
        )
        client_secret = new_secret("ath_secret_", 32)
        when = to_datetime(now)
        expires = when + timedelta(days=self.settings.approval_ttl_days)
        proposed = [p.as_dict() for p in decision.providers]
        values: dict[str, Any] = {
            "client_secret_hash": hash_secret(client_secret),
            "name": verified.identity.name,
            "developer_name": verified.identity.developer.name,
            "developer_id": verified.identity.developer.id,
            "purpose": req.purpose,
            "redirect_uris": list(req.redirect_uris or []),
            "requested_providers": wanted,
            "approved_providers": proposed,
            "status": decision.status,
            "approval_expires": expires,
            "updated_at": when,
            "decided_by": "policy",
            "decision_reason": decision.reason,
        }
        audit = audit_row(
            now,
            "agent.reregister",
            decision.status,
            agent_id=req.agent_id,
            requested=[s for p in req.requested_providers for s in p.scopes],
            effective=[s for p in decision.providers for s in p.approved_scopes],
            denied=[s for p in decision.providers for s in p.denied_scopes],
            reason=None if decision.status == "approved" else f"policy: {decision.reason}",
            details={"client_id": existing.client_id, "previous_status": existing.status},
        )
        expected = (existing.status, existing.client_secret_hash)
        if not self.store.reregister_agent(existing.client_id, expected, values, audit):
            raise ATHError(
                ErrorCode.AGENT_ALREADY_REGISTERED,
                "this agent's registration changed meanwhile; register again",
                {"client_id": existing.client_id},
            )
        return RegisterResponse(
            client_id=existing.client_id,
            client_secret=client_secret,
            agent_status=AgentStatus(decision.status),
            approved_providers=visible_approvals(decision.status, proposed, decision.reason),
            approval_expires=iso(expires),
        )

    @staticmethod
    def _visible_approvals(row: AgentRow) -> list[ProviderApproval]:
        """Approvals as the agent sees them: nothing is approved unless the agent is."""
        return visible_approvals(row.status, row.approved_providers, row.decision_reason)

    def authenticate_client(self, client_id: str, client_secret: str) -> AgentRow:
        """Check client credentials in constant time (§4 athkit rule, §6, §8)."""
        row = self.store.get_agent(client_id)
        if not secret_matches(client_secret, row.client_secret_hash if row else None):
            raise _client_auth_error()
        assert row is not None
        return row

    def agent_status(
        self,
        client_id: str,
        *,
        client_secret: str | None = None,
        attestation: str | None = None,
    ) -> AgentStatusResponse:
        """``GET /ath/agents/{client_id}``: only the agent itself may read its record."""
        if client_secret is not None:
            row = self.authenticate_client(client_id, client_secret)
        elif attestation is not None:
            maybe = self.store.get_agent(client_id)
            if maybe is None:
                raise ATHError(ErrorCode.AGENT_NOT_REGISTERED, "unknown client_id")
            self.verifier.verify(attestation, endpoint="status", expected_agent_id=maybe.agent_id)
            row = maybe
        else:
            raise _client_auth_error()
        return AgentStatusResponse(
            client_id=row.client_id,
            agent_id=row.agent_id,
            agent_status=AgentStatus(row.status),
            approved_providers=self._visible_approvals(row),
            approval_expires=iso(row.approval_expires),
        )

    def decide_agent(
        self,
        client_id: str,
        status: str,
        *,
        actor: str = "operator",
        reason: str | None = None,
    ) -> bool:
        """Operator decision: ``approved``, ``denied`` or ``suspended`` (revokes its tokens)."""
        if status not in ("approved", "denied", "suspended"):
            raise ATHError(ErrorCode.INVALID_REQUEST, "status must be approved/denied/suspended")
        row = self.store.get_agent(client_id)
        if row is None:
            raise ATHError(ErrorCode.AGENT_NOT_REGISTERED, "unknown client_id")
        now = self.clock()
        return self.store.set_agent_decision(
            client_id,
            status=status,
            approved_providers=None,
            now=to_datetime(now),
            revoke_tokens=status != "approved",
            reason=reason,
            audit=audit_row(
                now,
                {"approved": ev.AGENT_APPROVED, "denied": ev.AGENT_REGISTRATION_DENIED}.get(
                    status, ev.AGENT_SUSPENDED
                ),
                status,
                agent_id=row.agent_id,
                reason=reason,
                details={"actor": actor, "client_id": client_id},
            ),
        )

    def _approved_agent(self, client_id: str) -> AgentRow:
        row = self.store.get_agent(client_id)
        if row is None:
            raise ATHError(ErrorCode.AGENT_NOT_REGISTERED, "unknown client_id")
        if row.status != "approved":
            raise ATHError(
                ErrorCode.AGENT_UNAPPROVED, f"agent is {row.status}", {"agent_status": row.status}
            )
        if as_utc(row.approval_expires) <= to_datetime(self.clock()):
            raise ATHError(ErrorCode.AGENT_UNAPPROVED, "agent approval has expired")
        return row

    @staticmethod
    def _approved_scopes(row: AgentRow, provider_id: str) -> list[str] | None:
        for p in row.approved_providers:
            if p.get("provider_id") == provider_id:
                return list(p.get("approved_scopes") or [])
        return None


def _same_request(stored: list[Any], wanted: list[dict[str, Any]]) -> bool:
    def norm(items: list[Any]) -> list[tuple[str, tuple[str, ...]]]:
        return sorted(
            (str(p.get("provider_id")), tuple(sorted(p.get("scopes") or [])))
            for p in items
            if isinstance(p, dict)
        )

    return norm(stored) == norm(wanted)


def visible_approvals(
    status: str, approved_providers: list[Any], reason: str | None
) -> list[ProviderApproval]:
    """Approvals as the agent sees them: nothing is approved unless the agent is, and every
    denied scope says why (the policy's reason per provider and scope, §4)."""
    out = []
    for p in approved_providers:
        approval = ProviderApproval.model_validate(p)
        why = dict(approval.denied_scope_reasons or {})
        if status != "approved":
            held = f"agent is {status}" + (f": {reason}" if reason else "")
            for scope in approval.approved_scopes:
                why.setdefault(scope, held)
            parts = [held] + ([approval.denial_reason] if approval.denial_reason else [])
            approval = ProviderApproval(
                provider_id=approval.provider_id,
                approved_scopes=[],
                denied_scopes=approval.approved_scopes + approval.denied_scopes,
                denial_reason="; ".join(parts),
            )
        approval.denied_scope_reasons = why or None
        out.append(approval)
    return out
