"""The client's exception classes follow the protocol's one error table (PROTOCOL.md §9)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from athkit.client import errors
from athkit.client.errors import ERROR_CLASSES, class_name
from athkit.protocol.errors import ErrorCode


def _declared_codes() -> dict[str, str]:
    """``ErrorCode`` member name -> class name, as written in ``client/errors.py``."""
    tree = ast.parse(Path(errors.__file__).read_text(encoding="utf-8"))
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for kw in node.keywords:
                if kw.arg == "code" and isinstance(kw.value, ast.Attribute):
                    out[kw.value.attr] = node.name
    return out


def test_every_code_of_the_table_is_declared_by_name() -> None:
    """Type checkers see only declared names: each code of the table needs its one line."""
    declared = _declared_codes()
    missing = [
        f"class {class_name(c)}(_CodedError, code=ErrorCode.{c.name}): ..."
        for c in ErrorCode
        if c.name not in declared
    ]
    assert not missing, "add to athkit/client/errors.py:\n" + "\n".join(missing)
    assert all(declared[c.name] == class_name(c) for c in ErrorCode)


def test_class_names_come_from_the_codes() -> None:
    assert class_name(ErrorCode.TOKEN_REVOKED) == "TokenRevokedError"
    assert class_name(ErrorCode.IP_NOT_ALLOWED) == "IpNotAllowedError"
    assert class_name(ErrorCode.OAUTH_ERROR) == "OAuthError"
    assert class_name(ErrorCode.VALIDATION_ERROR) == "RequestValidationError"
    for code in ErrorCode:
        assert ERROR_CLASSES[code.value].__name__ == class_name(code)


def test_a_misnamed_or_second_class_for_a_code_is_refused() -> None:
    with pytest.raises(TypeError, match="TokenRevokedError"):

        class Revoked(errors._CodedError, code=ErrorCode.TOKEN_REVOKED): ...

    with pytest.raises(TypeError, match="duplicate"):

        class TokenRevokedError(errors._CodedError, code=ErrorCode.TOKEN_REVOKED): ...

    assert ERROR_CLASSES["TOKEN_REVOKED"] is errors.TokenRevokedError


def test_refinements_without_a_code_are_not_registered() -> None:
    assert errors.ServiceUnreachableError not in ERROR_CLASSES.values()
    assert ERROR_CLASSES["SERVICE_UNAVAILABLE"] is errors.ServiceUnavailableError
    assert ERROR_CLASSES["INVALID_RESPONSE"] is errors.ProtocolViolation
