"""The ATH implementer for one service (native mode): Phases A and B, token, revoke, checks.

Every public method either returns a plain result or raises :class:`ATHError`; every state
change is one repository call (one transaction) and writes its audit record inside it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from athkit.core.attestation import AttestationVerifier
from athkit.core.audit import audit_row
from athkit.core.clock import Clock, as_utc, iso, system_clock, to_datetime
from athkit.core.identity import IdentityFetcher
from athkit.core.metrics import TOKEN_CHECKS
from athkit.core.policy import ApprovalPolicy
from athkit.core.secrets import hash_secret, new_secret, secret_matches
from athkit.core.settings import ATHSettings
from athkit.core.tokens import TOKEN_PREFIX, TokenInfo, check_token
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.protocol.messages import (
    AgentStatus,
    AgentStatusResponse,
    AuthorizeRequest,
    AuthorizeResponse,
    ProviderApproval,
    RegisterRequest,
    RegisterResponse,
    RevokeRequest,
    ScopeIntersectionBody,
    ServiceAuth,
    ServiceDiscoveryDocument,
    TokenRequest,
    TokenResponse,
)
from athkit.protocol.scopes import intersect_scopes, is_valid_scope
from athkit.store.db import Database, default_sqlite_url
from athkit.store.models import AgentRow, AuditRow, SessionRow, TokenRow, UpstreamTokenRow
from athkit.store.repositories import DuplicateError, Store
from athkit.store.shared import (
    MemoryRateLimiter,
    RateLimiter,
    RedisShared,
    ReplayCache,
    SQLReplayCache,
)

MIN_STATE_LENGTH = 22  # 128 bits in base64url; hex states of 32 chars pass too (§5)


def s256(verifier: str) -> str:
    """RFC 7636 §4.2 S256 code challenge."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


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


@dataclass(frozen=True)
class SharedState:
    """The replay cache and rate limiter every node of a deployment must share."""

    replay: ReplayCache
    rate: RateLimiter


def shared_state(settings: ATHSettings, store: Store) -> SharedState:
    """Redis when ``redis_url`` is set (many nodes), else the database and process memory."""
    if settings.redis_url:
        redis_shared = RedisShared.from_url(settings.redis_url, settings.redis_prefix)
        return SharedState(redis_shared, redis_shared)
    return SharedState(SQLReplayCache(store), MemoryRateLimiter())


def _client_auth_error() -> ATHError:
    return ATHError(ErrorCode.INVALID_CLIENT, "client authentication failed")


class ATHService:
    """Native-mode ATH for one service."""

    def __init__(
        self,
        settings: ATHSettings,
        *,
        policy: ApprovalPolicy | None = None,
        store: Store | None = None,
        clock: Clock = system_clock,
        fetcher: IdentityFetcher | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy or ApprovalPolicy()
        self.clock = clock
        if store is None:
            url = settings.database_url or default_sqlite_url(settings.data_dir)
            store = Store(Database(url))
        self.store = store
        self.fetcher = fetcher or IdentityFetcher(
            dev_mode=settings.dev_mode,
            cache_seconds=settings.identity_cache_seconds,
            max_bytes=settings.identity_max_bytes,
            timeout=settings.identity_timeout,
            clock=clock,
        )
        self.shared = shared_state(settings, self.store)
        self.verifier = AttestationVerifier(
            base_url=settings.public_url,
            fetcher=self.fetcher,
            replay=self.shared.replay,
            clock=clock,
            skew=settings.clock_skew,
            max_lifetime=settings.attestation_max_lifetime,
        )

    def close(self) -> None:
        self.fetcher.close()
        self.store.db.dispose()

    # -- §2 discovery ---------------------------------------------------------------------

    def discovery_document(self) -> ServiceDiscoveryDocument:
        s = self.settings
        return ServiceDiscoveryDocument(
            ath_version="0.1",
            app_id=s.app_id,
            name=s.app_name,
            auth=ServiceAuth(
                authorization_endpoint=f"{s.public_url}/ath/authorize",
                token_endpoint=s.token_endpoint,
                registration_endpoint=f"{s.public_url}/ath/agents/register",
                scopes_supported=s.scope_names,
                agent_attestation_required=True,
            ),
            api_base=f"{s.public_url}{s.api_base_path}",
        )

    @property
    def supported(self) -> dict[str, list[str]]:
        """Provider id → the scopes it offers (native mode: the service itself)."""
        return {self.settings.provider_id: self.settings.scope_names}

    def scope_description(self, provider_id: str, scope: str) -> str:
        return self.settings.scope_description(scope)

    def provider_display_name(self, provider_id: str) -> str:
        return self.settings.app_name

    # -- §4 Phase A -----------------------------------------------------------------------

    def register(self, req: RegisterRequest) -> RegisterResponse:
        now = self.clock()
        for uri in req.redirect_uris or []:
            parts = urlsplit(uri)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
                raise ATHError(
                    ErrorCode.INVALID_REQUEST,
                    "redirect_uris must be absolute http(s) URLs without a fragment",
                    {"redirect_uri": uri},
                )
        for p in req.requested_providers:
            bad = [s for s in p.scopes if not is_valid_scope(s)]
            if bad:
                raise ATHError(ErrorCode.INVALID_REQUEST, "malformed scope", {"scopes": bad})
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
        if self.store.get_agent_by_agent_id(req.agent_id) is not None:
            raise ATHError(
                ErrorCode.AGENT_ALREADY_REGISTERED, "this agent_id is already registered"
            )
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
        )
        requested = [s for p in req.requested_providers for s in p.scopes]
        audit = audit_row(
            now,
            "agent.register",
            decision.status,
            agent_id=req.agent_id,
            requested=requested,
            effective=[s for p in decision.providers for s in p.approved_scopes],
            denied=[s for p in decision.providers for s in p.denied_scopes],
            reason=None if decision.status == "approved" else f"policy: {decision.status}",
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

    @staticmethod
    def _visible_approvals(row: AgentRow) -> list[ProviderApproval]:
        """Approvals as the agent sees them: nothing is approved unless the agent is."""
        out = []
        for p in row.approved_providers:
            approval = ProviderApproval.model_validate(p)
            if row.status != "approved":
                approval = ProviderApproval(
                    provider_id=approval.provider_id,
                    approved_scopes=[],
                    denied_scopes=approval.approved_scopes + approval.denied_scopes,
                    denial_reason=f"agent is {row.status}",
                )
            out.append(approval)
        return out

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
            audit=audit_row(
                now,
                "agent.decision",
                status,
                agent_id=row.agent_id,
                reason=reason,
                details={"actor": actor, "client_id": client_id},
            ),
        )

    # -- §5 Phase B -----------------------------------------------------------------------

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

    def authorize(self, req: AuthorizeRequest) -> AuthorizeResponse:
        now = self.clock()
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
                    "authorize",
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
        if req.user_redirect_uri is not None and req.user_redirect_uri not in agent.redirect_uris:
            refuse(
                ErrorCode.REDIRECT_URI_MISMATCH,
                "user_redirect_uri does not exactly match a registered redirect_uri",
            )
        session_id = new_secret("ath_sess_", 24)
        oauth_state = new_secret("", 32)
        verifier = new_secret("", 48)
        challenge = s256(verifier)
        when = to_datetime(now)
        self.store.add_session(
            SessionRow(
                session_id=session_id,
                client_id=agent.client_id,
                agent_id=agent.agent_id,
                provider_id=req.provider_id,
                requested_scopes=list(dict.fromkeys(req.scopes)),
                agent_state=req.state,
                user_redirect_uri=req.user_redirect_uri,
                resource=req.resource,
                oauth_state=oauth_state,
                code_verifier=verifier,
                code_challenge=challenge,
                status="pending",
                created_at=when,
                expires_at=when + timedelta(seconds=self.settings.session_ttl),
            ),
            audit_row(
                now,
                "authorize",
                "session_created",
                agent_id=agent.agent_id,
                provider_id=req.provider_id,
                requested=req.scopes,
                details={"ath_session_id": session_id},
            ),
        )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": agent.client_id,
                "redirect_uri": self.settings.callback_url,
                "scope": " ".join(dict.fromkeys(req.scopes)),
                "state": oauth_state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        return AuthorizeResponse(
            authorization_url=f"{self.settings.public_url}/ath/oauth/authorize?{query}",
            ath_session_id=session_id,
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
                raise ATHError(
                    ErrorCode.STATE_MISMATCH,
                    "this authorization was opened in another browser",
                )
            cookie = existing_cookie
        else:
            cookie = new_secret("", 32)
        csrf = new_secret("", 24)
        if not self.store.transition_session(
            session.session_id,
            "pending",
            binding_hash=hash_secret(cookie),
            csrf_hash=hash_secret(csrf),
        ):
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
        binding_cookie: str | None,
        csrf_token: str,
        user_id: str | None,
        approve: bool,
        scopes: Iterable[str],
    ) -> str:
        """Record the user's decision and return where the browser goes next (§5).

        A denial (or nothing ticked) goes to our callback with ``error=access_denied``; a grant
        goes wherever :meth:`_grant_consent` says (native: our callback with a one-time code).
        """
        now = self.clock()
        session = self._live_session(self.store.get_session_by_oauth_state(oauth_state))
        self._check_binding(session, binding_cookie)
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
                "consent",
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
            "consent",
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

    #: Session status in which :meth:`_redeem_code` expects the callback.
    REDEEMABLE_STATUS = "code_issued"

    def _redeem_code(self, session: SessionRow, code: str) -> RedeemedCode:
        """Native mode: check our one-time code and the PKCE pair (RFC 7636 §4.6)."""
        if not secret_matches(code, session.oauth_code_hash):
            raise ATHError(ErrorCode.INVALID_CODE, "authorization code is not valid")
        if s256(session.code_verifier) != session.code_challenge:
            raise ATHError(ErrorCode.OAUTH_ERROR, "PKCE verification failed")
        return RedeemedCode(user_id=session.user_id or "")

    def callback(
        self,
        *,
        state: str,
        code: str | None,
        error: str | None,
        binding_cookie: str | None,
    ) -> CallbackOutcome:
        """``GET /ath/callback``: check binding and state, redeem the code (§5)."""
        now = self.clock()
        session = self._live_session(self.store.get_session_by_oauth_state(state))
        self._check_binding(session, binding_cookie)
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
                        "consent",
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
                q = {"error": "access_denied", "state": session.agent_state}
                target = _append_query(session.user_redirect_uri, q)
            return CallbackOutcome(target, False, agent_name)
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
            q = {"code": agent_code, "state": session.agent_state}
            target = _append_query(session.user_redirect_uri, q)
        return CallbackOutcome(target, True, agent_name, list(session.consented_scopes or []))

    # -- §6 token -------------------------------------------------------------------------

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
        )
        audit = audit_row(
            now,
            "token.issue",
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
    ) -> TokenInfo:
        row = self.store.get_token(hash_secret(token)) if token else None
        try:
            info = check_token(
                row,
                now=to_datetime(self.clock()),
                agent_header=agent_header,
                provider_id=provider_id,
                required=required,
            )
        except ATHError as exc:
            TOKEN_CHECKS.labels(exc.code_str).inc()
            raise
        TOKEN_CHECKS.labels("ok").inc()
        return info

    # -- the user's own channel (§8) ------------------------------------------------------

    def user_grants(self, user_id: str, provider_id: str | None = None) -> list[UserGrant]:
        grants = []
        names: dict[str, AgentRow | None] = {}
        now = to_datetime(self.clock())
        for t in self.store.live_tokens_for_user(user_id, now, provider_id):
            if t.client_id not in names:
                names[t.client_id] = self.store.get_agent(t.client_id)
            agent = names[t.client_id]
            grants.append(
                UserGrant(
                    client_id=t.client_id,
                    agent_name=agent.name if agent else t.agent_id,
                    agent_id=t.agent_id,
                    developer_name=agent.developer_name if agent else "",
                    provider_id=t.provider_id,
                    scopes=list(t.scopes),
                    expires_at=iso(t.expires_at),
                )
            )
        return grants

    def revoke_for_user(self, user_id: str, client_id: str, provider_id: str | None = None) -> int:
        """The signed-in user withdraws an agent's access (all its live tokens for this user)."""
        now = self.clock()
        agent = self.store.get_agent(client_id)
        return self.store.revoke_user_client_tokens(
            user_id,
            client_id,
            to_datetime(now),
            audit_row(
                now,
                "token.revoke",
                "revoked_by_user",
                agent_id=agent.agent_id if agent else None,
                user_id=user_id,
                provider_id=provider_id,
                details={"actor": "user", "client_id": client_id},
            ),
            provider_id,
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
                "token.revoke",
                "revoked",
                agent_id=agent.agent_id,
                user_id=own.user_id if own else None,
                provider_id=own.provider_id if own else None,
                effective=list(own.scopes) if own else (),
                details={"actor": "agent", "client_id": agent.client_id},
            ),
        )


@dataclass(frozen=True)
class UserGrant:
    """One agent's live access for a user, as the "my agents" page shows it."""

    client_id: str
    agent_name: str
    agent_id: str
    developer_name: str
    provider_id: str
    scopes: list[str]
    expires_at: str


def _append_query(url: str, params: dict[str, str]) -> str:
    sep = "&" if urlsplit(url).query else "?"
    return f"{url}{sep}{urlencode(params)}"
