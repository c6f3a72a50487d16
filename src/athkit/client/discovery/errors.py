"""The refusals discovery raises on the client (never decoded from the wire)."""

from __future__ import annotations

from athkit import netguard
from athkit.client.errors import ServiceUnreachableError, _CodedError


class DiscoveryError(_CodedError):
    """Base of the discovery refusals raised on the client (never decoded from the wire)."""

    code = "DISCOVERY_FAILED"


class NeedsConfirmationError(DiscoveryError):
    """A direct URL whose origin is not allowlisted, and no confirmation callback was given."""

    code = "DISCOVERY_NEEDS_CONFIRMATION"

    def __init__(self, url: str, origin: str) -> None:
        super().__init__(
            f"fetching {origin} needs confirmation: it is not in the allowlist",
            {"url": url, "origin": origin},
            status=403,
        )
        self.url, self.origin = url, origin


class ConfirmationDeniedError(DiscoveryError):
    """The application's confirmation callback said no."""

    code = "DISCOVERY_NOT_CONFIRMED"

    def __init__(self, url: str, origin: str) -> None:
        super().__init__(
            f"fetching {origin} was not confirmed", {"url": url, "origin": origin}, status=403
        )
        self.url, self.origin = url, origin


class BlockedURLError(DiscoveryError):
    """The SSRF guard refused a URL (``reason``: see :data:`athkit.netguard.Reason`)."""

    code = "DISCOVERY_URL_BLOCKED"

    def __init__(self, error: netguard.UnsafeURLError) -> None:
        super().__init__(
            f"{error.message}: {error.url}", {**error.details, "reason": error.reason}, status=403
        )
        self.reason = error.reason
        self.url = error.url
        self.address = error.address


class TooManyRedirectsError(DiscoveryError):
    code = "DISCOVERY_TOO_MANY_REDIRECTS"


class DocumentTooLargeError(DiscoveryError):
    code = "DISCOVERY_DOCUMENT_TOO_LARGE"


class DocumentNotFoundError(DiscoveryError):
    """No discovery document where one was looked for (404/410, or neither direct path)."""

    code = "DISCOVERY_NOT_FOUND"


class DiscoveryTimeoutError(DiscoveryError, ServiceUnreachableError):
    """A fetch took longer than :attr:`FetchLimits.timeout`."""

    code = "DISCOVERY_TIMEOUT"
