"""Liveness and readiness for orchestrators and load balancers.

``healthz`` answers 200 while the process serves requests (it touches nothing else).
``readyz`` answers 200 when every dependency answers (the database, and Redis when one is
configured), else 503 ``SERVICE_UNAVAILABLE`` naming which one failed. The gateway and the
registry own their root and serve ``/healthz`` and ``/readyz``; a native mount lives inside a
host app and serves them under ``/ath/`` (PROTOCOL-NOTES.md, "Operations").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi import APIRouter
from starlette.responses import JSONResponse, Response

from athkit.core.service import ATHService
from athkit.core.workers import run_in_worker
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.shared import RedisShared

#: A named readiness probe: returns, or raises when the dependency cannot answer.
Probe = Callable[[], None]

NO_STORE = {"Cache-Control": "no-store"}


def service_probes(svc: ATHService) -> dict[str, Probe]:
    """An ATH service's dependencies: its database, and Redis when it shares state there."""
    probes: dict[str, Probe] = {"database": svc.store.db.ping}
    redis = svc.shared.rate
    if isinstance(redis, RedisShared):
        probes["redis"] = redis.ping
    return probes


def run_probes(probes: Mapping[str, Probe]) -> dict[str, str]:
    """``{"database": "ok", "redis": "unavailable: ..."}``: each probe's outcome."""
    results: dict[str, str] = {}
    for name, probe in probes.items():
        try:
            probe()
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            reason = exc.details.get("reason") if isinstance(exc, ATHError) else None
            results[name] = f"unavailable: {reason or type(exc).__name__}"
    return results


def build_health_router(prefix: str, probes: Callable[[], Mapping[str, Probe]]) -> APIRouter:
    """``{prefix}/healthz`` and ``{prefix}/readyz`` (``prefix`` ``""`` or ``"/ath"``)."""
    router = APIRouter(tags=["operations"])

    @router.get(f"{prefix}/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"}, headers=NO_STORE)

    @router.get(f"{prefix}/readyz")
    async def readyz() -> Response:
        checks = await run_in_worker(run_probes, probes())
        if all(v == "ok" for v in checks.values()):
            return JSONResponse({"status": "ok", "checks": checks}, headers=NO_STORE)
        err = ATHError(
            ErrorCode.SERVICE_UNAVAILABLE,
            "not ready: a dependency is unavailable",
            {"checks": checks, "retry_after": 5},
        )
        return JSONResponse(
            err.to_dict(), status_code=503, headers={**NO_STORE, "Retry-After": "5"}
        )

    return router
