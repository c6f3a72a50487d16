"""The core operations behind /oauth/*: Phase A for OAuth clients, Phase B sessions, grants.

Nothing here parses HTTP or OAuth wire formats (that is :mod:`athkit.oauth`); these functions
apply the service's own approval policy, sessions, consent page and scope intersection to
clients that arrive through dynamic registration, a client ID metadata document or an ATH
registration. Every state change is one repository call, with its audit record inside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from athkit.core import audit_events as ev
from athkit.core.audit import audit_row
from athkit.core.clock import as_utc, to_datetime
from athkit.core.resources import ProtectedResource
from athkit.core.secrets import hash_secret, new_secret, secret_matches
from athkit.core.sessions import consent_url, new_pending_session
from athkit.core.tokens import TOKEN_PREFIX
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.protocol.scopes import intersect_scopes
from athkit.store.models import AgentRow, RefreshTokenRow, TokenRow
from athkit.store.oauth_tokens import OAuthTokenStore
from athkit.store.repositories import DuplicateError

if TYPE_CHECKING:
    from athkit.core.service import ATHService

REFRESH_PREFIX = "ath_rt_"

#: Mints the access token string for a row about to be stored (opaque by default; the JWT
#: format of RFC 9068 plugs in here, :mod:`athkit.oauth.jwt_access`).
AccessTokenMinter = Callable[[TokenRow, "ATHService"], str]


def opaque_minter(row: TokenRow, svc: ATHService) -> str:
    return new_secret(TOKEN_PREFIX, 32)


@dataclass(frozen=True)
class IssuedGrant:
    """What the token endpoint hands out (RFC 6749 §5.1)."""

    access_token: str
    expires_in: int
    scopes: list[str]
    refresh_token: str | None
    audience: str | None
    provider_id: str
    agent_id: str
    scope_intersection: dict[str, list[str]] = field(default_factory=dict)


def oauth_store(svc: ATHService) -> OAuthTokenStore:
    return OAuthTokenStore(svc.store)


# -- Phase A -------------------------------------------------------------------------------


def admit_client(
    svc: ATHService,
    *,
    kind: str,
    agent_id: str,
    name: str,
    developer_name: str,
    developer_id: str,
    redirect_uris: Sequence[str],
    requested_scopes: Sequence[str] | None,
    auth_method: str,
    metadata: dict[str, Any],
    purpose: str | None = None,
    client_id: str | None = None,
) -> tuple[AgentRow, str | None]:
    """Phase A for an OAuth client (RFC 7591 or CIMD): the same policy decides as for ATH
    registrations. ``requested_scopes=None`` asks for everything the service offers; the
    policy approves a subset (or leaves the client pending for an operator)."""
    now = svc.clock()
    supported = svc.supported
    requested: list[tuple[str, list[str]]] = []
    for provider_id, offered in supported.items():
        wanted = (
            list(offered)
            if requested_scopes is None
            else [s for s in requested_scopes if s in offered]
        )
        if wanted:
            requested.append((provider_id, wanted))
    unknown = [s for s in requested_scopes or [] if not any(s in o for o in supported.values())]
    if unknown and supported:
        first = next(iter(supported))
        requested = [(p, [*s, *unknown] if p == first else s) for p, s in requested] or [
            (first, unknown)
        ]
    decision = svc.policy.decide(agent_id, developer_id, requested, supported)
    secret = new_secret("ath_secret_", 32) if auth_method.startswith("client_secret") else None
    when = to_datetime(now)
    row = AgentRow(
        client_id=client_id or new_secret("ath_", 18),
        # A public client has no usable secret: the stored hash matches nothing anyone holds.
        client_secret_hash=hash_secret(secret or new_secret("", 32)),
        agent_id=agent_id,
        name=name,
        developer_name=developer_name,
        developer_id=developer_id,
        purpose=purpose,
        redirect_uris=list(redirect_uris),
        requested_providers=[{"provider_id": p, "scopes": s} for p, s in requested],
        approved_providers=[p.as_dict() for p in decision.providers],
        status=decision.status,
        approval_expires=when + timedelta(days=svc.settings.approval_ttl_days),
        created_at=when,
        updated_at=when,
        client_kind=kind,
        token_endpoint_auth_method=auth_method,
        client_metadata=metadata,
    )
    audit = audit_row(
        now,
        "agent.register",
        decision.status,
        agent_id=agent_id,
        requested=[s for _, scopes in requested for s in scopes],
        effective=[s for p in decision.providers for s in p.approved_scopes],
        denied=[s for p in decision.providers for s in p.denied_scopes],
        reason=None if decision.status == "approved" else f"policy: {decision.status}",
        details={"client_id": row.client_id, "client_kind": kind},
    )
    try:
        svc.store.add_agent(row, audit)
    except DuplicateError as exc:
        raise ATHError(
            ErrorCode.AGENT_ALREADY_REGISTERED, "this agent_id is already registered"
        ) from exc
    return row, secret


# -- Phase B -------------------------------------------------------------------------------


def open_session(
    svc: ATHService,
    agent: AgentRow,
    *,
    resource: ProtectedResource,
    scopes: Sequence[str] | None,
    state: str | None,
    redirect_uri: str,
    code_challenge: str,
) -> str:
    """An ATH session for an /oauth/authorize request; returns the consent page URL.

    The agent must be approved (Phase A); the scopes asked for default to everything the
    service approved for it at this resource, and at least one must be approved. The consent
    page then shows each scope with the service's verdict, exactly as for ATH clients."""
    now = svc.clock()
    agent = svc._approved_agent(agent.client_id)
    approved = svc._approved_scopes(agent, resource.provider_id) or []
    at_resource = [s for s in approved if not resource.scopes or s in resource.scopes]
    wanted = list(dict.fromkeys(scopes)) if scopes else at_resource
    if not [s for s in wanted if s in at_resource]:
        svc.store.add_audit(
            audit_row(
                now,
                "authorize",
                "refused",
                agent_id=agent.agent_id,
                provider_id=resource.provider_id,
                requested=wanted,
                reason=ErrorCode.SCOPE_NOT_APPROVED.value,
            )
        )
        raise ATHError(
            ErrorCode.SCOPE_NOT_APPROVED,
            "none of the requested scopes is approved for this client at this resource",
            {"scopes": wanted},
        )
    session = new_pending_session(
        svc.settings,
        now,
        client_id=agent.client_id,
        agent_id=agent.agent_id,
        provider_id=resource.provider_id,
        scopes=wanted,
        agent_state=state or "",
        user_redirect_uri=redirect_uri,
        resource=resource.resource,
        client_code_challenge=code_challenge,
    )
    svc.store.add_session(
        session,
        audit_row(
            now,
            ev.AUTHORIZATION_STARTED,
            "session_created",
            agent_id=agent.agent_id,
            provider_id=resource.provider_id,
            requested=wanted,
            details={
                "ath_session_id": session.session_id,
                "via": "oauth",
                "resource": resource.resource,
            },
        ),
    )
    return consent_url(svc.settings, session)


# -- tokens --------------------------------------------------------------------------------


def new_token_row(
    svc: ATHService,
    agent: AgentRow,
    *,
    user_id: str,
    provider_id: str,
    scopes: list[str],
    session_id: str,
    audience: str | None,
    family_id: str,
    now: float,
) -> TokenRow:
    when = to_datetime(now)
    return TokenRow(
        token_hash="",
        client_id=agent.client_id,
        agent_id=agent.agent_id,
        user_id=user_id,
        provider_id=provider_id,
        scopes=scopes,
        session_id=session_id,
        created_at=when,
        expires_at=when + timedelta(seconds=svc.settings.token_ttl),
        audience=audience,
        agent_bound=True,
        family_id=family_id,
    )


def mint(svc: ATHService, row: TokenRow, minter: AccessTokenMinter) -> str:
    token = minter(row, svc)
    row.token_hash = hash_secret(token)
    return token


def new_refresh(
    svc: ATHService, base: TokenRow, *, family_expires: Any, now: float
) -> tuple[str, RefreshTokenRow]:
    secret = new_secret(REFRESH_PREFIX, 32)
    when = to_datetime(now)
    idle = when + timedelta(seconds=svc.settings.refresh_token_idle_ttl)
    return secret, RefreshTokenRow(
        token_hash=hash_secret(secret),
        family_id=base.family_id or "",
        client_id=base.client_id,
        agent_id=base.agent_id,
        user_id=base.user_id,
        provider_id=base.provider_id,
        scopes=list(base.scopes),
        audience=base.audience,
        created_at=when,
        expires_at=min(idle, as_utc(family_expires)),
        family_expires_at=as_utc(family_expires),
    )


def redeem_code(
    svc: ATHService,
    agent: AgentRow,
    *,
    code: str,
    code_verifier: str,
    redirect_uri: str | None,
    resource: str | None,
    minter: AccessTokenMinter = opaque_minter,
) -> IssuedGrant:
    """RFC 6749 §4.1.3 + RFC 7636 §4.6: the code, its client, redirect URI and verifier."""
    from athkit.core.service import s256

    now = svc.clock()
    store = oauth_store(svc)
    session = store.session_by_agent_code(hash_secret(code)) if code else None
    if session is None or session.client_code_challenge is None:
        raise ATHError(ErrorCode.INVALID_CODE, "authorization code is not valid")
    if session.client_id != agent.client_id:
        raise ATHError(ErrorCode.INVALID_CODE, "authorization code was issued to another client")
    if session.status == "consumed":
        # A code used twice: revoke what the first use produced (OAuth 2.1 §4.1.3).
        family = store.family_of_session(session.session_id)
        if family:
            store.revoke_family(
                family,
                to_datetime(now),
                audit_row(
                    now,
                    "token.revoke",
                    "code_reused",
                    agent_id=agent.agent_id,
                    details={"family_id": family},
                ),
            )
        raise ATHError(ErrorCode.INVALID_CODE, "authorization code was already used")
    session = svc._live_session(session)
    if session.status != "consented":
        raise ATHError(ErrorCode.INVALID_CODE, "authorization code is not valid")
    challenge = session.client_code_challenge or ""
    if not secret_matches(s256(code_verifier), hash_secret(challenge)):
        raise ATHError(ErrorCode.INVALID_CODE, "PKCE code_verifier does not match")
    if redirect_uri != session.user_redirect_uri:
        raise ATHError(ErrorCode.INVALID_CODE, "redirect_uri differs from the authorization")
    if resource is not None and session.resource is not None:
        svc.resources.resolve(resource, session.provider_id)
        if resource.rstrip("/") != session.resource.rstrip("/"):
            raise ATHError(ErrorCode.INVALID_TARGET, "resource differs from the authorization")
    if agent.status != "approved":
        raise ATHError(ErrorCode.AGENT_UNAPPROVED, f"agent is {agent.status}")
    approved = svc._approved_scopes(agent, session.provider_id) or []
    inter = intersect_scopes(approved, session.consented_scopes or [], session.requested_scopes)
    if not inter.effective:
        svc.store.transition_session(session.session_id, "consented", status="consumed")
        raise ATHError(ErrorCode.SCOPE_NOT_APPROVED, "no scope is in all three sets")
    family = new_secret("fam_", 18)
    row = new_token_row(
        svc,
        agent,
        user_id=session.user_id or "",
        provider_id=session.provider_id,
        scopes=list(inter.effective),
        session_id=session.session_id,
        audience=session.resource,
        family_id=family,
        now=now,
    )
    token = mint(svc, row, minter)
    family_expires = to_datetime(now) + timedelta(seconds=svc.settings.refresh_token_ttl)
    refresh, rrow = new_refresh(svc, row, family_expires=family_expires, now=now)
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
        details={"via": "oauth", "audience": session.resource, "family_id": family},
    )
    if not store.redeem_code(session.session_id, row, rrow, audit):
        raise ATHError(ErrorCode.INVALID_CODE, "authorization code was already used")
    return IssuedGrant(
        token,
        svc.settings.token_ttl,
        list(inter.effective),
        refresh,
        session.resource,
        session.provider_id,
        agent.agent_id,
        inter.as_response(),
    )
