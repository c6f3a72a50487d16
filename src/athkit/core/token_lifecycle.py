"""Tokens (PROTOCOL.md §6–§8): exchange a consented session, validate on each call, revoke."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from athkit.core import audit_events as ev
from athkit.core.audit import audit_row
from athkit.core.clock import to_datetime
from athkit.core.secrets import hash_secret, new_secret, secret_matches
from athkit.core.sessions import AuthorizationSessions
from athkit.core.tokens import TOKEN_PREFIX, TokenInfo
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.protocol.messages import (
    RevokeRequest,
    ScopeIntersectionBody,
    TokenRequest,
    TokenResponse,
)
from athkit.protocol.scopes import intersect_scopes
from athkit.store.models import TokenRow
from athkit.store.steps import protocol_step


class TokenLifecycle(AuthorizationSessions):
    """§6 token exchange, §7 token checks, §8 revocation by the agent."""

    # -- §6 token -------------------------------------------------------------------------

    @protocol_step
    def exchange(self, req: TokenRequest) -> TokenResponse:
        now = self.clock()
        if req.grant_type != "authorization_code":
            raise ATHError(
                ErrorCode.UNSUPPORTED_GRANT_TYPE, "grant_type must be authorization_code"
            )
        agent = self.authenticate_client(req.client_id, req.client_secret)
        self.verifier.verify(
            req.agent_attestation, endpoint="token", expected_agent_id=agent.agent_id
        )
        if agent.status != "approved":
            raise ATHError(ErrorCode.AGENT_UNAPPROVED, f"agent is {agent.status}")
        session = self.store.get_session(req.ath_session_id)
        if session is None or session.client_id != agent.client_id:
            raise ATHError(ErrorCode.SESSION_NOT_FOUND, "no such authorization session")
        if session.status == "consumed":
            raise ATHError(ErrorCode.SESSION_ALREADY_USED, "authorization session already used")
        session = self._live_session(session)
        if session.status == "denied":
            raise ATHError(ErrorCode.USER_DENIED, "the user denied this authorization")
        if session.status == "failed":
            raise ATHError(
                ErrorCode.OAUTH_ERROR, "the upstream authorization failed; start a new one"
            )
        if session.status != "consented":
            raise ATHError(
                ErrorCode.SESSION_NOT_READY, "the user has not completed this authorization yet"
            )
        if session.agent_code_hash is not None and not secret_matches(
            req.code, session.agent_code_hash
        ):
            raise ATHError(ErrorCode.INVALID_CODE, "code does not match this session")
        approved = self._approved_scopes(agent, session.provider_id) or []
        inter = intersect_scopes(approved, session.consented_scopes or [], session.requested_scopes)
        if not inter.effective:
            self.store.transition_session(session.session_id, "consented", status="consumed")
            raise ATHError(ErrorCode.SCOPE_NOT_APPROVED, "no scope is in all three sets")
        token = new_secret(TOKEN_PREFIX, 32)
        when = to_datetime(now)
        ttl = self.settings.token_ttl
        row = TokenRow(
            token_hash=hash_secret(token),
            client_id=agent.client_id,
            agent_id=agent.agent_id,
            user_id=session.user_id or "",
            provider_id=session.provider_id,
            scopes=list(inter.effective),
            session_id=session.session_id,
            created_at=when,
            expires_at=when + timedelta(seconds=ttl),
            audience=session.resource,
        )
        audit = audit_row(
            now,
            ev.ACCESS_GRANTED,
            "granted",
            agent_id=agent.agent_id,
            user_id=session.user_id,
            provider_id=session.provider_id,
            requested=session.requested_scopes,
            effective=inter.effective,
            denied=[s for s in session.requested_scopes if s not in inter.effective],
        )
        if not self.store.consume_session_issue_token(session.session_id, row, audit):
            raise ATHError(ErrorCode.SESSION_ALREADY_USED, "authorization session already used")
        body = inter.as_response()
        return TokenResponse(
            access_token=token,
            expires_in=ttl,
            effective_scopes=list(inter.effective),
            provider_id=session.provider_id,
            agent_id=agent.agent_id,
            scope_intersection=ScopeIntersectionBody(**body),
        )

    # -- §7 token checks ------------------------------------------------------------------

    def validate(
        self,
        token: str | None,
        *,
        agent_header: str | None,
        provider_id: str | None,
        required: Iterable[str] = (),
        resource: str | None = None,
    ) -> TokenInfo:
        """Every §7 check (cache first, then the database); raises the first failure.

        ``resource`` is the RFC 8707 resource being accessed (audience check)."""
        return self.token_checks.validate(
            token,
            agent_header=agent_header,
            provider_id=None if provider_id is None else self.canonical_provider(provider_id),
            required=required,
            resource=resource,
        )

    def validate_in_memory(
        self,
        token: str | None,
        *,
        agent_header: str | None,
        provider_id: str | None,
        required: Iterable[str] = (),
        resource: str | None = None,
    ) -> TokenInfo | None:
        """:meth:`validate` when the token cache can answer without I/O, else None."""
        return self.token_checks.from_memory(
            token,
            agent_header=agent_header,
            provider_id=None if provider_id is None else self.canonical_provider(provider_id),
            required=required,
            resource=resource,
        )

    # -- §8 revoke ------------------------------------------------------------------------

    def revoke(self, req: RevokeRequest) -> None:
        """Revoke the caller's own token; unknown tokens answer the same (RFC 7009 §2.2)."""
        agent = self.authenticate_client(req.client_id, req.client_secret)
        now = self.clock()
        token_hash = hash_secret(req.token)
        # The audit record names what was revoked (§11 fields); it is written only when this
        # caller's own live token was revoked, so another agent's token reveals nothing.
        row = self.store.get_token(token_hash)
        own = row if row is not None and row.client_id == agent.client_id else None
        self.store.revoke_token(
            token_hash,
            agent.client_id,
            to_datetime(now),
            audit_row(
                now,
                ev.TOKEN_REVOKED,
                "revoked",
                agent_id=agent.agent_id,
                user_id=own.user_id if own else None,
                provider_id=own.provider_id if own else None,
                effective=list(own.scopes) if own else (),
                details={"actor": "agent", "client_id": agent.client_id},
            ),
        )
