"""Asynchronous ATH agent client over :class:`httpx.AsyncClient` (PROTOCOL.md §2–§8)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx

from athkit.client._base import BaseATHClient
from athkit.client._core import (
    DEFAULT_TIMEOUT,
    PLACEHOLDER_CODE,
    AuthorizationRequestResult,
    Flow,
    PreparedRequest,
    RawResponse,
)
from athkit.client.errors import ServiceUnreachableError
from athkit.client.handshake import (
    DEFAULT_TTL,
    DEFAULT_WAIT,
    AsyncHandshakeSession,
    HandshakeCore,
    Observer,
    PendingConfirmation,
    SessionCore,
    arun_handshake,
    coerce_credential,
    default_resolver,
)
from athkit.crypto import AgentKey
from athkit.crypto.credentials import SignedCredential
from athkit.crypto.did import DIDResolver
from athkit.protocol.messages import (
    AgentStatusResponse,
    DeveloperInfo,
    GatewayDiscoveryDocument,
    ProviderScopeRequest,
    RegisterResponse,
    ServiceDiscoveryDocument,
    TokenResponse,
)

_T = TypeVar("_T")


class AsyncATHClient(BaseATHClient):
    """An agent talking ATH to one service or gateway, with ``async``/``await``.

    ``http_client`` may be injected (it is then not closed by :meth:`aclose`); otherwise one is
    created with ``timeout``. Redirects are not followed.
    """

    def __init__(
        self,
        base_url: str,
        agent_id: str,
        key: AgentKey,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        api_base: str | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            base_url,
            agent_id,
            key,
            client_id=client_id,
            client_secret=client_secret,
            timeout=timeout,
            api_base=api_base,
        )
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.AsyncClient(timeout=timeout)

    # -- lifecycle ----------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def close(self) -> None:
        """Alias of :meth:`aclose`."""
        await self.aclose()

    async def __aenter__(self) -> AsyncATHClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the send loop ------------------------------------------------------------------

    async def _send(self, request: PreparedRequest) -> httpx.Response:
        try:
            return await self._http.request(
                request.method,
                request.url,
                headers=request.headers,
                json=request.json,
                params=request.params,
            )
        except httpx.TransportError as exc:
            raise ServiceUnreachableError(
                f"{request.method} {request.url} failed: {type(exc).__name__}"
            ) from exc

    async def _drive(self, flow: Flow[_T]) -> _T:
        request = next(flow)
        while True:
            response = await self._send(request)
            raw = RawResponse(response.status_code, response.headers, response.content)
            try:
                request = flow.send(raw)
            except StopIteration as stop:
                result: _T = stop.value
                return result

    async def _call_api(self, request: PreparedRequest) -> httpx.Response:
        response = await self._send(request)
        self._core.check_api_response(response.status_code, response.content)
        return response

    # -- ATH operations -----------------------------------------------------------------

    async def discover(self) -> ServiceDiscoveryDocument:
        """Fetch ``/.well-known/ath-app.json``, check its version, cache ``api_base`` (§2)."""
        return await self._drive(self._core.discover_flow())

    async def discover_gateway(self) -> GatewayDiscoveryDocument:
        """Fetch the gateway catalog ``/.well-known/ath.json`` (§2)."""
        return await self._drive(self._core.discover_gateway_flow())

    async def register(
        self,
        developer: DeveloperInfo | Mapping[str, Any],
        providers: Iterable[ProviderScopeRequest | Mapping[str, Any]],
        purpose: str | None = None,
        redirect_uris: Iterable[str] | None = None,
    ) -> RegisterResponse:
        """Phase A registration; keeps the issued ``client_id``/``client_secret`` (§4)."""
        return await self._drive(
            self._core.register_flow(developer, providers, purpose, redirect_uris)
        )

    async def agent_status(self) -> AgentStatusResponse:
        """This agent's registration record, authenticated with its credentials (§4)."""
        return await self._drive(self._core.agent_status_flow())

    async def authorize(
        self,
        provider_id: str,
        scopes: Iterable[str],
        user_redirect_uri: str | None = None,
        resource: str | None = None,
    ) -> AuthorizationRequestResult:
        """Phase B: start a user authorization; send the user to ``authorization_url`` (§5)."""
        return await self._drive(
            self._core.authorize_flow(provider_id, scopes, user_redirect_uri, resource)
        )

    async def exchange_token(
        self,
        ath_session_id: str,
        code: str = PLACEHOLDER_CODE,
        returned_state: str | None = None,
    ) -> TokenResponse:
        """Trade the completed session for an access token; keeps the token (§6)."""
        return await self._drive(
            self._core.exchange_token_flow(ath_session_id, code, returned_state)
        )

    async def revoke(self, token: str | None = None) -> None:
        """Revoke ``token`` (default: the current one) and forget it (§8)."""
        await self._drive(self._core.revoke_flow(token))

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        provider_id: str | None = None,
    ) -> httpx.Response:
        """Call ``{api_base}{path}`` with the agent's token; ATH errors raise typed (§7)."""
        url = self._core.api_url(path)
        return await self._call_api(
            self._core.build_api_request(
                method, url, json=json, params=params, headers=headers, provider_id=provider_id
            )
        )

    async def proxy_request(
        self,
        method: str,
        provider_id: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Call ``/ath/proxy/{provider_id}/{path}`` with the provider's token (§7)."""
        url = self._core.proxy_url(provider_id, path)
        return await self._call_api(
            self._core.build_api_request(
                method, url, json=json, params=params, headers=headers, provider_id=provider_id
            )
        )

    # -- the 9-step trusted handshake (PROTOCOL.md §10) ----------------------------------

    async def handshake(
        self,
        scopes: Iterable[str],
        credential: SignedCredential | Mapping[str, Any],
        *,
        ttl: int = DEFAULT_TTL,
        context: Mapping[str, Any] | None = None,
        wait: float = DEFAULT_WAIT,
        client_did: str | None = None,
        resolver: DIDResolver | None = None,
        on_pending: Callable[[PendingConfirmation], None] | None = None,
        observer: Observer | None = None,
    ) -> AsyncHandshakeSession:
        """``async`` twin of :meth:`ATHClient.handshake`.

        ``on_pending`` and ``observer`` are plain callables run in the event loop: keep them
        quick (e.g. hand the confirmation to a task).
        """
        core = HandshakeCore(self._core.base_url, self._core.key, client_did=client_did)
        flow = core.flow(
            list(scopes),
            coerce_credential(credential),
            ttl=ttl,
            context=context,
            wait=wait,
            on_pending=on_pending,
            observer=observer,
        )
        result = await arun_handshake(
            self._http, core, flow, resolver or default_resolver(self._core.base_url)
        )
        return AsyncHandshakeSession(
            self._http, SessionCore(result, self._core.api_base or self._core.base_url)
        )
