"""What one proxied call leaves behind: a span, latency and outcome metrics, and (sampled)
``proxy_request`` / always ``scope_violation`` audit rows through the batch writer.

:class:`ObservedProxy` wraps the proxy's ASGI app: it reads the status from the response start
(or the ATH error raised before it), and costs no database work on the request path.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any

from opentelemetry.trace import INVALID_SPAN, SpanKind
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from athkit.core import audit_events as ev
from athkit.core.audit_writer import AuditBatchWriter, call_row
from athkit.core.metrics import PROXY_LATENCY, PROXY_REQUESTS
from athkit.core.tracing import request_id, tracer, tracing_enabled
from athkit.gateway.service import GatewayService
from athkit.protocol.errors import ATHError, ErrorCode

VIOLATIONS = frozenset({ErrorCode.SCOPE_INSUFFICIENT.value, ErrorCode.ROUTE_NOT_MAPPED.value})


class ObservedProxy:
    """ASGI wrapper of the proxy endpoint mounted at ``/ath/proxy``."""

    def __init__(self, app: ASGIApp, svc: GatewayService, writer: AuditBatchWriter) -> None:
        self.app = app
        self.svc = svc
        self.writer = writer
        # (provider label, outcome) -> bound metric children: a label lookup per call costs
        # more than the observation itself. Both parts have few values (known providers, or
        # "unknown"; a status class or an ATH error code).
        self._metrics: dict[tuple[str, str], tuple[Any, Any]] = {}

    def _observe(self, label: str, outcome: str, seconds: float) -> None:
        bound = self._metrics.get((label, outcome))
        if bound is None:
            bound = self._metrics[(label, outcome)] = (
                PROXY_LATENCY.labels(label, outcome),
                PROXY_REQUESTS.labels(label, outcome),
            )
        bound[0].observe(seconds)
        bound[1].inc()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        rest = path.split("/ath/proxy/", 1)[-1]
        provider_id = rest.split("/", 1)[0]
        known = self.svc.config.provider(provider_id) is not None
        label = provider_id if known else "unknown"  # bounded label values
        status = [0]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        start = time.perf_counter()
        on = tracing_enabled()
        with (
            tracer.start_as_current_span("proxy " + label, kind=SpanKind.INTERNAL)
            if on
            else nullcontext(INVALID_SPAN)
        ) as span:
            try:
                await self.app(scope, receive, send_status)
            except ATHError as exc:
                seconds = time.perf_counter() - start
                self._observe(label, exc.code_str, seconds)
                if on:
                    span.set_attribute("athkit.error", exc.code_str)
                event = ev.SCOPE_VIOLATION if exc.code_str in VIOLATIONS else ev.PROXY_REQUEST
                self._record(
                    scope,
                    path,
                    provider_id if known else None,
                    event,
                    "refused",
                    exc.status,
                    seconds,
                    exc.code_str,
                )
                raise
            seconds = time.perf_counter() - start
            outcome = f"{status[0] // 100}xx"
            self._observe(label, outcome, seconds)
            if on:
                span.set_attribute("http.response.status_code", status[0])
            self._record(
                scope, path, provider_id, ev.PROXY_REQUEST, "forwarded", status[0], seconds, None
            )

    def _record(
        self,
        scope: Scope,
        path: str,
        provider_id: str | None,
        event: str,
        outcome: str,
        status: int,
        seconds: float,
        code: str | None,
    ) -> None:
        # The agent id is the X-ATH-Agent-ID the token matched (for refusals before that
        # check it is the claimed one, marked so).
        agent = next((v for k, v in scope.get("headers", []) if k == b"x-ath-agent-id"), b"")
        claimed = code is not None and code not in VIOLATIONS
        self.writer.submit(
            call_row(
                self.svc.clock(),
                event,
                outcome,
                agent_id=agent.decode("latin-1")[:2048] or None,
                provider_id=provider_id,
                reason=code,
                details={
                    "method": scope.get("method", ""),
                    "path": path[:512],
                    "status": status,
                    "ms": round(seconds * 1000, 2),
                    "request_id": request_id.get(),
                    **({"agent_id_unverified": True} if claimed else {}),
                },
            )
        )
