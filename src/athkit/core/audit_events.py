"""Audit event names: the public ATH audit guidance's nine, plus athkit's own for the rest.

The guidance ("Audit logging", ATH tutorials/security) names what an implementor SHOULD log:

========================== ==========================================================
``agent_registered``       an agent registered (outcome: approved or pending)
``agent_registration_denied`` a registration was refused (by policy or by an operator)
``attestation_failed``     an agent attestation JWT failed verification
``authorization_started``  an authorization (OAuth) flow began
``access_granted``         a token was issued with its effective scopes
``access_denied``          an authorization or token request was refused
``token_revoked``          a token was revoked (by the agent, the user or an operator)
``proxy_request``          an API call went through the proxy (sampled, see AuditSampling)
``scope_violation``        an agent called outside its token's scopes or route map
========================== ==========================================================

athkit adds names for decisions the guidance has no word for (operator actions, consent,
upstream token upkeep, sign-ins, handshake steps). Rows written before these names existed
were rewritten by migration 0006; :func:`canonical` maps any old name still used in code.
"""

from __future__ import annotations

AGENT_REGISTERED = "agent_registered"
AGENT_REGISTRATION_DENIED = "agent_registration_denied"
ATTESTATION_FAILED = "attestation_failed"
AUTHORIZATION_STARTED = "authorization_started"
ACCESS_GRANTED = "access_granted"
ACCESS_DENIED = "access_denied"
TOKEN_REVOKED = "token_revoked"
PROXY_REQUEST = "proxy_request"
SCOPE_VIOLATION = "scope_violation"

GUIDANCE_EVENTS = (
    AGENT_REGISTERED,
    AGENT_REGISTRATION_DENIED,
    ATTESTATION_FAILED,
    AUTHORIZATION_STARTED,
    ACCESS_GRANTED,
    ACCESS_DENIED,
    TOKEN_REVOKED,
    PROXY_REQUEST,
    SCOPE_VIOLATION,
)

# athkit's own
AGENT_APPROVED = "agent_approved"
AGENT_SUSPENDED = "agent_suspended"
AGENT_REACTIVATED = "agent_reactivated"
CONSENT_GRANTED = "consent_granted"
OPERATOR_SIGNED_IN = "operator_signed_in"
OPERATOR_SIGNIN_FAILED = "operator_signin_failed"
OPERATOR_CREATED = "operator_created"
PROVIDER_CHANGED = "provider_changed"
PROVIDER_DISABLED = "provider_disabled"

#: (old event, outcome) -> new event; ``None`` as outcome matches any outcome.
LEGACY: dict[tuple[str, str | None], str] = {
    ("agent.register", "denied"): AGENT_REGISTRATION_DENIED,
    ("agent.register", None): AGENT_REGISTERED,
    ("agent.decision", "approved"): AGENT_APPROVED,
    ("agent.decision", "denied"): AGENT_REGISTRATION_DENIED,
    ("agent.decision", "suspended"): AGENT_SUSPENDED,
    ("authorize", "refused"): ACCESS_DENIED,
    ("authorize", None): AUTHORIZATION_STARTED,
    ("consent", "denied"): ACCESS_DENIED,
    ("consent", None): CONSENT_GRANTED,
    ("token.issue", None): ACCESS_GRANTED,
    ("token.revoke", None): TOKEN_REVOKED,
    ("upstream.exchange", None): "upstream_exchange_failed",
    ("upstream.refresh", None): "upstream_refresh",
    ("upstream.revoke", None): "upstream_revoke_failed",
    ("user.sign_in", None): "user_signed_in",
    ("user.key_link", None): "user_key_linked",
}


def canonical(event: str, outcome: str) -> str:
    """The current name for ``event`` (old dotted names map; new names pass unchanged)."""
    hit = LEGACY.get((event, outcome)) or LEGACY.get((event, None))
    if hit is not None:
        return hit
    return event.replace(".", "_")
