"""``ANY /ath/proxy/{provider_id}/{path}``: the checked, streaming reverse proxy (PROTOCOL.md §7).

Order: token (exists, unrevoked, unexpired) → ``X-ATH-Agent-ID`` → provider → scope→route map
(unmapped requests refused) → the user's upstream token (refreshed when stale) → forward. Bodies
stream both ways; hop-by-hop headers, the agent's credentials and cookies never go upstream;
the upstream token never comes back; method, query string, status and body pass unchanged.

The data path is a raw ASGI endpoint over an aiohttp client (chosen by measurement,
``bench/upstream_clients.py``: httpx's pool scan made its throughput fall as connections rose).
A cached token is admitted in the event loop with no thread hop; headers are copied once, in
one pass; body chunks go straight between the ASGI channel and the upstream socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

import aiohttp

from athkit.core.workers import run_in_worker
from athkit.gateway.service import GatewayService
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
_REQUEST_DROP = HOP_BY_HOP | AGENT_ONLY
#: Bodies up to this size (by Content-Length) are read whole and sent in one ASGI message.
SMALL_BODY = 64 * 1024
#: Bytes of an upstream body buffered per connection before the socket is paused (bounds memory).
READ_BUFFER = 256 * 1024
#: aiohttp's own defaults are not added: the provider sees the agent's headers, not ours.
_SKIP_AUTO = frozenset({"Accept", "Accept-Encoding", "User-Agent"})


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
    """The ASGI app mounted at ``/ath/proxy``; ``close()`` ends its upstream connection pool."""

    def __init__(self, svc: GatewayService, *, timeout: float) -> None:
        self.svc = svc
        self.timeout = aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=200, limit_per_host=200, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self.timeout,
                auto_decompress=False,
                skip_auto_headers=_SKIP_AUTO,
                cookie_jar=aiohttp.DummyCookieJar(),
                read_bufsize=READ_BUFFER,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

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
        has_body = False
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
            elif name in (b"content-length", b"transfer-encoding"):
                has_body = True
            if name not in _REQUEST_DROP:
                forward.append((name, value))
        upstream_token = await admit(
            self.svc, scope, token, agent, provider_id, method, upstream_path
        )
        drop = _connection_tokens(connection)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in forward if k not in drop]
        headers.append(("authorization", f"Bearer {upstream_token}"))
        cfg = self.svc.provider_config(provider_id)
        url = cfg.api_base + upstream_path
        query = scope.get("query_string", b"")
        if query:
            url += "?" + query.decode("latin-1")
        body = _body(receive) if has_body else None
        try:
            await self._forward(send, method, url, headers, body)
        except _Unreachable as exc:
            raise ATHError(
                ErrorCode.UPSTREAM_UNAVAILABLE,
                f"{cfg.display_name} could not be reached",
                {"provider_id": provider_id, "reason": exc.reason},
            ) from exc.__cause__

    async def _forward(
        self,
        send: Send,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: AsyncIterator[bytes] | None,
    ) -> None:
        try:
            resp = await self.session().request(
                method, url, headers=headers, data=body, allow_redirects=False
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _Unreachable(type(exc).__name__) from exc
        try:
            drop = HOP_BY_HOP | _connection_tokens(resp.headers.get("connection", "").encode())
            out = [(k.lower(), v) for k, v in resp.raw_headers if k.lower() not in drop]
            start = {"type": "http.response.start", "status": resp.status, "headers": out}
            length = resp.content_length
            if length is not None and length <= SMALL_BODY:
                data = await resp.read()
                await send(start)
                await send({"type": "http.response.body", "body": data})
                return
            await send(start)
            content = resp.content
            while chunk := await content.readany():
                # Whatever else has already arrived goes in the same message: under load the
                # body crosses the ASGI stack (and its middlewares) in fewer, larger pieces.
                more = content.read_nowait()
                await send(
                    {
                        "type": "http.response.body",
                        "body": chunk + more if more else chunk,
                        "more_body": True,
                    }
                )
            await send({"type": "http.response.body", "body": b""})
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
