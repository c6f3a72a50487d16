"""ASGI middleware: a request id per request (``X-Request-ID`` in, or a new one), in the reply
header, the log context and a server span named after the route (each protocol step is one)."""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import SpanKind

from athkit.core.secrets import new_secret
from athkit.core.tracing import REQUEST_ID_PATTERN, request_id, tracer, tracing_enabled

HEADER = b"x-request-id"


class RequestIdMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers") or []).get(HEADER, b"").decode("latin-1")
        rid = sent if REQUEST_ID_PATTERN.match(sent) else new_secret("", 12)
        token = request_id.set(rid)

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (HEADER, rid.encode())]
            await send(message)

        try:
            if not tracing_enabled():
                await self.app(scope, receive, send_with_id)
                return
            name = f"{scope.get('method', 'GET')} {_route_name(scope.get('path', ''))}"
            with tracer.start_as_current_span(name, kind=SpanKind.SERVER) as span:
                span.set_attribute("athkit.request_id", rid)
                span.set_attribute("http.request.method", scope.get("method", ""))
                await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


def _route_name(path: str) -> str:
    """A low-cardinality span name: the proxy's provider kept, ids and the rest dropped."""
    if path.startswith("/ath/proxy/"):
        parts = path.split("/", 4)
        return f"/ath/proxy/{parts[3]}" if len(parts) > 3 else "/ath/proxy"
    if path.startswith("/ath/agents/") and path != "/ath/agents/register":
        return "/ath/agents/{client_id}"
    return path if path.count("/") <= 4 else "/".join(path.split("/")[:4]) + "/…"
