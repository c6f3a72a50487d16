"""The registry's HTTP API (FastAPI). See ``README.md`` in this package for the endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from athkit.core.operators import OperatorAccounts
from athkit.core.workers import run_in_worker
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.protocol.fields import BoundedInt, text, token
from athkit.registry import ranking
from athkit.registry.errors import ADMIN_UNAUTHORIZED, registry_error
from athkit.registry.models import Listing
from athkit.registry.proof import VERIFICATION_PATH
from athkit.registry.service import RegistryService, RegistrySettings
from athkit.store.shared import MemoryRateLimiter
from athkit.web.body import read_json
from athkit.web.console import csrf_header_ok
from athkit.web.errors import install_error_handlers
from athkit.web.health import build_health_router
from athkit.web.openapi import json_body
from athkit.web.operator_auth import OperatorSessions
from athkit.web.ratelimit import RateLimits, Rule, install_rate_limits
from athkit.web.request_id import own_telemetry_only
from athkit.web.security_headers import harden

#: The registry's anonymous endpoints and their ``RegistrySettings.rate_limits`` buckets.
REGISTRY_RULES: list[Rule] = [
    ("POST", re.compile(r"/api/listings"), "submit"),
    ("POST", re.compile(r"/api/listings/[^/]+/verify"), "verify"),
    ("GET", re.compile(r"/api/search"), "search"),
]

log = logging.getLogger("athkit.registry")

MAX_BODY = 16 * 1024
NO_STORE = {"Cache-Control": "no-store"}


class SubmitRequest(BaseModel):
    url: Annotated[str, token(2048)]
    #: used when the discovery document carries no description of its own
    description: Annotated[str, text(2000)] | None = None
    categories: list[Annotated[str, token(128, 0)]] = Field(default_factory=list, max_length=64)


def listing_json(svc: RegistryService, listing: Listing) -> dict[str, Any]:
    body: dict[str, Any] = {
        "listing_id": listing.id,
        "origin": listing.origin,
        "status": listing.status,
        "verified": listing.verified,
        "protocol": listing.protocol,
        "document_url": listing.document_url,
        "created_at": listing.created_at.isoformat(),
        "checked_at": listing.checked_at.isoformat() if listing.checked_at else None,
        "last_error": listing.last_error,
    }
    if listing.status == "listed":
        body["providers"] = [
            {
                "name": e.name,
                "provider_id": e.provider_id,
                "description": e.description,
                "scopes": json.loads(e.scopes),
                "categories": json.loads(e.categories),
            }
            for e in svc.entries_of(listing.id)
        ]
    if listing.status != "listed" or not listing.verified:
        body["challenge"] = {
            "token": svc.token_for(listing.origin),
            "verification_url": listing.origin + VERIFICATION_PATH,
            "instructions": (
                f"Serve the token as a line of text/plain at {VERIFICATION_PATH} on the origin, "
                f"then POST /api/listings/{listing.id}/verify"
            ),
        }
    return body


def create_registry_app(
    settings: RegistrySettings,
    *,
    embedder: ranking.Embedder | None = None,
    load_model_in_background: bool = True,
) -> FastAPI:
    """Build the registry. ``embedder`` injects a loaded model (tests, bench); otherwise, with
    ``settings.semantic == "auto"`` and the extra installed, the model loads in a background
    thread at start-up and keyword ranking serves until it is ready."""

    svc = RegistryService(settings, embedder=embedder)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if embedder is None and settings.semantic == "auto" and load_model_in_background:
            if ranking.semantic_available(settings.model):
                threading.Thread(target=_load_model, args=(svc,), daemon=True).start()
            else:
                log.info(
                    "semantic ranking off: %s is not installed (%s)",
                    settings.model,
                    ranking.install_hint(settings.model),
                )
        task = None
        if settings.revalidate_interval > 0:
            task = asyncio.create_task(_revalidate_loop(svc, settings.revalidate_interval))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            svc.close()

    app = FastAPI(
        title="athkit registry", version="0.1", lifespan=lifespan, **own_telemetry_only()
    )
    app.state.registry = svc
    install_error_handlers(app)
    app.include_router(build_health_router("", lambda: {"database": svc.db.ping}))
    limits = RateLimits(
        MemoryRateLimiter(),
        per_ip=settings.rate_limits,
        per_agent={},
        enabled=settings.rate_limits_enabled,
    )
    install_rate_limits(app, limits, REGISTRY_RULES)
    harden(app)

    # Operators (athkit admin create-operator --registry) sign in at /ath/operator/signin;
    # their session (plus the console CSRF token in X-CSRF-Token) opens the admin API too.
    operators = OperatorSessions(OperatorAccounts(svc.db), secure=not settings.dev_mode)
    operators.mount(app)

    async def require_admin(request: Request) -> None:
        expected = settings.admin_token
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if expected and given and hmac.compare_digest(given, expected):
            return
        name = await operators(request)
        if name is not None and csrf_header_ok(request):
            log.info("registry admin %s %s by operator %s", request.method, request.url.path, name)
            return
        raise registry_error(ADMIN_UNAUTHORIZED, "admin bearer token or operator session required")

    @app.get("/api/search")
    async def search(
        intent: Annotated[str, Query(min_length=1, max_length=500)],
        limit: Annotated[BoundedInt, Query(ge=1, le=50)] = 10,
        mode: Annotated[Literal["auto", "semantic", "hybrid", "keyword"], Query()] = "auto",
    ) -> Response:
        if not intent.strip():
            raise ATHError(ErrorCode.VALIDATION_ERROR, "intent must not be blank")
        result = await run_in_worker(svc.search, intent, limit, mode)
        return JSONResponse(result.to_dict(), headers=NO_STORE)

    @app.post("/api/listings", openapi_extra=json_body(SubmitRequest))
    async def submit(request: Request) -> Response:
        req = await read_json(request, SubmitRequest, MAX_BODY)
        listing, listed = await run_in_worker(svc.submit, req.url, req.description, req.categories)
        status = 201 if listed else 202
        return JSONResponse(listing_json(svc, listing), status_code=status, headers=NO_STORE)

    @app.get("/api/listings")
    async def listings(
        status: Annotated[Literal["listed", "pending", "delisted"], Query()] = "listed",
        limit: Annotated[BoundedInt, Query(ge=1, le=500)] = 100,
        offset: Annotated[BoundedInt, Query(ge=0)] = 0,
    ) -> Response:
        rows = await run_in_worker(svc.listings, status, limit, offset)
        return JSONResponse(
            {"listings": [listing_json(svc, r) for r in rows], "count": len(rows)},
            headers=NO_STORE,
        )

    @app.get("/api/listings/{listing_id}")
    async def get_listing(listing_id: str) -> Response:
        listing = await run_in_worker(svc.get, listing_id)
        return JSONResponse(listing_json(svc, listing), headers=NO_STORE)

    @app.post("/api/listings/{listing_id}/verify")
    async def verify(listing_id: str) -> Response:
        listing = await run_in_worker(svc.verify, listing_id)
        return JSONResponse(listing_json(svc, listing), headers=NO_STORE)

    @app.get("/api/status")
    async def status() -> Response:
        counts = await run_in_worker(svc.counts)
        return JSONResponse(
            {
                "listings": counts,
                "semantic": svc.semantic_ready,
                "model": svc.embedder.model_name if svc.embedder else None,
                "index": {"entries": len(svc.vectors), "vectors": svc.vectors.vector_count},
                "revalidate_interval": settings.revalidate_interval,
            },
            headers=NO_STORE,
        )

    @app.post("/api/admin/revalidate")
    async def revalidate(request: Request) -> Response:
        await require_admin(request)
        report = await run_in_worker(svc.revalidate)
        return JSONResponse(
            {
                "checked": report.checked,
                "kept": report.kept,
                "dropped": report.dropped,
                "errors": report.errors,
                "purged_pending": report.purged_pending,
            },
            headers=NO_STORE,
        )

    @app.post("/api/admin/listings", openapi_extra=json_body(SubmitRequest))
    async def admin_add(request: Request) -> Response:
        """List an origin without ownership proof (``verified`` stays false)."""
        await require_admin(request)
        req = await read_json(request, SubmitRequest, MAX_BODY)
        listing, _ = await run_in_worker(
            lambda: svc.submit(req.url, req.description, req.categories, require_proof=False)
        )
        return JSONResponse(listing_json(svc, listing), status_code=201, headers=NO_STORE)

    @app.delete("/api/admin/listings/{listing_id}", status_code=204)
    async def admin_remove(listing_id: str, request: Request) -> Response:
        await require_admin(request)
        await run_in_worker(svc.remove, listing_id)
        return Response(status_code=204)

    return app


def _load_model(svc: RegistryService) -> None:
    try:
        embedder = ranking.load_embedder(svc.settings.model)
        if embedder is not None:
            svc.set_embedder(embedder)
            log.info("semantic ranking on (%s)", embedder.model_name)
    except Exception:  # the registry keeps serving keyword results
        log.exception("could not load the embedding model; keyword ranking only")


async def _revalidate_loop(svc: RegistryService, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            report = await run_in_worker(svc.revalidate)
            log.info("re-validated %d listings, dropped %d", report.checked, len(report.dropped))
        except Exception:
            log.exception("re-validation failed")
