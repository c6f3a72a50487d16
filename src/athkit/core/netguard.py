"""SSRF guard for URLs the server fetches on an agent's word (PROTOCOL.md §3, athkit additions).

The rules live in :mod:`athkit.netguard` (shared with the agent client's discovery); this module
turns their refusals into ``ATHError(code)`` for the service.
"""

from __future__ import annotations

from athkit import netguard
from athkit.protocol.errors import ATHError, ErrorCode

__all__ = ["check_url"]


def check_url(url: str, *, dev_mode: bool, code: ErrorCode = ErrorCode.INVALID_ATTESTATION) -> None:
    """Raise ``ATHError(code)`` unless ``url`` may be fetched (see :mod:`athkit.netguard`)."""
    try:
        netguard.check_url(url, dev_mode=dev_mode)
    except netguard.UnsafeURLError as exc:
        raise ATHError(code, exc.message, exc.details) from exc
