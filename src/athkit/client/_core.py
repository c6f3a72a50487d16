"""The sans-I/O heart of the agent client: build ATH requests, parse ATH responses.

Nothing here touches the network. Each operation is a *flow*: a generator that yields a
:class:`PreparedRequest`, receives a :class:`RawResponse`, and returns a typed result (the
shape of ``httpx/_auth.py``). :mod:`athkit.client.sync` and :mod:`athkit.client.aio` only drive
flows; tests drive them with canned responses.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import warnings
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from athkit.client.errors import (
    ClientStateError,
    DraftVersionWarning,
    ProtocolViolation,
    StateMismatchError,
    error_from_response,
    parse_error_body,
    typed_error,
)
from athkit.crypto import AgentKey, sign_attestation
from athkit.protocol.errors import ATHError
from athkit.protocol.messages import (
    AgentStatusResponse,
    AuthorizeRequest,
    AuthorizeResponse,
    DeveloperInfo,
    GatewayDiscoveryDocument,
    ManualServiceConfig,
    ProviderScopeRequest,
    RegisterRequest,
    RegisterResponse,
    RevokeRequest,
    ServiceDiscoveryDocument,
    TokenRequest,
    TokenResponse,
)
from athkit.protocol.version import check_compatible

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


def _json(response: RawResponse) -> Any:
    try:
        return json.loads(response.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolViolation(
            "response body is not JSON", {"http_status": response.status}, status=response.status
        ) from exc


def _expect(response: RawResponse, ok: Iterable[int]) -> None:
    """Raise the typed ATH error unless the status is one of ``ok`` (§9)."""
    if response.status not in tuple(ok):
        raise error_from_response(response.status, response.body)


def _model(model: type[_M], data: Any, status: int) -> _M:
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        problems = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()[:5]
        ]
        raise ProtocolViolation(
            f"invalid {model.__name__} from service", {"errors": problems}, status=status
        ) from exc


def _parse(response: RawResponse, model: type[_M], ok: Iterable[int] = (200,)) -> _M:
    _expect(response, ok)
    return _model(model, _json(response), response.status)


class ClientCore:
    """Configuration, credentials and every request/response rule of an ATH agent (§2–§8)."""

    def __init__(
        self,
        base_url: str,
        agent_id: str,
        key: AgentKey,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        client_id: str | None = None,
        client_secret: str | None = None,
        api_base: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.agent_id = agent_id
        self.key = key
        self.timeout = timeout
        self.client_id = client_id
        self.client_secret = client_secret
        self.api_base = api_base.rstrip("/") if api_base else None
        self.discovery: ServiceDiscoveryDocument | None = None
        self.manual_config: ManualServiceConfig | None = None
        self._tokens: dict[str | None, str] = {}  # provider_id (None: any) -> token
        self._access_token: str | None = None
        self._pending: dict[str, str] = {}  # ath_session_id -> state sent

    # -- credentials --------------------------------------------------------------------

    @property
    def access_token(self) -> str | None:
        """The most recently obtained (or set) access token."""
        return self._access_token

    def set_credentials(self, client_id: str, client_secret: str) -> None:
        self.client_id, self.client_secret = client_id, client_secret

    def set_token(self, token: str | None, provider_id: str | None = None) -> None:
        """Use ``token`` from now on, for ``provider_id`` if given; ``None`` forgets that token.

        A token set without a provider is used for any provider that has no token of its own.
        """
        if token is None:
            self._forget(self._tokens.get(provider_id) if provider_id else self._access_token)
            return
        self._access_token = token
        self._tokens[provider_id] = token

    def token_for(self, provider_id: str | None = None) -> str:
        """The token for ``provider_id`` (or the current one); raises if none is held."""
        if provider_id is None:
            token = self._access_token
        else:
            token = self._tokens.get(provider_id) or self._tokens.get(None)
        if token is None:
            which = f" for provider {provider_id!r}" if provider_id else ""
            raise ClientStateError(f"no access token{which}: call exchange_token first")
        return token

    def _forget(self, token: str | None) -> None:
        if token is None:
            return
        self._tokens = {p: t for p, t in self._tokens.items() if t != token}
        if self._access_token == token:
            self._access_token = None

    def _secrets(self) -> tuple[str, str]:
        if not self.client_id or not self.client_secret:
            raise ClientStateError("no client credentials: call register or set_credentials")
        return self.client_id, self.client_secret

    # -- attestation (§3) ---------------------------------------------------------------

    @property
    def token_url(self) -> str:
        return self.base_url + TOKEN_PATH

    def attestation(self, audience: str) -> str:
        """A freshly signed attestation (new ``jti``) for ``audience`` (§3 audience rule)."""
        return sign_attestation(self.key, self.agent_id, audience)

    # -- discovery (§2) -----------------------------------------------------------------

    def build_discover(self) -> PreparedRequest:
        return PreparedRequest("GET", self.base_url + SERVICE_DISCOVERY_PATH, _ACCEPT_JSON)

    def parse_discover(self, response: RawResponse) -> ServiceDiscoveryDocument:
        """Check ``ath_version`` before anything else, then validate and cache (§2)."""
        _expect(response, (200,))
        data = _json(response)
        self.check_version(data)
        doc = _model(ServiceDiscoveryDocument, data, response.status)
        self.discovery = doc
        self.api_base = doc.api_base.rstrip("/")
        return doc

    def discover_flow(self) -> Flow[ServiceDiscoveryDocument]:
        return self.parse_discover((yield self.build_discover()))

    def build_discover_gateway(self) -> PreparedRequest:
        return PreparedRequest("GET", self.base_url + GATEWAY_DISCOVERY_PATH, _ACCEPT_JSON)

    def parse_discover_gateway(self, response: RawResponse) -> GatewayDiscoveryDocument:
        _expect(response, (200,))
        data = _json(response)
        self.check_version(data)
        return _model(GatewayDiscoveryDocument, data, response.status)

    def discover_gateway_flow(self) -> Flow[GatewayDiscoveryDocument]:
        return self.parse_discover_gateway((yield self.build_discover_gateway()))

    @staticmethod
    def check_version(data: Any) -> None:
        """Unsupported MAJOR raises; ``-draft`` warns; unknown fields are ignored (§2)."""
        version = data.get("ath_version") if isinstance(data, dict) else None
        if not isinstance(version, str):
            raise ProtocolViolation("discovery document has no ath_version")
        try:
            parsed = check_compatible(version)
        except ATHError as exc:
            raise typed_error(exc) from exc
        if parsed.draft:
            warnings.warn(
                f"service speaks draft ATH version {parsed}; it may change without notice",
                DraftVersionWarning,
                stacklevel=2,
            )

    def apply_manual_config(self, config: ManualServiceConfig) -> None:
        """Adopt a §2 manual config (its ``api_base``); see :func:`manual_base_url`."""
        self.manual_config = config
        self.api_base = config.api_base.rstrip("/")

    # -- registration (§4) --------------------------------------------------------------

    def build_register(
        self,
        developer: DeveloperInfo | Mapping[str, Any],
        providers: Iterable[ProviderScopeRequest | Mapping[str, Any]],
        purpose: str | None = None,
        redirect_uris: Iterable[str] | None = None,
    ) -> PreparedRequest:
        body = RegisterRequest(
            agent_id=self.agent_id,
            agent_attestation=self.attestation(self.base_url),
            developer=DeveloperInfo.model_validate(developer),
            requested_providers=[ProviderScopeRequest.model_validate(p) for p in providers],
            purpose=purpose,
            redirect_uris=list(redirect_uris) if redirect_uris is not None else None,
        )
        return self._post(REGISTER_PATH, body)

    def parse_register(self, response: RawResponse) -> RegisterResponse:
        """Accept 201 (or 200) and keep the issued credentials."""
        result = _parse(response, RegisterResponse, ok=(200, 201))
        self.set_credentials(result.client_id, result.client_secret)
        return result

    def register_flow(
        self,
        developer: DeveloperInfo | Mapping[str, Any],
        providers: Iterable[ProviderScopeRequest | Mapping[str, Any]],
        purpose: str | None = None,
        redirect_uris: Iterable[str] | None = None,
    ) -> Flow[RegisterResponse]:
        request = self.build_register(developer, providers, purpose, redirect_uris)
        return self.parse_register((yield request))

    def build_agent_status(self) -> PreparedRequest:
        """``GET /ath/agents/{client_id}``, authenticated with HTTP Basic (§4)."""
        client_id, client_secret = self._secrets()
        url = self.base_url + AGENT_STATUS_PATH.format(client_id=quote(client_id, safe=""))
        headers = {**_ACCEPT_JSON, "Authorization": basic_authorization(client_id, client_secret)}
        return PreparedRequest("GET", url, headers)

    def parse_agent_status(self, response: RawResponse) -> AgentStatusResponse:
        return _parse(response, AgentStatusResponse)

    def agent_status_flow(self) -> Flow[AgentStatusResponse]:
        return self.parse_agent_status((yield self.build_agent_status()))

    # -- authorization (§5) -------------------------------------------------------------

    def build_authorize(
        self,
        provider_id: str,
        scopes: Iterable[str],
        user_redirect_uri: str | None = None,
        resource: str | None = None,
        *,
        state: str | None = None,
    ) -> tuple[PreparedRequest, str]:
        """The request and the ``state`` it carries (CSPRNG, 256 bits unless given)."""
        client_id, _ = self._secrets()
        state = state or secrets.token_urlsafe(32)
        body = AuthorizeRequest(
            client_id=client_id,
            agent_attestation=self.attestation(self.base_url),
            provider_id=provider_id,
            scopes=list(scopes),
            state=state,
            user_redirect_uri=user_redirect_uri,
            resource=resource,
        )
        return self._post(AUTHORIZE_PATH, body), state

    def parse_authorize(self, response: RawResponse, state: str) -> AuthorizationRequestResult:
        """Remember ``state`` for the returned session so the redirect can be checked."""
        result = _parse(response, AuthorizeResponse, ok=(200, 201))
        self._pending[result.ath_session_id] = state
        return AuthorizationRequestResult(result.authorization_url, result.ath_session_id, state)

    def authorize_flow(
        self,
        provider_id: str,
        scopes: Iterable[str],
        user_redirect_uri: str | None = None,
        resource: str | None = None,
    ) -> Flow[AuthorizationRequestResult]:
        request, state = self.build_authorize(provider_id, scopes, user_redirect_uri, resource)
        return self.parse_authorize((yield request), state)

    def pending_state(self, ath_session_id: str) -> str | None:
        return self._pending.get(ath_session_id)

    def check_returned_state(self, ath_session_id: str, returned_state: str) -> None:
        """Constant-time compare of the redirect's ``state`` with the one sent (§5, §11)."""
        expected = self.pending_state(ath_session_id)
        if expected is None:
            raise StateMismatchError(
                "no pending authorization for this session", {"ath_session_id": ath_session_id}
            )
        if not hmac.compare_digest(expected.encode(), returned_state.encode()):
            raise StateMismatchError(
                "returned state differs from the state sent", {"ath_session_id": ath_session_id}
            )

    # -- token (§6) ---------------------------------------------------------------------

    def build_token(
        self,
        ath_session_id: str,
        code: str = PLACEHOLDER_CODE,
        returned_state: str | None = None,
    ) -> PreparedRequest:
        """Token request; ``aud`` is the token endpoint URL. Checks ``returned_state`` first."""
        client_id, client_secret = self._secrets()
        if returned_state is not None:
            self.check_returned_state(ath_session_id, returned_state)
        body = TokenRequest(
            grant_type="authorization_code",
            client_id=client_id,
            client_secret=client_secret,
            agent_attestation=self.attestation(self.token_url),
            code=code,
            ath_session_id=ath_session_id,
        )
        return self._post(TOKEN_PATH, body)

    def parse_token(self, response: RawResponse, ath_session_id: str) -> TokenResponse:
        result = _parse(response, TokenResponse)
        self._pending.pop(ath_session_id, None)
        self.set_token(result.access_token, result.provider_id)
        return result

    def exchange_token_flow(
        self,
        ath_session_id: str,
        code: str = PLACEHOLDER_CODE,
        returned_state: str | None = None,
    ) -> Flow[TokenResponse]:
        request = self.build_token(ath_session_id, code, returned_state)
        return self.parse_token((yield request), ath_session_id)

    # -- revocation (§8) ----------------------------------------------------------------

    def build_revoke(self, token: str | None = None) -> tuple[PreparedRequest, str]:
        client_id, client_secret = self._secrets()
        token = token or self.token_for()
        body = RevokeRequest(token=token, client_id=client_id, client_secret=client_secret)
        return self._post(REVOKE_PATH, body), token

    def parse_revoke(self, response: RawResponse, token: str) -> None:
        """200 whether or not the token existed (RFC 7009); forget it locally."""
        _expect(response, (200, 204))
        self._forget(token)

    def revoke_flow(self, token: str | None = None) -> Flow[None]:
        request, token = self.build_revoke(token)
        self.parse_revoke((yield request), token)

    # -- API calls (§7) -----------------------------------------------------------------

    def api_url(self, path: str) -> str:
        """``{api_base}{path}``; ``path`` must be relative so the token stays on this service."""
        if self.api_base is None:
            raise ClientStateError("api_base unknown: call discover() or use a manual config")
        return _join(self.api_base, path)

    def proxy_url(self, provider_id: str, path: str) -> str:
        """``{base}/ath/proxy/{provider_id}/{path}`` (gateway shape, §7)."""
        proxy = PROXY_PATH.format(provider_id=quote(provider_id, safe=""), path="")
        return _join(self.base_url + proxy, path)

    def build_api_request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        provider_id: str | None = None,
    ) -> PreparedRequest:
        """Add ``Authorization: Bearer`` and ``X-ATH-Agent-ID`` to a call at ``url`` (§7)."""
        merged = dict(headers or {})
        merged["Authorization"] = f"Bearer {self.token_for(provider_id)}"
        merged["X-ATH-Agent-ID"] = self.agent_id
        return PreparedRequest(method.upper(), url, merged, json, params)

    @staticmethod
    def check_api_response(status: int, body: bytes) -> None:
        """Raise the typed error for a non-2xx ATH error body; anything else passes through."""
        if 200 <= status < 300:
            return
        if parse_error_body(body) is not None:
            raise error_from_response(status, body)

    # -- helpers ------------------------------------------------------------------------

    def _post(self, path: str, body: BaseModel) -> PreparedRequest:
        payload = body.model_dump(mode="json", exclude_none=True)
        return PreparedRequest("POST", self.base_url + path, _ACCEPT_JSON, payload)


_ACCEPT_JSON: Mapping[str, str] = {"Accept": "application/json"}


def _join(base: str, path: str) -> str:
    if urlsplit(path).scheme in ("http", "https") or path.startswith("//"):
        raise ValueError(f"path must be relative to the service, got {path!r}")
    return base.rstrip("/") + "/" + path.lstrip("/")
