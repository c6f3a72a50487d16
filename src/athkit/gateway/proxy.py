"""``ANY /ath/proxy/{provider_id}/{path}``: the checked, streaming reverse proxy (PROTOCOL.md §7).

Order: token (exists, unrevoked, unexpired) → ``X-ATH-Agent-ID`` → provider → scope→route map
(unmapped requests refused) → the user's upstream token (refreshed when stale) → forward. Bodies
stream both ways; hop-by-hop headers, the agent's credentials and cookies never go upstream;
the upstream token never comes back; method, query string, status and body pass unchanged.

The data path is a raw ASGI endpoint over the gateway's own HTTP/1.1 client
(``gateway/upstream_http.py``; chosen by measurement over aiohttp, which had replaced httpx,
whose pool scan made throughput fall as connections rose). A cached token is admitted in the
event loop with no thread hop; headers are copied once, in one pass, and go upstream as the
bytes they arrived as; body pieces go straight between the ASGI channel and the upstream
socket, whatever has arrived handed on as one piece.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from athkit.core.workers import run_in_worker
from athkit.gateway.service import GatewayService
from athkit.gateway.upstream_http import SMALL_BODY, Origin, UpstreamClient, UpstreamError
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.web.deps import CHANNEL_SESSION_KEY

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PREFIX = "/ath/proxy/"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
#: Request headers that identify the agent to the gateway and must not reach the provider.
AGENT_ONLY = frozenset({b"authorization", b"x-ath-agent-id", b"x-ath-session", b"cookie", b"host"})
#: ``Expect: 100-continue`` is answered by this server (it asks for the body when the proxy
#: reads it); upstream the body follows the headers at once.
_REQUEST_DROP = HOP_BY_HOP | AGENT_ONLY | {b"expect"}
#: Bytes of an upstream body buffered per connection before the socket is paused (bounds memory).
READ_BUFFER = 256 * 1024


def _connection_tokens(value: bytes | None) -> set[bytes]:
    if not value:
        return set()
    return {t.strip().lower() for t in value.split(b",") if t.strip()}


def checked_path(rest: str) -> str:
    """A path as sent (percent-encoding kept), refused if it hides separators.

    Encoded slashes or dots could make the route map and the provider disagree about which
    resource is meant, so they are refused outright.
    """
    lowered = rest.lower()
    if "%2f" in lowered or "%2e" in lowered or "%5c" in lowered or "\\" in rest:
        raise ATHError(ErrorCode.ROUTE_NOT_MAPPED, "encoded separators are not allowed in paths")
    return rest if rest.startswith("/") else "/" + rest


def split_proxy_path(path: str) -> tuple[str, str]:
    """``/ath/proxy/{provider}/{rest}`` as sent → (provider, ``/rest``)."""
    text = path.split("?", 1)[0]
    provider, sep, rest = text[len(PREFIX) :].partition("/")
    if not text.startswith(PREFIX) or not sep or not provider:
        raise ATHError(ErrorCode.NOT_FOUND, "no such route")
    return unquote(provider), checked_path(rest)


async def admit(
    svc: GatewayService,
    scope: Scope,
    token: str | None,
    agent: str | None,
    provider_id: str,
    method: str,
    path: str,
) -> str:
    """Every §7 check of a proxied call; the upstream access token to send with it.

    A cached ATH token is decided here, in the event loop; anything else (a cache miss, a
    stale upstream token, a handshake token) in one thread hop."""
    hs = getattr(scope["app"].state, "athkit_handshake", None) if "app" in scope else None
    if hs is not None and token and hs.is_handshake_token(token):
        channel = scope.get("state", {}).get(CHANNEL_SESSION_KEY)
        client = scope.get("client")

        def admit_handshake() -> str:
            info = hs.validate_token(
                token,
                agent_header=agent,
                provider_id=None,
                client_ip=client[0] if client else None,
                channel_session=channel,
            )
            return svc.admit_handshake_call(info, provider_id, method, path)

        return await run_in_worker(admit_handshake)
    hit = svc.admit_in_memory(token, agent, provider_id, method, path)
    if hit is not None:
        return hit
    return await run_in_worker(svc.admit_proxy_call, token, agent, provider_id, method, path)


class ProxyEndpoint:
    """The ASGI app mounted at ``/ath/proxy``; ``close()`` ends its upstream connections."""

    def __init__(self, svc: GatewayService, *, timeout: float) -> None:
        self.svc = svc
        self.client = UpstreamClient(
            connect_timeout=5.0, read_timeout=timeout, read_buffer=READ_BUFFER
        )
        self._bases: dict[str, tuple[Origin, str]] = {}

    async def close(self) -> None:
        await self.client.close()

    def _base(self, api_base: str) -> tuple[Origin, str]:
        """(origin, path prefix) of a provider's ``api_base`` (providers can change live)."""
        known = self._bases.get(api_base)
        if known is None:
            # sent as is upstream: anything outside RFC 3986's path characters percent-encoded
            path = quote(urlsplit(api_base).path.rstrip("/"), safe="/%:@!$&'()*+,;=-._~")
            known = self._bases[api_base] = (Origin.of(api_base), path)
        return known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method: str = scope["method"]
        if method not in METHODS:
            raise ATHError(ErrorCode.METHOD_NOT_ALLOWED, "method not allowed")
        raw_path = scope.get("raw_path") or scope["path"].encode()
        provider_id, upstream_path = split_proxy_path(raw_path.decode("latin-1"))
        # for a 401/403: point the client to this provider's resource metadata (RFC 9728 §5.1)
        scope.setdefault("state", {})["ath_resource"] = self.svc.resources.get(
            self.svc.proxy_resource(provider_id)
        )
        # One pass over the request headers: what the gateway reads, and what goes upstream.
        token = agent = None
        connection: bytes | None = None
        length: bytes | None = None
        chunked = False
        forward: list[tuple[bytes, bytes]] = []
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, rest = value.partition(b" ")
                if scheme.lower() == b"bearer" and rest.strip():
                    token = rest.strip().decode("latin-1")
            elif name == b"x-ath-agent-id":
                agent = value.decode("latin-1")
            elif name == b"connection":
                connection = value
            elif name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
            if name not in _REQUEST_DROP:
                forward.append((name, value))
        upstream_token = await admit(
            self.svc, scope, token, agent, provider_id, method, upstream_path
        )
        if "\r" in upstream_token or "\n" in upstream_token or "\0" in upstream_token:
            raise ATHError(ErrorCode.UPSTREAM_UNAVAILABLE, "the provider's token is malformed")
        drop = _connection_tokens(connection)
        if drop:
            forward = [(k, v) for k, v in forward if k not in drop]
        forward.append((b"authorization", b"Bearer " + upstream_token.encode("latin-1")))
        cfg = self.svc.provider_config(provider_id)
        origin, base_path = self._base(cfg.api_base)
        target = base_path + upstream_path
        query = scope.get("query_string", b"")
        if query:
            target += "?" + query.decode("latin-1")
        # Content-Length wins over chunked framing (RFC 9112 §6.3 lets no request carry both).
        body = _body(receive) if length is not None or chunked else None
        try:
            await self._forward(send, origin, method, target, forward, body, length is None)
        except _Unreachable as exc:
            raise ATHError(
                ErrorCode.UPSTREAM_UNAVAILABLE,
                f"{cfg.display_name} could not be reached",
                {"provider_id": provider_id, "reason": exc.reason},
            ) from exc.__cause__

    async def _forward(
        self,
        send: Send,
        origin: Origin,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | None,
        chunked: bool,
    ) -> None:
        try:
            resp = await self.client.request(
                origin, method, target, headers, body, chunked=body is not None and chunked
            )
        except UpstreamError as exc:
            raise _Unreachable(exc.reason) from exc
        try:
            drop = HOP_BY_HOP
            for name, value in resp.headers:
                if name == b"connection":
                    drop = HOP_BY_HOP | _connection_tokens(value)
            out = [(k, v) for k, v in resp.headers if k not in drop]
            start = {"type": "http.response.start", "status": resp.status, "headers": out}
            length = resp.content_length
            if length is not None and length <= SMALL_BODY:
                try:
                    data = await resp.read()
                except UpstreamError as exc:  # nothing sent yet: still a clean 502
                    raise _Unreachable(exc.reason) from exc
                await send(start)
                await send({"type": "http.response.body", "body": data})
                return
            await send(start)
            async for data, more in resp.chunks():
                await send({"type": "http.response.body", "body": data, "more_body": more})
        finally:
            resp.release()


class _Unreachable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    """The agent's request body, chunk by chunk as the server hands it over."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ATHError(ErrorCode.INVALID_REQUEST, "the client went away mid-body")
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return
