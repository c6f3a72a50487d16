"""ATH error codes, their HTTP statuses, and the error value type (PROTOCOL.md §9).

The table :data:`ERROR_STATUS` is the single place where a code meets its status. Codes beyond
§9 that athkit adds are marked and documented in PROTOCOL-NOTES.md.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class ErrorCode(str, Enum):
    """Every error code athkit emits. The first block is §9; the rest are athkit additions."""

    INVALID_ATTESTATION = "INVALID_ATTESTATION"
    AGENT_NOT_REGISTERED = "AGENT_NOT_REGISTERED"
    AGENT_UNAPPROVED = "AGENT_UNAPPROVED"
    PROVIDER_NOT_APPROVED = "PROVIDER_NOT_APPROVED"
    SCOPE_NOT_APPROVED = "SCOPE_NOT_APPROVED"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    SESSION_EXPIRED = "SESSION_EXPIRED"
    STATE_MISMATCH = "STATE_MISMATCH"
    TOKEN_INVALID = "TOKEN_INVALID"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_REVOKED = "TOKEN_REVOKED"
    AGENT_IDENTITY_MISMATCH = "AGENT_IDENTITY_MISMATCH"
    PROVIDER_MISMATCH = "PROVIDER_MISMATCH"
    USER_DENIED = "USER_DENIED"
    OAUTH_ERROR = "OAUTH_ERROR"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # athkit additions (PROTOCOL-NOTES.md, "Error codes")
    INVALID_CLIENT = "INVALID_CLIENT"
    AGENT_ALREADY_REGISTERED = "AGENT_ALREADY_REGISTERED"
    REDIRECT_URI_MISMATCH = "REDIRECT_URI_MISMATCH"
    INVALID_REQUEST = "INVALID_REQUEST"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    NOT_FOUND = "NOT_FOUND"
    SCOPE_INSUFFICIENT = "SCOPE_INSUFFICIENT"
    SESSION_ALREADY_USED = "SESSION_ALREADY_USED"
    SESSION_NOT_READY = "SESSION_NOT_READY"
    INVALID_CODE = "INVALID_CODE"
    UNSUPPORTED_GRANT_TYPE = "UNSUPPORTED_GRANT_TYPE"
    UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
    IDENTITY_FETCH_FAILED = "IDENTITY_FETCH_FAILED"
    RATE_LIMITED = "RATE_LIMITED"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    ROUTE_NOT_MAPPED = "ROUTE_NOT_MAPPED"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    REAUTHORIZATION_REQUIRED = "REAUTHORIZATION_REQUIRED"
    LOGIN_REQUIRED = "LOGIN_REQUIRED"
    INVALID_TARGET = "INVALID_TARGET"
    # the discovery registry
    URL_NOT_ALLOWED = "URL_NOT_ALLOWED"
    DISCOVERY_DOCUMENT_INVALID = "DISCOVERY_DOCUMENT_INVALID"
    OWNERSHIP_NOT_PROVEN = "OWNERSHIP_NOT_PROVEN"
    ADMIN_UNAUTHORIZED = "ADMIN_UNAUTHORIZED"
    OPERATOR_ONLY = "OPERATOR_ONLY"
    # the 9-step handshake (docs/handshake.md)
    INVALID_SIGNATURE = "INVALID_SIGNATURE"
    HANDSHAKE_STALE = "HANDSHAKE_STALE"
    NONCE_REPLAYED = "NONCE_REPLAYED"
    HANDSHAKE_NOT_FOUND = "HANDSHAKE_NOT_FOUND"
    HANDSHAKE_OUT_OF_ORDER = "HANDSHAKE_OUT_OF_ORDER"
    HANDSHAKE_EXPIRED = "HANDSHAKE_EXPIRED"
    CREDENTIAL_INVALID = "CREDENTIAL_INVALID"
    CREDENTIAL_EXPIRED = "CREDENTIAL_EXPIRED"
    CREDENTIAL_AGENT_MISMATCH = "CREDENTIAL_AGENT_MISMATCH"
    CREDENTIAL_SCOPE_EXCEEDED = "CREDENTIAL_SCOPE_EXCEEDED"
    CONFIRMATION_TIMEOUT = "CONFIRMATION_TIMEOUT"
    IP_NOT_ALLOWED = "IP_NOT_ALLOWED"
    OUTSIDE_ACCESS_TIME = "OUTSIDE_ACCESS_TIME"
    ENCRYPTION_ERROR = "ENCRYPTION_ERROR"
    MESSAGE_REPLAYED = "MESSAGE_REPLAYED"
    SESSION_KEY_EXPIRED = "SESSION_KEY_EXPIRED"


ERROR_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_ATTESTATION: 401,
    ErrorCode.TOKEN_INVALID: 401,
    ErrorCode.TOKEN_EXPIRED: 401,
    ErrorCode.TOKEN_REVOKED: 401,
    ErrorCode.INVALID_CLIENT: 401,
    ErrorCode.LOGIN_REQUIRED: 401,
    ErrorCode.ADMIN_UNAUTHORIZED: 401,
    ErrorCode.OWNERSHIP_NOT_PROVEN: 403,
    ErrorCode.URL_NOT_ALLOWED: 400,
    ErrorCode.DISCOVERY_DOCUMENT_INVALID: 422,
    ErrorCode.OPERATOR_ONLY: 403,
    ErrorCode.INVALID_SIGNATURE: 401,
    ErrorCode.HANDSHAKE_STALE: 401,
    ErrorCode.NONCE_REPLAYED: 401,
    ErrorCode.CREDENTIAL_INVALID: 401,
    ErrorCode.CREDENTIAL_EXPIRED: 401,
    ErrorCode.SESSION_KEY_EXPIRED: 401,
    ErrorCode.CREDENTIAL_AGENT_MISMATCH: 403,
    ErrorCode.CREDENTIAL_SCOPE_EXCEEDED: 403,
    ErrorCode.IP_NOT_ALLOWED: 403,
    ErrorCode.OUTSIDE_ACCESS_TIME: 403,
    ErrorCode.HANDSHAKE_NOT_FOUND: 404,
    ErrorCode.CONFIRMATION_TIMEOUT: 408,
    ErrorCode.HANDSHAKE_OUT_OF_ORDER: 409,
    ErrorCode.MESSAGE_REPLAYED: 409,
    ErrorCode.HANDSHAKE_EXPIRED: 410,
    ErrorCode.ENCRYPTION_ERROR: 400,
    ErrorCode.AGENT_NOT_REGISTERED: 403,
    ErrorCode.AGENT_UNAPPROVED: 403,
    ErrorCode.PROVIDER_NOT_APPROVED: 403,
    ErrorCode.SCOPE_NOT_APPROVED: 403,
    ErrorCode.AGENT_IDENTITY_MISMATCH: 403,
    ErrorCode.PROVIDER_MISMATCH: 403,
    ErrorCode.USER_DENIED: 403,
    ErrorCode.SCOPE_INSUFFICIENT: 403,
    ErrorCode.ROUTE_NOT_MAPPED: 403,
    ErrorCode.REAUTHORIZATION_REQUIRED: 403,
    ErrorCode.SESSION_NOT_FOUND: 400,
    ErrorCode.SESSION_EXPIRED: 400,
    ErrorCode.STATE_MISMATCH: 400,
    ErrorCode.REDIRECT_URI_MISMATCH: 400,
    ErrorCode.INVALID_TARGET: 400,
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.SESSION_ALREADY_USED: 400,
    ErrorCode.SESSION_NOT_READY: 400,
    ErrorCode.INVALID_CODE: 400,
    ErrorCode.UNSUPPORTED_GRANT_TYPE: 400,
    ErrorCode.UNSUPPORTED_VERSION: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.AGENT_ALREADY_REGISTERED: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.VALIDATION_ERROR: 422,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.OAUTH_ERROR: 502,
    ErrorCode.IDENTITY_FETCH_FAILED: 502,
    ErrorCode.UPSTREAM_UNAVAILABLE: 502,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
}


def error_status(code: ErrorCode | str) -> int:
    """HTTP status for an error code; unknown codes map to 400."""
    try:
        return ERROR_STATUS[ErrorCode(code)]
    except ValueError:
        return 400


class ATHError(Exception):
    """An ATH protocol error: ``{"code", "message", "details"}`` with its HTTP status (§9).

    Raised by core and client alike; ``web/`` renders it, ``client/`` re-raises the typed
    subclass matching the code it received.
    """

    code: ErrorCode | str = ErrorCode.INTERNAL_ERROR

    def __init__(
        self,
        code: ErrorCode | str,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        self.status = status if status is not None else error_status(code)

    @property
    def code_str(self) -> str:
        return self.code.value if isinstance(self.code, ErrorCode) else str(self.code)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code_str, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code_str!r}, {self.message!r}, status={self.status})"
