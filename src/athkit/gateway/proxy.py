"""``ANY /ath/proxy/{provider_id}/{path}``: the checked, streaming reverse proxy (PROTOCOL.md §7).

Order: token (exists, unrevoked, unexpired) → ``X-ATH-Agent-ID`` → provider → scope→route map
(unmapped requests refused) → the user's upstream token (refreshed when stale) → forward. Bodies
stream both ways; hop-by-hop headers, the agent's credentials and cookies never go upstream;
the upstream token never comes back; method, query string, status and body pass unchanged.
"""

from __future__ import annotations

import httpx
from fastapi import Request
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from athkit.core.workers import run_in_worker
from athkit.gateway.service import GatewayService
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.web.deps import CHANNEL_SESSION_KEY, bearer_token

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
#: Request headers that identify the agent to the gateway and must not reach the provider.
AGENT_ONLY = frozenset(
    {"authorization", "x-ath-agent-id", "x-ath-session", "cookie", "host", "content-length"}
)


def _connection_tokens(headers: httpx.Headers | dict[str, str]) -> set[str]:
    value = headers.get("connection", "") or ""
    return {t.strip().lower() for t in value.split(",") if t.strip()}


def upstream_request_headers(request: Request, upstream_token: str) -> list[tuple[str, str]]:
    drop = HOP_BY_HOP | AGENT_ONLY | _connection_tokens(dict(request.headers))
    out = [(k, v) for k, v in request.headers.items() if k.lower() not in drop]
    if "content-length" in request.headers:
        out.append(("content-length", request.headers["content-length"]))
    out.append(("authorization", f"Bearer {upstream_token}"))
    return out


def response_headers(resp: httpx.Response) -> list[tuple[str, str]]:
    drop = HOP_BY_HOP | _connection_tokens(resp.headers)
    return [(k, v) for k, v in resp.headers.multi_items() if k.lower() not in drop]


async def proxy_request(
    request: Request, svc: GatewayService, client: httpx.AsyncClient, provider_id: str, path: str
) -> Response:
    upstream_path = _raw_upstream_path(request, provider_id)
    # for a 401/403: point the client to this provider's resource metadata (RFC 9728 §5.1)
    request.scope.setdefault("state", {})["ath_resource"] = svc.resources.get(
        svc.proxy_resource(provider_id)
    )
    token = bearer_token(request)
    agent_header = request.headers.get("x-ath-agent-id")
    hs = getattr(request.app.state, "athkit_handshake", None)
    if hs is not None and token and hs.is_handshake_token(token):
        channel = request.scope.get("state", {}).get(CHANNEL_SESSION_KEY)

        def admit() -> str:
            info = hs.validate_token(
                token,
                agent_header=agent_header,
                provider_id=None,
                client_ip=request.client.host if request.client else None,
                channel_session=channel,
            )
            return svc.admit_handshake_call(info, provider_id, request.method, upstream_path)

        upstream_token = await run_in_worker(admit)
    else:
        upstream_token = await run_in_worker(
            svc.admit_proxy_call, token, agent_header, provider_id, request.method, upstream_path
        )
    cfg = svc.provider_config(provider_id)
    url = cfg.api_base + upstream_path
    query = request.scope.get("query_string", b"")
    if query:
        url += "?" + query.decode("latin-1")
    has_body = request.method not in ("GET", "HEAD", "OPTIONS", "DELETE") or (
        "content-length" in request.headers or "transfer-encoding" in request.headers
    )
    upstream_req = client.build_request(
        request.method,
        url,
        headers=upstream_request_headers(request, upstream_token),
        content=request.stream() if has_body else None,
    )
    try:
        resp = await client.send(upstream_req, stream=True)
    except httpx.HTTPError as exc:
        raise ATHError(
            ErrorCode.UPSTREAM_UNAVAILABLE,
            f"{cfg.display_name} could not be reached",
            {"provider_id": provider_id, "reason": type(exc).__name__},
        ) from exc
    return _stream(resp)


def _raw_upstream_path(request: Request, provider_id: str) -> str:
    """The path as the agent sent it (percent-encoding kept), minus the proxy prefix.

    Encoded slashes or dots could make the route map and the provider disagree about which
    resource is meant, so they are refused outright.
    """
    raw = request.scope.get("raw_path") or request.url.path.encode()
    text = raw.decode("latin-1").split("?", 1)[0]
    prefix = f"/ath/proxy/{provider_id}"
    rest = text[len(prefix) :] if text.startswith(prefix) else "/" + request.path_params["path"]
    lowered = rest.lower()
    if "%2f" in lowered or "%2e" in lowered or "%5c" in lowered or "\\" in rest:
        raise ATHError(ErrorCode.ROUTE_NOT_MAPPED, "encoded separators are not allowed in paths")
    return rest or "/"


def _stream(resp: httpx.Response) -> StreamingResponse:
    out = StreamingResponse(
        resp.aiter_raw(), status_code=resp.status_code, background=BackgroundTask(resp.aclose)
    )
    out.raw_headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response_headers(resp)
    ]
    return out
