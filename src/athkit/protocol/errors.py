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


#: What to do next, one line per code: shown by the agent CLI, the MCP server and the
#: framework tools next to the error (the one table of codes above, the one table of hints here).
ERROR_HINTS: dict[ErrorCode, str] = {
    ErrorCode.INVALID_ATTESTATION: "Check that the agent's identity document is reachable at "
    "its agent_id and lists the signing key (athkit agent serve-identity; whoami).",
    ErrorCode.AGENT_NOT_REGISTERED: "Register first: athkit agent connect registers the agent "
    "with the service.",
    ErrorCode.AGENT_UNAPPROVED: "The service has not approved this agent (pending, denied or "
    "suspended): ask its operator to approve it, then connect again.",
    ErrorCode.PROVIDER_NOT_APPROVED: "The service did not approve this provider for the agent: "
    "check the provider id (athkit agent discover) or ask the operator.",
    ErrorCode.SCOPE_NOT_APPROVED: "Ask only for scopes the service approved for this agent "
    "(see the registration's approved scopes), or ask the operator for more.",
    ErrorCode.SESSION_NOT_FOUND: "The authorization session is unknown: start a new one with "
    "connect.",
    ErrorCode.SESSION_EXPIRED: "The user took longer than 10 minutes: connect again and open "
    "the new consent URL.",
    ErrorCode.STATE_MISMATCH: "The redirect did not belong to this authorization (possible "
    "forgery): discard it and connect again.",
    ErrorCode.TOKEN_INVALID: "The token is unknown to the service: connect again to get a new "
    "one.",
    ErrorCode.TOKEN_EXPIRED: "The token expired: connect again (athkit refreshes refreshable "
    "grants by itself).",
    ErrorCode.TOKEN_REVOKED: "The user, the operator or the agent revoked this grant: ask the "
    "user to authorize again with connect.",
    ErrorCode.AGENT_IDENTITY_MISMATCH: "The token belongs to another agent: use the identity "
    "that obtained it (check ATHKIT_VAULT and whoami).",
    ErrorCode.PROVIDER_MISMATCH: "The token was issued for another provider: call the provider "
    "the grant names (athkit agent grants).",
    ErrorCode.USER_DENIED: "The user declined: do not retry on your own; ask the user whether "
    "they want to authorize, then connect again.",
    ErrorCode.OAUTH_ERROR: "The upstream sign-in failed: connect again; if it persists the "
    "gateway's provider configuration needs its operator.",
    ErrorCode.INTERNAL_ERROR: "The service failed: retry later and report it to the service "
    "operator if it persists.",
    ErrorCode.INVALID_CLIENT: "The stored client credentials are wrong or were revoked: remove "
    "the service's registration from the vault and connect again.",
    ErrorCode.AGENT_ALREADY_REGISTERED: "This agent is already registered there: use the "
    "client_id in the vault (or restore it) instead of registering again.",
    ErrorCode.REDIRECT_URI_MISMATCH: "Use exactly a redirect URI registered for this agent.",
    ErrorCode.INVALID_REQUEST: "The request is malformed: check the parameters named in "
    "details.",
    ErrorCode.VALIDATION_ERROR: "A field is missing or invalid: fix the fields listed in "
    "details.",
    ErrorCode.PAYLOAD_TOO_LARGE: "Send a smaller body.",
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: "Send the body as application/json.",
    ErrorCode.METHOD_NOT_ALLOWED: "That path does not accept this HTTP method: check the API "
    "documentation.",
    ErrorCode.NOT_FOUND: "No such path or resource: check the path (it is relative to the "
    "provider's API base).",
    ErrorCode.SCOPE_INSUFFICIENT: "The grant does not cover this call: connect again asking "
    "for the scope named in details, if the user agrees.",
    ErrorCode.SESSION_ALREADY_USED: "That authorization was already exchanged: use the grant "
    "in the vault, or connect again.",
    ErrorCode.SESSION_NOT_READY: "The user has not finished yet: let them open the consent "
    "URL, then wait or poll again.",
    ErrorCode.INVALID_CODE: "The code does not match the session: use the code from the "
    "redirect of this very authorization.",
    ErrorCode.UNSUPPORTED_GRANT_TYPE: "Use grant_type authorization_code at /ath/token.",
    ErrorCode.INVALID_TARGET: "Ask for a resource (RFC 8707) this server protects: take it "
    "from the resource's protected-resource metadata.",
    ErrorCode.UNSUPPORTED_VERSION: "The service speaks an ATH major version this agent does "
    "not: upgrade athkit or use another service.",
    ErrorCode.IDENTITY_FETCH_FAILED: "The service could not fetch the agent's identity "
    "document: keep athkit agent serve-identity (or your host) running at the agent_id.",
    ErrorCode.RATE_LIMITED: "Too many requests: wait for the time in Retry-After, then retry.",
    ErrorCode.SERVICE_UNAVAILABLE: "The service is temporarily down: retry in a few seconds.",
    ErrorCode.ROUTE_NOT_MAPPED: "No scope rule covers this method and path: it is not "
    "available to agents; check the provider's API.",
    ErrorCode.UPSTREAM_UNAVAILABLE: "The provider behind the gateway is not answering: retry "
    "later.",
    ErrorCode.REAUTHORIZATION_REQUIRED: "The upstream grant is gone: the user must authorize "
    "again (connect).",
    ErrorCode.LOGIN_REQUIRED: "The user must sign in to the service in the browser first.",
    ErrorCode.URL_NOT_ALLOWED: "That URL is not allowed: use an allowlisted origin or one the "
    "user confirmed.",
    ErrorCode.DISCOVERY_DOCUMENT_INVALID: "The service's discovery document is invalid: tell "
    "its operator; nothing to fix on the agent side.",
    ErrorCode.OWNERSHIP_NOT_PROVEN: "Publish the registry's proof token at the service, then "
    "ask the registry to re-validate.",
    ErrorCode.ADMIN_UNAUTHORIZED: "Use a valid operator/admin credential.",
    ErrorCode.OPERATOR_ONLY: "Only an operator account may do this: sign in as an operator.",
    ErrorCode.INVALID_SIGNATURE: "A handshake signature did not verify: check the keys in use "
    "(rotate-key publishes both during the grace period).",
    ErrorCode.HANDSHAKE_STALE: "The message is older than 5 minutes or from the future: fix "
    "the clock (NTP) and start the handshake again.",
    ErrorCode.NONCE_REPLAYED: "That nonce was used before: start a new handshake.",
    ErrorCode.HANDSHAKE_NOT_FOUND: "The handshake is unknown or finished: start a new one.",
    ErrorCode.HANDSHAKE_OUT_OF_ORDER: "Handshake steps must come in order: start again from "
    "step 1.",
    ErrorCode.HANDSHAKE_EXPIRED: "The handshake took too long: start a new one.",
    ErrorCode.CREDENTIAL_INVALID: "The user's pre-authorization credential does not verify: "
    "ask the user for a new one (athkit user grant).",
    ErrorCode.CREDENTIAL_EXPIRED: "The user's credential expired: ask the user for a new one "
    "(athkit user grant).",
    ErrorCode.CREDENTIAL_AGENT_MISMATCH: "The credential was issued to another agent DID: use "
    "the identity it names, or ask for a credential for this one.",
    ErrorCode.CREDENTIAL_SCOPE_EXCEEDED: "Ask only for scopes the user's credential covers, or "
    "ask the user for a wider credential.",
    ErrorCode.CONFIRMATION_TIMEOUT: "The user did not confirm in time: ask them to watch for "
    "the confirmation request and try again.",
    ErrorCode.IP_NOT_ALLOWED: "The session is restricted to other IP addresses: call from an "
    "allowed address.",
    ErrorCode.OUTSIDE_ACCESS_TIME: "The session only works in its access-time window: retry "
    "within it.",
    ErrorCode.ENCRYPTION_ERROR: "An encrypted message could not be opened: use the session "
    "key of this session, or start a new handshake.",
    ErrorCode.MESSAGE_REPLAYED: "That encrypted message was sent before: send a new one "
    "(fresh sequence number).",
    ErrorCode.SESSION_KEY_EXPIRED: "The session key expired: run the handshake again.",
}


def error_hint(code: ErrorCode | str) -> str:
    """The one-line "what to do next" for ``code`` (a generic line for unknown codes)."""
    try:
        return ERROR_HINTS[ErrorCode(code)]
    except (ValueError, KeyError):
        return "Read the message and details; the service's documentation names this code."
