"""Error codes the registry adds to §9; they live in the one table of ``protocol/errors.py``."""

from __future__ import annotations

from typing import Any

from athkit.protocol.errors import ATHError, ErrorCode

#: The submitted URL may not be fetched (not http(s), https required, non-public address, ...).
URL_NOT_ALLOWED = ErrorCode.URL_NOT_ALLOWED
#: No valid ATH / Agent Auth discovery document was found at the origin.
DISCOVERY_DOCUMENT_INVALID = ErrorCode.DISCOVERY_DOCUMENT_INVALID
#: The origin did not publish the registry's challenge token.
OWNERSHIP_NOT_PROVEN = ErrorCode.OWNERSHIP_NOT_PROVEN
#: The admin endpoints need ``Authorization: Bearer <admin token>``.
ADMIN_UNAUTHORIZED = ErrorCode.ADMIN_UNAUTHORIZED


def registry_error(
    code: ErrorCode, message: str, details: dict[str, Any] | None = None
) -> ATHError:
    return ATHError(code, message, details)
