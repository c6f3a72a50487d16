"""Forward-auth: athkit decides, a real proxy (nginx, Envoy, Caddy, Traefik) carries the bytes.

``ANY /ath/forward-auth/{provider_id}[/{path}]`` runs every check of the gateway's proxy
(PROTOCOL.md §7: token, ``X-ATH-Agent-ID``, provider, the scope→route map, the user's upstream
token refreshed when stale) on the request the proxy is about to forward, and answers

* **200** with ``Authorization: Bearer <upstream token>`` for the proxy to put on the request
  it forwards (nginx ``auth_request_set``, Caddy ``copy_headers``, Traefik
  ``authResponseHeaders``, Envoy ``allowed_upstream_headers``);
* or the ATH error status and JSON body, and the same body in ``X-ATH-Error`` for proxies that
  drop the decider's body (nginx ``auth_request``).

The original request is named by ``X-Original-Method`` + ``X-Original-URI`` (nginx),
``X-Forwarded-Method`` + ``X-Forwarded-Uri`` (Caddy, Traefik), or, for Envoy's HTTP
``ext_authz`` with a ``path_prefix``, by this request's own method and the path after the
provider. A URI in the gateway's own shape (``/ath/proxy/{provider}/...``) names its provider.

The answer carries the user's upstream token, so only the proxy may ask: every call must carry
the shared secret from ``[forward_auth] secret_env`` in ``X-ATH-Forward-Auth`` (compared in
constant time); the endpoint does not exist unless that section is configured.
"""

from __future__ import annotations

import hmac
import json
from typing import Any
from urllib.parse import unquote

from athkit.gateway.proxy import PREFIX, Receive, Scope, Send, admit, checked_path
from athkit.gateway.service import GatewayService
from athkit.protocol.errors import ATHError, ErrorCode

MOUNT = "/ath/forward-auth"
SECRET_HEADER = b"x-ath-forward-auth"
_METHOD_HEADERS = (b"x-original-method", b"x-forwarded-method")
_URI_HEADERS = (b"x-original-uri", b"x-forwarded-uri")


def original_request(
    own_method: str, own_path: str, headers: dict[bytes, bytes]
) -> tuple[str, str, str]:
    """(provider, original method, original path) of the request the proxy asks about."""
    rest = own_path[len(MOUNT) :].lstrip("/")
    provider_seg, _, tail = rest.partition("/")
    provider = unquote(provider_seg) if provider_seg else None
    method = next((headers[h] for h in _METHOD_HEADERS if h in headers), None)
    uri = next((headers[h] for h in _URI_HEADERS if h in headers), None)
    if uri is None:  # Envoy ext_authz (HTTP): the original path follows the path_prefix
        if provider is None:
            raise ATHError(ErrorCode.INVALID_REQUEST, "no original URI (X-Original-URI)")
        return provider, method.decode("latin-1").upper() if method else own_method, "/" + tail
    path = uri.decode("latin-1").split("?", 1)[0]
    if path.startswith(PREFIX):  # the gateway's own proxy shape names the provider
        named, sep, tail = path[len(PREFIX) :].partition("/")
        if not sep or (provider is not None and unquote(named) != provider):
            raise ATHError(ErrorCode.PROVIDER_MISMATCH, "the URI names another provider")
        provider, path = unquote(named), "/" + tail
    if provider is None:
        raise ATHError(ErrorCode.INVALID_REQUEST, "no provider in the endpoint path or URI")
    return provider, (method.decode("latin-1").upper() if method else own_method), path


class ForwardAuthEndpoint:
    """The ASGI app mounted at ``/ath/forward-auth``."""

    def __init__(self, svc: GatewayService, secret: str) -> None:
        if len(secret) < 16:
            raise ValueError("the forward-auth secret must have at least 16 characters")
        self.svc = svc
        self.secret = secret.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers: dict[bytes, bytes] = {}
        for k, v in scope["headers"]:
            headers.setdefault(k, v)
        try:
            upstream = await self._decide(scope, headers)
        except ATHError as err:
            await _refuse(send, err)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"authorization", b"Bearer " + upstream.encode("latin-1")),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _decide(self, scope: Scope, headers: dict[bytes, bytes]) -> str:
        given = headers.get(SECRET_HEADER, b"")
        if not hmac.compare_digest(given, self.secret):
            raise ATHError(ErrorCode.OPERATOR_ONLY, "forward-auth answers only the proxy")
        raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        provider, method, path = original_request(scope["method"], raw.split("?", 1)[0], headers)
        path = checked_path(path)
        token = None
        scheme, _, value = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer" and value.strip():
            token = value.strip().decode("latin-1")
        agent_raw = headers.get(b"x-ath-agent-id")
        agent = agent_raw.decode("latin-1") if agent_raw is not None else None
        self.svc.provider_config(provider)  # unknown providers: NOT_FOUND
        return await admit(self.svc, scope, token, agent, provider, method, path)


async def _refuse(send: Send, err: ATHError) -> None:
    body = json.dumps(err.to_dict(), separators=(",", ":"), ensure_ascii=True).encode()
    out: list[tuple[bytes, Any]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-ath-error", body),
    ]
    if err.status == 401:
        out.append((b"www-authenticate", b'Bearer realm="ath", error="invalid_token"'))
    elif err.code_str == ErrorCode.SCOPE_INSUFFICIENT.value:
        out.append((b"www-authenticate", b'Bearer realm="ath", error="insufficient_scope"'))
    await send({"type": "http.response.start", "status": err.status, "headers": out})
    await send({"type": "http.response.body", "body": body})
