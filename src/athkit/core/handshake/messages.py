"""The request bodies of the steps (field names exactly as in §10) and a step's answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from athkit.core.handshake.base import _epoch
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.models import ConfirmationRow


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class HandshakeRequestBody(_Body):
    client_did: str = Field(min_length=8, max_length=2048)
    client_pubkey: dict[str, Any]
    versions: list[str] = Field(min_length=1, max_length=16)
    capabilities: list[str] = Field(min_length=1, max_length=16)
    nonce: str = Field(min_length=22, max_length=128)
    timestamp: int


class IdentityProofBody(_Body):
    signature: str = Field(min_length=1, max_length=512)
    credentials: list[dict[str, Any]] | None = Field(None, max_length=8)
    timestamp: int


class ScopeRequestBody(_Body):
    scopes: list[str] = Field(min_length=1, max_length=64)
    ttl: int
    user_authorization: dict[str, Any] | None = None
    context: dict[str, Any] | None = None


class ConfirmationResponseBody(_Body):
    request_id: str = Field(min_length=1, max_length=64)
    approved: bool
    approved_scopes: list[str] = Field(default_factory=list, max_length=64)
    expires_at: int
    signature: str = Field(min_length=1, max_length=512)
    handshake_id: str | None = None
    user_did: str | None = None
    client_did: str | None = None


class CompleteBody(_Body):
    key_exchange_alg: str
    key_exchange_params: dict[str, Any]
    cipher_suite: str


class KeyLinkBody(_Body):
    user_did: str = Field(min_length=8, max_length=2048)
    public_jwk: dict[str, Any]
    signature: str = Field(min_length=1, max_length=512)
    nonce: str = Field(min_length=22, max_length=128)
    timestamp: int


def parse_body(model: type[_Body], data: Any) -> Any:
    if not isinstance(data, dict):
        raise ATHError(ErrorCode.INVALID_REQUEST, "request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ][:20]
        raise ATHError(
            ErrorCode.VALIDATION_ERROR, "request body is not valid", {"errors": errors}
        ) from exc


@dataclass(frozen=True)
class StepResult:
    """An HTTP answer of a step: status and JSON body."""

    status: int
    body: dict[str, Any]


def confirmation_request(conf: ConfirmationRow) -> dict[str, Any]:
    """``authorization_confirmation_request`` (+ *athkit*: handshake_id, user_did)."""
    info = dict(conf.client_info or {})
    return {
        "request_id": conf.request_id,
        "client_did": conf.client_did,
        "client_info": {"name": info.get("name", ""), "developer": info.get("developer", "")},
        "requested_scopes": list(conf.requested_scopes),
        "expires_at": _epoch(conf.expires_at),
        "handshake_id": conf.handshake_id,
        "user_did": conf.user_did,
        "client_info_verified": bool(info.get("verified")),
    }
