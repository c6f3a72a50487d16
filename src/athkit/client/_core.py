"""The sans-I/O heart of the agent client: build ATH requests, parse ATH responses.

Nothing here touches the network. Each operation is a *flow*: a generator that yields a
:class:`PreparedRequest`, receives a :class:`RawResponse`, and returns a typed result (the
shape of ``httpx/_auth.py``). :mod:`athkit.client.sync` and :mod:`athkit.client.aio` only drive
flows; tests drive them with canned responses.
"""

from __future__ import annotations

import hmac
import secrets
import warnings
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel

from athkit.client._wire import (
    ACCEPT_JSON,
    AGENT_STATUS_PATH,
    AUTHORIZE_PATH,
    DEFAULT_TIMEOUT,
    GATEWAY_DISCOVERY_PATH,
    PLACEHOLDER_CODE,
    PROXY_PATH,
    REGISTER_PATH,
    REVOKE_PATH,
    SERVICE_DISCOVERY_PATH,
    TOKEN_PATH,
    AuthorizationRequestResult,
    Flow,
    PreparedRequest,
    RawResponse,
    RedirectParams,
    basic_authorization,
    expect_status,
    join_url,
    json_body,
    load_manual_config,
    manual_base_url,
    parse_model,
    parse_redirect,
    validated,
)
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

__all__ = [
    "AGENT_STATUS_PATH",
    "AUTHORIZE_PATH",
    "DEFAULT_TIMEOUT",
    "GATEWAY_DISCOVERY_PATH",
    "PLACEHOLDER_CODE",
    "PROXY_PATH",
    "REGISTER_PATH",
    "REVOKE_PATH",
    "SERVICE_DISCOVERY_PATH",
    "TOKEN_PATH",
    "AuthorizationRequestResult",
    "ClientCore",
    "Flow",
    "PreparedRequest",
    "RawResponse",
    "RedirectParams",
    "basic_authorization",
    "load_manual_config",
    "manual_base_url",
    "parse_redirect",
]


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
        return PreparedRequest("GET", self.base_url + SERVICE_DISCOVERY_PATH, ACCEPT_JSON)

    def parse_discover(self, response: RawResponse) -> ServiceDiscoveryDocument:
        """Check ``ath_version`` before anything else, then validate and cache (§2)."""
        expect_status(response, (200,))
        data = json_body(response)
        self.check_version(data)
        doc = validated(ServiceDiscoveryDocument, data, response.status)
        self.discovery = doc
        self.api_base = doc.api_base.rstrip("/")
        return doc

    def discover_flow(self) -> Flow[ServiceDiscoveryDocument]:
        return self.parse_discover((yield self.build_discover()))

    def build_discover_gateway(self) -> PreparedRequest:
        return PreparedRequest("GET", self.base_url + GATEWAY_DISCOVERY_PATH, ACCEPT_JSON)

    def parse_discover_gateway(self, response: RawResponse) -> GatewayDiscoveryDocument:
        expect_status(response, (200,))
        data = json_body(response)
        self.check_version(data)
        return validated(GatewayDiscoveryDocument, data, response.status)

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
        result = parse_model(response, RegisterResponse, ok=(200, 201))
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
        headers = {**ACCEPT_JSON, "Authorization": basic_authorization(client_id, client_secret)}
        return PreparedRequest("GET", url, headers)

    def parse_agent_status(self, response: RawResponse) -> AgentStatusResponse:
        return parse_model(response, AgentStatusResponse)

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
        result = parse_model(response, AuthorizeResponse, ok=(200, 201))
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
        result = parse_model(response, TokenResponse)
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
        expect_status(response, (200, 204))
        self._forget(token)

    def revoke_flow(self, token: str | None = None) -> Flow[None]:
        request, token = self.build_revoke(token)
        self.parse_revoke((yield request), token)

    # -- API calls (§7) -----------------------------------------------------------------

    def api_url(self, path: str) -> str:
        """``{api_base}{path}``; ``path`` must be relative so the token stays on this service."""
        if self.api_base is None:
            raise ClientStateError("api_base unknown: call discover() or use a manual config")
        return join_url(self.api_base, path)

    def proxy_url(self, provider_id: str, path: str) -> str:
        """``{base}/ath/proxy/{provider_id}/{path}`` (gateway shape, §7)."""
        proxy = PROXY_PATH.format(provider_id=quote(provider_id, safe=""), path="")
        return join_url(self.base_url + proxy, path)

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
        return PreparedRequest("POST", self.base_url + path, ACCEPT_JSON, payload)
