"""Prometheus metrics: decisions (from the audit path) and token checks (the §7 hot path).

Label values are bounded sets (event names, outcomes, error codes), never agent or user ids.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

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


def exposition() -> bytes:
    """The metrics in the Prometheus text format."""
    return generate_latest(REGISTRY)
