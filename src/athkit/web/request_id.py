"""ASGI middleware: a request id per request (``X-Request-ID`` in, or a new one), in the reply
header, the log context and a server span named after the route (each protocol step is one)."""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import FastAPI
from opentelemetry.trace import SpanKind

from athkit.core.secrets import new_identifier
from athkit.core.tracing import REQUEST_ID_PATTERN, request_id, tracer, tracing_enabled

HEADER = b"x-request-id"


def own_telemetry_only() -> dict[str, Any]:
    """``FastAPI(**own_telemetry_only())`` for athkit's own services (gateway, registry): they
    make their own server span per request here, count in Prometheus and log through
    ``logging``, so FastAPI's native OpenTelemetry (0.16x and later) would only double the
    spans, and its per-request check for an installed SDK costs the proxy's hot path. Older
    FastAPI has no such option and gets none."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


class RequestIdMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = ""
        for name, value in scope.get("headers") or ():
            if name == HEADER:
                sent = value.decode("latin-1")
        rid = sent if sent and REQUEST_ID_PATTERN.match(sent) else new_identifier(12)
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
