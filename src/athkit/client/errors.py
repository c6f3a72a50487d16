"""Typed client exceptions, one class per ATH error code (PROTOCOL.md §9).

Every class is an :class:`~athkit.protocol.errors.ATHError`, so ``except ATHError`` still catches
everything the service can answer. :data:`ERROR_CLASSES` is the one table from a wire code to its
class; :func:`error_from_response` turns an error response into the matching exception.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from athkit.protocol.errors import ATHError, ErrorCode

__all__ = [
    "ATHError",
    "AdminUnauthorizedError",
    "AgentAlreadyRegisteredError",
    "AgentIdentityMismatchError",
    "AgentNotRegisteredError",
    "AgentUnapprovedError",
    "ClientStateError",
    "ConfirmationTimeoutError",
    "CredentialAgentMismatchError",
    "CredentialExpiredError",
    "CredentialInvalidError",
    "CredentialScopeExceededError",
    "DiscoveryDocumentInvalidError",
    "DraftVersionWarning",
    "ERROR_CLASSES",
    "EncryptionErrorError",
    "HandshakeExpiredError",
    "HandshakeNotFoundError",
    "HandshakeOutOfOrderError",
    "HandshakeStaleError",
    "INVALID_RESPONSE",
    "IdentityFetchFailedError",
    "InternalError",
    "InvalidAttestationError",
    "InvalidClientError",
    "InvalidCodeError",
    "InvalidRequestError",
    "InvalidSignatureError",
    "IpNotAllowedError",
    "LoginRequiredError",
    "InvalidTargetError",
    "MessageReplayedError",
    "MethodNotAllowedError",
    "NonceReplayedError",
    "NotFoundError",
    "OAuthError",
    "OperatorOnlyError",
    "OutsideAccessTimeError",
    "OwnershipNotProvenError",
    "PayloadTooLargeError",
    "ProtocolViolation",
    "ProviderMismatchError",
    "ProviderNotApprovedError",
    "RateLimitedError",
    "ReauthorizationRequiredError",
    "RedirectUriMismatchError",
    "RequestValidationError",
    "RouteNotMappedError",
    "ScopeInsufficientError",
    "ScopeNotApprovedError",
    "ServiceUnavailableError",
    "ServiceUnreachableError",
    "SessionAlreadyUsedError",
    "SessionExpiredError",
    "SessionKeyExpiredError",
    "SessionNotFoundError",
    "SessionNotReadyError",
    "StateMismatchError",
    "TokenExpiredError",
    "TokenInvalidError",
    "TokenRevokedError",
    "UnsupportedGrantTypeError",
    "UnsupportedMediaTypeError",
    "UnsupportedVersionError",
    "UpstreamUnavailableError",
    "UrlNotAllowedError",
    "UserDeniedError",
    "error_from_response",
    "parse_error_body",
    "typed_error",
]

#: Client-side code for a response that is not what ATH says it should be.
INVALID_RESPONSE = "INVALID_RESPONSE"

#: Shape of an ATH error code on the wire (``UPPER_SNAKE``).
_CODE_SHAPE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


class DraftVersionWarning(UserWarning):
    """The service speaks a ``-draft`` ATH version: accepted, but it may still change (§2)."""


class ClientStateError(RuntimeError):
    """The client was used out of order (e.g. a token call before registering). A caller bug."""


class _CodedError(ATHError):
    """Base of the per-code classes: the code is a class attribute, not an argument."""

    code: ErrorCode | str

    def __init__(
        self, message: str = "", details: dict[str, Any] | None = None, *, status: int | None = None
    ) -> None:
        code = type(self).code
        text = code.value if isinstance(code, ErrorCode) else code
        super().__init__(code, message or text, details, status=status)


ERROR_CLASSES: dict[str, type[_CodedError]] = {}
"""The one table: wire code -> exception class. Filled by :func:`_registered` below."""

_E = TypeVar("_E", bound=type[_CodedError])


def _registered(cls: _E) -> _E:
    code = cls.code.value if isinstance(cls.code, ErrorCode) else cls.code
    if code in ERROR_CLASSES:  # pragma: no cover - guards against a copy-paste slip
        raise RuntimeError(f"duplicate error class for {code}")
    ERROR_CLASSES[code] = cls
    return cls


# -- §9 codes -------------------------------------------------------------------------------


@_registered
class InvalidAttestationError(_CodedError):
    code = ErrorCode.INVALID_ATTESTATION


@_registered
class AgentNotRegisteredError(_CodedError):
    code = ErrorCode.AGENT_NOT_REGISTERED


@_registered
class AgentUnapprovedError(_CodedError):
    code = ErrorCode.AGENT_UNAPPROVED


@_registered
class ProviderNotApprovedError(_CodedError):
    code = ErrorCode.PROVIDER_NOT_APPROVED


@_registered
class ScopeNotApprovedError(_CodedError):
    code = ErrorCode.SCOPE_NOT_APPROVED


@_registered
class SessionNotFoundError(_CodedError):
    code = ErrorCode.SESSION_NOT_FOUND


@_registered
class SessionExpiredError(_CodedError):
    code = ErrorCode.SESSION_EXPIRED


@_registered
class StateMismatchError(_CodedError):
    """Also raised locally when a redirect's ``state`` differs from the one sent (§5, §11)."""

    code = ErrorCode.STATE_MISMATCH


@_registered
class TokenInvalidError(_CodedError):
    code = ErrorCode.TOKEN_INVALID


@_registered
class TokenExpiredError(_CodedError):
    code = ErrorCode.TOKEN_EXPIRED


@_registered
class TokenRevokedError(_CodedError):
    code = ErrorCode.TOKEN_REVOKED


@_registered
class AgentIdentityMismatchError(_CodedError):
    code = ErrorCode.AGENT_IDENTITY_MISMATCH


@_registered
class ProviderMismatchError(_CodedError):
    code = ErrorCode.PROVIDER_MISMATCH


@_registered
class UserDeniedError(_CodedError):
    code = ErrorCode.USER_DENIED


@_registered
class OAuthError(_CodedError):
    code = ErrorCode.OAUTH_ERROR


@_registered
class InternalError(_CodedError):
    code = ErrorCode.INTERNAL_ERROR


# -- athkit additions (protocol/errors.py) --------------------------------------------------


@_registered
class InvalidClientError(_CodedError):
    code = ErrorCode.INVALID_CLIENT


@_registered
class AgentAlreadyRegisteredError(_CodedError):
    code = ErrorCode.AGENT_ALREADY_REGISTERED


@_registered
class RedirectUriMismatchError(_CodedError):
    code = ErrorCode.REDIRECT_URI_MISMATCH


@_registered
class InvalidRequestError(_CodedError):
    code = ErrorCode.INVALID_REQUEST


@_registered
class RequestValidationError(_CodedError):
    """``VALIDATION_ERROR`` (named so it is not confused with pydantic's ``ValidationError``)."""

    code = ErrorCode.VALIDATION_ERROR


@_registered
class PayloadTooLargeError(_CodedError):
    code = ErrorCode.PAYLOAD_TOO_LARGE


@_registered
class UnsupportedMediaTypeError(_CodedError):
    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE


@_registered
class MethodNotAllowedError(_CodedError):
    code = ErrorCode.METHOD_NOT_ALLOWED


@_registered
class NotFoundError(_CodedError):
    code = ErrorCode.NOT_FOUND


@_registered
class ScopeInsufficientError(_CodedError):
    code = ErrorCode.SCOPE_INSUFFICIENT


@_registered
class SessionAlreadyUsedError(_CodedError):
    code = ErrorCode.SESSION_ALREADY_USED


@_registered
class SessionNotReadyError(_CodedError):
    code = ErrorCode.SESSION_NOT_READY


@_registered
class InvalidCodeError(_CodedError):
    code = ErrorCode.INVALID_CODE


@_registered
class UnsupportedGrantTypeError(_CodedError):
    code = ErrorCode.UNSUPPORTED_GRANT_TYPE


@_registered
class UnsupportedVersionError(_CodedError):
    """The peer speaks an ATH MAJOR version we do not (§2); also raised by discovery."""

    code = ErrorCode.UNSUPPORTED_VERSION


@_registered
class IdentityFetchFailedError(_CodedError):
    code = ErrorCode.IDENTITY_FETCH_FAILED


@_registered
class RateLimitedError(_CodedError):
    code = ErrorCode.RATE_LIMITED


@_registered
class ServiceUnavailableError(_CodedError):
    code = ErrorCode.SERVICE_UNAVAILABLE


@_registered
class RouteNotMappedError(_CodedError):
    """Gateway: no scope rule of the provider covers this method and path."""

    code = ErrorCode.ROUTE_NOT_MAPPED


@_registered
class UpstreamUnavailableError(_CodedError):
    """Gateway: the provider's API could not be reached."""

    code = ErrorCode.UPSTREAM_UNAVAILABLE


@_registered
class ReauthorizationRequiredError(_CodedError):
    """Gateway: the user's grant at the provider is gone; run a new authorization."""

    code = ErrorCode.REAUTHORIZATION_REQUIRED


@_registered
class InvalidSignatureError(_CodedError):
    code = ErrorCode.INVALID_SIGNATURE


@_registered
class HandshakeStaleError(_CodedError):
    code = ErrorCode.HANDSHAKE_STALE


@_registered
class NonceReplayedError(_CodedError):
    code = ErrorCode.NONCE_REPLAYED


@_registered
class HandshakeNotFoundError(_CodedError):
    code = ErrorCode.HANDSHAKE_NOT_FOUND


@_registered
class HandshakeOutOfOrderError(_CodedError):
    code = ErrorCode.HANDSHAKE_OUT_OF_ORDER


@_registered
class HandshakeExpiredError(_CodedError):
    code = ErrorCode.HANDSHAKE_EXPIRED


@_registered
class CredentialInvalidError(_CodedError):
    code = ErrorCode.CREDENTIAL_INVALID


@_registered
class CredentialExpiredError(_CodedError):
    code = ErrorCode.CREDENTIAL_EXPIRED


@_registered
class CredentialAgentMismatchError(_CodedError):
    code = ErrorCode.CREDENTIAL_AGENT_MISMATCH


@_registered
class CredentialScopeExceededError(_CodedError):
    code = ErrorCode.CREDENTIAL_SCOPE_EXCEEDED


@_registered
class ConfirmationTimeoutError(_CodedError):
    code = ErrorCode.CONFIRMATION_TIMEOUT


@_registered
class IpNotAllowedError(_CodedError):
    code = ErrorCode.IP_NOT_ALLOWED


@_registered
class OutsideAccessTimeError(_CodedError):
    code = ErrorCode.OUTSIDE_ACCESS_TIME


@_registered
class EncryptionErrorError(_CodedError):
    code = ErrorCode.ENCRYPTION_ERROR


@_registered
class MessageReplayedError(_CodedError):
    code = ErrorCode.MESSAGE_REPLAYED


@_registered
class SessionKeyExpiredError(_CodedError):
    code = ErrorCode.SESSION_KEY_EXPIRED


@_registered
class LoginRequiredError(_CodedError):
    code = ErrorCode.LOGIN_REQUIRED


@_registered
class InvalidTargetError(_CodedError):
    """RFC 8707 ``resource`` names nothing this service protects (or another provider's)."""

    code = ErrorCode.INVALID_TARGET


@_registered
class OperatorOnlyError(_CodedError):
    code = ErrorCode.OPERATOR_ONLY


@_registered
class UrlNotAllowedError(_CodedError):
    code = ErrorCode.URL_NOT_ALLOWED


@_registered
class DiscoveryDocumentInvalidError(_CodedError):
    code = ErrorCode.DISCOVERY_DOCUMENT_INVALID


@_registered
class OwnershipNotProvenError(_CodedError):
    code = ErrorCode.OWNERSHIP_NOT_PROVEN


@_registered
class AdminUnauthorizedError(_CodedError):
    code = ErrorCode.ADMIN_UNAUTHORIZED


# -- client-side only -----------------------------------------------------------------------


@_registered
class ProtocolViolation(_CodedError):
    """The service answered something ATH does not allow (bad JSON, missing fields, ...)."""

    code = INVALID_RESPONSE


class ServiceUnreachableError(ServiceUnavailableError):
    """The request never got an answer (connection refused, DNS, timeout, TLS)."""


# -- decoding -------------------------------------------------------------------------------


def parse_error_body(body: bytes) -> tuple[str, str, dict[str, Any]] | None:
    """``(code, message, details)`` when ``body`` is an ATH error object, else ``None`` (§9)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    code, message, details = data.get("code"), data.get("message"), data.get("details")
    if not isinstance(code, str) or not _CODE_SHAPE.match(code) or not isinstance(message, str):
        return None
    return code, message, details if isinstance(details, dict) else {}


def error_from_response(status: int, body: bytes) -> ATHError:
    """The typed exception for an error response; unknown codes keep their code on ``ATHError``.

    A body that is not an ATH error object becomes :class:`ProtocolViolation`.
    """
    parsed = parse_error_body(body)
    if parsed is None:
        return ProtocolViolation(
            f"HTTP {status} without an ATH error body", {"http_status": status}, status=status
        )
    code, message, details = parsed
    cls = ERROR_CLASSES.get(code)
    if cls is None:
        return ATHError(code, message, details, status=status)
    return cls(message, details, status=status)


def typed_error(error: ATHError) -> ATHError:
    """Re-type a plain ``ATHError`` (e.g. from :mod:`athkit.protocol`) as its per-code class."""
    if isinstance(error, _CodedError):
        return error
    cls = ERROR_CLASSES.get(error.code_str)
    if cls is None:
        return error
    return cls(error.message, error.details, status=error.status)
