"""Pure ATH data and rules: messages, error codes, scopes, versions (PROTOCOL.md §2–§9).

Nothing here performs I/O or imports other athkit packages.
"""

from athkit.protocol.errors import ATHError, ErrorCode, error_status
from athkit.protocol.scopes import ScopeIntersection, intersect_scopes
from athkit.protocol.version import ATHVersion, parse_version

__all__ = [
    "ATHError",
    "ATHVersion",
    "ErrorCode",
    "ScopeIntersection",
    "error_status",
    "intersect_scopes",
    "parse_version",
]
