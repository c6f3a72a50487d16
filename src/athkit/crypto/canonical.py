"""Canonical JSON signing input and base64url helpers (docs/handshake.md).

``canonical_json`` is RFC 8785 (JCS) restricted to the value types the handshake uses: objects
with string keys, arrays, strings, integers, booleans and null. Floats are refused so that the
serialisation is unambiguous across languages.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


def b64url_encode(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raises ``ValueError`` on bad input."""
    if not isinstance(text, str):
        raise ValueError("base64url value must be a string")
    if any(c in text for c in "+/= \n\r\t"):
        stripped = text.rstrip("=")
        if any(c in stripped for c in "+/= \n\r\t"):
            raise ValueError("not base64url")
        text = stripped
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


def _check(value: Any, depth: int = 0) -> None:
    if depth > 32:
        raise ValueError("object nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        return
    if isinstance(value, float):
        raise ValueError("floats are not allowed in canonical JSON")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError("object keys must be strings")
            _check(v, depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for v in value:
            _check(v, depth + 1)
        return
    raise ValueError(f"type {type(value).__name__} is not allowed in canonical JSON")


def canonical_json(obj: Any) -> bytes:
    """Serialise ``obj`` canonically: sorted keys, no whitespace, UTF-8, no floats."""
    _check(obj)
    text = json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise ValueError("string is not valid Unicode") from exc
