"""The authorization callback (PROTOCOL.md §5): check binding and state, redeem the code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from athkit.core import audit_events as ev
from athkit.core.audit import audit_row
from athkit.core.consent import ConsentAndBinding
from athkit.core.secrets import hash_secret, new_secret, secret_matches
from athkit.core.sessions import s256
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.models import SessionRow, UpstreamTokenRow


@dataclass(frozen=True)
class RedeemedCode:
    """What redeeming an authorization code yields: the user, and (gateway) upstream tokens."""

    user_id: str
    upstream: UpstreamTokenRow | None = None


@dataclass(frozen=True)
class CallbackOutcome:
    """Where the user's browser goes after the callback: a redirect, or our own done page."""

    redirect_to: str | None
    approved: bool
    agent_name: str
    scopes: list[str] = field(default_factory=list)
    #: The session's browser-binding cookie, to be cleared now that the leg is over.
    binding_cookie: str = ""


class AuthorizationCallback(ConsentAndBinding):
    """§5 the end of the browser leg: ``GET /ath/callback``."""

    #: Session status in which :meth:`_redeem_code` expects the callback.
    REDEEMABLE_STATUS = "code_issued"

    def _redeem_code(self, session: SessionRow, code: str) -> RedeemedCode:
        """Native mode: check our one-time code and the PKCE pair (RFC 7636 §4.6)."""
        if not secret_matches(code, session.oauth_code_hash):
            raise ATHError(ErrorCode.INVALID_CODE, "authorization code is not valid")
        if s256(session.code_verifier) != session.code_challenge:
            raise ATHError(ErrorCode.OAUTH_ERROR, "PKCE verification failed")
        return RedeemedCode(user_id=session.user_id or "")

    def _client_redirect_params(
        self, session: SessionRow, params: dict[str, str]
    ) -> dict[str, str]:
        """The query for the client's redirect: ``state`` back, and for /oauth/* sessions the
        issuer (RFC 9207 §2) so the client can tell which server answered."""
        if session.client_code_challenge is None:
            return {**params, "state": session.agent_state}
        out = dict(params)
        if session.agent_state:
            out["state"] = session.agent_state
        out["iss"] = self.settings.issuer
        return out

    def callback(
        self,
        *,
        state: str,
        code: str | None,
        error: str | None,
        cookies: Mapping[str, str],
    ) -> CallbackOutcome:
        """``GET /ath/callback``: check binding and state, redeem the code (§5). ``cookies``
        are the browser's (its binding cookie is the session's)."""
        now = self.clock()
        found = self.store.get_session_by_oauth_state(state)
        if found is None:
            raise ATHError(ErrorCode.STATE_MISMATCH, "state does not match any authorization")
        session = self._live_session(found)
        cookie_name = self.binding_cookie_name(session)
        self._check_binding(session, cookies.get(cookie_name))
        agent = self.store.get_agent(session.client_id)
        agent_name = agent.name if agent else session.agent_id
        own = session.user_redirect_uri in (None, self.settings.callback_url)
        if error is not None or session.status == "denied":
            if session.status != "denied":
                self.store.transition_session(
                    session.session_id,
                    ("pending", self.REDEEMABLE_STATUS),
                    audit_row(
                        now,
                        ev.ACCESS_DENIED,
                        "denied",
                        agent_id=session.agent_id,
                        provider_id=session.provider_id,
                        requested=session.requested_scopes,
                        denied=session.requested_scopes,
                        reason=f"authorization server answered {error}",
                    ),
                    status="denied",
                )
            target = None
            if not own and session.user_redirect_uri:
                q = self._client_redirect_params(session, {"error": "access_denied"})
                target = _append_query(session.user_redirect_uri, q)
            return CallbackOutcome(target, False, agent_name, binding_cookie=cookie_name)
        if not code or session.status != self.REDEEMABLE_STATUS:
            raise ATHError(ErrorCode.SESSION_ALREADY_USED, "authorization code already used")
        redeemed = self._redeem_code(session, code)
        agent_code = None if own else new_secret("", 32)
        if not self.store.complete_callback(
            session.session_id,
            self.REDEEMABLE_STATUS,
            upstream=redeemed.upstream,
            status="consented",
            user_id=redeemed.user_id,
            oauth_code_hash=None,
            agent_code_hash=hash_secret(agent_code) if agent_code else None,
        ):
            raise ATHError(ErrorCode.SESSION_ALREADY_USED, "authorization code already used")
        target = None
        if agent_code is not None and session.user_redirect_uri:
            q = self._client_redirect_params(session, {"code": agent_code})
            target = _append_query(session.user_redirect_uri, q)
        scopes = list(session.consented_scopes or [])
        return CallbackOutcome(target, True, agent_name, scopes, binding_cookie=cookie_name)


def _append_query(url: str, params: dict[str, str]) -> str:
    sep = "&" if urlsplit(url).query else "?"
    return f"{url}{sep}{urlencode(params)}"
