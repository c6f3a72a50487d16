"""Tracing and request ids: OpenTelemetry spans, and one request id in logs, traces and replies.

Spans go through the OpenTelemetry API. Until :func:`configure_tracing` installs the SDK (an
OTLP exporter when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and the ``otlp`` extra is installed,
or the console), the API's tracer is a no-op: a span costs one context-manager call
(``bench/tracing.py`` measures it). The request id of the current request lives in a context
variable that the log filter and the JSON formatter read.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import time
from typing import Any

from opentelemetry import trace

tracer = trace.get_tracer("athkit")
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "athkit_request_id", default=None
)
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
_configured = False
#: How often the hot path looks again for an SDK installed by the host application (the API
#: reads the environment on every ``get_tracer_provider()``, too dear to ask per request).
RECHECK_SECONDS = 1.0
_sdk_seen = False
_looked_at = float("-inf")


def tracing_enabled() -> bool:
    """Whether any OpenTelemetry SDK is installed (ours, or the host application's): when not,
    the hot path skips span calls altogether rather than paying for no-op spans.

    A provider, once set, stays set (the API allows one), so a yes is kept; a no is asked again
    at most every :data:`RECHECK_SECONDS`: an SDK the host installs at start-up is seen from
    its first second on."""
    global _sdk_seen, _looked_at
    if _configured or _sdk_seen:
        return True
    now = time.monotonic()
    if now - _looked_at < RECHECK_SECONDS:
        return False
    _looked_at = now
    _sdk_seen = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    return _sdk_seen


def configure_tracing(service_name: str = "athkit", *, exporter: str | None = None) -> bool:
    """Install the OpenTelemetry SDK once; ``exporter``: "otlp", "console" or None (from env).

    Returns True when spans are now recorded and exported."""
    global _configured
    choice = (
        exporter
        or os.environ.get("ATHKIT_TRACING")
        or ("otlp" if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") else None)
    )
    if _configured or not choice:
        return _configured
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if choice == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
            OTLPSpanExporter,
        )

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True
    return True


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (or "-") to every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        return True


class JSONLogFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request_id, trace/span ids."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            out["trace_id"] = f"{ctx.trace_id:032x}"
            out["span_id"] = f"{ctx.span_id:016x}"
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(*, json_logs: bool = False, level: int = logging.INFO) -> None:
    """Root handler with the request id on every line (JSON lines with ``json_logs``)."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if json_logs:
        handler.setFormatter(JSONLogFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
