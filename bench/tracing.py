"""What tracing costs on the hot path when OpenTelemetry is not configured, and when it is.

Runs a trivial ASGI app three ways, alternating rounds in one run: bare; behind the
request-id middleware with tracing not configured (no span call is made); and with the SDK
recording a server span per request into an in-memory exporter. Prints
``FIGURE tracing_off_overhead_us`` and ``FIGURE tracing_on_overhead_us`` (per request, median
of rounds).

    python bench/tracing.py [--requests 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from athkit.core.tracing import tracing_enabled
from athkit.web import request_id as request_id_module
from athkit.web.request_id import RequestIdMiddleware


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def scope() -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/ath/proxy/mail/v1/me", "headers": []}


async def run(handler: Any, n: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        return None

    start = time.perf_counter()
    for _ in range(n):
        await handler(scope(), receive, send)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    exporter = InMemorySpanExporter()
    sdk = TracerProvider()
    sdk.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(sdk)
    wrapped = RequestIdMiddleware(app)
    bare, off, on = [], [], []
    for _ in range(args.rounds):
        bare.append(asyncio.run(run(app, args.requests)))
        request_id_module.tracing_enabled = lambda: False  # as with no SDK installed
        off.append(asyncio.run(run(wrapped, args.requests)))
        request_id_module.tracing_enabled = tracing_enabled
        on.append(asyncio.run(run(wrapped, args.requests)))
        exporter.clear()
    b, n, r = (statistics.median(x) for x in (bare, off, on))
    print(f"bare ASGI call                     {b:8.2f} us")
    print(f"request id, tracing not configured {n:8.2f} us")
    print(f"request id + recorded server span  {r:8.2f} us")
    print(f"FIGURE tracing_off_overhead_us {n - b:.2f}")
    print(f"FIGURE tracing_on_overhead_us {r - b:.2f}")


if __name__ == "__main__":
    main()
