"""Prometheus metrics: decisions (from the audit path) and token checks (the §7 hot path).

Label values are bounded sets (event names, outcomes, error codes), never agent or user ids.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

DECISIONS = Counter(
    "athkit_decisions",
    "Authorization decisions written to the audit log, by event and outcome.",
    ["event", "outcome"],
    registry=REGISTRY,
)
TOKEN_CHECKS = Counter(
    "athkit_token_checks",
    "Access-token checks in front of API routes, by result (ok or the ATH error code).",
    ["result"],
    registry=REGISTRY,
)


STEPS_RERUN = Counter(
    "athkit_steps_rerun_in_worker",
    "Protocol steps that would have waited on the event loop and ran in a worker instead",
    registry=REGISTRY,
)
AUDIT_DROPPED = Counter(
    "athkit_audit_dropped",
    "Per-call audit rows dropped because the audit queue was full or the write failed.",
    ["event"],
    registry=REGISTRY,
)
PROXY_LATENCY = Histogram(
    "athkit_proxy_seconds",
    "Time from a proxied request's arrival to the upstream's response headers, by outcome.",
    ["provider", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
PROXY_REQUESTS = Counter(
    "athkit_proxy_requests",
    "Proxied requests by provider and outcome (the upstream status class or the ATH error code).",
    ["provider", "outcome"],
    registry=REGISTRY,
)


RATE_LIMITED = Counter(
    "athkit_rate_limited",
    "Requests refused with 429 RATE_LIMITED, by limit bucket and per what (ip or agent).",
    ["bucket", "per"],
    registry=REGISTRY,
)


def exposition() -> bytes:
    """The metrics in the Prometheus text format."""
    return generate_latest(REGISTRY)
