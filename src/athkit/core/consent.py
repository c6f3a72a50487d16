"""Consent and browser binding (PROTOCOL.md §5): what the page shows, which browser, the choice."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from athkit.core import audit_events as ev
from athkit.core.audit import audit_row
from athkit.core.clock import iso
from athkit.core.secrets import hash_secret, new_secret, secret_matches
from athkit.core.sessions import AuthorizationSessions
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.models import AuditRow, SessionRow


@dataclass(frozen=True)
class ConsentScope:
    name: str
    description: str
    approved_for_agent: bool


@dataclass(frozen=True)
class ConsentContext:
    """What the consent page shows (§5): the agent, its developer, and each scope."""

    session_id: str
    oauth_state: str
    agent_name: str
    agent_id: str
    developer_name: str
    developer_id: str
    purpose: str | None
    scopes: list[ConsentScope]
    expires_at: str


@dataclass(frozen=True)
class BrowserBinding:
    cookie_name: str
    cookie_value: str
    csrf_token: str


class ConsentAndBinding(AuthorizationSessions):
    """§5 the user's leg: bind the browser, show the consent page, record the decision."""

    def consent_context(self, session: SessionRow) -> ConsentContext:
        agent = self.store.get_agent(session.client_id)
        if agent is None:
            raise ATHError(ErrorCode.AGENT_NOT_REGISTERED, "agent no longer registered")
        approved = set(self._approved_scopes(agent, session.provider_id) or [])
        # Also show what the agent asked for at registration but the service refused it, so the
        # user sees the whole picture (§5: "whether the service approved it for this agent").
        refused = [
            s
            for p in agent.approved_providers
            if p.get("provider_id") == session.provider_id
            for s in p.get("denied_scopes") or []
            if s not in session.requested_scopes
        ]
        return ConsentContext(
            session_id=session.session_id,
            oauth_state=session.oauth_state,
            agent_name=agent.name,
            agent_id=agent.agent_id,
            developer_name=agent.developer_name,
            developer_id=agent.developer_id,
            purpose=agent.purpose,
            scopes=[
                ConsentScope(s, self.scope_description(session.provider_id, s), s in approved)
                for s in [*session.requested_scopes, *refused]
            ],
            expires_at=iso(session.expires_at),
        )

    @staticmethod
    def binding_cookie_name(session: SessionRow) -> str:
        return "ath_bind_" + hash_secret(session.session_id)[:16]

    def bind_browser(self, session: SessionRow, existing_cookie: str | None) -> BrowserBinding:
        """Bind the arriving browser to the session: an HTTP-only cookie plus a CSRF token.

        The first browser to open the authorization URL owns it; a reload in that browser keeps
        the binding, any other browser is refused (§5: no code injection from elsewhere).
        """
        if session.binding_hash is not None:
            if not existing_cookie or not secret_matches(existing_cookie, session.binding_hash):
                raise _other_browser()
            cookie = existing_cookie
        else:
            cookie = new_secret("", 32)
        csrf = new_secret("", 24)
        # Compare-and-set on the binding itself: of browsers racing on one URL, the first wins.
        if not self.store.bind_session(
            session.session_id, session.binding_hash, hash_secret(cookie), hash_secret(csrf)
        ):
            latest = self.store.get_session(session.session_id)
            if latest is not None and latest.status == "pending":
                raise _other_browser()
            raise ATHError(ErrorCode.SESSION_ALREADY_USED, "this authorization was already decided")
        return BrowserBinding(self.binding_cookie_name(session), cookie, csrf)

    def _check_binding(self, session: SessionRow, cookie: str | None) -> None:
        if not cookie or not secret_matches(cookie, session.binding_hash):
            raise ATHError(
                ErrorCode.STATE_MISMATCH,
                "this browser is not the one the authorization started in",
            )

    def submit_consent(
        self,
        *,
        oauth_state: str,
        cookies: Mapping[str, str],
        csrf_token: str,
        user_id: str | None,
        approve: bool,
        scopes: Iterable[str],
    ) -> str:
        """Record the user's decision and return where the browser goes next (§5).

        ``cookies`` are the browser's (its binding cookie is the session's). A denial (or
        nothing ticked) goes to our callback with ``error=access_denied``; a grant goes
        wherever :meth:`_grant_consent` says (native: our callback with a one-time code).
        """
        now = self.clock()
        found = self.store.get_session_by_oauth_state(oauth_state)
        if found is None:
            raise ATHError(ErrorCode.STATE_MISMATCH, "unknown authorization state")
        session = self._live_session(found)
        self._check_binding(session, cookies.get(self.binding_cookie_name(session)))
        if not secret_matches(csrf_token, session.csrf_hash):
            raise ATHError(ErrorCode.STATE_MISMATCH, "consent form token is not valid")
        chosen = [s for s in dict.fromkeys(scopes) if s in session.requested_scopes]
        if approve and chosen:
            return self._grant_consent(session, user_id, chosen, now)
        won = self.store.transition_session(
            session.session_id,
            "pending",
            audit_row(
                now,
                ev.ACCESS_DENIED,
                "denied",
                agent_id=session.agent_id,
                user_id=user_id,
                provider_id=session.provider_id,
                requested=session.requested_scopes,
                denied=session.requested_scopes,
                reason="user denied",
            ),
            status="denied",
            user_id=user_id,
            consented_scopes=[],
        )
        if not won:
            raise ATHError(ErrorCode.SESSION_ALREADY_USED, "already decided")
        q = {"error": "access_denied", "state": oauth_state}
        return f"{self.settings.callback_url}?{urlencode(q)}"

    def _consent_audit(
        self, session: SessionRow, user_id: str | None, chosen: list[str], now: float
    ) -> AuditRow:
        return audit_row(
            now,
            ev.CONSENT_GRANTED,
            "granted",
            agent_id=session.agent_id,
            user_id=user_id,
            provider_id=session.provider_id,
            requested=session.requested_scopes,
            effective=chosen,
            denied=[s for s in session.requested_scopes if s not in chosen],
        )

    def _grant_consent(
        self, session: SessionRow, user_id: str | None, chosen: list[str], now: float
    ) -> str:
        """Native mode: issue a one-time authorization code to our own callback."""
        if user_id is None:
            raise ATHError(ErrorCode.LOGIN_REQUIRED, "sign in to decide on this authorization")
        code = new_secret("", 32)
        won = self.store.transition_session(
            session.session_id,
            "pending",
            self._consent_audit(session, user_id, chosen, now),
            status="code_issued",
            user_id=user_id,
            consented_scopes=chosen,
            oauth_code_hash=hash_secret(code),
        )
        if not won:
            raise ATHError(ErrorCode.SESSION_ALREADY_USED, "already decided")
        q = {"code": code, "state": session.oauth_state}
        return f"{self.settings.callback_url}?{urlencode(q)}"


def _other_browser() -> ATHError:
    return ATHError(ErrorCode.STATE_MISMATCH, "this authorization was opened in another browser")
