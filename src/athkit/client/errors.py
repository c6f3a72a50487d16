"""Typed client exceptions, one class per ATH error code (PROTOCOL.md §9).

The classes come from the protocol's one error table, :class:`~athkit.protocol.errors.ErrorCode`:
each code ``SOME_CODE`` has the class ``SomeCodeError`` (:func:`class_name`), registered in
:data:`ERROR_CLASSES` as it is declared. The one-line declarations below only give type checkers
and readers the names; a name that does not follow the table is refused at import, and a code
added to the table without a declaration still gets its class (made at import, reachable through
:data:`ERROR_CLASSES` and as a module attribute).

Every class is an :class:`~athkit.protocol.errors.ATHError`, so ``except ATHError`` still catches
everything the service can answer. :func:`error_from_response` turns an error response into the
matching exception.
"""

from __future__ import annotations

import json
import re
from typing import Any

from athkit.protocol.errors import ATHError as ATHError
from athkit.protocol.errors import ErrorCode

#: Client-side code for a response that is not what ATH says it should be.
INVALID_RESPONSE = "INVALID_RESPONSE"

#: Shape of an ATH error code on the wire (``UPPER_SNAKE``).
_CODE_SHAPE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")

#: Codes whose class name is not the plain ``CamelCase + "Error"`` of the code.
_NAME_EXCEPTIONS = {
    ErrorCode.OAUTH_ERROR: "OAuthError",
    ErrorCode.INTERNAL_ERROR: "InternalError",
    # not ``ValidationError``, so it is not confused with pydantic's
    ErrorCode.VALIDATION_ERROR: "RequestValidationError",
}


def class_name(code: ErrorCode) -> str:
    """The exception class name of an ATH code: ``TOKEN_REVOKED`` -> ``TokenRevokedError``."""
    if code in _NAME_EXCEPTIONS:
        return _NAME_EXCEPTIONS[code]
    return "".join(part.capitalize() for part in code.value.split("_")) + "Error"


class DraftVersionWarning(UserWarning):
    """The service speaks a ``-draft`` ATH version: accepted, but it may still change (§2)."""


class ClientStateError(RuntimeError):
    """The client was used out of order (e.g. a token call before registering). A caller bug."""


ERROR_CLASSES: dict[str, type[_CodedError]] = {}
"""The one table from a wire code to its exception class, filled as the classes are declared."""


class _CodedError(ATHError):
    """Base of the per-code classes: the code is a class attribute, not an argument.

    ``class X(_CodedError, code=...)`` registers ``X`` for that wire code; a subclass without
    ``code=`` (a client-side refinement) is not registered.
    """

    code: ErrorCode | str

    def __init_subclass__(cls, *, code: ErrorCode | str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if code is None:
            return
        wire = code.value if isinstance(code, ErrorCode) else code
        if isinstance(code, ErrorCode) and cls.__name__ != class_name(code):
            raise TypeError(f"{wire} must be declared as {class_name(code)}, not {cls.__name__}")
        if wire in ERROR_CLASSES:
            raise TypeError(f"duplicate error class for {wire}")
        cls.code = code
        ERROR_CLASSES[wire] = cls

    def __init__(
        self, message: str = "", details: dict[str, Any] | None = None, *, status: int | None = None
    ) -> None:
        code = type(self).code
        text = code.value if isinstance(code, ErrorCode) else code
        super().__init__(code, message or text, details, status=status)


# -- §9 codes -------------------------------------------------------------------------------


class InvalidAttestationError(_CodedError, code=ErrorCode.INVALID_ATTESTATION): ...


class AgentNotRegisteredError(_CodedError, code=ErrorCode.AGENT_NOT_REGISTERED): ...


class AgentUnapprovedError(_CodedError, code=ErrorCode.AGENT_UNAPPROVED): ...


class ProviderNotApprovedError(_CodedError, code=ErrorCode.PROVIDER_NOT_APPROVED): ...


class ScopeNotApprovedError(_CodedError, code=ErrorCode.SCOPE_NOT_APPROVED): ...


class SessionNotFoundError(_CodedError, code=ErrorCode.SESSION_NOT_FOUND): ...


class SessionExpiredError(_CodedError, code=ErrorCode.SESSION_EXPIRED): ...


class StateMismatchError(_CodedError, code=ErrorCode.STATE_MISMATCH):
    """Also raised locally when a redirect's ``state`` differs from the one sent (§5, §11)."""


class TokenInvalidError(_CodedError, code=ErrorCode.TOKEN_INVALID): ...


class TokenExpiredError(_CodedError, code=ErrorCode.TOKEN_EXPIRED): ...


class TokenRevokedError(_CodedError, code=ErrorCode.TOKEN_REVOKED): ...


class AgentIdentityMismatchError(_CodedError, code=ErrorCode.AGENT_IDENTITY_MISMATCH): ...


class ProviderMismatchError(_CodedError, code=ErrorCode.PROVIDER_MISMATCH): ...


class UserDeniedError(_CodedError, code=ErrorCode.USER_DENIED): ...


class OAuthError(_CodedError, code=ErrorCode.OAUTH_ERROR): ...


class InternalError(_CodedError, code=ErrorCode.INTERNAL_ERROR): ...


# -- athkit additions (PROTOCOL-NOTES.md) ---------------------------------------------------


class InvalidClientError(_CodedError, code=ErrorCode.INVALID_CLIENT): ...


class AgentAlreadyRegisteredError(_CodedError, code=ErrorCode.AGENT_ALREADY_REGISTERED): ...


class RedirectUriMismatchError(_CodedError, code=ErrorCode.REDIRECT_URI_MISMATCH): ...


class InvalidRequestError(_CodedError, code=ErrorCode.INVALID_REQUEST): ...


class RequestValidationError(_CodedError, code=ErrorCode.VALIDATION_ERROR):
    """``VALIDATION_ERROR`` (named so it is not confused with pydantic's ``ValidationError``)."""


class PayloadTooLargeError(_CodedError, code=ErrorCode.PAYLOAD_TOO_LARGE): ...


class UnsupportedMediaTypeError(_CodedError, code=ErrorCode.UNSUPPORTED_MEDIA_TYPE): ...


class MethodNotAllowedError(_CodedError, code=ErrorCode.METHOD_NOT_ALLOWED): ...


class NotFoundError(_CodedError, code=ErrorCode.NOT_FOUND): ...


class ScopeInsufficientError(_CodedError, code=ErrorCode.SCOPE_INSUFFICIENT): ...


class SessionAlreadyUsedError(_CodedError, code=ErrorCode.SESSION_ALREADY_USED): ...


class SessionNotReadyError(_CodedError, code=ErrorCode.SESSION_NOT_READY): ...


class InvalidCodeError(_CodedError, code=ErrorCode.INVALID_CODE): ...


class UnsupportedGrantTypeError(_CodedError, code=ErrorCode.UNSUPPORTED_GRANT_TYPE): ...


class UnsupportedVersionError(_CodedError, code=ErrorCode.UNSUPPORTED_VERSION):
    """The peer speaks an ATH MAJOR version we do not (§2); also raised by discovery."""


class IdentityFetchFailedError(_CodedError, code=ErrorCode.IDENTITY_FETCH_FAILED): ...


class RateLimitedError(_CodedError, code=ErrorCode.RATE_LIMITED): ...


class ServiceUnavailableError(_CodedError, code=ErrorCode.SERVICE_UNAVAILABLE): ...


class RouteNotMappedError(_CodedError, code=ErrorCode.ROUTE_NOT_MAPPED):
    """Gateway: no scope rule of the provider covers this method and path."""


class UpstreamUnavailableError(_CodedError, code=ErrorCode.UPSTREAM_UNAVAILABLE):
    """Gateway: the provider's API could not be reached."""


class ReauthorizationRequiredError(_CodedError, code=ErrorCode.REAUTHORIZATION_REQUIRED):
    """Gateway: the user's grant at the provider is gone; run a new authorization."""


class LoginRequiredError(_CodedError, code=ErrorCode.LOGIN_REQUIRED): ...


class InvalidTargetError(_CodedError, code=ErrorCode.INVALID_TARGET):
    """RFC 8707 ``resource`` names nothing this service protects (or another provider's)."""


# -- the discovery registry -----------------------------------------------------------------


class UrlNotAllowedError(_CodedError, code=ErrorCode.URL_NOT_ALLOWED): ...


class DiscoveryDocumentInvalidError(_CodedError, code=ErrorCode.DISCOVERY_DOCUMENT_INVALID): ...


class OwnershipNotProvenError(_CodedError, code=ErrorCode.OWNERSHIP_NOT_PROVEN): ...


class AdminUnauthorizedError(_CodedError, code=ErrorCode.ADMIN_UNAUTHORIZED): ...


class OperatorOnlyError(_CodedError, code=ErrorCode.OPERATOR_ONLY): ...


# -- the 9-step handshake (docs/handshake.md) -----------------------------------------------


class InvalidSignatureError(_CodedError, code=ErrorCode.INVALID_SIGNATURE): ...


class HandshakeStaleError(_CodedError, code=ErrorCode.HANDSHAKE_STALE): ...


class NonceReplayedError(_CodedError, code=ErrorCode.NONCE_REPLAYED): ...


class HandshakeNotFoundError(_CodedError, code=ErrorCode.HANDSHAKE_NOT_FOUND): ...


class HandshakeOutOfOrderError(_CodedError, code=ErrorCode.HANDSHAKE_OUT_OF_ORDER): ...


class HandshakeExpiredError(_CodedError, code=ErrorCode.HANDSHAKE_EXPIRED): ...


class CredentialInvalidError(_CodedError, code=ErrorCode.CREDENTIAL_INVALID): ...


class CredentialExpiredError(_CodedError, code=ErrorCode.CREDENTIAL_EXPIRED): ...


class CredentialAgentMismatchError(_CodedError, code=ErrorCode.CREDENTIAL_AGENT_MISMATCH): ...


class CredentialScopeExceededError(_CodedError, code=ErrorCode.CREDENTIAL_SCOPE_EXCEEDED): ...


class ConfirmationTimeoutError(_CodedError, code=ErrorCode.CONFIRMATION_TIMEOUT): ...


class IpNotAllowedError(_CodedError, code=ErrorCode.IP_NOT_ALLOWED): ...


class OutsideAccessTimeError(_CodedError, code=ErrorCode.OUTSIDE_ACCESS_TIME): ...


class EncryptionErrorError(_CodedError, code=ErrorCode.ENCRYPTION_ERROR): ...


class MessageReplayedError(_CodedError, code=ErrorCode.MESSAGE_REPLAYED): ...


class SessionKeyExpiredError(_CodedError, code=ErrorCode.SESSION_KEY_EXPIRED): ...


# -- client-side only -----------------------------------------------------------------------


class ProtocolViolation(_CodedError, code=INVALID_RESPONSE):
    """The service answered something ATH does not allow (bad JSON, missing fields, ...)."""


class ServiceUnreachableError(ServiceUnavailableError):
    """The request never got an answer (connection refused, DNS, timeout, TLS)."""


def _declare_the_rest() -> None:
    """Give every code of the table that has no declaration above its class all the same."""
    for code in ErrorCode:
        if code.value not in ERROR_CLASSES:
            name = class_name(code)
            globals()[name] = type(name, (_CodedError,), {"__module__": __name__}, code=code)


_declare_the_rest()

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
