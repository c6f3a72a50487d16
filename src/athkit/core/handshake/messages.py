"""The request bodies of the steps (field names exactly as in §10) and a step's answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from athkit.core.handshake.base import _epoch
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.protocol.fields import BoundedInt, JsonObject, token
from athkit.store.models import ConfirmationRow


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class HandshakeRequestBody(_Body):
    client_did: Annotated[str, token(2048, 8)]
    client_pubkey: JsonObject
    versions: list[Annotated[str, token(32)]] = Field(min_length=1, max_length=16)
    capabilities: list[Annotated[str, token(64)]] = Field(min_length=1, max_length=16)
    nonce: Annotated[str, token(128, 22)]
    timestamp: BoundedInt


class IdentityProofBody(_Body):
    signature: Annotated[str, token(512)]
    credentials: list[JsonObject] | None = Field(None, max_length=8)
    timestamp: BoundedInt


class ScopeRequestBody(_Body):
    scopes: list[Annotated[str, token(128)]] = Field(min_length=1, max_length=64)
    ttl: BoundedInt
    user_authorization: JsonObject | None = None
    context: JsonObject | None = None


class ConfirmationResponseBody(_Body):
    request_id: Annotated[str, token(64)]
    approved: bool
    approved_scopes: list[Annotated[str, token(128)]] = Field(default_factory=list, max_length=64)
    expires_at: BoundedInt
    signature: Annotated[str, token(512)]
    handshake_id: Annotated[str, token(128)] | None = None
    user_did: Annotated[str, token(2048)] | None = None
    client_did: Annotated[str, token(2048)] | None = None


class CompleteBody(_Body):
    key_exchange_alg: Annotated[str, token(64)]
    key_exchange_params: JsonObject
    cipher_suite: Annotated[str, token(64)]


class KeyLinkBody(_Body):
    user_did: Annotated[str, token(2048, 8)]
    public_jwk: JsonObject
    signature: Annotated[str, token(512)]
    nonce: Annotated[str, token(128, 22)]
    timestamp: BoundedInt


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
