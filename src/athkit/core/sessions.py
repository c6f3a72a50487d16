"""Authorization sessions (PROTOCOL.md §5): ``/ath/authorize`` opens one, the OAuth leg reads it."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from athkit.core import audit_events as ev
from athkit.core.audit import audit_row
from athkit.core.clock import as_utc, to_datetime
from athkit.core.registration import Registration
from athkit.core.secrets import new_secret
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.protocol.messages import AuthorizeRequest, AuthorizeResponse
from athkit.store.models import SessionRow
from athkit.store.steps import protocol_step

if TYPE_CHECKING:
    from athkit.core.settings import ATHSettings

MIN_STATE_LENGTH = 22  # 128 bits in base64url; hex states of 32 chars pass too (§5)


def s256(verifier: str) -> str:
    """RFC 7636 §4.2 S256 code challenge."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_pending_session(
    settings: ATHSettings,
    now: float,
    *,
    client_id: str,
    agent_id: str,
    provider_id: str,
    scopes: list[str],
    agent_state: str,
    user_redirect_uri: str | None,
    resource: str | None,
    client_code_challenge: str | None = None,
) -> SessionRow:
    """A fresh Phase B session (§5): CSPRNG id and internal state, server-side PKCE S256.

    Both ``/ath/authorize`` and ``/oauth/authorize`` open their sessions here, so the consent
    page and the callback see one kind of session whichever door the agent came in by."""
    verifier = new_secret("", 48)
    when = to_datetime(now)
    return SessionRow(
        session_id=new_secret("ath_sess_", 24),
        client_id=client_id,
        agent_id=agent_id,
        provider_id=provider_id,
        requested_scopes=scopes,
        agent_state=agent_state,
        user_redirect_uri=user_redirect_uri,
        resource=resource,
        oauth_state=new_secret("", 32),
        code_verifier=verifier,
        code_challenge=s256(verifier),
        client_code_challenge=client_code_challenge,
        status="pending",
        created_at=when,
        expires_at=when + timedelta(seconds=settings.session_ttl),
    )


def consent_url(settings: ATHSettings, session: SessionRow) -> str:
    """The native authorization endpoint for ``session`` (the consent page, PROTOCOL-NOTES §5)."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": session.client_id,
            "redirect_uri": settings.callback_url,
            "scope": " ".join(session.requested_scopes),
            "state": session.oauth_state,
            "code_challenge": session.code_challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{settings.public_url}/ath/oauth/authorize?{query}"


class AuthorizationSessions(Registration):
    """§5 Phase B: open an authorization session and check the requests that name it."""

    @protocol_step
    def authorize(self, req: AuthorizeRequest) -> AuthorizeResponse:
        now = self.clock()
        req = req.model_copy(update={"provider_id": self.canonical_provider(req.provider_id)})
        if len(req.state) < MIN_STATE_LENGTH:
            raise ATHError(ErrorCode.INVALID_REQUEST, "state must carry at least 128 bits")
        agent = self._approved_agent(req.client_id)
        self.verifier.verify(
            req.agent_attestation, endpoint="authorize", expected_agent_id=agent.agent_id
        )

        def refuse(code: ErrorCode, message: str, details: dict[str, Any] | None = None) -> None:
            self.store.add_audit(
                audit_row(
                    now,
                    ev.ACCESS_DENIED,
                    "refused",
                    agent_id=agent.agent_id,
                    provider_id=req.provider_id,
                    requested=req.scopes,
                    reason=code.value,
                )
            )
            raise ATHError(code, message, details)

        approved = self._approved_scopes(agent, req.provider_id)
        if not approved:
            refuse(ErrorCode.PROVIDER_NOT_APPROVED, "agent is not approved for this provider")
        not_approved = [s for s in req.scopes if s not in (approved or [])]
        if not_approved:
            refuse(
                ErrorCode.SCOPE_NOT_APPROVED,
                "requested scopes exceed what the service approved for this agent",
                {"scopes": not_approved},
            )
        resource = None
        if req.resource is not None:
            # RFC 8707: the resource must be one this service protects, for this provider; it
            # becomes the token's audience (one mechanism with /oauth/authorize).
            try:
                resource = self.resources.resolve(req.resource, req.provider_id).resource
            except ATHError as exc:
                refuse(ErrorCode.INVALID_TARGET, exc.message, exc.details)
        if req.user_redirect_uri is not None and req.user_redirect_uri not in agent.redirect_uris:
            refuse(
                ErrorCode.REDIRECT_URI_MISMATCH,
                "user_redirect_uri does not exactly match a registered redirect_uri",
            )
        session = new_pending_session(
            self.settings,
            now,
            client_id=agent.client_id,
            agent_id=agent.agent_id,
            provider_id=req.provider_id,
            scopes=list(dict.fromkeys(req.scopes)),
            agent_state=req.state,
            user_redirect_uri=req.user_redirect_uri,
            resource=resource,
        )
        self.store.add_session(
            session,
            audit_row(
                now,
                ev.AUTHORIZATION_STARTED,
                "session_created",
                agent_id=agent.agent_id,
                provider_id=req.provider_id,
                requested=req.scopes,
                details={"ath_session_id": session.session_id},
            ),
        )
        return AuthorizeResponse(
            authorization_url=consent_url(self.settings, session),
            ath_session_id=session.session_id,
        )

    # -- the browser leg (used by athkit.oauth) --------------------------------------------

    def _live_session(self, session: SessionRow | None) -> SessionRow:
        if session is None:
            raise ATHError(ErrorCode.SESSION_NOT_FOUND, "no such authorization session")
        if as_utc(session.expires_at) <= to_datetime(self.clock()):
            raise ATHError(ErrorCode.SESSION_EXPIRED, "authorization session has expired")
        return session

    def session_for_oauth_request(self, params: dict[str, str]) -> SessionRow:
        """Validate an authorization request against the session it names (RFC 6749 §4.1.1)."""
        session = self._live_session(self.store.get_session_by_oauth_state(params.get("state", "")))
        expected = {
            "response_type": "code",
            "client_id": session.client_id,
            "redirect_uri": self.settings.callback_url,
            "code_challenge": session.code_challenge,
            "code_challenge_method": "S256",
        }
        wrong = [k for k, v in expected.items() if params.get(k) != v]
        if wrong:
            raise ATHError(
                ErrorCode.INVALID_REQUEST,
                "authorization request does not match its session",
                {"parameters": wrong},
            )
        if session.status != "pending":
            raise ATHError(ErrorCode.SESSION_ALREADY_USED, "this authorization was already decided")
        return session
