"""OAuth error responses for /oauth/* (RFC 6749 §4.1.2.1, §5.2; RFC 6750 §3.1; RFC 8707 §2).

core raises :class:`ATHError` with an ATH code; on the OAuth surface the same failure is
rendered as ``{"error", "error_description"}`` with the OAuth code this table names, so a
standard client understands it, while ``ath_code`` keeps the ATH code for those who know it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from athkit.protocol.errors import ATHError, ErrorCode

#: ATH code → (OAuth error code, HTTP status at the token-style endpoints).
OAUTH_ERRORS: dict[ErrorCode, tuple[str, int]] = {
    ErrorCode.INVALID_CLIENT: ("invalid_client", 401),
    ErrorCode.INVALID_ATTESTATION: ("invalid_client", 401),
    ErrorCode.AGENT_NOT_REGISTERED: ("invalid_client", 401),
    ErrorCode.AGENT_UNAPPROVED: ("unauthorized_client", 400),
    ErrorCode.AGENT_IDENTITY_MISMATCH: ("invalid_client", 401),
    ErrorCode.PROVIDER_NOT_APPROVED: ("invalid_scope", 400),
    ErrorCode.SCOPE_NOT_APPROVED: ("invalid_scope", 400),
    ErrorCode.SCOPE_INSUFFICIENT: ("insufficient_scope", 403),
    ErrorCode.INVALID_CODE: ("invalid_grant", 400),
    ErrorCode.SESSION_NOT_FOUND: ("invalid_grant", 400),
    ErrorCode.SESSION_EXPIRED: ("invalid_grant", 400),
    ErrorCode.SESSION_ALREADY_USED: ("invalid_grant", 400),
    ErrorCode.SESSION_NOT_READY: ("invalid_grant", 400),
    ErrorCode.TOKEN_EXPIRED: ("invalid_grant", 400),
    ErrorCode.TOKEN_REVOKED: ("invalid_grant", 400),
    ErrorCode.TOKEN_INVALID: ("invalid_grant", 400),
    ErrorCode.USER_DENIED: ("access_denied", 400),
    ErrorCode.INVALID_TARGET: ("invalid_target", 400),
    ErrorCode.REDIRECT_URI_MISMATCH: ("invalid_request", 400),
    ErrorCode.UNSUPPORTED_GRANT_TYPE: ("unsupported_grant_type", 400),
    ErrorCode.AGENT_ALREADY_REGISTERED: ("invalid_client_metadata", 400),
    ErrorCode.IDENTITY_FETCH_FAILED: ("invalid_client", 401),
    ErrorCode.RATE_LIMITED: ("temporarily_unavailable", 429),
    ErrorCode.SERVICE_UNAVAILABLE: ("temporarily_unavailable", 503),
    ErrorCode.INTERNAL_ERROR: ("server_error", 500),
}


@dataclass
class OAuthError(Exception):
    """An error on the OAuth surface: ``error`` code, description, HTTP status."""

    error: str
    description: str
    status: int = 400
    ath_code: str | None = None
    headers: dict[str, str] | None = None

    def __post_init__(self) -> None:
        super().__init__(self.description)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "error_description": self.description}
        if self.ath_code:
            body["ath_code"] = self.ath_code
        return body


def from_ath(err: ATHError) -> OAuthError:
    """The OAuth rendering of an ATH error (table above; anything else: invalid_request)."""
    try:
        code = ErrorCode(err.code_str)
    except ValueError:
        code = None
    error, status = (
        OAUTH_ERRORS.get(code, ("invalid_request", 400))
        if code
        else (
            "invalid_request",
            400,
        )
    )
    if err.status >= 500 and code not in OAUTH_ERRORS:
        error, status = "server_error", err.status
    headers = None
    if status == 401:
        headers = {"WWW-Authenticate": 'Basic realm="oauth"'}
    return OAuthError(error, err.message, status, err.code_str, headers)
