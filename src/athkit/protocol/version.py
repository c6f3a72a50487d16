"""ATH version strings: ``MAJOR.MINOR`` with an optional ``-draft`` suffix (PROTOCOL.md §2)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from athkit.protocol.errors import ATHError, ErrorCode

_VERSION = re.compile(r"(0|[1-9]\d{0,3})\.(0|[1-9]\d{0,3})(-draft)?", re.ASCII)

#: The protocol version athkit speaks.
SUPPORTED_MAJOR = 0
SUPPORTED = "0.1"


@dataclass(frozen=True, order=True)
class ATHVersion:
    major: int
    minor: int
    draft: bool = False

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}{'-draft' if self.draft else ''}"


def parse_version(text: str) -> ATHVersion:
    """Parse ``MAJOR.MINOR[-draft]``; anything else is an ``UNSUPPORTED_VERSION`` error."""
    m = _VERSION.fullmatch(text.strip()) if isinstance(text, str) else None
    if not m:
        raise ATHError(ErrorCode.UNSUPPORTED_VERSION, f"Malformed ATH version {text!r}")
    return ATHVersion(int(m.group(1)), int(m.group(2)), m.group(3) is not None)


def check_compatible(text: str, ours: str = SUPPORTED) -> ATHVersion:
    """Refuse a document whose MAJOR differs from ours, naming both versions."""
    theirs = parse_version(text)
    mine = parse_version(ours)
    if theirs.major != mine.major:
        raise ATHError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"Incompatible ATH version: peer speaks {theirs}, athkit supports {mine}",
            {"peer_version": str(theirs), "supported_version": str(mine)},
        )
    return theirs
