"""Versions (§2), the error table (§9) and wire-message validation (§2–§8)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from athkit.protocol.errors import ERROR_STATUS, ATHError, ErrorCode, error_status
from athkit.protocol.messages import (
    AgentIdentityDocument,
    AuthorizeRequest,
    RegisterRequest,
    RegisterResponse,
    ServiceDiscoveryDocument,
    TokenRequest,
    TokenResponse,
)
from athkit.protocol.version import ATHVersion, check_compatible, parse_version

# -- versions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.1", ATHVersion(0, 1, False)),
        ("0.1-draft", ATHVersion(0, 1, True)),
        ("1.0", ATHVersion(1, 0, False)),
        ("2.15", ATHVersion(2, 15, False)),
        (" 0.1 ", ATHVersion(0, 1, False)),
    ],
)
def test_parse_version_accepts_major_minor_and_draft(text: str, expected: ATHVersion) -> None:
    assert parse_version(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "1",
        "v0.1",
        "01.1",
        "0.01",
        "0.1-beta",
        "0.1-DRAFT",
        "0.1.0",
        "",
        "0.",
        ".1",
        "0.1-draft-draft",
        "0.1\u0660",  # ARABIC-INDIC DIGIT ZERO: \d alone would read this as 0.10
        "0.1\n0.2",
        "-1.0",
    ],
)
def test_parse_version_rejects_malformed(text: str) -> None:
    with pytest.raises(ATHError) as err:
        parse_version(text)
    assert err.value.code == ErrorCode.UNSUPPORTED_VERSION
    assert err.value.status == 400


def test_parse_version_rejects_non_string() -> None:
    with pytest.raises(ATHError):
        parse_version(1.0)  # type: ignore[arg-type]


def test_version_str_round_trips() -> None:
    for text in ("0.1", "0.1-draft", "3.7"):
        assert str(parse_version(text)) == text


def test_check_compatible_accepts_same_major_and_draft() -> None:
    assert check_compatible("0.1") == ATHVersion(0, 1)
    assert check_compatible("0.1-draft") == ATHVersion(0, 1, True)
    assert check_compatible("0.9") == ATHVersion(0, 9)


def test_check_compatible_major_mismatch_names_both_versions() -> None:
    with pytest.raises(ATHError) as err:
        check_compatible("1.0")
    e = err.value
    assert e.code == ErrorCode.UNSUPPORTED_VERSION
    assert "1.0" in e.message and "0.1" in e.message
    assert e.details == {"peer_version": "1.0", "supported_version": "0.1"}


def test_check_compatible_against_other_supported_version() -> None:
    assert check_compatible("1.3-draft", ours="1.0") == ATHVersion(1, 3, True)
    with pytest.raises(ATHError):
        check_compatible("0.1", ours="1.0")


# -- errors (§9) --------------------------------------------------------------------------------

SPEC_STATUS = {
    "INVALID_ATTESTATION": 401,
    "TOKEN_INVALID": 401,
    "TOKEN_EXPIRED": 401,
    "TOKEN_REVOKED": 401,
    "AGENT_NOT_REGISTERED": 403,
    "AGENT_UNAPPROVED": 403,
    "PROVIDER_NOT_APPROVED": 403,
    "SCOPE_NOT_APPROVED": 403,
    "AGENT_IDENTITY_MISMATCH": 403,
    "PROVIDER_MISMATCH": 403,
    "USER_DENIED": 403,
    "SESSION_NOT_FOUND": 400,
    "SESSION_EXPIRED": 400,
    "STATE_MISMATCH": 400,
    "OAUTH_ERROR": 502,
    "INTERNAL_ERROR": 500,
}


def test_every_error_code_has_a_status() -> None:
    assert set(ERROR_STATUS) == set(ErrorCode)
    for code, status in ERROR_STATUS.items():
        assert 400 <= status <= 599, code


@pytest.mark.parametrize(("code", "status"), sorted(SPEC_STATUS.items()))
def test_spec_statuses_exactly(code: str, status: int) -> None:
    assert ERROR_STATUS[ErrorCode(code)] == status
    assert error_status(code) == status
    assert ATHError(code, "x").status == status


def test_spec_codes_are_all_present() -> None:
    assert set(SPEC_STATUS) <= {c.value for c in ErrorCode}


def test_named_extra_codes() -> None:
    # §9: wrong client_secret is 401 with its own code, duplicate registration 409,
    # redirect mismatch 400.
    assert error_status(ErrorCode.INVALID_CLIENT) == 401
    assert error_status(ErrorCode.AGENT_ALREADY_REGISTERED) == 409
    assert error_status(ErrorCode.REDIRECT_URI_MISMATCH) == 400


def test_unknown_code_maps_to_400() -> None:
    assert error_status("SOMETHING_NEW") == 400
    err = ATHError("SOMETHING_NEW", "odd")
    assert err.status == 400 and err.code_str == "SOMETHING_NEW"


def test_error_to_dict_shape() -> None:
    e = ATHError(ErrorCode.SCOPE_NOT_APPROVED, "no", {"scopes": ["orders:write"]})
    assert e.to_dict() == {
        "code": "SCOPE_NOT_APPROVED",
        "message": "no",
        "details": {"scopes": ["orders:write"]},
    }
    assert e.status == 403
    assert str(e) == "no"
    plain = ATHError(ErrorCode.INTERNAL_ERROR, "Internal error")
    assert plain.to_dict() == {"code": "INTERNAL_ERROR", "message": "Internal error"}
    assert plain.status == 500


def test_explicit_status_overrides_table() -> None:
    assert ATHError(ErrorCode.INVALID_REQUEST, "x", status=418).status == 418


# -- messages ---------------------------------------------------------------------------------


def _register_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "agent_id": "https://agent.example/.well-known/agent.json",
        "agent_attestation": "a.b.c",
        "developer": {"name": "Dev", "id": "dev-1"},
        "requested_providers": [{"provider_id": "shop", "scopes": ["products:read"]}],
    }
    body.update(over)
    return body


def test_messages_ignore_unknown_fields() -> None:
    req = RegisterRequest.model_validate(
        _register_body(future_field={"x": 1}, developer={"name": "D", "id": "d", "extra": 1})
    )
    assert not hasattr(req, "future_field")
    assert req.model_dump(exclude_none=True).keys() == {
        "agent_id",
        "agent_attestation",
        "developer",
        "requested_providers",
    }
    doc = ServiceDiscoveryDocument.model_validate(
        {
            "ath_version": "0.1",
            "app_id": "a",
            "name": "n",
            "api_base": "https://s/api",
            "auth": {"authorization_endpoint": "u", "token_endpoint": "t", "new": True},
            "brand_new": [1, 2],
        }
    )
    assert doc.auth.agent_attestation_required is True


@pytest.mark.parametrize(
    "missing",
    ["agent_id", "agent_attestation", "developer", "requested_providers"],
)
def test_register_request_requires_fields(missing: str) -> None:
    body = _register_body()
    del body[missing]
    with pytest.raises(ValidationError) as err:
        RegisterRequest.model_validate(body)
    assert err.value.errors()[0]["loc"] == (missing,)


def test_register_request_bounds() -> None:
    with pytest.raises(ValidationError):
        RegisterRequest.model_validate(_register_body(requested_providers=[]))
    many = [{"provider_id": f"p{i}", "scopes": ["a"]} for i in range(33)]
    with pytest.raises(ValidationError):
        RegisterRequest.model_validate(_register_body(requested_providers=many))
    with pytest.raises(ValidationError):
        RegisterRequest.model_validate(_register_body(agent_id="https://x/" + "a" * 2048))
    with pytest.raises(ValidationError):
        RegisterRequest.model_validate(_register_body(agent_attestation="x" * 8193))
    with pytest.raises(ValidationError):
        RegisterRequest.model_validate(_register_body(purpose="p" * 1025))
    with pytest.raises(ValidationError):
        RegisterRequest.model_validate(
            _register_body(requested_providers=[{"provider_id": "p", "scopes": ["s"] * 65}])
        )
    with pytest.raises(ValidationError):
        RegisterRequest.model_validate(_register_body(developer={"name": "", "id": "d"}))
    ok = RegisterRequest.model_validate(_register_body(purpose="p" * 1024))
    assert ok.purpose is not None and len(ok.purpose) == 1024


def _authorize_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_id": "c",
        "agent_attestation": "a.b.c",
        "provider_id": "shop",
        "scopes": ["products:read"],
        "state": "s" * 43,
    }
    body.update(over)
    return body


def test_authorize_request_bounds() -> None:
    assert AuthorizeRequest.model_validate(_authorize_body()).user_redirect_uri is None
    for bad in (
        {"scopes": []},
        {"scopes": ["x" * 129]},
        {"scopes": [""]},
        {"scopes": ["a"] * 65},
        {"state": ""},
        {"state": "s" * 513},
        {"client_id": ""},
    ):
        with pytest.raises(ValidationError):
            AuthorizeRequest.model_validate(_authorize_body(**bad))


def test_token_request_requires_every_field() -> None:
    full = {
        "grant_type": "authorization_code",
        "client_id": "c",
        "client_secret": "s",
        "agent_attestation": "a.b.c",
        "code": "placeholder",
        "ath_session_id": "sess",
    }
    TokenRequest.model_validate(full)
    for key in full:
        body = {k: v for k, v in full.items() if k != key}
        with pytest.raises(ValidationError):
            TokenRequest.model_validate(body)


def test_register_response_requires_approval_expires_and_known_status() -> None:
    body = {
        "client_id": "c",
        "client_secret": "s",
        "agent_status": "approved",
        "approved_providers": [],
        "approval_expires": "2030-01-01T00:00:00Z",
    }
    assert RegisterResponse.model_validate(body).agent_status.value == "approved"
    with pytest.raises(ValidationError):
        RegisterResponse.model_validate({k: v for k, v in body.items() if k != "approval_expires"})
    with pytest.raises(ValidationError):
        RegisterResponse.model_validate({**body, "agent_status": "suspended"})


def test_token_response_token_type_is_bearer() -> None:
    body = {
        "access_token": "t",
        "expires_in": 3600,
        "provider_id": "p",
        "agent_id": "a",
        "scope_intersection": {
            "agent_approved": ["a"],
            "user_consented": ["a"],
            "effective": ["a"],
        },
    }
    assert TokenResponse.model_validate(body).token_type == "Bearer"
    with pytest.raises(ValidationError):
        TokenResponse.model_validate({**body, "token_type": "MAC"})


def test_identity_document_accepts_jwk_or_pem_and_requires_key() -> None:
    base = {
        "agent_id": "https://a/.well-known/agent.json",
        "name": "n",
        "developer": {"name": "d", "id": "i"},
    }
    assert (
        AgentIdentityDocument.model_validate({**base, "public_key": {"kty": "EC"}}).ath_version
        == "0.1"
    )
    assert isinstance(
        AgentIdentityDocument.model_validate({**base, "public_key": "-----BEGIN"}).public_key, str
    )
    with pytest.raises(ValidationError):
        AgentIdentityDocument.model_validate(base)
