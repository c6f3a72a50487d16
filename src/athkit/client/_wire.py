"""The wire of the agent client: ATH paths, the request and response a flow exchanges, and
the helpers that read a response or a redirect (no I/O, no state).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote_plus, urlsplit

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from athkit.client.errors import (
    ProtocolViolation,
    error_from_response,
)
from athkit.protocol.messages import (
    ManualServiceConfig,
)

DEFAULT_TIMEOUT = 10.0

SERVICE_DISCOVERY_PATH = "/.well-known/ath-app.json"
GATEWAY_DISCOVERY_PATH = "/.well-known/ath.json"
REGISTER_PATH = "/ath/agents/register"
AGENT_STATUS_PATH = "/ath/agents/{client_id}"
AUTHORIZE_PATH = "/ath/authorize"
TOKEN_PATH = "/ath/token"  # noqa: S105 - a URL path, not a secret
REVOKE_PATH = "/ath/revoke"
PROXY_PATH = "/ath/proxy/{provider_id}/{path}"

#: ``code`` sent when the service's own ``/ath/callback`` finished the flow (§6).
PLACEHOLDER_CODE = "ath_callback"

_M = TypeVar("_M", bound=BaseModel)
_T = TypeVar("_T")


@dataclass(frozen=True)
class PreparedRequest:
    """An HTTP request to send, as plain data."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    params: Mapping[str, str] | None = None


@dataclass(frozen=True)
class RawResponse:
    """An HTTP response received, as plain data."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class AuthorizationRequestResult:
    """What ``authorize`` returns: send the user to ``authorization_url`` (§5)."""

    authorization_url: str
    ath_session_id: str
    state: str


@dataclass(frozen=True)
class RedirectParams:
    """Query parameters of the redirect to the agent's ``user_redirect_uri`` (§5)."""

    code: str | None
    state: str | None
    error: str | None
    error_description: str | None


#: A flow: yields requests, is sent responses, returns the typed result.
Flow = Generator[PreparedRequest, RawResponse, _T]


def basic_authorization(client_id: str, client_secret: str) -> str:
    """``Authorization: Basic`` value, each part form-urlencoded first (RFC 6749 §2.3.1)."""
    raw = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def parse_redirect(url: str) -> RedirectParams:
    """Extract ``code``, ``state`` and ``error`` from a ``user_redirect_uri`` redirect (§5)."""
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)

    def one(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    return RedirectParams(one("code"), one("state"), one("error"), one("error_description"))


def manual_base_url(config: ManualServiceConfig) -> str:
    """The ATH base URL of a manually configured service (§2 manual mode).

    The manual document names no base URL, so it is derived from ``oauth.token_url`` by
    removing its trailing ``/ath/token`` path; any other token URL is refused.
    """
    token_url = config.oauth.token_url.rstrip("/")
    if not token_url.endswith(TOKEN_PATH):
        raise ValueError(f"manual config token_url must end with {TOKEN_PATH!r}: {token_url!r}")
    return token_url[: -len(TOKEN_PATH)]


def load_manual_config(config: Mapping[str, Any] | str | Path) -> ManualServiceConfig:
    """Read a §2 manual config from a mapping or a JSON file path."""
    data: Any = config
    if isinstance(config, (str, Path)):
        data = json.loads(Path(config).read_text(encoding="utf-8"))
    return ManualServiceConfig.model_validate(data)


def json_body(response: RawResponse) -> Any:
    try:
        return json.loads(response.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolViolation(
            "response body is not JSON", {"http_status": response.status}, status=response.status
        ) from exc


def expect_status(response: RawResponse, ok: Iterable[int]) -> None:
    """Raise the typed ATH error unless the status is one of ``ok`` (§9)."""
    if response.status not in tuple(ok):
        raise error_from_response(response.status, response.body)


def validated(model: type[_M], data: Any, status: int) -> _M:
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        problems = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()[:5]
        ]
        raise ProtocolViolation(
            f"invalid {model.__name__} from service", {"errors": problems}, status=status
        ) from exc


def parse_model(response: RawResponse, model: type[_M], ok: Iterable[int] = (200,)) -> _M:
    expect_status(response, ok)
    return validated(model, json_body(response), response.status)


ACCEPT_JSON: Mapping[str, str] = {"Accept": "application/json"}


def join_url(base: str, path: str) -> str:
    if urlsplit(path).scheme in ("http", "https") or path.startswith("//"):
        raise ValueError(f"path must be relative to the service, got {path!r}")
    return base.rstrip("/") + "/" + path.lstrip("/")
