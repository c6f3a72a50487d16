"""What one proxied call leaves behind: a span, latency and outcome metrics, and (sampled)
``proxy_request`` / always ``scope_violation`` audit rows through the batch writer."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import nullcontext

from fastapi import Request
from opentelemetry.trace import INVALID_SPAN, SpanKind
from starlette.responses import Response

from athkit.core import audit_events as ev
from athkit.core.audit_writer import AuditBatchWriter, call_row
from athkit.core.metrics import PROXY_LATENCY, PROXY_REQUESTS
from athkit.core.tracing import request_id, tracer, tracing_enabled
from athkit.gateway.service import GatewayService
from athkit.protocol.errors import ATHError, ErrorCode

VIOLATIONS = frozenset({ErrorCode.SCOPE_INSUFFICIENT.value, ErrorCode.ROUTE_NOT_MAPPED.value})


async def observed_call(
    svc: GatewayService,
    writer: AuditBatchWriter,
    request: Request,
    provider_id: str,
    call: Callable[[], Awaitable[Response]],
) -> Response:
    known = svc.config.provider(provider_id) is not None
    label = provider_id if known else "unknown"  # bounded label values
    start = time.perf_counter()
    spans = tracer if tracing_enabled() else None
    with (
        spans.start_as_current_span("proxy " + label, kind=SpanKind.INTERNAL)
        if spans is not None
        else nullcontext(INVALID_SPAN)
    ) as span:
        try:
            resp = await call()
        except ATHError as exc:
            seconds = time.perf_counter() - start
            PROXY_LATENCY.labels(label, exc.code_str).observe(seconds)
            PROXY_REQUESTS.labels(label, exc.code_str).inc()
            if span.is_recording():
                span.set_attribute("athkit.error", exc.code_str)
            event = ev.SCOPE_VIOLATION if exc.code_str in VIOLATIONS else ev.PROXY_REQUEST
            _record(
                svc,
                writer,
                request,
                provider_id if known else None,
                event,
                "refused",
                exc.status,
                seconds,
                exc.code_str,
            )
            raise
        seconds = time.perf_counter() - start
        outcome = f"{resp.status_code // 100}xx"
        PROXY_LATENCY.labels(label, outcome).observe(seconds)
        PROXY_REQUESTS.labels(label, outcome).inc()
        if span.is_recording():
            span.set_attribute("http.response.status_code", resp.status_code)
        _record(
            svc,
            writer,
            request,
            provider_id,
            ev.PROXY_REQUEST,
            "forwarded",
            resp.status_code,
            seconds,
            None,
        )
        return resp


def _record(
    svc: GatewayService,
    writer: AuditBatchWriter,
    request: Request,
    provider_id: str | None,
    event: str,
    outcome: str,
    status: int,
    seconds: float,
    code: str | None,
) -> None:
    # The agent id is the X-ATH-Agent-ID the token matched (for refusals before that check it
    # is the claimed one, marked so).
    claimed = code is not None and code not in VIOLATIONS
    writer.submit(
        call_row(
            svc.clock(),
            event,
            outcome,
            agent_id=request.headers.get("x-ath-agent-id") or None,
            provider_id=provider_id,
            reason=code,
            details={
                "method": request.method,
                "path": request.url.path[:512],
                "status": status,
                "ms": round(seconds * 1000, 2),
                "request_id": request_id.get(),
                **({"agent_id_unverified": True} if claimed else {}),
            },
        )
    )
