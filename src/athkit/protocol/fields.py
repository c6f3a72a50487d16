"""The field types every ATH message is built from: bounded strings without control characters,
JSON objects whose strings are clean too, and bounded integers.

A NUL byte or another C0 control character has no place in an identifier, a URL, a JWT or a
scope, and PostgreSQL cannot even store a NUL in a text column: such input is refused here,
once, at validation (422 ``VALIDATION_ERROR``), before it reaches any store. Free text
(``purpose``, descriptions) may carry tab and line breaks but no other control character.
:func:`has_control` is the same rule for the web layer's path, query and form guard.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints

#: C0 controls and DEL: never valid in a protocol token (identifier, URL, JWT, scope, state).
NO_CONTROL_PATTERN = r"^[^\x00-\x1F\x7F]*$"
#: Free text may hold tab, LF and CR, but no other control character.
TEXT_PATTERN = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F]*$"

_CONTROL = re.compile(r"[\x00-\x1F\x7F]")

#: The largest integer any query parameter or message field accepts: JSON's safe integer
#: (RFC 7493 §2.2), which fits a signed 64-bit column on every database.
INT_LIMIT = 2**53 - 1


def has_control(value: str) -> bool:
    """True when ``value`` holds a C0 control character or DEL."""
    return _CONTROL.search(value) is not None


def token(max_length: int, min_length: int = 1) -> StringConstraints:
    """Constraints of a bounded protocol string with no control character:
    ``Annotated[str, token(64)]``."""
    return StringConstraints(
        min_length=min_length, max_length=max_length, pattern=NO_CONTROL_PATTERN
    )


def text(max_length: int, min_length: int = 0) -> StringConstraints:
    """Constraints of bounded free text (tab and line breaks allowed, no other control)."""
    return StringConstraints(min_length=min_length, max_length=max_length, pattern=TEXT_PATTERN)


#: An integer that fits every database column and every limit we have; narrow it further
#: with ``Annotated[BoundedInt, Query(ge=0, le=500)]`` (pydantic merges the bounds).
BoundedInt = Annotated[int, Field(ge=-INT_LIMIT, le=INT_LIMIT)]


def _clean_tree(value: Any, depth: int = 0) -> Any:
    if depth > 32:
        raise ValueError("nested too deeply")
    if isinstance(value, str):
        if has_control(value):
            raise ValueError("must not contain control characters")
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _clean_tree(k, depth + 1)
            _clean_tree(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _clean_tree(v, depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT_LIMIT:
        raise ValueError("integer out of range")
    return value


#: A JSON object (a JWK, a credential, a context) whose keys and strings have no control
#: characters and whose integers are within ``INT_LIMIT``, at any depth.
JsonObject = Annotated[dict[str, Any], AfterValidator(_clean_tree)]

#: Common sizes.
ShortStr = Annotated[str, token(512)]
UrlStr = Annotated[str, token(2048)]
JwtStr = Annotated[str, token(8192)]
ScopeStr = Annotated[str, token(128)]
